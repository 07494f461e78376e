"""The core's endpoints against the loopback targets and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from rechecker.config import Settings
from rechecker.core.api import create_app
from rechecker.models import CheckResult as Result
from rechecker.models import DnsOutcome, DnsResult, Site, State, utcnow
from rechecker.scheduling import Periodic
from rechecker.store import Store
from tests.support.targets import Targets


@pytest.fixture
def client(settings: Settings, targets: Targets) -> Iterator[TestClient]:
    # On loopback: without a write token, on-demand checks are accepted from loopback only.
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as test_client:
        store: Store = test_client.app.state.store  # type: ignore[attr-defined]
        sites = [Site(domain=d, url=u) for d, u in targets.urls().items()]
        assert test_client.portal is not None
        test_client.portal.call(store.add_sites, sites)
        yield test_client


def test_endpoint_lists_the_monitored_sites(client: TestClient, targets: Targets) -> None:
    assert [s["domain"] for s in client.get("/endpoint").json()] == sorted(targets.urls())


def test_dns_on_demand(client: TestClient, targets: Targets) -> None:
    ok = client.post("/dns/OK.test.").json()
    assert ok["outcome"] == "OK" and ok["addresses"] == ["127.0.0.1"]
    assert ok["resolver"] == targets.resolver
    assert client.post("/dns/nxdomain.test").json()["outcome"] == "NXDOMAIN"


def test_http_on_demand_uses_the_monitored_url(client: TestClient, targets: Targets) -> None:
    result = client.post("/http/unavailable.test").json()
    assert result["url"] == targets.urls()["unavailable.test"]
    assert (result["outcome"], result["status_code"]) == ("HTTP_STATUS", 503)


def test_full_check_on_demand(client: TestClient) -> None:
    result = client.post("/check/moved.test").json()
    assert result["state"] == "UP" and result["http"]["final_url"].endswith("/")


@pytest.mark.parametrize("bad", ["not_a_domain", "1.2.3.4", "localhost", "a" * 300 + ".com"])
def test_bad_domains_are_422_naming_the_field(client: TestClient, bad: str) -> None:
    response = client.post(f"/dns/{bad}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "domain"]


def test_status_of_an_unknown_domain_is_404(client: TestClient) -> None:
    assert client.get("/status/unknown.test").status_code == 404


def test_healthz_lists_the_check_and_retention_schedulers(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert [s["name"] for s in health["schedulers"]] == [
        "schedule_healthcheck_sync",
        "purge_history",
    ]


def test_retention_purges_old_history(client: TestClient, settings: Settings) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    schedulers: list[Periodic] = client.app.state.schedulers  # type: ignore[attr-defined]
    old = utcnow() - timedelta(days=settings.history_retention_days + 1)
    dns = DnsResult(outcome=DnsOutcome.OK, addresses=["127.0.0.1"])
    assert client.portal is not None
    client.portal.call(
        store.record_results,
        [
            Result(domain="ok.test", url="http://ok.test/", timestamp=old, state=State.UP, dns=dns),
            Result(domain="ok.test", url="http://ok.test/", state=State.UP, dns=dns),
        ],
    )
    client.portal.call(schedulers[1].run_once)
    history = client.get("/status/ok.test").json()["history"]
    assert len(history) == 1
    assert schedulers[1].status.runs == 1 and schedulers[1].status.last_error is None


def test_cycles_make_incidents_summaries_and_metrics(client: TestClient, targets: Targets) -> None:
    """Two cycles (threshold 2) on the loopback targets, read back through the API."""
    from prometheus_client.parser import text_string_to_metric_families

    from rechecker.core.service import CheckService

    service: CheckService = client.app.state.service  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(service.cycle)
    client.portal.call(service.cycle)

    incidents = client.get("/incidents", params={"open": True}).json()
    assert {i["domain"] for i in incidents} == {
        d for d in targets.urls() if d not in ("ok.test", "moved.test")
    }
    refused = next(i for i in incidents if i["domain"] == "refused.test")
    assert refused["cause"] == "http_refused" and refused["ended_at"] is None

    detail = client.get("/status/ok.test").json()
    assert detail["summary"]["checks"]["24h"] == 2
    assert detail["summary"]["uptime_percent"]["24h"] == 100.0
    assert detail["summary"]["latency_p50_ms"] is not None
    down = client.get("/status/refused.test").json()
    assert down["summary"]["uptime_percent"]["30d"] == 0.0
    assert down["status"]["consecutive_failures"] == 2
    assert down["status"]["incident_id"] == refused["id"]

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    assert samples[("rechecker_domain_up", (("domain", "ok.test"),))] == 1
    assert samples[("rechecker_domain_up", (("domain", "refused.test"),))] == 0
    assert samples[("rechecker_checks_total", (("verdict", "UP"),))] == 4
    assert samples[("rechecker_cycle_checked", ())] == len(targets.urls())
    assert (
        "rechecker_scheduler_lag_seconds",
        (("scheduler", "schedule_healthcheck_sync"),),
    ) in samples
