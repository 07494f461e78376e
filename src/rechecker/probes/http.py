"""The HTTP probe: GET the site's URL and classify what happened.

Connections go to the addresses the DNS probe of the same check found (see
``context.pinned_addresses``), with the Host header and TLS SNI of the URL kept.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from http import HTTPStatus

import aiohttp

from rechecker.models import HttpOutcome, HttpResult, Site
from rechecker.probes.context import ProbeContext

ACCEPTED_STATUS = range(200, 400)


async def probe(site: Site, ctx: ProbeContext) -> HttpResult:
    """Fetch ``site.url`` (following redirects) and read at most the body limit; never raises
    for a network outcome."""
    settings = ctx.settings
    started = time.perf_counter()

    def result(outcome: HttpOutcome, message: str, **fields: object) -> HttpResult:
        return HttpResult.model_validate(
            {
                "url": site.url,
                "outcome": outcome,
                "message": message[:500],
                "latency_ms": (time.perf_counter() - started) * 1000,
                **fields,
            }
        )

    try:
        async with asyncio.timeout(settings.http_timeout):
            async with ctx.session.get(
                site.url,
                allow_redirects=settings.max_redirects > 0,
                max_redirects=max(settings.max_redirects, 1),
            ) as response:
                await _read_capped(response, settings.body_limit)
    except TimeoutError:
        return result(
            HttpOutcome.TIMEOUT, f"no complete response within {settings.http_timeout:g}s"
        )
    except aiohttp.TooManyRedirects:
        return result(
            HttpOutcome.TOO_MANY_REDIRECTS, f"more than {settings.max_redirects} redirects"
        )
    except aiohttp.ClientConnectorCertificateError as exc:
        return result(HttpOutcome.TLS, f"certificate not trusted: {exc.certificate_error}")
    except aiohttp.ClientSSLError as exc:
        return result(HttpOutcome.TLS, f"TLS handshake failed: {_reason(exc)}")
    except aiohttp.ClientConnectorDNSError as exc:
        return result(HttpOutcome.UNRESOLVED, str(exc))
    except aiohttp.ClientConnectorError as exc:
        if exc.os_error.errno == errno.ECONNREFUSED:
            return result(HttpOutcome.REFUSED, f"connection refused by {exc.host}:{exc.port}")
        return result(HttpOutcome.ERROR, f"cannot connect to {exc.host}:{exc.port}: {_reason(exc)}")
    except (aiohttp.ServerDisconnectedError, ConnectionResetError) as exc:
        return result(HttpOutcome.RESET, f"connection closed by the server: {_reason(exc)}")
    except aiohttp.ClientOSError as exc:
        if exc.errno == errno.ECONNRESET:
            return result(HttpOutcome.RESET, "connection reset by the server")
        return result(HttpOutcome.ERROR, _reason(exc))
    except (aiohttp.ClientError, ssl.SSLError, ValueError) as exc:
        return result(HttpOutcome.ERROR, f"{type(exc).__name__}: {_reason(exc)}")

    status = response.status
    reason = response.reason or _standard_reason(status)
    fields = {"status_code": status, "reason": reason, "final_url": str(response.url)}
    if status not in ACCEPTED_STATUS:
        return result(HttpOutcome.HTTP_STATUS, f"HTTP {status} {reason}".strip(), **fields)
    return result(HttpOutcome.OK, "", **fields)


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> int:
    """Read up to ``limit`` bytes of the body, so an endless body costs bounded memory."""
    read = 0
    while read < limit:
        chunk = await response.content.read(min(limit - read, 16384))
        if not chunk:
            break
        read += len(chunk)
    return read


def _standard_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
