"""What each lever gained: the harness run once per variant, one table of the results.

``python -m bench.levers`` (``make bench-levers``) runs ``bench.run`` for Rechecker alone
(no blackbox, no wrk/dnsperf) at the same N and concurrency, once per lever: commits from
before and after each code change (``--rechecker-rev``), and flags of the current tree
(event loop, batch size, resolving twice, worker processes). Each variant's JSON goes to
``bench/results/levers/``; the table is printed and written to ``levers.json`` there.

Variants run one after another on the same machine, so their ratios are comparable; the
absolute figures move with the machine's load (each JSON records the load average).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import REPO, RESULTS

log = logging.getLogger("bench")


@dataclass(frozen=True, slots=True)
class Lever:
    name: str
    args: tuple[str, ...]


#: The order is the story: each line changes one thing from a line above it.
_ONE = ("--workers", "1")
LEVERS: tuple[Lever, ...] = (
    Lever("before: dnspython, a socket per query", ("--rechecker-rev", "60f760e", *_ONE)),
    # The next two still lost DNS replies to a full socket buffer (found and fixed later):
    # their timeouts cut the throughput; compare their CPU per domain.
    Lever("DNS on one shared UDP socket per server", ("--rechecker-rev", "c7d762b", *_ONE)),
    Lever("HTTP phases timed without trace signals", ("--rechecker-rev", "babdfe7", *_ONE)),
    Lever("<=64 queries a socket; cheaper JSON, copies", ("--rechecker-rev", "805b4b8", *_ONE)),
    Lever("results written behind the checks", ("--rechecker-rev", "9fd896d", *_ONE)),
    Lever("an HTTP/1.1 client of our own", _ONE),
    Lever("  asyncio loop instead of uvloop", (*_ONE, "--loop", "asyncio")),
    Lever("  HTTP resolves again (no pinning)", (*_ONE, "--resolve-twice")),
    Lever("  one store write per result", (*_ONE, "--batch-size", "1")),
    Lever("2 workers sharing leases", ("--workers", "2")),
)


def run_lever(lever: Lever, n: int, concurrency: int, store: str, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--n",
        str(n),
        "--concurrency",
        str(concurrency),
        "--store",
        store,
        "--skip-blackbox",
        "--skip-raw",
        "--output",
        str(out),
        *lever.args,
    ]
    log.info("lever %r: %s", lever.name, " ".join(command[2:]))
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())["rechecker"]
    return result


def table(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'lever':44} | {'domains/s':>9} | {'CPU ms/domain':>13} | {'peak RSS MiB':>12}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['lever']:44} | {row['domains_per_s']:>9,.1f} | "
            f"{row['cpu_ms_per_domain']:>13.3f} | {row['peak_rss_mib_max']:>12.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.levers", description=__doc__)
    parser.add_argument("--n", type=int, default=10000, help="sites (default 10000)")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--store", choices=["sqlite", "mariadb", "ferretdb"], default="sqlite")
    parser.add_argument("--only", help="comma-separated lever numbers (1-based) to run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    everything = list(range(1, len(LEVERS) + 1))
    numbers = [int(i) for i in args.only.split(",")] if args.only else everything
    folder = RESULTS / "levers"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in numbers:
        lever = LEVERS[number - 1]
        result = run_lever(lever, args.n, args.concurrency, args.store, folder / f"{number}.json")
        rows.append({"lever": lever.name, "args": list(lever.args), **result})
    text = table(rows)
    sys.stdout.write(f"\nN={args.n}, concurrency {args.concurrency}, store {args.store}\n")
    sys.stdout.write(text + "\n")
    (folder / "levers.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
