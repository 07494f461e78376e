"""Load generators: an aiohttp client for blackbox_exporter, wrk for nginx, dnsperf for knot.

Every loop here is bounded twice: by a count of requests and by a deadline.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
from yarl import URL


@dataclass(slots=True)
class ProbeRun:
    """``probes`` requests to blackbox_exporter's /probe, of which ``ok`` had probe_success 1."""

    module: str
    probes: int = 0
    ok: int = 0
    failed: int = 0
    duration_s: float = 0.0
    per_s: float = 0.0
    timed_out: bool = False
    errors: dict[str, int] = field(default_factory=dict)


async def drive_blackbox(
    base_url: str, module: str, targets: Sequence[str], concurrency: int, deadline_s: float
) -> ProbeRun:
    """Ask blackbox_exporter for one probe per target, ``concurrency`` requests in flight, as
    Prometheus would (keep-alive to the exporter; each probe itself opens new connections)."""
    urls = [
        URL(f"{base_url}/probe?module={module}&target={quote(target, safe='')}", encoded=True)
        for target in targets
    ]
    run = ProbeRun(module=module)
    errors: Counter[str] = Counter()
    queue = iter(urls)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for url in queue:
                try:
                    async with session.get(url) as response:
                        body = await response.read()
                    if response.status == 200 and b"\nprobe_success 1\n" in body:
                        run.ok += 1
                    else:
                        errors[f"status {response.status} / probe_success 0"] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                run.probes += 1

        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline_s):
                await asyncio.gather(*(worker() for _ in range(min(concurrency, len(urls)))))
        except TimeoutError:
            run.timed_out = True
        run.duration_s = round(time.perf_counter() - started, 3)
    run.failed = run.probes - run.ok
    run.per_s = round(run.probes / run.duration_s, 1) if run.duration_s else 0.0
    run.errors = dict(errors.most_common(5))
    return run


def _grab(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def run_wrk(tool: str, url: str, connections: int, seconds: int, close: bool) -> dict[str, object]:
    """wrk for ``seconds``; with ``close`` every request is on a new connection (like a
    check), else keep-alive (the server's request ceiling)."""
    argv = [tool, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = done.stdout + done.stderr
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": _grab(r"Requests/sec:\s+([\d.]+)", out),
        "mode": "new connection per request" if close else "keep-alive",
        "connections": connections,
        "seconds": seconds,
        "socket_errors": errors.group(1).strip() if errors else "",
        "non_2xx": int(_grab(r"Non-2xx or 3xx responses:\s+(\d+)", out) or 0),
        "exit_code": done.returncode,
    }


def run_dnsperf(
    tool: str, host: str, port: int, names: Sequence[str], workdir: Path, seconds: int
) -> dict[str, object]:
    """dnsperf for ``seconds`` over A queries for ``names``, over UDP."""
    datafile = workdir / "dnsperf-queries.txt"
    datafile.write_text("".join(f"{name} A\n" for name in names))
    argv = [
        tool,
        "-s",
        host,
        "-p",
        str(port),
        "-d",
        str(datafile),
        "-l",
        str(seconds),
        "-c",
        "4",
        "-T",
        "2",
        "-q",
        "500",
        "-t",
        "2",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = done.stdout + done.stderr
    return {
        "queries_per_s": _grab(r"Queries per second:\s+([\d.]+)", out),
        "queries_lost": int(_grab(r"Queries lost:\s+(\d+)", out) or 0),
        "seconds": seconds,
        "exit_code": done.returncode,
    }
