"""How times, durations and latencies read on the dashboard.

``static/dashboard.js`` repeats these rules for the rows it refreshes, so that a refreshed row
reads exactly like a rendered one; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime

DASH = "—"


def as_utc(value: datetime) -> datetime:
    """Stores hand back naive datetimes in UTC on some drivers; make every one aware."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc(value: datetime | None) -> str:
    """Every time on the dashboard is UTC and says so, whatever the server's or reader's zone."""
    if value is None:
        return DASH
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_iso(value: datetime | None) -> str:
    """The machine-readable form, for ``<time datetime>`` and the JSON twins."""
    if value is None:
        return ""
    return as_utc(value).isoformat(timespec="seconds")


def format_ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f} ms"


def format_duration(seconds: float | None) -> str:
    """Two units at most ("3h 12m", "2d 4h"): how long an outage lasts, not a stopwatch."""
    if seconds is None:
        return DASH
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def format_age(value: datetime | None, now: datetime) -> str:
    """How long ago ``value`` was, in :func:`format_duration` units."""
    if value is None:
        return DASH
    return format_duration((now - as_utc(value)).total_seconds())


def format_between(start: datetime, end: datetime) -> str:
    return format_duration((as_utc(end) - as_utc(start)).total_seconds())


def format_count(value: int) -> str:
    return f"{value:,}"


def format_percent(value: float | None) -> str:
    """Uptime: three decimals only where they matter (99.987 %, but 100 % and 50 %)."""
    if value is None:
        return DASH
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"
