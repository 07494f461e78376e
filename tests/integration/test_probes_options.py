"""Check options: global defaults from the settings, per-domain overrides from the checks
file, and a clear error at startup for anything that cannot be used."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from rechecker.config import Settings
from rechecker.probes import ProbeSettings
from rechecker.probes.options import OptionsError, ProbeOptions, StatusRanges
from tests.support.targets import probe_context


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_status_ranges() -> None:
    accepted = StatusRanges.parse("200-299, 401,418")
    assert [code for code in (199, 200, 299, 300, 401, 418, 500) if code in accepted] == [
        200,
        299,
        401,
        418,
    ]
    assert str(accepted) == "200-299,401,418"


async def test_sites_get_their_own_options_and_others_the_defaults(
    settings: Settings, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        ["Shop.Example.com."]
        record_types = ["mx", "TXT", "CNAME"]
        expected_addresses = ["192.0.2.10", "2001:db8::10"]
        expected_cname = "shop.cdn.example.net."
        accepted_status = "200-299,401"
        body_regex = "Add to (cart|basket)"
        max_latency_ms = 1500

        ["quiet.example.com"]
        body_match = ""
        """,
    )
    async with probe_context(
        settings,
        checks_file=path,
        http_body_match="Welcome",
        dns_record_types="A,CAA",
        http_max_latency_ms=800.0,
    ) as ctx:
        shop = ctx.options_for("shop.example.com")
        quiet = ctx.options_for("quiet.example.com")
        other = ctx.options_for("other.example.com")
    assert shop.record_types == ("A", "AAAA", "MX", "TXT")
    assert shop.expected_addresses == frozenset(
        {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::10")}
    )
    assert shop.expected_cname == "shop.cdn.example.net"
    assert str(shop.accepted_status) == "200-299,401"
    assert shop.body_regex is not None and shop.body_regex.pattern == "Add to (cart|basket)"
    assert shop.body_match == "Welcome" and shop.max_latency_ms == 1500
    assert quiet.body_match is None and not quiet.checks_body
    assert other == ProbeOptions(
        record_types=("A", "AAAA", "CAA"), body_match="Welcome", max_latency_ms=800.0
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('["ok.test"\n', "not valid TOML"),
        ('["ok.test"]\nbogus = 1\n', "['ok.test']: unknown option 'bogus'"),
        (
            "[www.ok.test]\nbody_match = 'x'\n",
            "['www']: a single label; a domain needs at least two (name.tld) "
            '(for www.ok.test, quote the name: ["www.ok.test"])',
        ),
        ('["ok.test"]\naccepted_status = "200-700"\n', "'200-700' is not a range"),
        ('["ok.test"]\nbody_regex = "(unclosed"\n', "invalid regular expression '(unclosed'"),
        ('["ok.test"]\nrecord_types = ["MX", "SPF"]\n', "unsupported record type SPF"),
        ('["ok.test"]\nexpected_addresses = ["nope"]\n', "expected_addresses.0"),
        ('["ok.test"]\nmax_latency_ms = -1\n', "max_latency_ms: Input should be greater than 0"),
        ('"ok.test" = 1\n', "expected a table of options"),
        ('["ok.test"]\n["OK.test"]\n', "ok.test has options twice"),
    ],
)
def test_a_bad_checks_file_is_refused_with_the_reason(
    settings: Settings, tmp_path: Path, text: str, error: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OptionsError) as raised:
        ProbeSettings.from_settings(settings.model_copy(update={"checks_file": path}))
    assert str(raised.value).startswith(str(path))
    assert error in str(raised.value)


def test_a_missing_checks_file_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(OptionsError, match="cannot read"):
        ProbeSettings.from_settings(settings.model_copy(update={"checks_file": path}))


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("http_accepted_status", "2xx", "RECHECKER_HTTP_ACCEPTED_STATUS: '2xx' is not a status"),
        ("http_body_regex", "[", "RECHECKER_HTTP_BODY_REGEX: invalid regular expression"),
        ("dns_record_types", "A,PTR", "RECHECKER_DNS_RECORD_TYPES: unsupported record type PTR"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(
    settings: Settings, setting: str, value: str, error: str
) -> None:
    with pytest.raises(OptionsError, match=error):
        ProbeSettings.from_settings(settings.model_copy(update={setting: value}))
