"""The store goes down in the middle of a check cycle and comes back: real ``rechecker core``
and ``rechecker backend`` processes, a real MariaDB or FerretDB server stopped and started.

While the store is away both components keep running and answer 503 on /readyz; the core
keeps checking and holds the results in memory. After it returns, every check the target saw
is in history exactly once, and every lease is completed.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from rechecker.core.recorder import Recorder
from rechecker.core.state import Thresholds, Transition
from rechecker.models import CheckResult, DnsOutcome, DnsResult, Site, State, utcnow
from rechecker.store import Store, StoreError, create_store
from tests.faults.components import history_of, start, wait_until, world
from tests.support.servers import DatabaseServer
from tests.support.stores import on_store

ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / "artifacts" / "reliability"
#: Seconds the store stays down. The issue asks for 60; FerretDB gets less to keep the suite
#: short (its client waits out a 5 s server-selection timeout per call, so the same code
#: paths are hit many times either way). FAULTS_OUTAGE_SECONDS overrides both.
OUTAGE_SECONDS = {"mariadb": 60.0, "ferretdb": 20.0}
SITES = 40
#: Each check takes this long at the target: with 4 in flight, the cycle lasts about 30 s,
#: so most of its checks end while the store is down.
CHECK_SECONDS = 3.0
CONCURRENCY = 4

pytestmark = pytest.mark.e2e


def outage_seconds(backend: str) -> float:
    return float(os.environ.get("FAULTS_OUTAGE_SECONDS", OUTAGE_SECONDS[backend]))


@pytest.mark.parametrize("backend", ["mariadb", "ferretdb"])
def test_a_store_outage_mid_cycle_loses_and_duplicates_nothing(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    server: DatabaseServer = request.getfixturevalue(backend)
    url = server.create_database(f"outage_{backend}_{int(time.time())}")
    outage = outage_seconds(backend)
    with world(SITES, CHECK_SECONDS, "outage.test") as loopback:
        sites = loopback.sites()
        on_store(url, lambda store: store.add_sites(sites))
        inventory = tmp_path / "inventory.txt"
        inventory.write_text("".join(f"{site.url}\n" for site in sites))
        shared = {
            "RECHECKER_STORE_URL": url,
            "RECHECKER_DNS_RESOLVERS": loopback.resolver,
            "RECHECKER_LOG_LEVEL": "WARNING",
        }
        core = start(
            "core",
            tmp_path,
            shared
            | {
                "RECHECKER_WORKER_ID": "outage-core",
                "RECHECKER_POLL_INTERVAL": "1",
                "RECHECKER_CLAIM_SIZE": str(SITES),
                "RECHECKER_CHECK_CONCURRENCY": str(CONCURRENCY),
                "RECHECKER_RESULT_BATCH_SIZE": "2",
                "RECHECKER_HEALTHCHECK_INTERVAL": "3600",
                # Longer than the outage: no lease expires, so no site is checked twice.
                "RECHECKER_LEASE_SECONDS": str(outage + 300),
                "RECHECKER_HTTP_TIMEOUT": str(CHECK_SECONDS + 5),
                "RECHECKER_DNS_TIMEOUT": "2",
            },
        )
        backend_app = start(
            "backend",
            tmp_path,
            shared | {"RECHECKER_INVENTORY_URL": f"file:{inventory}"},
        )
        try:
            core.wait_healthy()
            backend_app.wait_healthy()
            target = loopback.target
            # Mid-cycle: some checks recorded, most still to come.
            wait_until(lambda: sum(target.hits.values()) >= 2 * CONCURRENCY, 60, "checks begin")
            server.stop()
            stopped = time.monotonic()
            hits_at_stop = sum(target.hits.values())
            readiness: set[tuple[int, int]] = set()
            while time.monotonic() - stopped < outage:
                assert core.alive and backend_app.alive
                readiness.add(
                    (core.get("/readyz").status_code, backend_app.get("/readyz").status_code)
                )
                assert core.get("/healthz").status_code == 200
                time.sleep(2)
            checked_during_outage = sum(target.hits.values()) - hits_at_stop
            buffered = core.metric("rechecker_results_buffered")
            server.start()

            assert readiness == {(503, 503)}
            wait_until(lambda: core.get("/readyz").status_code == 200, 60, "core ready again")
            assert backend_app.get("/readyz").status_code == 200
            wait_until(
                lambda: len(on_store(url, lambda store: store.list_status())) == SITES,
                120,
                "every site recorded after the outage",
            )
            wait_until(lambda: core.metric("rechecker_results_buffered") == 0, 60, "buffer written")
            dropped = core.metric("rechecker_results_dropped_total")
            failures = core.metric(
                "rechecker_scheduler_failures", scheduler="schedule_healthcheck_sync"
            )
            health = core.get("/healthz").json()
        finally:
            core_code = core.terminate()
            backend_code = backend_app.terminate()
        assert (core_code, backend_code) == (0, 0), core.log_tail() + backend_app.log_tail()

        hits = dict(target.hits)
        history = history_of(url, loopback.domains)
    recorded = {domain: len(results) for domain, results in history.items()}
    duplicates = sum(
        len(results) - len({result.timestamp for result in results}) for results in history.values()
    )
    lost = sum(max(0, hits.get(domain, 0) - recorded[domain]) for domain in loopback.domains)
    leased = on_store(url, lambda store: store.release_leases("outage-core"))
    report = {
        "backend": backend,
        "outage_seconds": outage,
        "sites": SITES,
        "checks": sum(hits.values()),
        "checks_during_outage": checked_during_outage,
        "buffered_at_recovery": buffered,
        "recorded": sum(recorded.values()),
        "lost": lost,
        "duplicates": duplicates,
        "dropped": dropped,
        "scheduler_failures_seen": failures,
        "leases_left": leased,
    }
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"store-outage-{backend}.json").write_text(json.dumps(report, indent=2) + "\n")

    assert checked_during_outage > 0 and buffered > 0, "the outage did not hit the cycle"
    assert all(s["last_error"] is None for s in health["schedulers"]), health
    assert hits == dict.fromkeys(loopback.domains, 1)
    assert recorded == hits
    assert (lost, duplicates, dropped, leased) == (0, 0, 0, 0)


DOMAINS = ["d0.test", "d1.test", "d2.test"]


def result(domain: str, n: int) -> CheckResult:
    now = utcnow() + timedelta(milliseconds=n)
    return CheckResult(
        domain=domain,
        url=f"http://{domain}/",
        timestamp=now,
        state=State.DOWN,
        verdict=State.DOWN,
        error_class="http_timeout",
        error_message=f"check {n}",
        dns=DnsResult(outcome=DnsOutcome.OK, addresses=["127.0.0.1"]),
    )


def test_a_full_buffer_drops_the_oldest_and_counts_them(mariadb: Any) -> None:
    """Bounded memory: past the limit the oldest results go, counted; the rest are written
    once the store is back, each once, and incidents are not opened twice."""
    url = mariadb.create_database(f"buffer_{int(time.time())}")
    dropped: list[int] = []

    async def run(store: Store) -> list[CheckResult]:
        recorder = Recorder(
            store, Thresholds(failures=1), buffer_limit=10, chunk_size=4, on_dropped=dropped.append
        )
        await store.add_sites([Site(domain=d, url=f"http://{d}/") for d in DOMAINS])
        mariadb.stop()
        try:
            for n in range(25):
                assert await recorder.record([result(f"d{n % 3}.test", n)]) == []
            assert recorder.buffered == 10
        finally:
            mariadb.start()
        written = await recorder.flush()
        assert recorder.buffered == 0
        return written

    written = on_store(url, run)
    assert sum(dropped) == 15
    assert [r.error_message for r in written] == [f"check {n}" for n in range(15, 25)]

    async def stored(store: Store) -> tuple[list[CheckResult], int]:
        rows = [r for domain in DOMAINS for r in await store.history(domain)]
        return rows, len(await store.list_incidents(open_only=True))

    rows, open_incidents = on_store(url, stored)
    assert sorted(r.error_message for r in rows) == sorted(f"check {n}" for n in range(15, 25))
    assert open_incidents == 3


class CutOffStore:
    """A real store whose next results write fails after the incidents were written: the
    connection lost between the two writes of one batch."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cut = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def record_results(self, results: list[CheckResult]) -> None:
        if self.cut:
            self.cut = False
            raise StoreError("connection lost mid-batch")
        await self.store.record_results(results)


async def test_a_batch_cut_off_half_way_is_written_again_as_it_was(tmp_path: Path) -> None:
    """The retry writes the same incidents (by id) and the same transitions, once."""
    store = create_store(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}")
    await store.open()
    try:
        await store.add_sites([Site(domain=d, url=f"http://{d}/") for d in DOMAINS])
        transitions: list[Transition] = []
        cut = CutOffStore(store)
        recorder = Recorder(
            cast(Store, cut), Thresholds(failures=1), on_transition=transitions.append
        )
        assert await recorder.record([result(d, n) for n, d in enumerate(DOMAINS)]) == []
        assert len(await store.list_incidents(open_only=True)) == 3  # written before the cut
        written = await recorder.flush()
        incidents = await store.list_incidents()
        history = [r for domain in DOMAINS for r in await store.history(domain)]
        statuses = await store.list_status()
    finally:
        await store.close()
    assert len(written) == len(history) == 3
    assert len(incidents) == 3 and len(transitions) == 3
    assert {s.incident_id for s in statuses} == {i.id for i in incidents}
