"""``make bench``: Rechecker's full check cycle against blackbox_exporter, on loopback.

One run starts knot (authoritative for ``bench.test``), nginx and blackbox_exporter with
throw-away directories, loads N sites into a store, runs ONE Rechecker cycle in separate
worker processes, drives blackbox_exporter over the same targets at the same concurrency,
measures the targets' own limits with wrk and dnsperf, prints one table and writes it as
JSON. ``--sizes`` instead runs Rechecker alone at several N. Everything it starts is stopped
and every directory it made removed at the end, on error and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from bench.cpu import CpuMeter
from bench.drivers import drive_blackbox, run_dnsperf, run_wrk
from bench.profiling import summarise_collapsed, summarise_cprofile
from bench.services import (
    LOOPBACK,
    BenchError,
    Blackbox,
    Knot,
    Nginx,
    can_use_resolver_alias,
    die_with_parent,
    ensure_tools,
    find_tool,
    site_name,
    tool_version,
)
from bench.worker import Job
from rechecker.models import Site
from rechecker.redact import redact_url
from rechecker.store import create_store

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
T = TypeVar("T")


def _arun(coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro)


# --------------------------------------------------------------------------------------
# Stores


class StoreProvider:
    """Hands out throw-away store URLs: SQLite files, databases on a MariaDB or FerretDB
    server started for the run (tests.support.servers), or the one URL given."""

    def __init__(self, kind: str, url: str | None, workdir: Path, stack: contextlib.ExitStack):
        self.kind = "url" if url else kind
        self._url = url
        self._workdir = workdir
        self._server: Any = None
        if self.kind in ("mariadb", "ferretdb"):
            from tests.support.servers import FerretDBServer, MariaDBServer

            server_class = MariaDBServer if kind == "mariadb" else FerretDBServer
            reason = server_class.unavailable()
            if reason is not None:
                raise BenchError(reason)
            server = server_class()
            stack.callback(server.close)
            log.info("starting %s", kind)
            server.start()
            self._server = server

    def url(self, database: str) -> str:
        if self._url is not None:
            return self._url
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self._workdir / (database + '.sqlite3')}"
        if self.kind == "mariadb":
            return str(self._server.create_database(database))
        return str(self._server.url(database))

    @property
    def server_pid(self) -> int | None:
        return None if self._server is None else self._server.pid

    def describe(self, url: str) -> str:
        return f"{self.kind} ({redact_url(url)})" if self.kind == "url" else self.kind


async def load_sites(url: str, n: int, nginx_port: int, resolve_twice: bool) -> None:
    """Make the store's sites exactly ``d0 .. d{n-1}.bench.test`` (URLs on nginx's port)."""

    def domain(index: int) -> str:
        # A trailing dot makes the URL's host differ from the domain, so check_site does not
        # pin the DNS probe's addresses and the HTTP probe resolves again (lever measurement).
        return site_name(index) + ("." if resolve_twice else "")

    store = create_store(url)
    await store.open()
    try:
        existing = await store.list_sites()
        foreign = [s.domain for s in existing if not s.domain.rstrip(".").endswith(".bench.test")]
        if foreign:
            raise BenchError(
                f"the store holds {len(foreign)} sites that are not the bench's "
                f"(e.g. {foreign[0]}); give a throw-away database"
            )
        wanted = {domain(i) for i in range(n)}
        stale = [s.domain for s in existing if s.domain not in wanted]
        if stale:
            await store.remove_sites(stale)
        for start in range(0, n, 5000):
            await store.add_sites(
                [
                    Site(domain=domain(i), url=f"http://{site_name(i)}:{nginx_port}/")
                    for i in range(start, min(start + 5000, n))
                ]
            )
    finally:
        await store.close()


def _percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 2)


async def stored_latencies(url: str) -> dict[str, Any]:
    """Per-check latency from the stored results: DNS probe (A+AAAA) + HTTP probe (connect,
    request, body), i.e. ``dns.latency_ms + latency_ms`` of each site's latest status."""
    store = create_store(url)
    await store.open()
    try:
        results = await store.list_status()
    finally:
        await store.close()
    total = [(r.dns.latency_ms or 0.0) + (r.latency_ms or 0.0) for r in results if r.latency_ms]
    http = [r.latency_ms for r in results if r.latency_ms]
    dns = [r.dns.latency_ms for r in results if r.dns.latency_ms]
    errors = Counter(r.error_class for r in results if not r.ok)
    return {
        "results": len(results),
        "check_p50_ms": _percentile(total, 0.50),
        "check_p99_ms": _percentile(total, 0.99),
        "http_p50_ms": _percentile(http, 0.50),
        "http_p99_ms": _percentile(http, 0.99),
        "dns_p50_ms": _percentile(dns, 0.50),
        "dns_p99_ms": _percentile(dns, 0.99),
        "down_by_error_class": dict(errors.most_common(5)),
    }


