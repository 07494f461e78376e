"""The dashboard against a real SQLite store: order, counts, search, escaping, outages.

Flask's test client is synchronous, so these are plain sync tests. The store is seeded on a
blocking portal of its own (not ``asyncio.run``), which leaves the main thread's event loop
alone for the async tests elsewhere in the suite.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from rechecker.config import Settings
from rechecker.frontend import StoreBridge, close_app, create_app
from rechecker.frontend.app import EXTENSION
from rechecker.models import (
    CheckResult,
    DnsOutcome,
    DnsResult,
    HttpOutcome,
    HttpResult,
    Site,
    State,
)
from rechecker.store import StoreError, create_store

BASE_TIME = datetime(2024, 5, 17, 8, 30, 15, tzinfo=UTC)
RLM = "\u200f"
LONG = "x" * 5000
HOSTILE = f"<script>alert(1)</script>\"' {RLM}boom {LONG}"

DOWN_DOMAINS = ["bravo.example", "delta.example", "hostile.example"]
UP_DOMAINS = ["alpha.example", "charlie.example", "xn--bcher-kva.example"]
PENDING_DOMAIN = "pending.example"
HISTORY_ROWS = 60


def _site(domain: str) -> Site:
    return Site(domain=domain, url=f"https://{domain}/", added_at=BASE_TIME)


def _up(domain: str, at: datetime = BASE_TIME) -> CheckResult:
    return CheckResult(
        domain=domain,
        url=f"https://{domain}/",
        timestamp=at,
        state=State.UP,
        status_code=200,
        latency_ms=42.5,
        dns=DnsResult(
            outcome=DnsOutcome.OK,
            addresses=["192.0.2.10", "2001:db8::10"],
            resolver="192.0.2.53:53",
            latency_ms=3.25,
        ),
        http=HttpResult(
            url=f"https://{domain}/",
            outcome=HttpOutcome.OK,
            status_code=200,
            reason="OK",
            final_url=f"https://www.{domain}/home",
            latency_ms=39.0,
        ),
    )


def _down_dns(domain: str) -> CheckResult:
    return CheckResult(
        domain=domain,
        url=f"https://{domain}/",
        timestamp=BASE_TIME,
        state=State.DOWN,
        error_class="NXDOMAIN",
        error_message="name does not exist",
        dns=DnsResult(outcome=DnsOutcome.NXDOMAIN, message="NXDOMAIN from 192.0.2.53"),
    )


def _down_http(domain: str, message: str) -> CheckResult:
    return CheckResult(
        domain=domain,
        url=f"https://{domain}/",
        timestamp=BASE_TIME,
        state=State.DOWN,
        status_code=500,
        error_class="HTTP_STATUS",
        error_message=message,
        latency_ms=12.0,
        dns=DnsResult(outcome=DnsOutcome.OK, addresses=["198.51.100.7"]),
        http=HttpResult(
            url=f"https://{domain}/",
            outcome=HttpOutcome.HTTP_STATUS,
            status_code=500,
            reason="Internal Server Error",
            message=message,
        ),
    )


def _seed(url: str, sites: list[Site], results: list[CheckResult]) -> None:
    async def run() -> None:
        store = create_store(url)
        await store.open()
        try:
            await store.add_sites(sites)
            await store.record_results(results)
        finally:
            await store.close()

    with start_blocking_portal() as portal:
        portal.call(run)


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, store_url=SecretStr(url))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = _sqlite_url(tmp_path / "store.sqlite3")
    domains = DOWN_DOMAINS + UP_DOMAINS + [PENDING_DOMAIN]
    # Older alpha results first, so the latest status is the last one recorded.
    history = [
        _up("alpha.example", BASE_TIME - timedelta(minutes=HISTORY_ROWS - i))
        for i in range(HISTORY_ROWS - 1)
    ]
    results = [
        *history,
        _up("alpha.example"),
        _up("charlie.example"),
        _up("xn--bcher-kva.example"),
        _down_dns("bravo.example"),
        _down_http("delta.example", "HTTP 500 Internal Server Error"),
        _down_http("hostile.example", HOSTILE),
    ]
    _seed(url, [_site(d) for d in domains], results)
    return url


@pytest.fixture
def app(tmp_path: Path, store_url: str) -> Iterator[Flask]:
    flask_app = create_app(_settings(tmp_path, store_url))
    try:
        yield flask_app
    finally:
        close_app(flask_app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _linked_domains(html: str) -> list[str]:
    return re.findall(r'href="/domain/([^"]+)"', html)


def _section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


# --- overview ---------------------------------------------------------------------------
def test_dashboard_lists_failing_domains_first(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    checked = _linked_domains(_section(html, "checked-heading"))
    assert checked == DOWN_DOMAINS + UP_DOMAINS
    pending = _linked_domains(_section(html, "pending-heading"))
    assert pending == [PENDING_DOMAIN]
    assert html.index("/domain/hostile.example") < html.index("/domain/alpha.example")


def test_dashboard_marks_down_rows_and_shows_counts(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert html.count('<tr class="row-down">') == len(DOWN_DOMAINS)
    assert html.count('<tr class="row-up">') == len(UP_DOMAINS)
    assert html.count('<tr class="row-pending">') == 1
    counts = re.findall(
        r'<span class="count-value">(\d+)</span>\s*<span class="count-label">([^<]+)</span>',
        html,
    )
    assert {label: int(value) for value, label in counts} == {
        "monitored sites": 7,
        "UP": 3,
        "DOWN": 3,
        "not yet checked": 1,
    }
    assert "count-down is-alert" in html
    assert "2024-05-17 08:30:15 UTC" in html
    assert "PENDING" in html


def test_page_basics_for_accessibility(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert '<label for="q">' in html
    assert 'id="q" name="q"' in html


def test_api_status_matches_page_order_and_counts(client: FlaskClient) -> None:
    response = client.get("/api/status")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["counts"] == {"sites": 7, "up": 3, "down": 3, "pending": 1}
    assert [d["domain"] for d in data["domains"]] == DOWN_DOMAINS + UP_DOMAINS
    assert [d["state"] for d in data["domains"]] == ["DOWN"] * 3 + ["UP"] * 3
    assert [s["domain"] for s in data["pending"]] == [PENDING_DOMAIN]
    alpha = next(d for d in data["domains"] if d["domain"] == "alpha.example")
    assert alpha["dns"]["addresses"] == ["192.0.2.10", "2001:db8::10"]
    assert alpha["timestamp"].startswith("2024-05-17T08:30:15")
    hostile = next(d for d in data["domains"] if d["domain"] == "hostile.example")
    assert hostile["error_message"] == HOSTILE


# --- search -----------------------------------------------------------------------------
def test_search_filters_case_insensitively_and_keeps_query(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": "  CHAR "}).get_data(as_text=True)
    assert _linked_domains(html) == ["charlie.example"]
    assert 'value="CHAR"' in html
    # The counts stay fleet-wide while a search narrows the table.
    assert '<span class="count-value">7</span>' in html


def test_search_keeps_failing_first_and_filters_pending(client: FlaskClient) -> None:
    html = client.get("/?q=h").get_data(as_text=True)
    assert _linked_domains(html) == [
        "hostile.example",
        "alpha.example",
        "charlie.example",
        "xn--bcher-kva.example",
    ]
    html = client.get("/?q=d").get_data(as_text=True)
    assert _linked_domains(html) == ["delta.example", PENDING_DOMAIN]
    html = client.get("/?q=pend").get_data(as_text=True)
    assert _linked_domains(html) == [PENDING_DOMAIN]
    assert "No checked domain matches." in html


def test_search_accepts_unicode_names(client: FlaskClient) -> None:
    for query in ("bücher", "BÜCHER.example", "xn--bcher"):
        html = client.get("/", query_string={"q": query}).get_data(as_text=True)
        assert _linked_domains(html) == ["xn--bcher-kva.example"], query


def test_api_status_honours_query(client: FlaskClient) -> None:
    data = client.get("/api/status?q=ELTA").get_json()
    assert [d["domain"] for d in data["domains"]] == ["delta.example"]
    assert data["pending"] == []
    assert data["query"] == "ELTA"
    assert data["counts"]["sites"] == 7


def test_search_query_is_escaped(client: FlaskClient) -> None:
    html = client.get("/", query_string={"q": '"><script>alert(2)</script>'}).get_data(as_text=True)
    assert "<script>alert(2)" not in html
    assert 'value="&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"' in html


# --- domain page ------------------------------------------------------------------------
def test_domain_page_shows_dns_and_http_detail(client: FlaskClient) -> None:
    response = client.get("/domain/alpha.example")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for expected in (
        "192.0.2.10",
        "2001:db8::10",
        "192.0.2.53:53",
        "3.2 ms",
        "https://www.alpha.example/home",
        "39.0 ms",
        "Latest check",
    ):
        assert expected in html, expected
    history = _section(html, "history-heading")
    assert history.count("<tr class=") == 50


def test_domain_page_of_dns_failure_explains_missing_http(client: FlaskClient) -> None:
    html = client.get("/domain/bravo.example").get_data(as_text=True)
    assert "NXDOMAIN from 192.0.2.53" in html
    assert "No HTTP check was made" in html
    assert "panel-down" in html


def test_domain_page_of_unchecked_site(client: FlaskClient) -> None:
    response = client.get(f"/domain/{PENDING_DOMAIN}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not yet checked" in html
    assert "No checks recorded yet." in html


def test_unknown_domain_is_404(client: FlaskClient) -> None:
    for path in ("/domain/unknown.example", "/domain/not_a%20domain!", "/domain/" + "a" * 300):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.get_data(as_text=True)
        assert "Content-Security-Policy" in response.headers


def test_domain_spelling_redirects_to_stored_name(client: FlaskClient) -> None:
    response = client.get("/domain/ALPHA.Example")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/domain/alpha.example")


# --- hostile data -----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/domain/hostile.example"])
def test_hostile_error_message_is_escaped(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in html
    assert "<script>alert" not in html
    assert "<script" not in html
    # The right-to-left mark stays, isolated so it cannot reorder the page around it.
    assert re.search(f"<bdi>[^<]*{RLM}boom", html)


def test_long_message_is_cut_in_tables_but_whole_on_domain_page(client: FlaskClient) -> None:
    overview = client.get("/").get_data(as_text=True)
    assert LONG not in overview
    assert "xxx…" in overview
    detail = client.get("/domain/hostile.example").get_data(as_text=True)
    assert LONG in detail


# --- headers and assets -----------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/", "/?q=x", "/api/status", "/healthz", "/domain/alpha.example", "/nope"]
)
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_static_css_is_served_with_headers(client: FlaskClient) -> None:
    response = client.get("/static/rechecker.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    css = response.get_data(as_text=True)
    response.close()
    assert "http" not in css
    assert "@import" not in css
    assert "url(" not in css


@pytest.mark.parametrize("path", ["/", "/domain/alpha.example", "/nope"])
def test_pages_load_no_external_assets(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    attributes = re.findall(r"""\b(?:src|href|action)\s*=\s*["']?([^"'\s>]*)""", html)
    assert attributes
    for value in attributes:
        assert value.startswith("/") and not value.startswith("//"), value
    assert "<script" not in html
    assert "style=" not in html
    assert '<link rel="stylesheet" href="/static/rechecker.css">' in html


# --- health and outages -----------------------------------------------------------------
def test_healthz_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def _unreachable_urls(tmp_path: Path) -> list[str]:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder should be")
    return [
        # SQLite cannot open a directory as a database: the driver fails.
        _sqlite_url(tmp_path),
        # The store's folder cannot be created: the filesystem fails.
        _sqlite_url(blocker / "store.sqlite3"),
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_unreachable_store_gives_503_pages_not_500(tmp_path: Path, which: int) -> None:
    url = _unreachable_urls(tmp_path)[which]
    app = create_app(_settings(tmp_path, url))
    client = app.test_client()
    try:
        for path in ("/", "/?q=a", "/domain/alpha.example"):
            response = client.get(path)
            assert response.status_code == 503, path
            html = response.get_data(as_text=True)
            assert "The status store is unavailable" in html
            assert "Traceback" not in html
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        api = client.get("/api/status")
        assert api.status_code == 503
        assert api.get_json()["status"] == "unavailable"
        health = client.get("/healthz")
        assert health.status_code == 503
        body = health.get_json()
        assert body["status"] == "unavailable"
        assert body["error"]
    finally:
        close_app(app)


def test_closed_app_answers_503(app: Flask, client: FlaskClient) -> None:
    assert client.get("/").status_code == 200
    close_app(app)
    close_app(app)  # a second close is harmless
    assert client.get("/").status_code == 503
    assert client.get("/domain/alpha.example").status_code == 503
    assert client.get("/api/status").status_code == 503
    assert client.get("/healthz").get_json()["status"] == "unavailable"


def test_close_stops_the_store_thread(tmp_path: Path, store_url: str) -> None:
    app = create_app(_settings(tmp_path, store_url))
    assert any(t.name == "rechecker-frontend-store" for t in threading.enumerate())
    app.extensions[EXTENSION].close()
    assert not any(t.name == "rechecker-frontend-store" for t in threading.enumerate())


def test_create_app_uses_a_given_store(tmp_path: Path, store_url: str) -> None:
    unused = _sqlite_url(tmp_path / "elsewhere" / "unused.sqlite3")
    app = create_app(_settings(tmp_path, unused), store=create_store(store_url))
    try:
        data = app.test_client().get("/api/status").get_json()
        assert data["counts"]["sites"] == 7
    finally:
        close_app(app)
    assert not (tmp_path / "elsewhere").exists()


def test_bridge_recovers_once_the_store_is_back(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("in the way")
    with StoreBridge(create_store(_sqlite_url(blocker / "s.sqlite3")), reopen_delay=0) as bridge:
        with pytest.raises(StoreError):
            bridge.ping()
        blocker.unlink()
        bridge.ping()
        assert bridge.list_sites() == []
    assert bridge.closed
    with pytest.raises(StoreError, match="closed"):
        bridge.list_status()


def test_bridge_fails_fast_between_reopen_attempts(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("in the way")
    with StoreBridge(create_store(_sqlite_url(blocker / "s.sqlite3")), reopen_delay=60) as bridge:
        blocker.unlink()
        # Still inside the delay: the last error stands, no new attempt is made yet.
        with pytest.raises(StoreError, match="cannot open the store"):
            bridge.ping()
