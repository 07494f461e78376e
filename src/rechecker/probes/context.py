"""What probes share within one worker: settings, options, the DNS and HTTP clients, TLS trust.

Built once per worker (not per check) so that a cycle of 100,000 checks pays for the clients,
the SSL contexts, the resolver list and the per-site options once.
"""

from __future__ import annotations

import ssl
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.resolver

from rechecker.config import Settings
from rechecker.probes import tls
from rechecker.probes.dns_transport import DnsTransport
from rechecker.probes.http_transport import HttpClient
from rechecker.probes.options import ProbeOptions, defaults_from_settings, load_checks_file
from rechecker.security import ssrf

#: Addresses the DNS probe already found for a host, for the HTTP probe of the same check.
pinned_addresses: ContextVar[dict[str, list[str]]] = ContextVar("pinned_addresses")


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"


def parse_nameserver(value: str) -> Nameserver:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT``."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return Nameserver(host, int(rest.lstrip(":") or 53))
    if value.count(":") == 1:
        host, port = value.split(":")
        return Nameserver(host, int(port))
    return Nameserver(value)


def system_nameservers() -> list[Nameserver]:
    try:
        return [Nameserver(str(ns)) for ns in dns.resolver.Resolver().nameservers]
    except dns.resolver.NoResolverConfiguration:
        return []


@dataclass(slots=True)
class ProbeSettings:
    dns_timeout: float
    http_timeout: float
    nameservers: list[Nameserver]
    max_redirects: int
    body_limit: int
    user_agent: str
    ca_file: Path | None = None
    #: Ask every nameserver and compare (True), or use them in turn as fallbacks (False).
    compare_resolvers: bool = False
    fallback_to_http: bool = False
    tls_expiry_warning_days: int = 14
    options: ProbeOptions = field(default_factory=ProbeOptions)
    site_options: dict[str, ProbeOptions] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeSettings:
        """Probe settings with every option parsed; raises OptionsError for a bad setting or
        checks file, so that the mistake stops the start rather than every check."""
        nameservers = [parse_nameserver(v) for v in settings.dns_resolvers] or system_nameservers()
        options = defaults_from_settings(settings)
        site_options = (
            load_checks_file(settings.checks_file, options) if settings.checks_file else {}
        )
        return cls(
            dns_timeout=settings.dns_timeout,
            http_timeout=settings.http_timeout,
            nameservers=nameservers,
            max_redirects=settings.http_max_redirects,
            body_limit=settings.http_body_limit,
            user_agent=settings.http_user_agent,
            ca_file=settings.ca_file,
            # Only resolvers chosen on purpose are compared; the system's are fallbacks.
            compare_resolvers=settings.dns_compare_resolvers and len(settings.dns_resolvers) > 1,
            fallback_to_http=settings.http_fallback_to_http,
            tls_expiry_warning_days=settings.tls_expiry_warning_days,
            options=options,
            site_options=site_options,
        )


class ProbeContext:
    """Shared resources of the probes; use as ``async with ProbeContext(settings) as ctx``."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.ssl_context = ssl.create_default_context()
        if settings.ca_file is not None:
            self.ssl_context.load_verify_locations(cafile=str(settings.ca_file))
        self.ssl_context.sslobject_class = tls.ObservedSSLObject
        # Used only after a verification failure, to read the certificate that caused it.
        self.insecure_ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.insecure_ssl_context.check_hostname = False
        self.insecure_ssl_context.verify_mode = ssl.CERT_NONE
        self.dns_transport = DnsTransport()
        self.http = HttpClient(self.ssl_context, settings.user_agent, self.resolve)

    def options_for(self, domain: str) -> ProbeOptions:
        """The site's options from the checks file, else the global ones."""
        return self.settings.site_options.get(domain, self.settings.options)

    async def resolve(self, host: str) -> list[str]:
        """Addresses of ``host``: those the DNS probe of this check found, else a lookup
        through the configured nameservers (never the system resolver); raises OSError."""
        addresses = pinned_addresses.get({}).get(host.lower().rstrip("."))
        if addresses is not None:
            return ssrf.admit(host, addresses)
        from rechecker.probes.dns import resolve_addresses

        result = await resolve_addresses(host, self)
        if not result.ok:
            raise OSError(f"cannot resolve {host}: {result.outcome} {result.message}".strip())
        return ssrf.admit(host, result.addresses)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dns_transport.close()
