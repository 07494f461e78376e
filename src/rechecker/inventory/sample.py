"""The sample inventory that ``make run`` starts with: a dozen rows in the original's shape.

Some rows are healthy public sites, some are broken on purpose (NXDOMAIN, bad TLS, HTTP 503),
one is inactive and one is not a domain at all, so a first run shows every kind of outcome.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_ROWS: list[tuple[int, str, str, str]] = [
    (5001, "http://example.com/?lid=", "active", "example.com"),
    (5002, "https://www.python.org/", "active", "www.python.org"),
    (5003, "https://www.wikipedia.org/", "active", "www.wikipedia.org"),
    (5004, "https://www.debian.org/", "active", "www.debian.org"),
    (5005, "https://www.iana.org/", "active", "www.iana.org"),
    (5006, "https://github.com/", "active", "github.com"),
    (5007, "https://httpbin.org/status/503", "active", "httpbin.org"),
    (5008, "https://expired.badssl.com/", "active", "expired.badssl.com"),
    (5009, "https://self-signed.badssl.com/", "active", "self-signed.badssl.com"),
    (5010, "http://does-not-exist.invalid/", "active", "does-not-exist.invalid"),
    (5011, "not a domain!", "active", ""),
    (5012, "https://decommissioned.example.org/", "inactive", "decommissioned.example.org"),
]


def ensure_sample_inventory(path: Path, table: str = "sites") -> bool:
    """Create the sample inventory at ``path`` unless a file is already there.

    Returns True when it created one. An existing file is never touched: it may be the
    user's own inventory by now.
    """
    if path.exists():
        return False
    write_inventory(path, SAMPLE_ROWS, table)
    log.info("created sample inventory", extra={"path": str(path), "rows": len(SAMPLE_ROWS)})
    return True


def write_inventory(
    path: Path, rows: list[tuple[int, str, str, str]], table: str = "sites"
) -> None:
    """Write (id, base_url, status, udomain) rows to a SQLite inventory in the original's shape,
    replacing the rows it had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    quoted = '"' + table.replace('"', '""') + '"'
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted} (id INTEGER PRIMARY KEY, base_url TEXT, "
            "status TEXT NOT NULL, udomain TEXT, source_id INTEGER)"
        )
        conn.execute(f"DELETE FROM {quoted}")  # noqa: S608 - quoted identifier from settings
        conn.executemany(
            f"INSERT INTO {quoted} (id, base_url, status, udomain) VALUES (?, ?, ?, ?)",  # noqa: S608
            rows,
        )
