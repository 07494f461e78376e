"""Access control (basic auth, a trusted proxy header) and the chart geometry."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask, request
from werkzeug.security import generate_password_hash

from rechecker.frontend import close_app, create_app
from rechecker.frontend.auth import DashboardAuth
from rechecker.frontend.charts import (
    HEIGHT,
    MAX_LINE_POINTS,
    PERIODS,
    latency_chart,
    nice_step,
    period_from_arg,
    up_down_strip,
    waterfall,
)
from rechecker.models import HistoryPoint, State
from rechecker.results import HttpTimings
from tests.frontend.conftest import settings_for

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("password", ["s3cret pass", generate_password_hash("s3cret pass")])
def test_basic_auth_guards_every_page_but_the_probes(
    tmp_path: Path, store_url: str, password: str
) -> None:
    app = create_app(
        settings_for(tmp_path, store_url), auth=DashboardAuth(user="sre", password=password)
    )
    client = app.test_client()
    try:
        for path in (
            "/",
            "/api/status",
            "/domain/api.example.com",
            "/incidents",
            "/static/rechecker.css",
        ):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"].startswith(
                'Basic realm="Rechecker dashboard"'
            )
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert client.get(path, headers=_basic("sre", "wrong")).status_code == 401
            assert client.get(path, headers=_basic("SRE", "s3cret pass")).status_code == 401
            ok = client.get(path, headers=_basic("sre", "s3cret pass"))
            assert ok.status_code == 200, path
            assert "Authorization" in ok.headers["Vary"]
            ok.close()
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    finally:
        close_app(app)


def test_proxy_header_lets_in_allowed_users(tmp_path: Path, store_url: str) -> None:
    auth = DashboardAuth.configured(header="X-Forwarded-User", header_values=["ana", " bo ", ""])
    assert auth is not None and auth.header_values == frozenset({"ana", "bo"})
    app = create_app(settings_for(tmp_path, store_url), auth=auth)
    client = app.test_client()
    try:
        assert client.get("/").status_code == 403
        assert client.get("/", headers={"X-Forwarded-User": "mallory"}).status_code == 403
        assert client.get("/", headers={"X-Forwarded-User": "ana"}).status_code == 200
        assert client.get("/api/status", headers={"X-Forwarded-User": "bo"}).status_code == 200
    finally:
        close_app(app)


def test_proxy_header_without_values_trusts_any_user(tmp_path: Path, store_url: str) -> None:
    auth = DashboardAuth(header="X-Auth-Request-Email")
    app = create_app(settings_for(tmp_path, store_url), auth=auth)
    client = app.test_client()
    try:
        assert client.get("/", headers={"X-Auth-Request-Email": "  "}).status_code == 403
        assert client.get("/", headers={"X-Auth-Request-Email": "a@example.com"}).status_code == 200
    finally:
        close_app(app)


def test_header_and_basic_together_either_is_enough() -> None:
    auth = DashboardAuth(user="sre", password="pw", header="X-Forwarded-User")
    app = Flask(__name__)
    with app.test_request_context(headers={"X-Forwarded-User": "ana"}):
        assert auth.allows(request)
    with app.test_request_context(headers=_basic("sre", "pw")):
        assert auth.allows(request)
    with app.test_request_context():
        assert not auth.allows(request)
        assert auth.challenge().status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"user": "sre"},
        {"password": "pw"},
        {"user": "", "password": "pw"},
        {"user": "a:b", "password": "pw"},
        {"user": "sre", "password": ""},
        {"header": " "},
    ],
)
def test_auth_refuses_half_configurations(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        DashboardAuth(**kwargs)  # type: ignore[arg-type]


def test_auth_from_empty_settings_is_none() -> None:
    assert DashboardAuth.configured() is None
    assert DashboardAuth.configured(user="", password="", header="") is None
    with pytest.raises(ValueError, match="no header name"):
        DashboardAuth.configured(header_values=["ana"])
    configured = DashboardAuth.configured(user="sre", password="pw")
    assert configured == DashboardAuth(user="sre", password="pw")
    assert "pw" not in repr(configured)


# --- charts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "step"),
    [(0, 1), (0.3, 0.5), (1, 1), (1.2, 2), (2.2, 2.5), (3, 5), (85.5, 100), (410, 500)],
)
def test_nice_steps(value: float, step: float) -> None:
    assert nice_step(value) == pytest.approx(step)


def _points(
    span: timedelta, every: timedelta, down: frozenset[int] = frozenset()
) -> list[HistoryPoint]:
    count = int(span / every)
    return [
        HistoryPoint(
            timestamp=NOW - span + i * every,
            verdict=State.DOWN if i in down else State.UP,
            latency_ms=None if i in down else 40.0 + i % 10,
        )
        for i in range(count + 1)
    ]


def test_latency_chart_scales_and_breaks_at_gaps() -> None:
    points = _points(timedelta(hours=24), timedelta(minutes=10))
    gap = [
        p for p in points if not NOW - timedelta(hours=10) < p.timestamp < NOW - timedelta(hours=8)
    ]
    chart = latency_chart(gap, PERIODS["24h"], NOW)
    assert len(chart.lines) == 2
    assert [tick.label for tick in chart.y_ticks] == ["80 ms", "60 ms", "40 ms", "20 ms", "0 ms"]
    ys = [float(pair.split(",")[1]) for line in chart.lines for pair in line.split()]
    assert all(0 <= y <= HEIGHT for y in ys)
    assert [tick.label for tick in chart.x_ticks] == ["12:00", "18:00", "00:00", "06:00", "12:00"]
    assert "from 134 checks" in chart.description


def test_latency_chart_reduces_long_periods_to_medians() -> None:
    points = _points(timedelta(days=30), timedelta(minutes=5))
    chart = latency_chart(points, PERIODS["30d"], NOW)
    assert len(chart.series) <= MAX_LINE_POINTS
    assert chart.samples == len(points)


def test_latency_chart_of_nothing_and_of_one_point() -> None:
    assert latency_chart([], PERIODS["24h"], NOW).empty
    one = [HistoryPoint(timestamp=NOW - timedelta(hours=1), verdict=State.UP, latency_ms=10)]
    chart = latency_chart(one, PERIODS["24h"], NOW)
    [line] = chart.lines
    first, second = line.split()
    assert first == second  # drawn as a dot


def test_strip_marks_down_and_empty_slices() -> None:
    points = _points(timedelta(hours=24), timedelta(minutes=8), down=frozenset({30, 31}))
    strip = up_down_strip(points, PERIODS["24h"], NOW)
    assert len(strip.cells) == 96
    kinds = [cell.kind for cell in strip.cells]
    assert kinds.count("down") == 1
    assert "2 checks, 2 down" in next(c.label for c in strip.cells if c.kind == "down")
    hourly = _points(timedelta(hours=24), timedelta(hours=1))
    assert len(up_down_strip(hourly, PERIODS["24h"], NOW).cells) == 16
    assert up_down_strip([], PERIODS["7d"], NOW).cells[0].label.endswith("no checks")


def test_period_from_argument() -> None:
    assert period_from_arg("7d").key == "7d"
    assert period_from_arg(None).key == "24h"
    assert period_from_arg("365d").key == "24h"


def test_waterfall_places_phases_end_to_end() -> None:
    phases = waterfall(
        HttpTimings(dns_ms=10, connect_ms=20, tls_ms=30, first_byte_ms=30, body_ms=10, total_ms=100)
    )
    assert [(p.name, p.x, p.width) for p in phases] == [
        ("DNS", 0.0, 100.0),
        ("Connect", 100.0, 200.0),
        ("TLS", 300.0, 300.0),
        ("First byte", 600.0, 300.0),
        ("Body", 900.0, 100.0),
    ]
    assert waterfall(HttpTimings()) == []
