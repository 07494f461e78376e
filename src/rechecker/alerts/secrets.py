"""Keeping alert destination URLs out of every log line.

An apprise URL is a credential as a whole: besides ``user:password@`` it often carries its
token in the host or the path (``slack://TokenA/TokenB/TokenC``, ``json://host/hook/TOKEN``,
``pagerduty://routingkey@apikey``). :func:`rechecker.redact.redact_url` masks only the password
and the query, so it would print most of these in clear; destinations therefore get their own,
stricter label here, and the pieces of each URL are scrubbed from any text before it is logged.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from rechecker.redact import MASK, redact_text

#: Pieces shorter than this are not scrubbed: masking every "a" or "80" would garble lines
#: without protecting anything a person could use.
_MIN_SECRET_LENGTH = 3

#: Loggers that see the destination URLs: apprise itself, and urllib3 (under apprise's HTTP
#: plugins), whose debug lines carry the request path.
SCRUBBED_LOGGERS = ("apprise", "urllib3.connectionpool")


def destination_label(url: str, index: int) -> str:
    """A name for a destination that is safe to log: scheme and host, nothing secret.

    The host is shown only when it looks like a host (a dotted name, ``localhost`` or an IP
    address); a host that is really a token is masked. The 1-based ``index`` tells apart two
    destinations on the same host.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"#{index} {MASK}"
    host = parts.hostname or ""
    shown_host = host if _looks_like_host(host) else MASK
    if port is not None:
        shown_host = f"{shown_host}:{port}"
    userinfo = f"{MASK}@" if "@" in parts.netloc else ""
    path = f"/{MASK}" if parts.path.strip("/") else ""
    query = f"?{MASK}" if parts.query else ""
    return f"#{index} {parts.scheme}://{userinfo}{shown_host}{path}{query}"


def secret_parts(url: str) -> frozenset[str]:
    """The pieces of a destination URL that may be credentials, raw and percent-decoded."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return frozenset({url})
    pieces = [url, parts.username or "", parts.query]
    if not _looks_like_host(host):
        pieces.append(host)
    pieces.extend(parts.path.split("/"))
    pieces.extend(value for _, value in parse_qsl(parts.query))
    found = {piece for piece in pieces if len(piece) >= _MIN_SECRET_LENGTH}
    found |= {unquote(piece) for piece in found if len(unquote(piece)) >= _MIN_SECRET_LENGTH}
    if parts.password:
        # A password is masked whatever its length.
        found |= {parts.password, unquote(parts.password)}
    return frozenset(found)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Mask every secret piece found in ``text``, longest first, then any ``user:pass@``."""
    for piece in sorted(secrets, key=len, reverse=True):
        text = text.replace(piece, MASK)
    return redact_text(text)


def _looks_like_host(host: str) -> bool:
    if host == "localhost" or "." in host.strip("."):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SecretScrubber(logging.Filter):
    """A logging filter that rewrites records so they never carry a destination's secrets.

    Attached to the loggers in :data:`SCRUBBED_LOGGERS` while an alerter runs, so that what
    apprise or urllib3 log (a failed URL, a request path with a webhook token) reaches the JSON
    logs masked, whatever their level.
    """

    def __init__(self, urls: Iterable[str]) -> None:
        super().__init__()
        self._secrets = frozenset().union(*(secret_parts(url) for url in urls))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # A traceback is formatted from the live exception, after every filter has run;
            # fold it into the message, masked, instead.
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub(message, self._secrets)
        record.args = None
        return True

    def attach(self) -> None:
        for name in SCRUBBED_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in SCRUBBED_LOGGERS:
            logging.getLogger(name).removeFilter(self)
