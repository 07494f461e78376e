"""Bearer tokens with a read or a write scope for the backend and core APIs.

Reads (GET) need a read or write token once any token is configured; writes (every other
method: sync, add_new, delete_old, on-demand checks) need a write token once a write token is
configured. With no write token, writes are accepted from loopback clients only, so that
``make run`` keeps working on a laptop and nothing remote can change the monitoring;
a request that came through a proxy (``Forwarded``/``X-Forwarded-For``/``X-Real-IP``) is not
local, even from 127.0.0.1.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every
configured token without stopping at a match, so neither the position of a match nor the
length of a token shows in the time a check takes. A token is never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rechecker.security.settings import ApiSettings, read_token_file

log = logging.getLogger(__name__)

#: Methods that only read; anything else changes something and needs the write scope.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers a reverse proxy adds: a request carrying one is not from a local user.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _matches(digest: bytes, known: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every known digest is compared, whatever matched first."""
    found = False
    for candidate in known:
        found |= hmac.compare_digest(digest, candidate)
    return found


def _denied(status: int, detail: str, error: str | None = None) -> HTTPException:
    challenge = 'Bearer realm="rechecker"' + (f', error="{error}"' if error else "")
    return HTTPException(status_code=status, detail=detail, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The configured tokens (as digests) and what a request needs to pass."""

    read: tuple[bytes, ...] = ()
    write: tuple[bytes, ...] = ()
    metrics_public: bool = False

    @classmethod
    def from_settings(cls, api: ApiSettings) -> AccessPolicy:
        """Tokens from the settings and the token files; raises ValueError for a file that
        cannot be read or holds a short token (naming the file, never the token)."""
        read = list(api.read_tokens)
        write = list(api.write_tokens)
        if api.read_tokens_file is not None:
            read += read_token_file(api.read_tokens_file)
        if api.write_tokens_file is not None:
            write += read_token_file(api.write_tokens_file)
        return cls(
            read=tuple(_digest(t.get_secret_value()) for t in read),
            write=tuple(_digest(t.get_secret_value()) for t in write),
            metrics_public=api.metrics_public,
        )

    @property
    def enforced(self) -> bool:
        """Whether reads need a token: true as soon as any token is configured."""
        return bool(self.read or self.write)

    def scope_of(self, token: str) -> Scope | None:
        digest = _digest(token)
        is_write = _matches(digest, self.write)
        is_read = _matches(digest, self.read)
        if is_write:
            return Scope.WRITE
        return Scope.READ if is_read else None

    def check(self, needed: Scope, token: str | None, local: bool) -> None:
        """Pass, or raise the 401 (no or unknown token) or 403 (not allowed) to answer."""
        if needed is Scope.WRITE and not self.write:
            if local:
                return
            raise _denied(
                403,
                "writes are accepted from loopback clients only while no write token is "
                "configured (RECHECKER_API__WRITE_TOKENS)",
                "insufficient_scope",
            )
        if needed is Scope.READ and not self.enforced:
            return
        if token is None:
            raise _denied(401, f"a {needed} token is required: Authorization: Bearer TOKEN")
        scope = self.scope_of(token)
        if scope is None:
            raise _denied(401, "the token is not valid", "invalid_token")
        if needed is Scope.WRITE and scope is not Scope.WRITE:
            raise _denied(
                403, "this token may only read; a write token is required", "insufficient_scope"
            )


def is_local(request: Request) -> bool:
    """A loopback client that did not come through a proxy."""
    if request.client is None or any(h in request.headers for h in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A read or write token (RECHECKER_API__READ_TOKENS / WRITE_TOKENS).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def _authorize(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    policy: AccessPolicy = request.app.state.access
    needed = Scope.READ if request.method in READ_METHODS else Scope.WRITE
    token = credentials.credentials if credentials is not None else None
    try:
        policy.check(needed, token, is_local(request))
    except HTTPException as exc:
        log.info(
            "API request refused: %s %s from %s: %s",
            request.method,
            request.url.path,
            request.client.host if request.client else "unknown",
            exc.detail,
            extra={"http.response.status_code": exc.status_code},
        )
        raise


async def require_token(request: Request, credentials: Credentials) -> None:
    """The dependency of every API route: a read token for GET, a write token otherwise."""
    _authorize(request, credentials)


async def require_metrics_token(request: Request, credentials: Credentials) -> None:
    """``/metrics``: like every read, unless ``RECHECKER_API__METRICS_PUBLIC`` opens it."""
    policy: AccessPolicy = request.app.state.access
    if not policy.metrics_public:
        _authorize(request, credentials)


def warn_about_defaults(policy: AccessPolicy, host: str) -> None:
    """Say at start what an operator without tokens is exposed to."""
    if not policy.write:
        log.warning(
            "no API write token configured (RECHECKER_API__WRITE_TOKENS): sync, add_new, "
            "delete_old and on-demand checks are accepted from loopback clients only"
        )
    if not policy.enforced:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            log.warning(
                "no API token configured and listening on %s: anyone who reaches the port "
                "can read the monitored sites and their status",
                host,
            )
