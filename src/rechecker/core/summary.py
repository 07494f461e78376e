"""Uptime and latency over the periods SREs quote: 24 hours, 7 days, 30 days."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel

from rechecker.models import HistoryPoint, State

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
LATENCY_WINDOW = "24h"


class Summary(BaseModel):
    """Uptime is the share of checks not DOWN (a degraded site serves); ``None`` when there
    was no check in the window. Latencies are over the last 24 hours of successful fetches."""

    checks: dict[str, int]
    uptime_percent: dict[str, float | None]
    latency_p50_ms: float | None
    latency_p95_ms: float | None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summarize(points: list[HistoryPoint], now: datetime) -> Summary:
    checks: dict[str, int] = {}
    uptime: dict[str, float | None] = {}
    for name, span in WINDOWS.items():
        inside = [p for p in points if p.timestamp >= now - span]
        checks[name] = len(inside)
        up = sum(p.verdict is not State.DOWN for p in inside)
        uptime[name] = round(100 * up / len(inside), 3) if inside else None
    recent = now - WINDOWS[LATENCY_WINDOW]
    latencies = [p.latency_ms for p in points if p.timestamp >= recent and p.latency_ms is not None]
    return Summary(
        checks=checks,
        uptime_percent=uptime,
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p95_ms=percentile(latencies, 0.95),
    )
