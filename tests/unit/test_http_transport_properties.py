"""Properties of the HTTP client's response reading, over hostile and well-formed bytes.

Whatever a server sends, split however the network splits it, reading a response must end in
a response or in one of the client's own errors (never another exception, so the probe can
classify it), and must never keep more of the body than the limit. A well-formed body must
read the same however it is split. The examples are derandomized: CI runs the same ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rechecker.probes.http_transport import MAX_LINE, HttpError, Response, _Exchange
from tests.unit.test_domains_properties import PROPERTY

LIMIT = 64


class _Transport(asyncio.Transport):
    """Records what the exchange does to its connection."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None: ...

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _read(pieces: list[bytes]) -> tuple[Response | BaseException, int | BaseException, bytes]:
    """Feed ``pieces`` to an exchange, then close the connection; what the futures hold."""

    async def run() -> tuple[Response | BaseException, int | BaseException, bytes]:
        kept = bytearray()
        exchange = _Exchange(asyncio.get_running_loop(), LIMIT, kept)
        exchange.connection_made(_Transport())
        for piece in pieces:
            exchange.data_received(piece)
        exchange.connection_lost(None)
        head = exchange.head.exception() or exchange.head.result()
        body = exchange.body.exception() or exchange.body.result() if exchange.body.done() else 0
        return head, body, bytes(kept)

    return asyncio.run(run())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_HEADS = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 404 Not Found\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 204 No Content\r\n",
        b"HTTP/1.1 999\r\n",
        b"HTTP/2 200\r\n",
        b"ICY 200 OK\r\n",
        b"",
    ]
)
_HEADERS = st.lists(
    st.sampled_from(
        [
            b"Content-Length: 5\r\n",
            b"Content-Length: 0\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: 99999999999999999999\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: gzip\r\n",
            b"Location: /x\r\n",
            b" folded\r\n",
            b"no colon\r\n",
            b"X-Long: " + b"l" * (MAX_LINE + 1) + b"\r\n",
        ]
    ),
    max_size=4,
)


@PROPERTY
@given(
    head=_HEADS,
    headers=_HEADERS,
    body=st.binary(max_size=300),
    noise=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_response_ends_in_a_response_or_an_http_error(
    head: bytes, headers: list[bytes], body: bytes, noise: bytes, cuts: list[int]
) -> None:
    data = head + b"".join(headers) + b"\r\n" + body + noise
    response, read, kept = _read(_split(data, cuts))
    assert isinstance(response, Response | HttpError), response
    assert isinstance(read, int | HttpError), read
    assert len(kept) <= LIMIT
    if isinstance(read, int):
        assert read == len(kept)


@PROPERTY
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_end_in_a_response_or_an_http_error(data: bytes, cuts: list[int]) -> None:
    response, read, kept = _read(_split(data, cuts))
    assert isinstance(response, Response | HttpError), response
    assert isinstance(read, int | HttpError), read
    assert len(kept) <= LIMIT


@PROPERTY
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    extension=st.sampled_from([b"", b";name=value", b"  "]),
    trailers=st.sampled_from([b"", b"X-Checksum: 1\r\n"]),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_a_chunked_body_reads_the_same_however_it_is_split(
    chunks: list[bytes], extension: bytes, trailers: bytes, cuts: list[int]
) -> None:
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks)
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n"
    data += trailers + b"\r\n"
    response, read, kept = _read(_split(data, cuts))
    assert isinstance(response, Response)
    assert kept == b"".join(chunks)[:LIMIT]
    assert read == len(kept)
