"""Uptime per window and latency percentiles from history points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rechecker.core.summary import percentile, summarize
from rechecker.models import HistoryPoint, State

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def point(hours_ago: float, verdict: State, latency: float | None = None) -> HistoryPoint:
    return HistoryPoint(
        timestamp=NOW - timedelta(hours=hours_ago), verdict=verdict, latency_ms=latency
    )


def test_uptime_per_window_counts_degraded_as_up() -> None:
    points = [
        point(24 * 20, State.DOWN),  # only in 30d
        point(24 * 3, State.DOWN),  # in 7d and 30d
        point(5, State.DEGRADED, 300.0),
        point(1, State.UP, 100.0),
    ]
    summary = summarize(points, NOW)
    assert summary.checks == {"24h": 2, "7d": 3, "30d": 4}
    assert summary.uptime_percent == {"24h": 100.0, "7d": round(200 / 3, 3), "30d": 50.0}


def test_no_checks_is_unknown_not_zero() -> None:
    summary = summarize([], NOW)
    assert summary.uptime_percent == {"24h": None, "7d": None, "30d": None}
    assert summary.latency_p50_ms is None


def test_latency_percentiles_are_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    summary = summarize([point(1, State.UP, v) for v in values], NOW)
    assert (summary.latency_p50_ms, summary.latency_p95_ms) == (50.0, 95.0)
