"""SIGTERM in the middle of a cycle, to a real ``rechecker core``: checks in flight finish
or their leases are given back, the store is left consistent, and a restart checks exactly
the sites the stopped worker did not record.

SQLite is the store here: what is tested is the worker's shutdown, which is the same code on
every store; lease mechanics per store are in the store contract suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rechecker.models import CheckResult, utcnow
from rechecker.store import Store
from tests.faults.components import history_of, start, wait_until, world
from tests.support.stores import on_store

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "artifacts" / "reliability" / "sigterm.json"
SITES = 40
CONCURRENCY = 10
#: Four waves of ten 4-second checks: longer than the shutdown grace (HTTP plus DNS
#: timeout, 12 s), so the stop meets both checks that finish and checks it must give back.
CHECK_SECONDS = 4.0
HTTP_TIMEOUT = 10.0
DNS_TIMEOUT = 2.0
WORKER = "sigterm-core"

pytestmark = pytest.mark.e2e


def core_env(url: str, resolver: str) -> dict[str, str]:
    return {
        "RECHECKER_STORE_URL": url,
        "RECHECKER_DNS_RESOLVERS": resolver,
        "RECHECKER_WORKER_ID": WORKER,
        "RECHECKER_POLL_INTERVAL": "1",
        "RECHECKER_CLAIM_SIZE": str(SITES),
        "RECHECKER_CHECK_CONCURRENCY": str(CONCURRENCY),
        "RECHECKER_RESULT_BATCH_SIZE": "1",
        "RECHECKER_HEALTHCHECK_INTERVAL": "3600",
        "RECHECKER_LEASE_SECONDS": "600",
        "RECHECKER_HTTP_TIMEOUT": str(HTTP_TIMEOUT),
        "RECHECKER_DNS_TIMEOUT": str(DNS_TIMEOUT),
        "RECHECKER_LOG_LEVEL": "WARNING",
    }


def still_due(url: str) -> set[str]:
    """The sites a claim now would take (not leased, due time passed), claimed and given
    back at once: the store contract's own view, without reading its tables."""

    async def read(store: Store) -> set[str]:
        lease = await store.claim_due("due-reader", utcnow(), 60, SITES)
        await store.release_leases("due-reader")
        return {site.domain for site in lease.sites}

    return on_store(url, read)


def test_sigterm_mid_cycle_finishes_or_gives_back_and_a_restart_resumes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    with world(SITES, CHECK_SECONDS, "sigterm.test") as loopback:
        on_store(url, lambda store: store.add_sites(loopback.sites()))
        target = loopback.target
        core = start("core", tmp_path, core_env(url, loopback.resolver))
        try:
            core.wait_healthy()
            wait_until(lambda: sum(target.hits.values()) >= CONCURRENCY, 60, "checks in flight")
        finally:
            code = core.terminate()
        assert code == 0, core.log_tail()
        hits_first = dict(target.hits)

        first = history_of(url, loopback.domains)
        statuses = {s.domain: s for s in on_store(url, lambda store: store.list_status())}
        due = still_due(url)
        left_leased = on_store(url, lambda store: store.release_leases(WORKER))

        recorded = {d for d, rows in first.items() if rows}
        # Finished checks are recorded once, with a status that is their result; the others'
        # sites are free and due at once. Nothing stays leased.
        assert left_leased == 0
        assert all(len(first[d]) == 1 for d in recorded)
        assert {d: statuses[d].timestamp for d in recorded} == {
            d: first[d][0].timestamp for d in recorded
        }
        assert set(statuses) == recorded
        assert due == set(loopback.domains) - recorded
        assert recorded <= set(hits_first)

        again = start("core", tmp_path, core_env(url, loopback.resolver))
        try:
            again.wait_healthy()
            wait_until(
                lambda: len(on_store(url, lambda store: store.list_status())) == SITES,
                120,
                "every site recorded after the restart",
            )
        finally:
            code = again.terminate()
        assert code == 0, again.log_tail()
        final: dict[str, list[CheckResult]] = history_of(url, loopback.domains)
        hits = dict(target.hits)

    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "sites": SITES,
                "cut_off_in_flight": sum(hits_first.values()) - len(recorded),
                "finished_and_recorded": len(recorded),
                "given_back": SITES - len(recorded),
                "leases_left": left_leased,
                "checked_after_restart": sum(hits.values()) - sum(hits_first.values()),
                "recorded_twice": sum(len(rows) > 1 for rows in final.values()),
            },
            indent=2,
        )
        + "\n"
    )
    # The restart checked exactly the sites the first run had not recorded, each once.
    assert {d: len(rows) for d, rows in final.items()} == dict.fromkeys(loopback.domains, 1)
    assert all(final[d] == first[d] for d in recorded)
