"""One check cycle over many hostile targets, in a process of its own, reporting peak memory.

Run by ``test_hostile_targets.py`` as ``python -m tests.faults.hostile_cycle SPEC.json``: the
spec names the resolver, the sites (domain, URL, kind) and the timeouts; the hostile servers
run in the test process, so the peak RSS measured here (``ru_maxrss``) is the checker's
alone. The report (JSON on stdout) gives the peak RSS, the cycle's counts and, per kind, the
error classes the recorded results ended with.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rechecker.config import Settings
from rechecker.core.checker import run_cycle
from rechecker.models import Site
from rechecker.probes import ProbeContext, ProbeSettings
from rechecker.store import create_store


async def cycle(spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        data_dir=Path(spec["data_dir"]),
        dns_resolvers=[spec["resolver"]],
        dns_timeout=spec["dns_timeout"],
        http_timeout=spec["http_timeout"],
        check_concurrency=spec["concurrency"],
    )
    kinds = {site["domain"]: site["kind"] for site in spec["sites"]}
    sites = [Site(domain=site["domain"], url=site["url"]) for site in spec["sites"]]
    store = create_store(settings.resolved_store_url)
    await store.open()
    try:
        await store.add_sites(sites)
        async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
            before = _rss_mb()
            started = time.perf_counter()
            report = await run_cycle(
                store,
                ctx,
                concurrency=settings.check_concurrency,
                batch_size=settings.result_batch_size,
            )
            seconds = time.perf_counter() - started
        statuses = await store.list_status()
    finally:
        await store.close()
    classes: dict[str, Counter[str]] = defaultdict(Counter)
    samples: dict[str, dict[str, str]] = defaultdict(dict)
    for status in statuses:
        kind = kinds[status.domain]
        classes[kind][status.error_class] += 1
        samples[kind].setdefault(status.error_class, status.error_message)
    return {
        "targets": len(sites),
        "checked": report.checked,
        "recorded": len(statuses),
        "concurrency": settings.check_concurrency,
        "http_timeout_s": settings.http_timeout,
        "dns_timeout_s": settings.dns_timeout,
        "cycle_seconds": round(seconds, 1),
        "rss_before_cycle_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
        "classes": {kind: dict(counts) for kind, counts in sorted(classes.items())},
        # One message per kind and class, to read what a user would.
        "samples": {kind: samples[kind] for kind in sorted(samples)},
    }


def _rss_mb() -> float:
    """This process's resident memory now (Linux: resident pages in /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    sys.stdout.write(json.dumps(asyncio.run(cycle(spec))) + "\n")


if __name__ == "__main__":
    main()
