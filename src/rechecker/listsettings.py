"""List settings as they arrive from the environment: one string, separated by commas or
whitespace, or a JSON document. Shared by the nested settings blocks (alerts, API security).

A JSON error says where the document broke, never what it holds: the value may be a token
or a URL with credentials.
"""

from __future__ import annotations

import json
import re

_LIST_SEPARATOR = re.compile(r"[\s,]+")


def split_list(value: object) -> object:
    """A string as a list (``a, b c`` or ``["a", "b"]``); anything else as it is, for the
    field's own validation."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            return parse_json(value, "a JSON list")
        return [part for part in _LIST_SEPARATOR.split(value) if part]
    return value


def parse_json(value: str, expected: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        # JSONDecodeError's text names the position and what was expected, not the document.
        raise ValueError(f"expected {expected}, but this is not valid JSON: {exc}") from None
