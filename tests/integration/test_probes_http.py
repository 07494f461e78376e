"""The HTTP probe against real servers on loopback: redirects, body cap and matching, status
expectations, latency warnings, phase timings and the phase a failure hit."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechecker.config import Settings
from rechecker.core.checker import check_site
from rechecker.models import HttpOutcome, Site
from rechecker.probes import PROBES
from rechecker.results import HttpResult
from tests.support.targets import Targets, probe_context


async def http_check(settings: Settings, url: str, **changes: object) -> HttpResult:
    """The HTTP probe of a whole check, as the core runs it (DNS first, addresses pinned)."""
    domain = url.split("//", 1)[1].split(":", 1)[0].split("/", 1)[0]
    async with probe_context(settings, **changes) as ctx:
        checked = await check_site(Site(domain=domain, url=url), ctx)
    assert checked.http is not None, checked.error_message
    return checked.http


async def test_a_redirect_chain_is_counted_to_its_final_url(
    settings: Settings, targets: Targets
) -> None:
    result = await http_check(settings, targets.url("ok.test", "/redirect/3"))
    assert result.outcome is HttpOutcome.OK
    assert result.redirects == 3
    assert result.final_url == targets.url("ok.test", "/redirect/0")
    assert result.status_code == 200


@pytest.mark.parametrize(
    ("hops", "outcome"), [(3, HttpOutcome.OK), (4, HttpOutcome.TOO_MANY_REDIRECTS)]
)
async def test_the_redirect_limit_is_exact(
    settings: Settings, targets: Targets, hops: int, outcome: HttpOutcome
) -> None:
    url = targets.url("ok.test", f"/redirect/{hops}")
    result = await http_check(settings, url, http_max_redirects=3)
    assert result.outcome is outcome


async def test_a_redirect_loop_is_too_many_redirects(settings: Settings, targets: Targets) -> None:
    result = await http_check(settings, targets.url("ok.test", "/loop"))
    assert result.outcome is HttpOutcome.TOO_MANY_REDIRECTS
    assert result.message == "more than 10 redirects, the last to /loop"


@pytest.mark.parametrize("limit", [65536, 1000])
async def test_a_big_body_is_read_up_to_the_cap(
    settings: Settings, targets: Targets, limit: int
) -> None:
    result = await http_check(settings, targets.url("ok.test", "/big"), http_body_limit=limit)
    assert result.outcome is HttpOutcome.OK
    assert result.body_bytes == limit


@pytest.mark.parametrize(
    ("changes", "outcome", "message"),
    [
        ({"http_body_match": "hello from"}, HttpOutcome.OK, ""),
        (
            {"http_body_match": "goodbye"},
            HttpOutcome.BODY_MISMATCH,
            "body (first {size} bytes) does not contain 'goodbye'",
        ),
        ({"http_body_regex": r"from \w+\.test"}, HttpOutcome.OK, ""),
        (
            {"http_body_regex": r"^from"},
            HttpOutcome.BODY_MISMATCH,
            "body (first {size} bytes) does not match /^from/",
        ),
        # Only what was read is searched.
        (
            {"http_body_match": "from", "http_body_limit": 5},
            HttpOutcome.BODY_MISMATCH,
            "body (first 5 bytes) does not contain 'from'",
        ),
    ],
)
async def test_the_body_is_matched_within_the_cap(
    settings: Settings,
    targets: Targets,
    changes: dict[str, object],
    outcome: HttpOutcome,
    message: str,
) -> None:
    result = await http_check(settings, targets.url("ok.test"), **changes)
    size = len(f"hello from ok.test:{targets.http_port}")
    assert (result.outcome, result.message) == (outcome, message.format(size=size))


@pytest.mark.parametrize(
    ("accepted", "outcome"),
    [
        ("200-399", HttpOutcome.HTTP_STATUS),
        ("200-399,401", HttpOutcome.OK),
        ("401", HttpOutcome.OK),
    ],
)
async def test_accepted_statuses_can_be_set(
    settings: Settings, targets: Targets, accepted: str, outcome: HttpOutcome
) -> None:
    url = targets.url("ok.test", "/status/401")
    result = await http_check(settings, url, http_accepted_status=accepted)
    assert result.outcome is outcome
    assert result.status_code == 401


async def test_options_of_one_site_override_the_settings(
    settings: Settings, targets: Targets, tmp_path: Path
) -> None:
    checks = tmp_path / "checks.toml"
    checks.write_text('["ok.test"]\naccepted_status = "401"\nbody_match = ""\n', encoding="utf-8")
    result = await http_check(
        settings,
        targets.url("ok.test", "/status/401"),
        checks_file=checks,
        http_body_match="not there",
    )
    assert result.outcome is HttpOutcome.OK


async def test_a_slow_answer_is_a_warning_not_a_failure(
    settings: Settings, targets: Targets
) -> None:
    result = await http_check(settings, targets.url("ok.test"), http_max_latency_ms=0.001)
    assert result.outcome is HttpOutcome.OK
    (warning,) = result.warnings
    assert warning.startswith("slow response:")
    assert warning.endswith("above 0.001 ms")


async def test_phase_timings_are_recorded(settings: Settings, targets: Targets) -> None:
    result = await http_check(settings, targets.url("ok.test"))
    assert result.http_version == "1.1"
    timings = result.timings.model_dump()
    assert all(value >= 0 for value in timings.values()), timings
    assert timings["tls_ms"] == 0  # plain HTTP: no handshake
    assert result.timings.total_ms > 0
    assert result.latency_ms >= result.timings.total_ms


@pytest.mark.parametrize(
    ("path", "phase"),
    [("/slow", "waiting for the first byte"), ("/slow-body", "reading the body")],
)
async def test_a_timeout_names_the_phase_it_hit(
    settings: Settings, targets: Targets, path: str, phase: str
) -> None:
    result = await http_check(settings, targets.url("ok.test", path), http_timeout=0.5)
    assert result.outcome is HttpOutcome.TIMEOUT
    assert result.message == f"timed out after 0.5s {phase}"


async def test_a_server_that_hangs_up_is_a_reset(settings: Settings, targets: Targets) -> None:
    url = f"http://ok.test:{targets.hangup_port}/"
    result = await http_check(settings, url)
    assert result.outcome is HttpOutcome.RESET
    # Closed or reset, depending on whether the request was sent before the hang-up.
    assert result.message.endswith("by the server waiting for the first byte")


async def test_fallback_to_http_tries_http_when_https_cannot_connect(
    settings: Settings, targets: Targets
) -> None:
    result = await http_check(settings, "https://nothing.test/", http_fallback_to_http=True)
    assert result.outcome is HttpOutcome.REFUSED
    assert result.url == "https://nothing.test/"
    assert result.message == (
        "connection refused by nothing.test:443; over http: connection refused by nothing.test:80"
    )


async def test_no_fallback_unless_asked(settings: Settings, targets: Targets) -> None:
    result = await http_check(settings, "https://nothing.test/")
    assert result.message == "connection refused by nothing.test:443"


async def test_the_http_probe_is_registered_by_name(settings: Settings, targets: Targets) -> None:
    async with probe_context(settings) as ctx:
        result = await PROBES["http"](Site(domain="ok.test", url=targets.url("ok.test")), ctx)
    assert isinstance(result, HttpResult) and result.ok
