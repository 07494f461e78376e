"""The backend's endpoints, each doing what its name says, against a real SQLite inventory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from rechecker.backend.api import create_app
from rechecker.config import Settings
from rechecker.store import Store
from tests.support.inventory import inventory_rows, use_inventory
from tests.support.targets import Targets


@pytest.fixture
def client(settings: Settings, targets: Targets) -> Iterator[TestClient]:
    use_inventory(settings, inventory_rows(targets))
    # On loopback: without a write token, sync, add_new and delete_old are loopback-only.
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def domains(items: list[dict[str, object]]) -> list[str]:
    return sorted(str(item["domain"]) for item in items)


def test_query_db_lists_active_rows_and_rejects_bad_ones(
    client: TestClient, targets: Targets
) -> None:
    body = client.get("/query_db").json()
    assert domains(body["sites"]) == sorted(targets.urls())
    assert "retired.test" not in domains(body["sites"])
    assert body["rejected"] == [
        {
            "inventory_id": "6901",
            "value": "javascript:alert(1)",
            "reason": "unsupported URL scheme 'javascript'",
        }
    ]


def test_check_db_changes_nothing(client: TestClient, targets: Targets) -> None:
    plan = client.get("/check_db").json()
    assert domains(plan["to_add"]) == sorted(targets.urls())
    assert plan["to_remove"] == []
    assert domains(client.get("/check_db").json()["to_add"]) == domains(plan["to_add"])


def test_add_new_adds_the_inventory_then_nothing(client: TestClient, targets: Targets) -> None:
    first = client.post("/add_new").json()
    assert sorted(first["added"]) == sorted(targets.urls())
    assert client.post("/add_new").json()["added"] == []


def test_add_new_by_hand_normalises_and_rejects(client: TestClient) -> None:
    response = client.post("/add_new", json={"targets": ["Extra.TEST.", "file:///etc/passwd"]})
    assert response.status_code == 200
    body = response.json()
    assert body["added"] == ["extra.test"]
    assert body["rejected"][0]["reason"].startswith("unsupported URL scheme")
    only_bad = client.post("/add_new", json={"targets": ["not a domain"]})
    assert only_bad.status_code == 422


def test_delete_old_removes_a_domain_that_left_the_inventory(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    rows = [row for row in inventory_rows(targets) if row[3] != "ok.test"]
    use_inventory(settings, rows)
    assert client.get("/check_db").json()["to_remove"] == ["ok.test"]
    removed = client.post("/delete_old").json()
    assert removed == {"removed": ["ok.test"], "removal_blocked": None}
    assert "ok.test" not in domains(client.get("/query_db").json()["sites"])
    assert client.get("/check_db").json()["to_remove"] == []


def test_delete_old_with_explicit_domains(client: TestClient) -> None:
    client.post("/sync")
    assert client.post("/delete_old", json={"domains": ["ok.test"]}).json()["removed"] == [
        "ok.test"
    ]


def test_an_empty_inventory_removes_nothing_unless_forced(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    use_inventory(settings, [])
    blocked = client.post("/sync").json()
    assert blocked["removed"] == []
    assert "no usable sites" in blocked["removal_blocked"]
    forced = client.post("/sync", params={"force": True}).json()
    assert sorted(forced["removed"]) == sorted(targets.urls())


def test_a_large_drop_removes_nothing(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    use_inventory(settings, inventory_rows(targets)[:3])
    report = client.post("/sync").json()
    assert report["removed"] == []
    assert "more than the allowed 20%" in report["removal_blocked"]


def test_an_unreadable_inventory_is_a_502_and_removes_nothing(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    with closing(sqlite3.connect(settings.sample_inventory_path)) as conn:
        conn.execute("DROP TABLE sites")
    response = client.post("/sync")
    assert response.status_code == 502
    assert "cannot read inventory" in response.json()["detail"]
    assert client.portal is not None
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    monitored = client.portal.call(store.list_sites)
    assert sorted(site.domain for site in monitored) == sorted(targets.urls())
    assert client.get("/healthz").json()["status"] == "ok"


def test_healthz_and_docs(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert [s["name"] for s in health["schedulers"]] == ["schedule_db_sync", "schedule_db_check"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/query_db", "/add_new", "/check_db", "/delete_old", "/sync", "/healthz"} <= set(paths)


def metric(client: TestClient, name: str) -> float:
    """One sample's value, read with Prometheus' own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def test_a_blocked_removal_is_visible_on_the_api_and_metrics(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    assert metric(client, "rechecker_sync_removal_blocked") == 0
    use_inventory(settings, [])
    client.post("/sync")
    status = client.get("/sync/status").json()["sync"]
    assert status["ok"] is True and status["removed"] == 0
    assert "no usable sites" in status["removal_blocked"]
    assert metric(client, "rechecker_sync_removal_blocked") == 1
    assert metric(client, "rechecker_inventory_sites") == 0


def test_an_inventory_failure_is_visible_and_the_next_sync_recovers(
    client: TestClient, settings: Settings, targets: Targets
) -> None:
    client.post("/sync")
    with closing(sqlite3.connect(settings.sample_inventory_path)) as conn:
        conn.execute("ALTER TABLE sites RENAME TO sites_moved")
    assert client.post("/sync").status_code == 502
    failed = client.get("/sync/status").json()["sync"]
    assert failed["ok"] is False and "cannot read inventory" in failed["error"]
    assert metric(client, "rechecker_inventory_up") == 0
    with closing(sqlite3.connect(settings.sample_inventory_path)) as conn:
        conn.execute("ALTER TABLE sites_moved RENAME TO sites")
    assert client.post("/sync").status_code == 200
    assert client.get("/sync/status").json()["sync"]["ok"] is True
    assert metric(client, "rechecker_inventory_up") == 1
    assert metric(client, "rechecker_inventory_sites") == len(targets.urls())
