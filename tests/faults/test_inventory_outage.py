"""The inventory's MariaDB goes down under a running ``rechecker backend`` and comes back.

Extends the sync-level tests (``tests/integration/test_original_stack.py`` stops MariaDB
around one ``sync`` call; ``test_backend_api.py`` breaks a SQLite inventory under the API):
here the real process and its schedulers face the outage. Nothing is deleted, the error is on
/sync/status, /healthz and /metrics, and the schedulers recover by themselves.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.components import Component, start, wait_until
from tests.integration.test_original_stack import load_rows, unique
from tests.support.inventory import inventory_rows
from tests.support.stores import on_store
from tests.support.targets import Targets

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "artifacts" / "reliability" / "inventory-outage.json"
JOBS = ("schedule_db_sync", "schedule_db_check")
#: Failed runs of each sync job to sit through before the inventory comes back.
FAILED_RUNS = 3

pytestmark = pytest.mark.e2e


def sync_status(backend: Component) -> dict[str, Any]:
    status: dict[str, Any] = backend.get("/sync/status").json()
    return status


def all_ok(backend: Component) -> bool:
    status = sync_status(backend)
    return all(job in status and status[job]["ok"] for job in JOBS)


def failed_runs(backend: Component, job: str) -> float:
    try:
        return backend.metric("rechecker_sync_runs_total", job=job, outcome="failed")
    except AssertionError:
        return 0.0  # no failed run yet: the labelled series does not exist


def test_an_inventory_outage_deletes_nothing_shows_and_heals_itself(
    mariadb: Any, targets: Targets, tmp_path: Path
) -> None:
    inventory_url = mariadb.create_database(unique("inventory"))
    rows = inventory_rows(targets)
    asyncio.run(load_rows(inventory_url, rows))
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    expected = sorted(targets.urls())
    backend = start(
        "backend",
        tmp_path,
        {
            "RECHECKER_STORE_URL": store_url,
            "RECHECKER_INVENTORY_URL": inventory_url,
            "RECHECKER_DB_SYNC_INTERVAL": "1",
            "RECHECKER_DB_CHECK_INTERVAL": "1",
            "RECHECKER_LOG_LEVEL": "WARNING",
        },
    )

    def monitored() -> list[str]:
        return [site.domain for site in on_store(store_url, lambda store: store.list_sites())]

    try:
        backend.wait_healthy()
        wait_until(lambda: all_ok(backend) and monitored() == expected, 60, "first sync")

        mariadb.stop()
        stopped = time.monotonic()
        try:
            wait_until(
                lambda: all(failed_runs(backend, job) >= FAILED_RUNS for job in JOBS),
                120,
                "sync jobs failing on the inventory outage",
            )
            during = sync_status(backend)
            health = backend.get("/healthz").json()
            inventory_up = backend.metric("rechecker_inventory_up")
            sites_during = monitored()
            failed = {job: failed_runs(backend, job) for job in JOBS}
        finally:
            mariadb.start()
        outage = time.monotonic() - stopped
        wait_until(lambda: all_ok(backend), 60, "the schedulers' next syncs succeed")
        recovered_up = backend.metric("rechecker_inventory_up")
        sites_after = monitored()
    finally:
        code = backend.terminate()
    assert code == 0, backend.log_tail()

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "outage_seconds": round(outage, 1),
                "failed_sync_runs": failed,
                "sites": len(expected),
                "sites_deleted": len(set(expected) - set(sites_during)),
            },
            indent=2,
        )
        + "\n"
    )
    assert sites_during == sites_after == expected
    for job in JOBS:
        assert during[job]["ok"] is False
        assert "cannot read inventory" in during[job]["error"]
    assert {s["name"]: bool(s["last_error"]) for s in health["schedulers"]} == dict.fromkeys(
        JOBS, True
    )
    assert (inventory_up, recovered_up) == (0, 1)