# --------------------------------------------------------------------------------------
# Rechecker workers


def _read_json_line(process: subprocess.Popen[str], deadline: float, what: str) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"Rechecker worker {process.pid}: no {what} in time")
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 1.0))
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            raise BenchError(f"Rechecker worker {process.pid} exited before {what}")
        with contextlib.suppress(json.JSONDecodeError):
            message: dict[str, Any] = json.loads(line)
            if what in message:
                return message


def _start_py_spy(
    args: argparse.Namespace, pid: int, stack: contextlib.ExitStack
) -> subprocess.Popen[bytes]:
    tool = find_tool(args.py_spy)
    if tool is None:
        raise BenchError(f"--profile py-spy: {args.py_spy} not found (pip install py-spy)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    argv = [tool, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    argv += ["--full-filenames", "--nolineno", "--nonblocking"]
    argv += ["--output", str(RESULTS / "pyspy-collapsed.txt")]
    spy = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack.callback(_stop_process, spy)
    time.sleep(1.5)  # attached before the cycle starts
    if spy.poll() is not None:
        raise BenchError(f"py-spy exited with {spy.returncode} (ptrace allowed? root?)")
    return spy


def _stop_process(process: subprocess.Popen[Any]) -> None:
    """Kill a child started in its own session (and its children), then reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            process.kill()
    process.wait(30)


def run_rechecker(
    args: argparse.Namespace,
    store_url: str,
    knot: Knot,
    workdir: Path,
    n: int,
    stack: contextlib.ExitStack,
    profile: str | None = None,
) -> dict[str, Any]:
    """ONE cycle over the store's sites by ``args.workers`` processes started together.

    ``profile``: "cprofile" profiles worker 0's cycle from inside, "py-spy" samples worker 0
    from outside; the summary goes to bench/results/.
    """
    cprofile_path = RESULTS / "profile.pstats" if profile == "cprofile" else None
    per_worker = max(1, math.ceil(args.concurrency / args.workers))
    processes: list[tuple[subprocess.Popen[str], Path]] = []
    for index in range(args.workers):
        job = Job(
            store_url=store_url,
            resolver=knot.address,
            concurrency=per_worker,
            batch_size=args.batch_size,
            data_dir=str(workdir / "rechecker"),
            claim_size=args.claim_size,
            owner=f"bench-{index}",
            loop=args.loop,
            profile_path=str(cprofile_path) if cprofile_path and index == 0 else None,
        )
        errors = workdir / f"worker-{n}-{index}.log"
        with errors.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", json.dumps(asdict(job))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=REPO,
                start_new_session=True,
                preexec_fn=die_with_parent,  # only short-lived threads, all joined by now
            )
        stack.callback(_stop_process, process)
        processes.append((process, errors))
    try:
        setup_deadline = time.monotonic() + 120
        ready = [_read_json_line(p, setup_deadline, "ready") for p, _ in processes]
        spy = _start_py_spy(args, processes[0][0].pid, stack) if profile == "py-spy" else None
        for process, _ in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        cycle_deadline = time.monotonic() + 120 + n / 20
        done = [_read_json_line(p, cycle_deadline, "done") for p, _ in processes]
        for process, _ in processes:
            process.wait(30)
        if spy is not None:
            spy.wait(60)
            summary = RESULTS / "pyspy-summary.txt"
            summary.write_text(summarise_collapsed(RESULTS / "pyspy-collapsed.txt"))
            log.info("py-spy of worker 0: %s", summary)
        if cprofile_path is not None:
            log.info("cProfile of worker 0: %s", summarise_cprofile(cprofile_path))
    except BenchError as error:
        tails = "\n".join(
            f"--- {path.name}:\n" + "\n".join(path.read_text().splitlines()[-15:])
            for _, path in processes
        )
        raise BenchError(f"{error}\n{tails}") from error
    wall = max(d["t_end"] for d in done) - min(d["t_start"] for d in done)
    checked = sum(d["checked"] for d in done)
    cpu = sum(d["cpu_cycle_s"] for d in done)
    return {
        "workers": args.workers,
        "concurrency_per_worker": per_worker,
        "batch_size": args.batch_size,
        "loop": args.loop,
        "sites": sum(d["sites"] for d in done),
        "checked": checked,
        "up": sum(d["up"] for d in done),
        "down": sum(d["down"] for d in done),
        "wall_s": round(wall, 3),
        "domains_per_s": round(checked / wall, 1) if wall else None,
        "cpu_cycle_s": round(cpu, 2),
        "cpu_ms_per_domain": round(1000 * cpu / checked, 3) if checked else None,
        "cpu_total_s": round(sum(d["cpu_total_s"] for d in done), 2),
        "peak_rss_mib_max": max(d["peak_rss_mib"] for d in done),
        "peak_rss_mib_sum": round(sum(d["peak_rss_mib"] for d in done), 1),
        "rss_ready_mib_max": max(r["rss_ready_mib"] for r in ready),
        "per_worker": done,
    }


# --------------------------------------------------------------------------------------
# Output


def render_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _git(*args: str) -> str:
    """stdout of a git command, or '' when it fails (not a checkout, no git)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode == 0:
            return done.stdout
    return ""


def _environment(tools: dict[str, str]) -> dict[str, Any]:
    import rechecker

    src = Path(rechecker.__file__).resolve().parent
    commit = _git("-C", str(src), "rev-parse", "--short", "HEAD").strip()
    modified = len(_git("-C", str(src), "status", "--porcelain", "--", ".").splitlines())
    label = os.environ.get(_SRC_ENV)
    if commit:
        label = f"{commit} (+{modified} uncommitted files)" if modified else commit
    return {
        "rechecker": label or str(src),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rechecker_src": str(src),
        "rechecker_commit": commit or None,
        "rechecker_uncommitted_files": modified if commit else None,
        "versions": {
            name: tool_version(
                [path, "-V" if name != "prometheus-blackbox-exporter" else "--version"]
            )
            for name, path in tools.items()
            if name in ("knotd", "nginx", "prometheus-blackbox-exporter")
        },
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _per_probe(run: dict[str, Any]) -> str:
    """Exporter CPU per probe, with the harness client's CPU per probe in parentheses."""
    probes = run["probes"] or 1
    exporter = 1000 * run["cpu_s"].get("blackbox_exporter", 0.0) / probes
    client = 1000 * run["cpu_s"].get("harness", 0.0) / probes
    return f"{exporter:.2f} (+ {client:.2f})"


def _targets_per_check(rechecker: dict[str, Any], bb: dict[str, Any]) -> str:
    """knot + nginx CPU per Rechecker check, and per blackbox HTTP probe."""

    def per(cpu: dict[str, float], count: int) -> str:
        return f"{1000 * (cpu.get('knot', 0.0) + cpu.get('nginx', 0.0)) / (count or 1):.2f}"

    return (
        f"{per(rechecker['cpu_other_processes_s'], rechecker['checked'])} / "
        f"{per(bb['http']['cpu_s'], bb['http']['probes'])}"
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    log.info("wrote %s", path)


# --------------------------------------------------------------------------------------
# The two modes


def compare(args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> None:
    """Rechecker vs blackbox_exporter at one N, plus the targets' raw limits."""
    wanted = ["knotd", "nginx"]
    if not args.skip_blackbox:
        wanted.append("prometheus-blackbox-exporter")
    if not args.skip_raw:
        wanted += ["wrk", "dnsperf"]
    tools = ensure_tools(wanted)
    env = _environment(tools)
    alias = not args.skip_blackbox and can_use_resolver_alias()
    knot = Knot(workdir, tools["knotd"], args.n, alias)
    stack.callback(knot.stop)
    knot.start()
    nginx = Nginx(workdir, tools["nginx"])
    stack.callback(nginx.stop)
    nginx.start()
    blackbox = None
    if not args.skip_blackbox:
        blackbox = Blackbox(workdir, tools["prometheus-blackbox-exporter"], knot, alias)
        stack.callback(blackbox.stop)
        blackbox.start()
    stores = StoreProvider(args.store, args.store_url, workdir, stack)
    url = stores.url("bench")
    log.info("loading %d sites into %s", args.n, stores.describe(url))
    _arun(load_sites(url, args.n, nginx.port, args.resolve_twice))

    meter = CpuMeter(
        {
            "knot": knot.pid,
            "nginx": nginx.pid,
            "blackbox_exporter": blackbox.pid if blackbox else None,
            "store_server": stores.server_pid,
        }
    )
    log.info("Rechecker: one cycle, %d worker(s), concurrency %d", args.workers, args.concurrency)
    others: dict[str, float] = {}
    with meter.measure(others):
        rechecker = run_rechecker(args, url, knot, workdir, args.n, stack, args.profile)
    rechecker["cpu_other_processes_s"] = others
    rechecker.update(_arun(stored_latencies(url)))
    log.info("Rechecker: %s domains/s", rechecker["domains_per_s"])

    bb: dict[str, Any] = {}
    if blackbox is not None:
        deadline = 60 + args.n / 50
        targets = [blackbox.http_target(i, nginx) for i in range(args.n)]
        log.info("blackbox_exporter: %d HTTP probes, concurrency %d", args.n, args.concurrency)
        http_cpu: dict[str, float] = {}
        with meter.measure(http_cpu):
            http = _arun(
                drive_blackbox(blackbox.base_url, "http_2xx", targets, args.concurrency, deadline)
            )
        log.info("blackbox_exporter: %d DNS probes, concurrency %d", args.n, args.concurrency)
        dns_targets = [blackbox.dns_target] * args.n
        dns_cpu: dict[str, float] = {}
        with meter.measure(dns_cpu):
            dns = _arun(
                drive_blackbox(blackbox.base_url, "dns_a", dns_targets, args.concurrency, deadline)
            )
        bb = {
            "http_resolves_through_knot": blackbox.resolv_alias,
            "http": {**asdict(http), "cpu_s": http_cpu},
            "dns": {**asdict(dns), "cpu_s": dns_cpu},
        }

    raw: dict[str, Any] = {}
    if not args.skip_raw:
        log.info("raw limits: wrk and dnsperf, %ds each", args.raw_seconds)
        raw = {
            "nginx_new_conn": run_wrk(
                tools["wrk"], nginx.url, args.concurrency, args.raw_seconds, close=True
            ),
            "nginx_keepalive": run_wrk(
                tools["wrk"], nginx.url, args.concurrency, args.raw_seconds, close=False
            ),
            "knot": run_dnsperf(
                tools["dnsperf"],
                LOOPBACK,
                knot.port,
                [site_name(i) for i in range(min(args.n, 10_000))],
                workdir,
                args.raw_seconds,
            ),
        }
    env["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]

    bb_http = bb.get("http", {}).get("per_s")
    ratio = (
        round(rechecker["domains_per_s"] / bb_http, 2)
        if bb_http and rechecker["domains_per_s"]
        else None
    )
    data: dict[str, Any] = {
        "mode": "compare",
        "n": args.n,
        "store": stores.describe(url),
        "concurrency": args.concurrency,
        "rechecker": rechecker,
        "blackbox": bb,
        "raw": raw,
        "ratio_rechecker_to_blackbox_http": ratio,
        "environment": env,
        "argv": sys.argv[1:],
    }
    rss = rechecker["peak_rss_mib_max"]
    if args.workers > 1:
        rss = f"{rechecker['peak_rss_mib_max']} max / {rechecker['peak_rss_mib_sum']} sum"
    rows: list[tuple[str, object]] = [
        ("Rechecker measured", env["rechecker"]),
        ("N (sites)", args.n),
        ("store", stores.describe(url)),
        ("concurrency (total)", args.concurrency),
        (
            "Rechecker workers x concurrency",
            f"{args.workers} x {rechecker['concurrency_per_worker']}",
        ),
        ("Rechecker batch size / loop", f"{args.batch_size} / {args.loop}"),
        (
            "Rechecker checked (up / down)",
            f"{rechecker['checked']:,} ({rechecker['up']:,} / {rechecker['down']:,})",
        ),
        ("Rechecker cycle wall s", rechecker["wall_s"]),
        ("Rechecker domains/s", rechecker["domains_per_s"]),
        (
            "check latency p50 / p99 ms (DNS+HTTP)",
            f"{_fmt(rechecker['check_p50_ms'])} / {_fmt(rechecker['check_p99_ms'])}",
        ),
        ("Rechecker peak RSS MiB", rss),
        ("Rechecker CPU s (user+sys, cycle)", rechecker["cpu_cycle_s"]),
        ("Rechecker CPU ms per domain", rechecker["cpu_ms_per_domain"]),
    ]
    if bb:
        rows += [
            (
                "blackbox HTTP probes/s (ok / failed)",
                f"{_fmt(bb['http']['per_s'])} ({bb['http']['ok']:,} / {bb['http']['failed']:,})",
            ),
            (
                "blackbox HTTP resolves via knot",
                "yes" if bb["http_resolves_through_knot"] else "no (IP targets)",
            ),
            (
                "blackbox DNS probes/s (ok / failed)",
                f"{_fmt(bb['dns']['per_s'])} ({bb['dns']['ok']:,} / {bb['dns']['failed']:,})",
            ),
            ("blackbox CPU ms per HTTP probe (+ client)", _per_probe(bb["http"])),
            ("knot+nginx CPU ms per check / per probe", _targets_per_check(rechecker, bb)),
            ("ratio Rechecker / blackbox HTTP", ratio),
        ]
    if raw:
        rows += [
            ("nginx raw req/s, new conn each (wrk)", raw["nginx_new_conn"]["requests_per_s"]),
            ("nginx raw req/s, keep-alive (wrk)", raw["nginx_keepalive"]["requests_per_s"]),
            ("knot raw qps (dnsperf)", raw["knot"]["queries_per_s"]),
        ]
    rows.append(("load avg start -> end", f"{env['load_avg_start']} -> {env['load_avg_end']}"))
    sys.stdout.write("\n" + render_table(["metric", "value"], rows))
    _write_json(Path(args.output or RESULTS / "latest.json"), data)


def sizes(args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> None:
    """Rechecker alone at several N: is the cost per domain flat, and what does a worker
    holding N sites weigh?"""
    counts = [int(x) for x in args.sizes.split(",") if x.strip()]
    tools = ensure_tools(["knotd", "nginx"])
    env = _environment(tools)
    knot = Knot(workdir, tools["knotd"], max(counts), alias=False)
    stack.callback(knot.stop)
    knot.start()
    nginx = Nginx(workdir, tools["nginx"])
    stack.callback(nginx.stop)
    nginx.start()
    stores = StoreProvider(args.store, args.store_url, workdir, stack)
    runs: list[dict[str, Any]] = []
    for n in counts:
        url = stores.url(f"bench_{n}")
        log.info("N=%d: loading sites into %s", n, stores.describe(url))
        _arun(load_sites(url, n, nginx.port, args.resolve_twice))
        log.info("N=%d: one cycle, %d worker(s), concurrency %d", n, args.workers, args.concurrency)
        result = run_rechecker(args, url, knot, workdir, n, stack)
        result["n"] = n
        runs.append(result)
        log.info("N=%d: %s domains/s", n, result["domains_per_s"])
    env["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = [
        (
            r["n"],
            r["domains_per_s"],
            r["wall_s"],
            r["cpu_cycle_s"],
            r["cpu_ms_per_domain"],
            r["rss_ready_mib_max"],
            r["peak_rss_mib_max"],
            f"{r['up']:,} / {r['down']:,}",
        )
        for r in runs
    ]
    header = [
        "N",
        "domains/s",
        "cycle s",
        "CPU s",
        "CPU ms/domain",
        "RSS ready MiB",
        "peak RSS MiB",
        "up / down",
    ]
    sys.stdout.write(
        f"\nRechecker {env['rechecker']}; store {stores.kind}, {args.workers} worker(s), "
        f"concurrency {args.concurrency}, batch {args.batch_size}, {args.loop}\n"
        + render_table(header, rows)
    )
    data = {
        "mode": "sizes",
        "store": stores.kind,
        "concurrency": args.concurrency,
        "runs": runs,
        "environment": env,
        "argv": sys.argv[1:],
    }
    _write_json(Path(args.output or RESULTS / "latest-sizes.json"), data)


# --------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Rechecker's check cycle vs blackbox_exporter, on loopback (bench/README.md).",
    )
    parser.add_argument("--n", type=int, default=20_000, help="sites (default 20000)")
    parser.add_argument("--store", choices=["sqlite", "mariadb", "ferretdb"], default="sqlite")
    parser.add_argument("--store-url", help="a throw-away store URL instead of --store")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="checks in flight in total, and blackbox requests in flight",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="Rechecker worker processes sharing the sites through leases (default: one per CPU)",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="results per store write")
    parser.add_argument(
        "--claim-size", type=int, default=1000, help="sites a worker claims with one lease"
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--sizes", help="comma-separated N: Rechecker alone at each N")
    parser.add_argument("--raw-seconds", type=int, default=5, help="wrk / dnsperf duration")
    parser.add_argument("--skip-blackbox", action="store_true")
    parser.add_argument("--skip-raw", action="store_true", help="no wrk / dnsperf")
    parser.add_argument(
        "--resolve-twice",
        action="store_true",
        help="lever: HTTP probe resolves again instead of using the DNS probe's",
    )
    parser.add_argument(
        "--profile",
        choices=["cprofile", "py-spy"],
        help="profile worker 0's cycle; summary in bench/results/ (cProfile: profile.txt, "
        "py-spy: pyspy-summary.txt)",
    )
    parser.add_argument("--py-spy", default="py-spy", help="py-spy binary for --profile py-spy")
    parser.add_argument("--output", help="JSON path (default bench/results/latest*.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--rechecker-rev",
        help="measure the rechecker of this git commit (its src/ is extracted to a temporary "
        "directory), e.g. HEAD to leave uncommitted changes out, or HEAD~1 for a before/after",
    )
    parser.add_argument(
        "--rechecker-src",
        help="measure the rechecker package in this src/ directory (e.g. a `git archive` of "
        "another commit) instead of the installed one",
    )
    args = parser.parse_args(argv)
    if min(args.n, args.concurrency, args.workers, args.batch_size, args.claim_size) < 1:
        parser.error("--n, --concurrency, --workers, --batch-size, --claim-size must be positive")
    if args.concurrency > 10_000:
        parser.error("--concurrency is at most 10000 (Rechecker's limit)")
    return args


_SRC_ENV = "BENCH_RECHECKER_SRC"  # set for the re-executed harness: what it measures
_SRC_CLEANUP_ENV = "BENCH_RECHECKER_SRC_CLEANUP"  # a snapshot directory it must remove


def _reexec_with_src(src: Path, label: str, cleanup: Path | None = None) -> None:
    """Run the harness again with ``src`` first on PYTHONPATH, so the harness and its workers
    import that rechecker (and so create and use that schema)."""
    if not (src / "rechecker" / "__init__.py").is_file():
        raise BenchError(f"{src}: no rechecker package there")
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, _SRC_ENV: label}
    if cleanup is not None:
        env[_SRC_CLEANUP_ENV] = str(cleanup)
    os.execve(sys.executable, [sys.executable, "-m", "bench.run", *sys.argv[1:]], env)


def _snapshot(rev: str) -> tuple[Path, str]:
    """``src/`` of commit ``rev`` extracted into a new temporary directory."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    if not sha:
        raise BenchError(f"--rechecker-rev {rev}: not a commit of {REPO}")
    target = Path(tempfile.mkdtemp(prefix="rechecker-bench-src-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha, "src"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise BenchError(f"git archive {sha} failed: {archive.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target, f"{rev} ({sha[:10]}, snapshot)"


def _choose_rechecker(args: argparse.Namespace) -> None:
    """Re-execute with the rechecker that --rechecker-rev / --rechecker-src name, once."""
    if os.environ.get(_SRC_ENV) or not (args.rechecker_rev or args.rechecker_src):
        return
    if args.rechecker_rev:
        target, label = _snapshot(args.rechecker_rev)
        try:
            _reexec_with_src(target / "src", label, cleanup=target)
        finally:  # only reached when the exec failed
            shutil.rmtree(target, ignore_errors=True)
    src = Path(args.rechecker_src).resolve()
    _reexec_with_src(src, str(src))


def _on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s bench: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    log.setLevel(logging.INFO)  # the harness (bench.*) says what it does; libraries only warn
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    mode: Callable[[argparse.Namespace, contextlib.ExitStack, Path], None] = (
        sizes if args.sizes else compare
    )
    try:
        _choose_rechecker(args)
        with contextlib.ExitStack() as stack:
            snapshot = os.environ.get(_SRC_CLEANUP_ENV)
            if snapshot:
                stack.callback(shutil.rmtree, snapshot, ignore_errors=True)
            workdir = Path(tempfile.mkdtemp(prefix="rechecker-bench-"))
            if args.keep:
                log.info("work directory kept: %s", workdir)
            else:
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            mode(args, stack, workdir)
    except BenchError as error:
        log.error("%s", error)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; everything started was stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
