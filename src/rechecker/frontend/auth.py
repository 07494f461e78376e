"""Optional access control for the dashboard: HTTP basic auth, a trusted proxy's header, or both.

The dashboard shows internal hostnames, addresses and error messages, so it is often put
behind a login. Two ways, because teams already have one of them:

* **basic auth**: one user and password, the password given in plain or as a Werkzeug hash
  (``scrypt:…`` / ``pbkdf2:…`` from :func:`werkzeug.security.generate_password_hash`), so
  the configuration need not hold the password itself;
* **a reverse proxy that has already authenticated the reader** (oauth2-proxy, an SSO gateway)
  and says who it is in a header, e.g. ``X-Forwarded-User``. The header is trusted as is, so
  the dashboard must only be reachable through that proxy, and the proxy must overwrite the
  header on every request.

Either passing is enough. Comparisons take constant time (:func:`hmac.compare_digest`).
``/healthz`` and ``/readyz`` stay open for load balancers; they say nothing but whether the
server and the store answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import Request, Response
from werkzeug.security import check_password_hash

#: Prefixes of the hashes :func:`werkzeug.security.generate_password_hash` produces.
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
REALM = "Rechecker dashboard"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class DashboardAuth:
    """Who may see the dashboard. Build it with :meth:`configured` from settings."""

    user: str | None = None
    #: The password in plain, or a Werkzeug hash of it.
    password: str | None = field(default=None, repr=False)
    #: A header a trusted proxy sets to the authenticated user, e.g. ``X-Forwarded-User``.
    header: str | None = None
    #: Values of ``header`` let in; empty: any non-empty value (the proxy decided already).
    header_values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ValueError("dashboard basic auth needs both a user and a password")
        if self.user is not None and (not self.user or ":" in self.user):
            raise ValueError("the dashboard user must be non-empty and without ':'")
        if self.password == "":
            raise ValueError("the dashboard password must not be empty")
        if self.header is not None and not self.header.strip():
            raise ValueError("the dashboard auth header name must not be empty")
        if self.user is None and self.header is None:
            raise ValueError("dashboard auth needs a user and password, a header, or both")

    @classmethod
    def configured(
        cls,
        user: str | None = None,
        password: str | None = None,
        header: str | None = None,
        header_values: Iterable[str] = (),
    ) -> DashboardAuth | None:
        """The auth these settings ask for, or None when they ask for none (empty = unset)."""
        values = frozenset(v.strip() for v in header_values if v.strip())
        if not (user or password or header):
            if values:
                raise ValueError("dashboard auth header values are set but no header name")
            return None
        return cls(
            user=user or None,
            password=password or None,
            header=(header or "").strip() or None,
            header_values=values,
        )

    def _password_matches(self, given: str) -> bool:
        assert self.password is not None
        if self.password.startswith(HASH_PREFIXES):
            return check_password_hash(self.password, given)
        return _same(given, self.password)

    def _basic_ok(self, request: Request) -> bool:
        credentials = request.authorization
        if self.user is None or credentials is None or credentials.type != "basic":
            return False
        # Both comparisons run whatever the first says, so timing tells nothing about which.
        user_ok = _same(credentials.username or "", self.user)
        password_ok = self._password_matches(credentials.password or "")
        return user_ok and password_ok

    def _header_ok(self, request: Request) -> bool:
        if self.header is None:
            return False
        value = request.headers.get(self.header, "").strip()
        if not value:
            return False
        if not self.header_values:
            return True
        return any(_same(value, allowed) for allowed in sorted(self.header_values))

    def allows(self, request: Request) -> bool:
        return self._header_ok(request) or self._basic_ok(request)

    def challenge(self) -> Response:
        """401 with a basic-auth challenge when basic auth is on; 403 behind a proxy alone."""
        if self.user is None:
            return Response("Forbidden: sign in through the proxy.\n", 403, mimetype="text/plain")
        response = Response("Sign in to see the dashboard.\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return response
