"""Where a worker's CPU goes: cProfile (built in) or py-spy (sampling, if installed).

py-spy samples the worker from outside (``py-spy record --format raw``: one collapsed stack a
line, ``frame;frame;... COUNT``), so it neither slows the cycle much nor is confused by
coroutines the way cProfile is (cProfile counts every resume of a coroutine as a call).
"""

from __future__ import annotations

import pstats
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")

#: Path fragment -> the group a frame is counted under.
_GROUPS = [
    ("/rechecker/", "rechecker"),
    ("/dns/", "dnspython"),
    ("/aiohttp/", "aiohttp"),
    ("/aiohappyeyeballs/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/sqlalchemy/", "sqlalchemy"),
    ("/aiosqlite/", "aiosqlite+sqlite3"),
    ("/sqlite3/", "aiosqlite+sqlite3"),
    ("/asyncmy/", "asyncmy"),
    ("/pymongo/", "pymongo"),
    ("/bson/", "pymongo"),
    ("/pydantic", "pydantic"),
    ("/uvloop/", "uvloop"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/logging/", "logging"),
    ("/ssl.py", "ssl"),
]


def _group(frame: str) -> str:
    if frame.startswith("Runner.run ") or frame.startswith("run_forever "):
        # Time in the event loop's own C code (uvloop) shows up under its Python caller.
        return "event loop internals"
    match = _FRAME.match(frame)
    path = match.group("file") if match else frame
    for fragment, group in _GROUPS:
        if fragment in path:
            return group
    return "other" if match else frame


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def summarise_collapsed(raw: Path, top: int = 30) -> str:
    """Self time per function, inclusive time per rechecker function, self time per library."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        leaf[_short(frames[-1])] += count
        groups[_group(frames[-1])] += count
        for frame in {f for f in frames if "/rechecker/" in f}:
            inclusive[_short(frame)] += count
    if not total:
        return "no samples\n"

    def block(title: str, counter: Counter[str], limit: int) -> str:
        rows = [f"{100 * n / total:6.1f}%  {name}" for name, n in counter.most_common(limit)]
        return f"{title}\n" + "\n".join(rows) + "\n"

    return (
        f"{total} samples\n\n"
        + block("self time by library (leaf frame)", groups, 20)
        + "\n"
        + block("self time by function (leaf frame)", leaf, top)
        + "\n"
        + block("inclusive time of rechecker functions", inclusive, top)
    )


def summarise_cprofile(path: Path) -> Path:
    text_path = path.with_suffix(".txt")
    with text_path.open("w") as out:
        stats = pstats.Stats(str(path), stream=out)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(35)
    return text_path
