"""Log lines are ECS JSON and never carry a password, tracebacks included."""

from __future__ import annotations

import json
import logging
import sys

from rechecker.logs import RedactingFormatter


def test_log_lines_are_json_with_secrets_masked() -> None:
    try:
        raise ConnectionError("cannot reach mysql+asyncmy://root:example@db:3306/inventory")
    except ConnectionError:
        record = logging.LogRecord(
            "rechecker.test",
            logging.ERROR,
            __file__,
            1,
            "sync failed for %s",
            ("mysql+asyncmy://root:example@db:3306/inventory",),
            sys.exc_info(),
        )
    line = RedactingFormatter().format(record)
    document = json.loads(line)
    assert document["log.level"] == "error"
    assert document["message"] == "sync failed for mysql+asyncmy://***@db:3306/inventory"
    assert "example" not in line
    assert "ConnectionError" in document["error"]["stack_trace"]
