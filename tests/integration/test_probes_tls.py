"""HTTPS checks against a loopback server that presents, by SNI, a certificate for each TLS
case: valid, expiring soon, expired, for another host, self-signed, from an unknown CA."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rechecker.config import Settings
from rechecker.core.checker import check_site
from rechecker.models import HttpOutcome, Site
from rechecker.results import HttpResult, TlsFailure
from tests.support.targets import Targets, probe_context


async def https_check(
    settings: Settings, targets: Targets, domain: str, *, trusted: bool = True, **changes: object
) -> HttpResult:
    """The HTTP part of a check of ``https://domain/``, trusting the test CA unless told."""
    if trusted:
        changes["ca_file"] = targets.ca_file
    async with probe_context(settings, **changes) as ctx:
        checked = await check_site(Site(domain=domain, url=targets.url(domain, https=True)), ctx)
    assert checked.http is not None, checked.error_message
    return checked.http


async def test_a_valid_certificate_is_described(settings: Settings, targets: Targets) -> None:
    result = await https_check(settings, targets, "tls.test")
    assert result.outcome is HttpOutcome.OK, result.message
    assert result.warnings == []
    tls = result.tls
    assert tls is not None
    assert (tls.host, tls.verified, tls.failure, tls.error) == ("tls.test", True, None, "")
    assert tls.san == ["tls.test", "ok.test"]
    assert "trustme" in tls.issuer
    assert tls.hostname_match is True and tls.self_signed is False
    assert tls.version is not None and tls.version.startswith("TLS")
    assert tls.not_after is not None and tls.not_after > datetime.now(UTC)
    assert tls.days_left is not None and tls.days_left > 14
    assert result.timings.tls_ms > 0  # the handshake is its own phase
    assert all(value >= 0 for value in result.timings.model_dump().values())


async def test_a_certificate_about_to_expire_is_a_warning_with_its_date(
    settings: Settings, targets: Targets
) -> None:
    result = await https_check(settings, targets, "expiring.test")
    assert result.outcome is HttpOutcome.OK
    (warning,) = result.warnings
    expected = f"{targets.expiring_on:%Y-%m-%d %H:%M} UTC"
    assert warning.startswith(f"TLS certificate of expiring.test expires on {expected}, in ")
    assert result.tls is not None and result.tls.not_after == targets.expiring_on


async def test_the_expiry_window_can_be_turned_off(settings: Settings, targets: Targets) -> None:
    result = await https_check(settings, targets, "expiring.test", tls_expiry_warning_days=0)
    assert result.warnings == []


@pytest.mark.parametrize(
    ("domain", "trusted", "failure", "message"),
    [
        ("expired.test", True, TlsFailure.EXPIRED, "TLS: certificate expired on {expired_on}"),
        (
            "wronghost.test",
            True,
            TlsFailure.HOSTNAME_MISMATCH,
            "TLS: certificate is not valid for wronghost.test (it is for other.test)",
        ),
        ("selfsigned.test", True, TlsFailure.SELF_SIGNED, "TLS: self-signed certificate ("),
        (
            "untrusted.test",
            True,
            TlsFailure.UNTRUSTED,
            "TLS: certificate issued by O=Stranger CA",
        ),
        ("tls.test", False, TlsFailure.UNTRUSTED, "TLS: certificate issued by O=trustme"),
    ],
)
async def test_each_tls_failure_says_why(
    settings: Settings,
    targets: Targets,
    domain: str,
    trusted: bool,
    failure: TlsFailure,
    message: str,
) -> None:
    result = await https_check(settings, targets, domain, trusted=trusted)
    assert result.outcome is HttpOutcome.TLS
    assert result.tls is not None and result.tls.failure is failure
    assert not result.tls.verified
    expired_on = f"{targets.expired_on:%Y-%m-%d %H:%M} UTC"
    assert result.message.startswith(message.format(expired_on=expired_on)), result.message


async def test_a_refused_certificate_is_still_described(
    settings: Settings, targets: Targets
) -> None:
    """The details come from a second, unverified handshake made only after the failure."""
    result = await https_check(settings, targets, "wronghost.test")
    tls = result.tls
    assert tls is not None
    assert tls.san == ["other.test"]
    assert tls.hostname_match is False
    assert tls.days_left is not None and tls.days_left > 0

    expired = await https_check(settings, targets, "expired.test")
    assert expired.tls is not None and expired.tls.not_after == targets.expired_on
    assert expired.tls.days_left is not None and expired.tls.days_left < 0

    self_signed = await https_check(settings, targets, "selfsigned.test")
    assert self_signed.tls is not None and self_signed.tls.self_signed is True


async def test_plain_http_on_the_https_port_is_a_handshake_failure(
    settings: Settings, targets: Targets
) -> None:
    async with probe_context(settings) as ctx:
        url = f"https://ok.test:{targets.http_port}/"
        checked = await check_site(Site(domain="ok.test", url=url), ctx)
    assert checked.http is not None
    assert checked.http.outcome is HttpOutcome.TLS
    assert checked.http.tls is not None
    assert checked.http.tls.failure is TlsFailure.HANDSHAKE
    assert checked.http.message.startswith("TLS handshake failed: ")
