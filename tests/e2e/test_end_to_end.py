"""Inventory → ``rechecker sync`` → ``rechecker cycle`` → store → dashboard and core API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rechecker.config import Settings
from rechecker.core.api import create_app as core_app
from rechecker.frontend.app import create_app as frontend_app
from rechecker.models import CheckResult
from rechecker.store import create_store
from tests.support.inventory import inventory_rows, use_inventory
from tests.support.process import rechecker
from tests.support.targets import Targets

EXPECTED = {
    "ok.test": ("UP", "", 200),
    "moved.test": ("UP", "", 200),
    "unavailable.test": ("DOWN", "http_http_status", 503),
    "slow.test": ("DOWN", "http_timeout", None),
    "refused.test": ("DOWN", "http_refused", None),
    "tls.test": ("DOWN", "http_tls", None),
    "nxdomain.test": ("DOWN", "dns_nxdomain", None),
    "servfail.test": ("DOWN", "dns_servfail", None),
    "silent.test": ("DOWN", "dns_timeout", None),
}

pytestmark = pytest.mark.e2e


def stored_status(settings: Settings) -> list[CheckResult]:
    async def read() -> list[CheckResult]:
        store = create_store(settings.resolved_store_url)
        await store.open()
        try:
            return await store.list_status()
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, targets: Targets) -> tuple[Settings, Path]:
    """One sync and one check cycle, run by the real command as a user would."""
    workdir = tmp_path_factory.mktemp("e2e")
    settings = Settings(
        _env_file=None,
        data_dir=workdir / "data",
        dns_resolvers=[targets.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
    )
    use_inventory(settings, inventory_rows(targets))

    sync = rechecker(settings, "sync", cwd=workdir)
    assert sync.returncode == 0, sync.stderr
    assert sync.stdout.splitlines()[0].startswith(f"added {len(EXPECTED)}: ")
    assert "rejected (inventory id 6901): 'javascript:alert(1)'" in sync.stdout

    cycle = rechecker(settings, "cycle", cwd=workdir)
    assert cycle.returncode == 0, cycle.stderr
    assert cycle.stdout.startswith(f"checked {len(EXPECTED)} of {len(EXPECTED)} sites")
    assert "2 up, 7 down" in cycle.stdout
    return settings, workdir


def test_the_store_holds_the_expected_status_for_each_domain(
    checked: tuple[Settings, Path],
) -> None:
    settings, _ = checked
    seen = {
        r.domain: (r.state.value, r.error_class, r.status_code) for r in stored_status(settings)
    }
    assert seen == EXPECTED


def test_the_dashboard_lists_failing_domains_first(checked: tuple[Settings, Path]) -> None:
    settings, _ = checked
    app = frontend_app(settings)
    try:
        html = app.test_client().get("/").get_data(as_text=True)
        data = app.test_client().get("/api/status").get_json()
    finally:
        app.extensions["rechecker"].close()
    positions = {domain: html.index(domain) for domain in EXPECTED}
    down = [d for d, (state, _, _) in EXPECTED.items() if state == "DOWN"]
    up = [d for d, (state, _, _) in EXPECTED.items() if state == "UP"]
    assert max(positions[d] for d in down) < min(positions[d] for d in up)
    assert "HTTP 503 Service Unavailable" in html
    states = {item["domain"]: item["state"] for item in data["domains"]}
    assert states == {domain: expected[0] for domain, expected in EXPECTED.items()}


def test_the_core_api_returns_the_same(checked: tuple[Settings, Path]) -> None:
    settings, _ = checked
    with TestClient(core_app(settings)) as client:
        listed = client.get("/status").json()
        failing = client.get("/status", params={"failing": True}).json()
        one = client.get("/status/unavailable.test").json()
        sites = client.get("/endpoint").json()
    assert {
        r["domain"]: (r["state"], r["error_class"], r["status_code"]) for r in listed
    } == EXPECTED
    assert [r["domain"] for r in listed][: len(failing)] == [r["domain"] for r in failing]
    assert one["status"]["error_message"] == "HTTP 503 Service Unavailable"
    assert len(one["history"]) == 1
    assert sorted(s["domain"] for s in sites) == sorted(EXPECTED)


def test_a_domain_that_left_the_inventory_leaves_the_dashboard(
    checked: tuple[Settings, Path], targets: Targets
) -> None:
    settings, workdir = checked
    use_inventory(settings, [row for row in inventory_rows(targets) if row[3] != "ok.test"])
    sync = rechecker(settings, "sync", cwd=workdir)
    assert sync.returncode == 0, sync.stderr
    assert "removed 1: ok.test" in sync.stdout
    assert "ok.test" not in {r.domain for r in stored_status(settings)}
    use_inventory(settings, inventory_rows(targets))
    assert "added 1: ok.test" in rechecker(settings, "sync", cwd=workdir).stdout
