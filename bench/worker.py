"""One Rechecker core worker in a process of its own, so that its RSS and CPU are its own.

The harness starts ``python -m bench.worker JOB_JSON``. The worker sets up (imports, store,
probe context), writes one JSON line ``{"ready": ...}`` to stdout, waits for a line on stdin
(so that several workers start their cycles together), runs ONE cycle the way ``rechecker
core`` does (:meth:`rechecker.core.worker.LeaseWorker.run_due`: claim a batch of due sites
with a lease, check, record state and results, complete the lease, until nothing is due),
writes one JSON line ``{"done": ...}`` and exits. Several workers share the sites through
their leases in the store, as several core processes do.

Timing uses ``time.monotonic()``, which is CLOCK_MONOTONIC on Linux and so comparable
between the workers and the harness.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import resource
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rechecker.config import Settings
from rechecker.core.service import CheckService
from rechecker.core.worker import LeaseWorker
from rechecker.probes import ProbeContext, ProbeSettings
from rechecker.store import create_store


@dataclass(slots=True)
class Job:
    store_url: str
    resolver: str
    concurrency: int
    batch_size: int
    data_dir: str
    claim_size: int
    owner: str = "bench-0"
    loop: str = "uvloop"
    profile_path: str | None = None


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    """Current RSS (Linux: second field of /proc/self/statm, in pages)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main(job: Job) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        data_dir=Path(job.data_dir),
        store_url=job.store_url,
        dns_resolvers=[job.resolver],
        check_concurrency=job.concurrency,
        result_batch_size=job.batch_size,
        claim_size=job.claim_size,
    )
    store = create_store(settings.resolved_store_url)
    await store.open()
    try:
        async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
            _emit({"ready": True, "rss_ready_mib": round(_rss_mib(), 1)})
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.strip() != "go":
                raise SystemExit("worker: no 'go' from the harness")
            profiler = cProfile.Profile() if job.profile_path else None
            cpu_before = _cpu_s()
            started = time.monotonic()
            if profiler is not None:
                profiler.enable()
            report = await LeaseWorker(CheckService(settings, store, ctx), job.owner).run_due()
            ended = time.monotonic()
            if profiler is not None:
                profiler.disable()
                assert job.profile_path is not None
                profiler.dump_stats(job.profile_path)
            cpu_cycle = _cpu_s() - cpu_before
    finally:
        await store.close()
    return {
        "done": True,
        "sites": report.sites,
        "checked": report.checked,
        "up": report.up,
        "down": report.down,
        "cycle_s": report.duration_s,
        "t_start": started,
        "t_end": ended,
        "cpu_cycle_s": round(cpu_cycle, 3),
        "cpu_total_s": round(_cpu_s(), 3),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def _run(job: Job, coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    if job.loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main(argv: list[str]) -> None:
    # run_cycle logs a warning per site found down; those go to stderr (the harness keeps it).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    job = Job(**json.loads(argv[1]))
    _emit(_run(job, _main(job)))


if __name__ == "__main__":
    main(sys.argv)
