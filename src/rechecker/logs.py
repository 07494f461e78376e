"""The one logging setup: JSON lines in Elastic Common Schema on stderr.

ECS is what Filebeat ships to Elasticsearch, which is how the original's Elasticsearch path
is served: point Filebeat at the process output.
"""

from __future__ import annotations

import logging
import sys

import ecs_logging

from rechecker.redact import redact_text

_configured = False


class RedactingFormatter(ecs_logging.StdlibFormatter):
    """ECS JSON with every ``scheme://user:password@`` masked, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    """Send every logger (ours, uvicorn's, Flask's) through one ECS JSON handler."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(exclude_fields=["log.original"]))
    root.handlers[:] = [handler]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "werkzeug"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Alembic announces every plugin it loads; its migration lines are the useful part.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    _configured = True
