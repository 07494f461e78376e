"""Three core workers share one store through leases, for real: separate processes on
loopback, 5,000 sites, a worker killed with SIGKILL and the others stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from pymongo import AsyncMongoClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from rechecker.models import Site, utcnow
from rechecker.store.sql import history
from rechecker.store.sql import sites as sites_table
from tests.support.dns_server import Answer, DnsServer
from tests.support.stores import on_store
from tests.support.targets import LoopThread, Targets, free_port

WORKERS = 3


class Scenario(NamedTuple):
    """How many sites, how often, and the worker settings that let the backend keep up."""

    sites: int
    interval: float
    lease_s: float
    claim_size: int


#: A worker killed after recording a batch but before completing its lease has those sites
#: checked again when the lease expires, so leases are longer than half an interval (the
#: shortest gap the test accepts) plus a batch. FerretDB 1.24 on SQLite scans a collection
#: for nearly every store call (about 2 s for the 5,000 status documents under load), a cost
#: per batch whatever its size, so its workers claim 1,000 at once; a pass over the 5,000
#: sites then took the three workers 10-13 s (docs/scaling.md has the figures).
SCENARIOS = {
    "mariadb": Scenario(sites=5000, interval=30.0, lease_s=20.0, claim_size=250),
    "ferretdb": Scenario(sites=5000, interval=60.0, lease_s=45.0, claim_size=1000),
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def scale_dns() -> Iterator[str]:
    """A DNS server that knows the sites' names, every one at 127.0.0.1."""
    thread = LoopThread()
    most = max(scenario.sites for scenario in SCENARIOS.values())
    server = DnsServer({f"s{n:04d}.scale.test": Answer(a=["127.0.0.1"]) for n in range(most)})
    thread.run(server.start())
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        thread.run(server.stop())
        thread.close()


def start_worker(
    url: str, resolver: str, name: str, workdir: Path, scenario: Scenario
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECHECKER_")} | {
        "RECHECKER_STORE_URL": url,
        "RECHECKER_DATA_DIR": str(workdir),
        "RECHECKER_DNS_RESOLVERS": resolver,
        "RECHECKER_CORE_PORT": str(free_port()),
        "RECHECKER_WORKER_ID": name,
        "RECHECKER_HEALTHCHECK_INTERVAL": str(scenario.interval),
        "RECHECKER_LEASE_SECONDS": str(scenario.lease_s),
        "RECHECKER_POLL_INTERVAL": "1",
        "RECHECKER_CLAIM_SIZE": str(scenario.claim_size),
        "RECHECKER_RESULT_BATCH_SIZE": str(scenario.claim_size),
        "RECHECKER_CHECK_CONCURRENCY": "100",
        "RECHECKER_HTTP_TIMEOUT": "3",
        "RECHECKER_DNS_TIMEOUT": "2",
        "RECHECKER_METRICS_PER_DOMAIN": "false",
        "RECHECKER_LOG_LEVEL": "ERROR",
    }
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "rechecker", "core"], env=env, cwd=workdir, stdout=log, stderr=log
    )


def holds_leases(url: str, owner: str) -> bool:
    """Whether ``owner`` holds a lease now, that is, has a batch in hand; read from the
    database, as the store has no call for it."""
    if url.startswith("mongodb://"):

        async def read_mongo() -> bool:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
            try:
                leases = client.get_default_database().leases
                return await leases.find_one({"owner": owner}) is not None
            finally:
                await client.close()

        return asyncio.run(read_mongo())

    async def read_sql() -> bool:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                held = select(sites_table.c.domain).where(sites_table.c.lease_owner == owner)
                return (await conn.execute(held.limit(1))).first() is not None
        finally:
            await engine.dispose()

    return asyncio.run(read_sql())


def kill_mid_batch(url: str, worker: subprocess.Popen[bytes], owner: str, within: float) -> None:
    """SIGKILL ``worker`` while it holds leases, so that it dies with a batch in hand."""
    deadline = time.monotonic() + within
    while not holds_leases(url, owner):
        assert time.monotonic() < deadline, f"{owner} held no lease for {within} s"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def checks_by_site(url: str) -> dict[str, list[datetime]]:
    """Every check's time per domain, read from the database in one query.

    Read raw rather than through the store: one history query per domain (5,000 of them)
    makes FerretDB scan the whole collection each time.
    """
    found: dict[str, list[datetime]] = defaultdict(list)
    if url.startswith("mongodb://"):

        async def read_mongo() -> None:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
            try:
                cursor = client.get_default_database().history.find(
                    {}, {"_id": 0, "domain": 1, "timestamp": 1}
                )
                async for doc in cursor:
                    found[doc["domain"]].append(doc["timestamp"])
            finally:
                await client.close()

        asyncio.run(read_mongo())
    else:

        async def read_sql() -> None:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as conn:
                    rows = await conn.execute(select(history.c.domain, history.c.timestamp))
                    for domain, timestamp in rows:
                        found[domain].append(timestamp)
            finally:
                await engine.dispose()

        asyncio.run(read_sql())
    return {domain: sorted(stamps) for domain, stamps in found.items()}


@pytest.mark.parametrize("backend", sorted(SCENARIOS))
def test_three_workers_share_the_sites(
    request: pytest.FixtureRequest,
    backend: str,
    targets: Targets,
    scale_dns: str,
    tmp_path: Path,
) -> None:
    server = request.getfixturevalue(backend)
    url = server.create_database(f"scale_{backend}")
    scenario = SCENARIOS[backend]
    interval = scenario.interval
    domains = [f"s{n:04d}.scale.test" for n in range(scenario.sites)]
    sites = [Site(domain=d, url=f"http://{d}:{targets.http_port}/") for d in domains]
    on_store(url, lambda store: store.add_sites(sites))

    workers = [start_worker(url, scale_dns, f"w{n}", tmp_path, scenario) for n in range(WORKERS)]
    started = utcnow()
    try:
        # Three intervals of normal work.
        time.sleep(3 * interval)
        # Kill one worker mid-cycle: its leased sites must be picked up by the others.
        kill_mid_batch(url, workers[0], "w0", within=interval)
        killed_at = utcnow()
        time.sleep(scenario.lease_s + interval + 5)
    finally:
        for worker in workers[1:]:
            worker.send_signal(signal.SIGTERM)
        for worker in workers[1:]:
            worker.wait(60)
    assert [w.returncode for w in workers[1:]] == [0] * (WORKERS - 1)

    released = on_store(url, lambda s: asyncio.gather(*(s.release_leases(f"w{n}") for n in (1, 2))))
    assert released == [0, 0], "a worker stopped with SIGTERM left sites leased"

    history = checks_by_site(url)
    assert sorted(history) == domains
    for domain, stamps in history.items():
        first_intervals = [t for t in stamps if (t - started).total_seconds() < 3 * interval]
        assert len(first_intervals) >= 2, f"{domain} checked {len(first_intervals)} times"
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert all(gap >= interval / 2 for gap in gaps), f"{domain} checked twice: {gaps}"
        assert any(t > killed_at for t in stamps), f"{domain} not checked after the kill"
