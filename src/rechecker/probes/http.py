"""The HTTP probe: GET the site's URL, time each phase and classify what happened.

Connections go to the addresses the DNS probe of the same check found (see
``context.pinned_addresses``), with the Host header and TLS SNI of the URL kept; the wire work
is ``http_transport``'s.

Each request has a ``_Timeline``: the client tells it when it resolves, connects and waits,
and the TLS handshake observer (found through a context variable) when the handshake runs, so
the probe knows how long DNS, connect, TLS, first byte and body took and, on a timeout, which
phase it hit.
"""

from __future__ import annotations

import asyncio
import errno
import time
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING

from yarl import URL

from rechecker.models import HttpOutcome, HttpResult, Site
from rechecker.probes import http_transport, tls
from rechecker.probes.http_transport import Request, Response
from rechecker.results import HttpTimings, TlsInfo

if TYPE_CHECKING:
    from rechecker.probes.context import ProbeContext
    from rechecker.probes.options import ProbeOptions


class Phase(StrEnum):
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    FIRST_BYTE = "first byte"
    BODY = "body"


_DURING = {
    Phase.DNS: "resolving the host",
    Phase.CONNECT: "connecting",
    Phase.TLS: "in the TLS handshake",
    Phase.FIRST_BYTE: "waiting for the first byte",
    Phase.BODY: "reading the body",
}


class _Timeline:
    """Where one request is and how long each phase took, summed over redirects."""

    __slots__ = (
        "_since",
        "certificate",
        "connected",
        "ended",
        "location",
        "phase",
        "redirects",
        "spent",
        "started",
        "tls_version",
    )

    def __init__(self) -> None:
        self.started = self._since = time.perf_counter()
        self.ended: float | None = None
        self.phase = Phase.CONNECT
        self.spent = dict.fromkeys(Phase, 0.0)
        self.connected = False
        self.redirects = 0
        self.location: str | None = None
        self.certificate: bytes | None = None
        self.tls_version: str | None = None

    def enter(self, phase: Phase) -> None:
        now = time.perf_counter()
        self.spent[self.phase] += now - self._since
        self.phase, self._since = phase, now
        self.connected |= phase in (Phase.TLS, Phase.FIRST_BYTE)

    # http_transport.Observer
    def resolving(self) -> None:
        self.enter(Phase.DNS)

    def connecting(self) -> None:
        # A new connection (the first, or a redirect's): its certificate is not known yet.
        self.certificate = self.tls_version = None
        self.enter(Phase.CONNECT)

    def waiting(self) -> None:
        self.enter(Phase.FIRST_BYTE)

    def reading(self) -> None:
        self.enter(Phase.BODY)

    def redirected(self, count: int, location: str) -> None:
        self.redirects, self.location = count, location

    def finish(self) -> None:
        self.enter(self.phase)
        self.ended = self._since

    @property
    def total_ms(self) -> float:
        return ((self.ended or time.perf_counter()) - self.started) * 1000

    def timings(self) -> HttpTimings:
        spent = self.spent
        return HttpTimings(
            dns_ms=spent[Phase.DNS] * 1000,
            connect_ms=spent[Phase.CONNECT] * 1000,
            tls_ms=spent[Phase.TLS] * 1000,
            first_byte_ms=spent[Phase.FIRST_BYTE] * 1000,
            body_ms=spent[Phase.BODY] * 1000,
            total_ms=self.total_ms,
        )

    # tls.HandshakeObserver
    def tls_started(self) -> None:
        if self.phase is not Phase.TLS:
            self.enter(Phase.TLS)

    def tls_finished(self, certificate: bytes | None, version: str | None) -> None:
        self.certificate, self.tls_version = certificate, version
        self.enter(Phase.CONNECT)


async def probe(site: Site, ctx: ProbeContext) -> HttpResult:
    """Fetch ``site.url`` (following redirects), read at most the body limit and check it
    against the site's options; never raises for a network outcome."""
    started = time.perf_counter()
    options = ctx.options_for(site.domain)
    result, connected = await _fetch(site.url, options, ctx)
    fallback = _http_url(site.url) if ctx.settings.fallback_to_http and not connected else None
    if fallback is not None:
        first = result
        result, _ = await _fetch(fallback, options, ctx)
        if not result.ok:
            result.message = f"{first.message}; over http: {result.message}"[:500]
    result.url = site.url
    result.latency_ms = (time.perf_counter() - started) * 1000
    return result


def _http_url(url: str) -> str | None:
    """The http:// twin of an https:// URL on the default port; None for any other URL."""
    parsed = URL(url)
    if parsed.scheme != "https" or parsed.explicit_port is not None:
        return None
    return str(parsed.with_scheme("http"))


