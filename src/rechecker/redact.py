"""Masking of credentials before anything reaches a log line, an error or a page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^@/\s]+)@")

MASK = "***"


def redact_url(url: str) -> str:
    """Hide the password (and query-string secrets) of a DSN or webhook URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return url
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Mask any ``scheme://user:password@`` found inside free text, such as a driver error."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
