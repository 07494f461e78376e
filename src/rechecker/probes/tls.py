"""TLS for the HTTP probe: time the handshake, describe the certificate, say why it failed.

The handshake is observed from inside the shared SSL context (``ObservedSSLObject``), so a
check costs no extra connection: the HTTP probe learns when TLS started and ended and gets
the peer certificate as the handshake completes. Only when verification fails does the probe
connect again, without verification and within its timeout, to read the certificate that
explains the failure (expired since when, issued for which names, by whom).

The certificate is read by a small DER reader below rather than a crypto library: it needs
six fields, and the standard library only decodes certificates it has verified.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import ssl
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from rechecker.results import TlsFailure, TlsInfo

if TYPE_CHECKING:
    from rechecker.probes.context import ProbeContext


class HandshakeObserver(Protocol):
    def tls_started(self) -> None:
        """Called on every handshake step; the first call marks the start."""

    def tls_finished(self, certificate: bytes | None, version: str | None) -> None:
        """Called once the handshake succeeded, with the peer certificate (DER)."""


#: The observer of the request running in this context (set by the HTTP probe).
handshake_observer: ContextVar[HandshakeObserver] = ContextVar("handshake_observer")


class ObservedSSLObject(ssl.SSLObject):
    """An SSLObject that reports its handshake to the current request's observer.

    Installed as ``sslobject_class`` of the probes' SSL context; asyncio and uvloop both drive
    the handshake through ``do_handshake`` in the context of the task that connects.
    """

    def do_handshake(self) -> None:
        observer = handshake_observer.get(None)
        if observer is None:
            super().do_handshake()
            return
        observer.tls_started()
        super().do_handshake()
        observer.tls_finished(self.getpeercert(binary_form=True), self.version())


def describe(
    host: str,
    der: bytes | None,
    version: str | None,
    *,
    now: datetime,
    failure: TlsFailure | None = None,
    error: str = "",
) -> TlsInfo:
    """What the certificate ``der`` says about ``host``; verified when there is no failure."""
    fields: dict[str, object] = {
        "host": host,
        "verified": failure is None,
        "failure": failure,
        "error": error,
        "version": version,
    }
    certificate = _parse_or_none(der)
    if certificate is not None:
        fields |= {
            "subject": certificate.subject,
            "issuer": certificate.issuer,
            "san": list(certificate.san),
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "days_left": math.floor((certificate.not_after - now) / timedelta(days=1)),
            "self_signed": certificate.self_signed,
            "hostname_match": failure is None or certificate.matches(host),
        }
    return TlsInfo.model_validate(fields)


def expiry_warning(info: TlsInfo, window_days: int, now: datetime) -> str | None:
    """A warning when a trusted certificate expires within ``window_days`` (0: never)."""
    if not window_days or not info.verified or info.not_after is None:
        return None
    left = info.not_after - now
    if left >= timedelta(days=window_days):
        return None
    days = left.days
    when = "within a day" if days < 1 else f"in {days} day{'s' if days > 1 else ''}"
    return f"TLS certificate of {info.host} expires on {_when(info.not_after)}, {when}"


async def diagnose(
    host: str, port: int, error: ssl.SSLCertVerificationError, ctx: ProbeContext, budget_s: float
) -> TlsInfo:
    """Why the certificate of ``host:port`` was refused, with the certificate's own details
    when a second, unverified handshake within ``budget_s`` seconds can fetch it."""
    failure = _VERIFY_FAILURES.get(error.verify_code, TlsFailure.UNTRUSTED)
    der, version = await _peer_certificate(host, port, ctx, budget_s)
    certificate = _parse_or_none(der)
    reason = error.verify_message or str(error)
    if certificate is not None:
        reason = _explain(failure, host, certificate, reason)
    return describe(host, der, version, now=datetime.now(UTC), failure=failure, error=reason[:300])


def handshake_failure(host: str, error: BaseException) -> TlsInfo:
    """A handshake that failed before any certificate question (protocol, cipher, not TLS)."""
    reason = getattr(error, "reason", None) or str(error) or type(error).__name__
    return TlsInfo(host=host, verified=False, failure=TlsFailure.HANDSHAKE, error=str(reason))


# OpenSSL X509_V_ERR_* codes that name a precise cause; any other is "not trusted".
_VERIFY_FAILURES = {
    9: TlsFailure.NOT_YET_VALID,
    10: TlsFailure.EXPIRED,
    18: TlsFailure.SELF_SIGNED,
    23: TlsFailure.REVOKED,
    62: TlsFailure.HOSTNAME_MISMATCH,
    64: TlsFailure.HOSTNAME_MISMATCH,
}


def _explain(failure: TlsFailure, host: str, cert: Certificate, fallback: str) -> str:
    match failure:
        case TlsFailure.EXPIRED:
            return f"certificate expired on {_when(cert.not_after)}"
        case TlsFailure.NOT_YET_VALID:
            return f"certificate not valid before {_when(cert.not_before)}"
        case TlsFailure.SELF_SIGNED:
            return f"self-signed certificate ({cert.subject or 'no subject'})"
        case TlsFailure.HOSTNAME_MISMATCH:
            names = ", ".join(cert.san) or cert.subject or "no names"
            return f"certificate is not valid for {host} (it is for {names})"
        case TlsFailure.UNTRUSTED:
            return f"certificate issued by {cert.issuer or 'an unknown issuer'} is not trusted"
    return fallback


async def _peer_certificate(
    host: str, port: int, ctx: ProbeContext, budget_s: float
) -> tuple[bytes | None, str | None]:
    """The certificate ``host:port`` presents, read without verifying it; None on any failure."""
    if budget_s <= 0:
        return None, None
    try:
        async with asyncio.timeout(budget_s):
            addresses = await ctx.resolve(host)
            _, writer = await asyncio.open_connection(
                addresses[0], port, ssl=ctx.insecure_ssl_context, server_hostname=host
            )
    except (OSError, TimeoutError, IndexError, ssl.SSLError):
        return None, None
    ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
    try:
        return ssl_object.getpeercert(binary_form=True), ssl_object.version()
    finally:
        writer.transport.abort()


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    """The fields of an X.509 certificate the checks report."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    self_signed: bool
    san: tuple[str, ...] = ()

    def matches(self, host: str) -> bool:
        """Whether the certificate names ``host`` (RFC 6125: SAN first, one-label wildcard)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            return any(_is_address(name) == address for name in self.san)
        names = [name for name in self.san if _is_address(name) is None]
        if not names and self.subject.startswith("CN="):
            names = [self.subject.split(",", 1)[0][3:]]
        host = host.lower().rstrip(".")
        return any(_name_matches(name.lower(), host) for name in names)


def parse_certificate(der: bytes) -> Certificate:
    """Subject, issuer, validity and subject alternative names of a DER certificate;
    raises ValueError when the bytes are not one."""
    try:
        _, start, end = _element(der, 0)
        _, start, end = _element(der, start)
        tbs = _children(der, start, end)
        if tbs[0][0] == 0xA0:  # explicit version
            tbs = tbs[1:]
        # serial, signature algorithm, issuer, validity, subject, public key, then [1] [2] [3]
        issuer, validity, subject = tbs[2], tbs[3], tbs[4]
        not_before, not_after = (_time(der, *part) for part in _children(der, *validity[1:]))
        san: tuple[str, ...] = next(
            (_alt_names(der, *element[1:]) for element in tbs[6:] if element[0] == 0xA3), ()
        )
        return Certificate(
            subject=_name(der, *subject[1:]),
            issuer=_name(der, *issuer[1:]),
            not_before=not_before,
            not_after=not_after,
            self_signed=der[issuer[1] : issuer[2]] == der[subject[1] : subject[2]],
            san=san,
        )
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a DER certificate: {exc}") from None


def _parse_or_none(der: bytes | None) -> Certificate | None:
    if not der:
        return None
    try:
        return parse_certificate(der)
    except ValueError:
        return None


_Element = tuple[int, int, int]  # tag, start of the value, end of the value

_ATTRIBUTES = {
    b"\x55\x04\x03": "CN",
    b"\x55\x04\x0b": "OU",
    b"\x55\x04\x0a": "O",
    b"\x55\x04\x07": "L",
    b"\x55\x04\x08": "ST",
    b"\x55\x04\x06": "C",
}
_SUBJECT_ALT_NAME = b"\x55\x1d\x11"
_STRING_CODECS = {0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x14: "latin-1"}


def _element(data: bytes, pos: int) -> _Element:
    tag, length = data[pos], data[pos + 1]
    start = pos + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("unsupported length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    end = start + length
    if end > len(data):
        raise ValueError("truncated")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[_Element]:
    elements = []
    while start < end:
        element = _element(data, start)
        elements.append(element)
        start = element[2]
    return elements


def _name(data: bytes, start: int, end: int) -> str:
    """A distinguished name as ``CN=…, O=…``, attributes the checks do not report left out."""
    parts = []
    for _, set_start, set_end in _children(data, start, end):
        for _, seq_start, seq_end in _children(data, set_start, set_end):
            (_, oid_start, oid_end), (tag, value_start, value_end) = _children(
                data, seq_start, seq_end
            )[:2]
            label = _ATTRIBUTES.get(data[oid_start:oid_end])
            if label is not None:
                value = data[value_start:value_end].decode(
                    _STRING_CODECS.get(tag, "utf-8"), "replace"
                )
                parts.append(f"{label}={value}")
    return ", ".join(parts)


def _time(data: bytes, tag: int, start: int, end: int) -> datetime:
    text = data[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime: two-digit year, 50-99 meaning 19xx (RFC 5280)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    if len(text) != 15 or not text.endswith("Z"):  # RFC 5280: YYYYMMDDHHMMSSZ, always
        raise ValueError(f"unsupported time {text!r}")
    return datetime(
        int(text[0:4]),
        int(text[4:6]),
        int(text[6:8]),
        int(text[8:10]),
        int(text[10:12]),
        int(text[12:14]),
        tzinfo=UTC,
    )


def _alt_names(data: bytes, start: int, end: int) -> tuple[str, ...]:
    (_, start, end), *_ = _children(data, start, end)  # the Extensions sequence
    for _, ext_start, ext_end in _children(data, start, end):
        parts = _children(data, ext_start, ext_end)
        _, oid_start, oid_end = parts[0]
        if data[oid_start:oid_end] != _SUBJECT_ALT_NAME:
            continue
        _, value_start, _ = parts[-1]  # OCTET STRING, after the optional "critical"
        _, names_start, names_end = _element(data, value_start)
        names = []
        for tag, name_start, name_end in _children(data, names_start, names_end):
            if tag == 0x82:  # dNSName
                names.append(data[name_start:name_end].decode("ascii", "replace"))
            elif tag == 0x87:  # iPAddress
                names.append(str(ipaddress.ip_address(data[name_start:name_end])))
        return tuple(names)
    return ()


def _is_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _name_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host