async def _fetch(url: str, options: ProbeOptions, ctx: ProbeContext) -> tuple[HttpResult, bool]:
    """One GET of ``url``; the result, and whether a connection was ever established."""
    timeline = _Timeline()
    body = bytearray() if options.checks_body else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.http_timeout

    def result(outcome: HttpOutcome, message: str, **fields: object) -> HttpResult:
        return HttpResult.model_validate(
            {
                "url": url,
                "outcome": outcome,
                "message": message[:500],
                "timings": timeline.timings(),
                "redirects": timeline.redirects,
                **fields,
            }
        )

    try:
        response = await _get(URL(url), ctx, timeline, body, deadline)
    except http_transport.CertificateError as exc:
        info = await tls.diagnose(exc.host, exc.port, exc.error, ctx, deadline - loop.time())
        return result(HttpOutcome.TLS, f"TLS: {info.error}", tls=info), True
    except (http_transport.HttpError, OSError, ValueError) as exc:
        outcome, message, handshake = _classify_error(exc, timeline, ctx)
        return result(outcome, message, tls=handshake), timeline.connected

    status = response.status
    reason = response.reason or _standard_reason(status)
    certificate = _certificate(response.url, timeline)
    fields = {
        "status_code": status,
        "reason": reason,
        "final_url": str(response.url),
        "http_version": response.version,
        "body_bytes": response.body_bytes,
        "tls": certificate,
        "warnings": _warnings(timeline, certificate, options, ctx),
    }
    if status not in options.accepted_status:
        return result(HttpOutcome.HTTP_STATUS, f"HTTP {status} {reason}".strip(), **fields), True
    mismatch = _body_mismatch(body, response.charset, options) if body is not None else None
    if mismatch is not None:
        return result(HttpOutcome.BODY_MISMATCH, mismatch, **fields), True
    return result(HttpOutcome.OK, "", **fields), True


async def _get(
    url: URL, ctx: ProbeContext, timeline: _Timeline, body: bytearray | None, deadline: float
) -> Response:
    """The response to a GET of ``url`` (redirects followed, up to the body limit read),
    ``timeline`` following the request through its phases until ``deadline``."""
    settings = ctx.settings
    request = Request(
        max_redirects=settings.max_redirects,
        body_limit=settings.body_limit,
        keep=body,
        # A compressed body cannot be searched.
        identity=body is not None,
    )
    token = tls.handshake_observer.set(timeline)
    try:
        async with asyncio.timeout_at(deadline):
            return await ctx.http.get(url, request, timeline)
    finally:
        timeline.finish()
        tls.handshake_observer.reset(token)


def _classify_error(
    exc: BaseException, timeline: _Timeline, ctx: ProbeContext
) -> tuple[HttpOutcome, str, TlsInfo | None]:
    """The outcome of a request that ended in an exception, naming the phase it was in."""
    during = _DURING[timeline.phase]
    match exc:
        case TimeoutError():
            return (
                HttpOutcome.TIMEOUT,
                f"timed out after {ctx.settings.http_timeout:g}s {during}",
                None,
            )
        case http_transport.TooManyRedirects():
            last = f", the last to {timeline.location}" if timeline.location else ""
            return (
                HttpOutcome.TOO_MANY_REDIRECTS,
                f"more than {ctx.settings.max_redirects} redirects{last}",
                None,
            )
        case http_transport.HandshakeError():
            info = tls.handshake_failure(exc.host, exc.error)
            return HttpOutcome.TLS, f"TLS handshake failed: {info.error}", info
        case http_transport.ResolveError():
            return HttpOutcome.UNRESOLVED, str(exc), None
        case http_transport.ConnectError() if exc.error.errno == errno.ECONNREFUSED:
            return HttpOutcome.REFUSED, f"connection refused by {exc.host}:{exc.port}", None
        case http_transport.ConnectError():
            return (
                HttpOutcome.ERROR,
                f"cannot connect to {exc.host}:{exc.port}: {_reason(exc.error)}",
                None,
            )
        case http_transport.ServerDisconnected() | ConnectionResetError():
            return HttpOutcome.RESET, f"connection closed by the server {during}", None
        case OSError() if exc.errno == errno.ECONNRESET:
            return HttpOutcome.RESET, f"connection reset by the server {during}", None
        case http_transport.ProtocolError():
            return HttpOutcome.ERROR, f"invalid response {during}: {exc}", None
    return HttpOutcome.ERROR, f"{type(exc).__name__} {during}: {_reason(exc)}", None


def _certificate(url: URL, timeline: _Timeline) -> TlsInfo | None:
    """The verified certificate of the final connection, when it was HTTPS."""
    if timeline.certificate is None or url.host is None:
        return None
    return tls.describe(url.host, timeline.certificate, timeline.tls_version, now=_now())


def _warnings(
    timeline: _Timeline, certificate: TlsInfo | None, options: ProbeOptions, ctx: ProbeContext
) -> list[str]:
    warnings = []
    if certificate is not None:
        expiring = tls.expiry_warning(certificate, ctx.settings.tls_expiry_warning_days, _now())
        if expiring is not None:
            warnings.append(expiring)
    if options.max_latency_ms is not None and timeline.total_ms > options.max_latency_ms:
        warnings.append(
            f"slow response: {timeline.total_ms:.0f} ms, above {options.max_latency_ms:g} ms"
        )
    return warnings


def _body_mismatch(body: bytearray, charset: str | None, options: ProbeOptions) -> str | None:
    """What the body (as much as was read) lacks, or None when it matches."""
    try:
        text = body.decode(charset or "utf-8", "replace")
    except LookupError:
        text = body.decode("utf-8", "replace")
    read = f"body (first {len(body)} bytes)"
    if options.body_match is not None and options.body_match not in text:
        return f"{read} does not contain {options.body_match!r}"
    if options.body_regex is not None and options.body_regex.search(text) is None:
        return f"{read} does not match /{options.body_regex.pattern}/"
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def _standard_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
