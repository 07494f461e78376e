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
#: shortest gap the test accepts) plus a batch. On FerretDB 1.24 (SQLite) a store call costs
#: about as much for any batch size, so its workers claim 1,000 at once (docs/scaling.md).
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


def lease_holder(url: str) -> str | None:
    """A worker holding a live lease now, that is, with a batch in hand; read from the
    database, as the store has no call for it."""
    now = utcnow()
    if url.startswith("mongodb://"):

        async def read_mongo() -> str | None:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
            try:
                leases = client.get_default_database().leases
                lease = await leases.find_one({"expires_at": {"$gte": now}})
                return None if lease is None else str(lease["owner"])
            finally:
                await client.close()

        return asyncio.run(read_mongo())

    async def read_sql() -> str | None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                held = select(sites_table.c.lease_owner).where(
                    sites_table.c.lease_expires_at >= now
                )
                return (await conn.execute(held.limit(1))).scalar()
        finally:
            await engine.dispose()

    return asyncio.run(read_sql())


def kill_mid_batch(url: str, workers: dict[str, subprocess.Popen[bytes]], within: float) -> str:
    """SIGKILL the first worker seen holding leases, so that it dies with a batch in hand;
    returns its name. Whichever: when a pass over the sites is short, one or two workers may
    keep up with all of them for an interval while the third finds nothing due."""
    deadline = time.monotonic() + within
    while (holder := lease_holder(url)) is None:
        assert time.monotonic() < deadline, f"no worker held a lease for {within} s"
        time.sleep(0.05)
    workers[holder].send_signal(signal.SIGKILL)
    workers[holder].wait(10)
    return holder


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

    workers = {
        f"w{n}": start_worker(url, scale_dns, f"w{n}", tmp_path, scenario) for n in range(WORKERS)
    }
    started = utcnow()
    killed = None
    try:
        # Three intervals of normal work.
        time.sleep(3 * interval)
        # Kill one worker mid-cycle: its leased sites must be picked up by the others.
        killed = kill_mid_batch(url, workers, within=interval)
        killed_at = utcnow()
        time.sleep(scenario.lease_s + interval + 5)
    finally:
        others = {name: worker for name, worker in workers.items() if name != killed}
        for worker in others.values():
            worker.send_signal(signal.SIGTERM)
        for worker in others.values():
            worker.wait(60)
    assert [w.returncode for w in others.values()] == [0] * (WORKERS - 1)

    released = on_store(url, lambda s: asyncio.gather(*map(s.release_leases, others)))
    assert released == [0] * (WORKERS - 1), "a worker stopped with SIGTERM left sites leased"

    history = checks_by_site(url)
    assert sorted(history) == domains
    for domain, stamps in history.items():
        first_intervals = [t for t in stamps if (t - started).total_seconds() < 3 * interval]
        assert len(first_intervals) >= 2, f"{domain} checked {len(first_intervals)} times"
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert all(gap >= interval / 2 for gap in gaps), f"{domain} checked twice: {gaps}"
        assert any(t > killed_at for t in stamps), f"{domain} not checked after the kill"
