"""The dashboard through Flask's test client, against a real SQLite store: every page and its
JSON twin, filters and paging, escaping, headers, outages.

Flask's test client is synchronous, so these are plain sync tests.
"""

from __future__ import annotations

import html as html_lib
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rechecker.frontend import StoreBridge, close_app, create_app
from rechecker.frontend.app import EXTENSION
from rechecker.store import StoreError, create_store
from tests.frontend.conftest import settings_for
from tests.frontend.seed import (
    DEGRADED,
    DOWN,
    HOSTILE_MESSAGE,
    LONG,
    ORDER,
    PENDING,
    RICH,
    RLM,
    UP,
    sqlite_url,
)

ROW = re.compile(r'<tr class="row-(\w+)" data-row-state="state" data-key="([^"]*)">')


def _page(client: FlaskClient, path: str, **query: Any) -> str:
    response = client.get(path, query_string=query or None)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def _rows(html: str) -> list[tuple[str, str]]:
    """(state, domain) of the overview's rows, in order (not the blank row of the template)."""
    body = html[html.index('<tbody data-rows="domains"') : html.index("</tbody>")]
    return [(state, html_lib.unescape(domain)) for state, domain in ROW.findall(body)]


def _domains(html: str) -> list[str]:
    return [domain for _, domain in _rows(html)]


def _counts(html: str) -> dict[str, int]:
    found = re.findall(r'data-text="counts\.(\w+)" data-format="count">([\d,]+)<', html)
    return {name: int(value.replace(",", "")) for name, value in found}


def _api(client: FlaskClient, path: str, **query: Any) -> Any:
    response = client.get(path, query_string=query)
    assert response.status_code == 200, (path, response.status_code)
    assert response.mimetype == "application/json"
    return response.get_json()


# --- overview -----------------------------------------------------------------------------
def test_overview_lists_failing_domains_first(client: FlaskClient) -> None:
    rows = _rows(_page(client, "/"))
    assert [domain for _, domain in rows] == ORDER
    states = [state for state, _ in rows]
    assert states == ["down"] * len(DOWN) + ["degraded"] + ["up"] * len(UP) + ["pending"]


def test_overview_counts_every_state(client: FlaskClient) -> None:
    html = _page(client, "/")
    assert _counts(html) == {
        "down": len(DOWN),
        "degraded": len(DEGRADED),
        "up": len(UP),
        "pending": len(PENDING),
        "sites": len(ORDER),
    }
    assert "count-down is-alert" in html
    assert "count-degraded is-alert" in html
    assert f"<title>{len(DOWN)} down · Overview · Rechecker</title>" in html


def test_overview_rows_show_since_cause_and_message(client: FlaskClient) -> None:
    html = _page(client, "/", q="mail")
    row = html[html.index('data-key="mail.example.org"') :]
    row = row[: row.index("</tr>")]
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ UTC" data-text="since"[^>]*>3d 5h<', row)
    assert ">dns_nxdomain</bdi>" in row
    assert "NXDOMAIN: mail.example.org does not exist" in row
    assert "badge badge-bad" in row


def test_search_filters_case_insensitively_and_keeps_the_query(client: FlaskClient) -> None:
    html = _page(client, "/", q="  SHOP ")
    assert _domains(html) == ["shop.example.com"]
    assert 'value="SHOP"' in html
    # The counts stay fleet-wide while a search narrows the table.
    assert _counts(html)["sites"] == len(ORDER)
    assert "matching" in html


def test_search_words_must_all_match(client: FlaskClient) -> None:
    assert _domains(_page(client, "/", q="example com")) == [
        "legacy.example.com",
        "shop.example.com",
        "api.example.com",
        "docs.example.com",
        "www.example.com",
    ]
    assert _domains(_page(client, "/", q="docs www")) == []


def test_search_accepts_unicode_names(client: FlaskClient) -> None:
    for query in ("bücher", "BÜCHER.example", "xn--bcher"):
        assert _domains(_page(client, "/", q=query)) == ["xn--bcher-kva.example"], query


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("DOWN", sorted(DOWN)),
        ("down", sorted(DOWN)),
        ("failing", sorted(DOWN) + DEGRADED),
        ("DEGRADED", DEGRADED),
        ("PENDING", PENDING),
        ("bogus", ORDER),
    ],
)
def test_state_filter(client: FlaskClient, state: str, expected: list[str]) -> None:
    assert _domains(_page(client, "/", state=state)) == expected


def test_error_class_filter_lists_classes_with_counts(client: FlaskClient) -> None:
    html = _page(client, "/", error_class="http_timeout")
    assert _domains(html) == ["shop.example.com"]
    assert '<option value="http_timeout" selected>http_timeout (1)</option>' in html
    assert '<option value="dns_nxdomain">dns_nxdomain (1)</option>' in html
    # A class no domain has (any more) still shows as chosen, with nothing under it.
    html = _page(client, "/", error_class="dns_servfail")
    assert _domains(html) == []
    assert '<option value="dns_servfail" selected>dns_servfail (0)</option>' in html
    assert "No domain matches these filters." in html


def test_sorts_and_directions(client: FlaskClient) -> None:
    by_name = _domains(_page(client, "/", sort="domain"))
    assert by_name == sorted(ORDER)
    assert _domains(_page(client, "/", sort="domain", dir="desc")) == sorted(ORDER, reverse=True)
    # Latest change first by default; the unchecked site changed state last (it was added).
    since = _domains(_page(client, "/", sort="since"))
    assert since[:3] == ["new.example.dev", "xss.example", "shop.example.com"]
    assert _domains(_page(client, "/", sort="since", dir="asc"))[0] == "legacy.example.com"
    # Slowest first; domains without a latency go last in both directions.
    slowest = _domains(_page(client, "/", sort="latency"))
    fastest = _domains(_page(client, "/", sort="latency", dir="asc"))
    without = {"mail.example.org", "shop.example.com", "new.example.dev"}
    assert set(slowest[-3:]) == without == set(fastest[-3:])
    assert fastest[:2] == ["xss.example", "legacy.example.com"]


def test_sort_headers_flip_direction_and_keep_filters(client: FlaskClient) -> None:
    html = _page(client, "/", q="example", state="failing", sort="latency")
    assert 'aria-sort="descending"' in html
    assert 'href="/?q=example&amp;state=failing&amp;sort=latency&amp;dir=asc"' in html
    assert 'href="/?q=example&amp;state=failing&amp;sort=domain&amp;dir=asc"' in html
    # The form keeps the sort when the search changes.
    assert '<input type="hidden" name="sort" value="latency">' in html


def test_paging_clamps_and_keeps_the_view(client: FlaskClient) -> None:
    data = _api(client, "/api/status", size=25, page=7, q="example")
    assert data["page"] == {
        "number": 1,
        "size": 25,
        "total": 12,
        "pages": 1,
        "first": 1,
        "last": 12,
    }
    assert data["filters"]["page"] == 1
    html = _page(client, "/", size=25, page="x")
    assert 'rel="next" href="/?size=25&amp;page=2" data-page-link="next" hidden' in html
    data = _api(client, "/api/status", size=33)
    assert data["page"]["size"] == 100


def test_empty_query_parameters_are_defaults(client: FlaskClient) -> None:
    plain = _api(client, "/api/status")
    empty = _api(client, "/api/status", q="", state="", error_class="", sort="", dir="", page="")
    assert empty["filters"] == plain["filters"]
    assert empty["domains"] == plain["domains"]


# --- the overview's JSON twin ---------------------------------------------------------------
def test_api_status_shape_and_agreement_with_the_page(client: FlaskClient) -> None:
    data = _api(client, "/api/status", state="failing")
    assert set(data) == {
        "generated_at",
        "as_of",
        "refresh_error",
        "counts",
        "error_classes",
        "filters",
        "page",
        "domains",
    }
    assert data["refresh_error"] is None
    assert data["counts"] == {"sites": 12, "down": 4, "degraded": 1, "up": 6, "pending": 1}
    assert data["error_classes"]["http_timeout"] == 1
    assert data["filters"] == {
        "q": "",
        "state": "failing",
        "error_class": "",
        "sort": "state",
        "dir": "asc",
        "page": 1,
        "size": 100,
    }
    html = _page(client, "/", state="failing")
    assert [d["domain"] for d in data["domains"]] == _domains(html)
    shop = next(d for d in data["domains"] if d["domain"] == "shop.example.com")
    assert set(shop) == {
        "domain",
        "url",
        "state",
        "since",
        "checked_at",
        "status_code",
        "error_class",
        "message",
        "latency_ms",
        "incident_id",
    }
    assert shop["state"] == "DOWN"
    assert shop["incident_id"] == "inc-shop.example.com"
    assert shop["since"].endswith("+00:00")


def test_api_status_cuts_long_messages(client: FlaskClient) -> None:
    data = _api(client, "/api/status", q="xss")
    [xss] = data["domains"]
    assert len(xss["message"]) == 240
    assert xss["message"].endswith("…")
    assert xss["message"].startswith("<script>alert(1)</script>")


# --- one domain ---------------------------------------------------------------------------
def test_domain_page_shows_dns_http_tls_and_uptime(client: FlaskClient) -> None:
    html = _page(client, f"/domain/{RICH}")
    for expected in (
        "192.0.2.10",
        "2001:db8::10",
        "198.51.100.53:53",  # the second resolver's answer
        "edge.api.example.com.",  # a CNAME record
        "https://www.api.example.com/home",  # final URL
        "200 <bdi>OK</bdi>",
        "HTTP/1.1",
        "First byte",  # the phases
        "61 days left",  # certificate expiry
        "CN=Example Issuing CA R3",
        ">100 %<",  # uptime over 24 hours
        "2,160",  # checks over 30 days
    ):
        assert expected in html, expected
    assert re.search(
        r'data-text="summary.uptime_percent.7d" data-format="percent">9\d\.\d+ %<', html
    )


def test_domain_page_draws_charts_as_inline_svg(client: FlaskClient) -> None:
    html = _page(client, f"/domain/{RICH}")
    assert '<svg class="chart-plot" viewBox="0 0 1000 240" preserveAspectRatio="none"' in html
    assert re.search(r'<polyline class="line" points="[\d.]+,[\d.]+ [\d., ]+"', html)
    assert len(re.findall(r'<rect class="cell cell-(?:up|down|degraded|none)"', html)) == 48
    assert "Latency, last 24 hours" in html
    assert '<desc id="latency-desc">Latency over the last 24 hours: median' in html
    week = _page(client, f"/domain/{RICH}", period="7d")
    assert 'aria-current="true">7d<' in week
    cells = re.findall(r'<rect class="cell cell-(\w+)"', week)
    assert "down" in cells  # the outage four days ago
    month = _page(client, f"/domain/{RICH}", period="30d")
    assert "median per slice" in month  # 2,160 checks reduced to at most 300 points
    assert _page(client, f"/domain/{RICH}", period="1y").count('aria-current="true">24h<') == 1


def test_domain_page_lists_incidents_with_durations(client: FlaskClient) -> None:
    html = _page(client, f"/domain/{RICH}")
    section = html[html.index('id="incidents-heading"') :]
    assert 'data-key="inc-api-1"' in section
    assert '<span data-text="duration_s" data-format="duration">3h</span>' in section
    shop = _page(client, "/domain/shop.example.com")
    assert 'class="row-ongoing"' in shop
    assert ">ongoing</time>" in shop
    assert "2h 14m" in shop


def test_domain_page_of_dns_failure_explains_missing_http(client: FlaskClient) -> None:
    html = _page(client, "/domain/mail.example.org")
    assert "NXDOMAIN from 192.0.2.53" in html
    assert "No HTTP check was made" in html
    assert "card card-down" in html


def test_domain_page_of_expired_certificate(client: FlaskClient) -> None:
    html = _page(client, "/domain/legacy.example.com")
    assert "expired 12 days ago" in html
    assert "EXPIRED" in html


def test_domain_page_of_unchecked_site(client: FlaskClient) -> None:
    html = _page(client, "/domain/new.example.dev")
    assert "Not yet checked" in html
    assert "No checks recorded yet." in html
    assert "No latency was measured" in html


def test_unknown_domain_is_404(client: FlaskClient) -> None:
    for path in ("/domain/unknown.example", "/domain/not_a%20domain!", "/domain/" + "a" * 300):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.get_data(as_text=True)
        assert "Content-Security-Policy" in response.headers
    response = client.get("/api/domain/unknown.example")
    assert response.status_code == 404
    assert response.get_json() == {"error": "not found"}


def test_domain_spelling_redirects_to_stored_name(client: FlaskClient) -> None:
    response = client.get("/domain/API.Example.com?period=7d")
    assert response.status_code == 308
    assert response.headers["Location"].endswith(f"/domain/{RICH}?period=7d")
    response = client.get("/api/domain/API.Example.com")
    assert response.status_code == 308
    assert response.headers["Location"].endswith(f"/api/domain/{RICH}")


def test_api_domain_shape(client: FlaskClient) -> None:
    data = _api(client, f"/api/domain/{RICH}", period="7d")
    assert set(data) == {
        "domain",
        "generated_at",
        "status",
        "site",
        "summary",
        "period",
        "latency",
        "strip",
        "incidents",
        "history",
    }
    assert data["domain"] == RICH
    assert data["status"]["dns"]["addresses"] == ["192.0.2.10", "2001:db8::10"]
    assert data["status"]["http"]["tls"]["days_left"] == 61
    assert data["site"]["url"] == f"https://{RICH}/"
    assert data["summary"]["checks"]["30d"] == 2160
    assert data["summary"]["uptime_percent"]["24h"] == 100.0
    assert data["period"]["key"] == "7d"
    assert 0 < len(data["latency"]) <= 300
    assert set(data["latency"][0]) == {"at", "latency_ms"}
    assert {cell["kind"] for cell in data["strip"]} >= {"up", "down"}
    assert data["incidents"] == [
        {
            "id": "inc-api-1",
            "domain": RICH,
            "started_at": data["incidents"][0]["started_at"],
            "ended_at": data["incidents"][0]["ended_at"],
            "status": "resolved",
            "duration_s": 3 * 3600,
            "cause": "http_timeout",
            "message": "timed out after 10.0 s",
        }
    ]
    assert len(data["history"]) == 25
    assert data["history"][0]["timestamp"] > data["history"][1]["timestamp"]


# --- incidents ----------------------------------------------------------------------------
def test_incidents_page_lists_open_then_resolved(client: FlaskClient) -> None:
    html = _page(client, "/incidents")
    open_part = html[html.index('id="open-heading"') : html.index('id="resolved-heading"')]
    resolved_part = html[html.index('id="resolved-heading"') :]
    open_keys = re.findall(r'data-key="(inc-[^"]+)"', open_part)
    assert open_keys == [
        "inc-xss.example",
        "inc-shop.example.com",
        "inc-mail.example.org",
        "inc-legacy.example.com",
    ]
    assert re.findall(r'data-key="(inc-[^"]+)"', resolved_part) == ["inc-www-1", "inc-api-1"]
    assert "22m" in resolved_part
    assert "<title>4 open · Incidents · Rechecker</title>" in html
    assert 'aria-current="page">Incidents<' in html


def test_api_incidents_shape(client: FlaskClient) -> None:
    data = _api(client, "/api/incidents")
    assert set(data) == {"generated_at", "counts", "limits", "open", "resolved"}
    assert data["counts"] == {"open": 4, "resolved": 2}
    assert [i["domain"] for i in data["open"]][:2] == ["xss.example", "shop.example.com"]
    assert all(i["status"] == "ongoing" and i["ended_at"] is None for i in data["open"])
    assert data["open"][1]["duration_s"] >= (2 * 60 + 14) * 60
    assert data["resolved"][0]["duration_s"] == 22 * 60
    assert len(data["open"][0]["message"]) == 240


# --- hostile data -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/domain/xss.example", "/incidents", "/?q=xss"])
def test_hostile_error_message_is_escaped(client: FlaskClient, path: str) -> None:
    html = _page(client, path)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in html
    assert "<script>alert" not in html
    # The right-to-left mark stays, isolated so it cannot reorder the page around it.
    assert re.search(f"<bdi[^>]*>[^<]*{RLM}boom", html)


@pytest.mark.parametrize("path", ["/", "/?sort=domain"])
def test_hostile_domain_is_escaped_in_text_and_links(client: FlaskClient, path: str) -> None:
    html = _page(client, path)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;&#34;&#39;" in html
    assert 'href="/domain/%3Cimg%20src=x%20onerror=alert(2)%3E%22&#39;%E2%80%AEmoc.example"' in html


def test_hostile_domain_has_a_page(client: FlaskClient) -> None:
    response = client.get("/domain/%3Cimg%20src=x%20onerror=alert(2)%3E%22%27%E2%80%AEmoc.example")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<img" not in html
    assert "<title>&lt;img src=x onerror=alert(2)&gt;" in html


def test_long_message_is_cut_in_tables_but_whole_on_the_domain_page(client: FlaskClient) -> None:
    overview = _page(client, "/")
    assert LONG not in overview
    assert "xxx…" in overview
    assert LONG in _page(client, "/domain/xss.example")
    assert (
        HOSTILE_MESSAGE[:20] in _api(client, "/api/domain/xss.example")["status"]["error_message"]
    )


# --- headers and assets -------------------------------------------------------------------
PATHS = [
    "/",
    "/?q=x&state=DOWN",
    "/api/status",
    "/domain/api.example.com",
    "/api/domain/api.example.com",
    "/incidents",
    "/api/incidents",
    "/healthz",
    "/nope",
    "/static/dashboard.js",
]


@pytest.mark.parametrize("path", PATHS)
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self';" in csp
    assert "style-src 'self';" in csp
    assert "require-trusted-types-for 'script'" in csp
    assert "unsafe" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    response.close()


class _Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize(
    "path", ["/", "/domain/api.example.com", "/domain/new.example.dev", "/incidents", "/nope"]
)
def test_pages_load_only_their_own_assets_and_no_inline_code(
    client: FlaskClient, path: str
) -> None:
    html = client.get(path).get_data(as_text=True)
    tags = _Tags(html).tags
    urls = [
        value or ""
        for _, attrs in tags
        for name, value in attrs.items()
        if name in ("src", "href", "action")
    ]
    assert urls
    for value in urls:
        assert value.startswith("#") or (value.startswith("/") and not value.startswith("//")), (
            value
        )
    assert [attrs for tag, attrs in tags if tag == "script"] == [
        {"src": "/static/dashboard.js", "defer": None}
    ]
    assert '<script src="/static/dashboard.js" defer></script>' in html
    assert not [tag for tag, _ in tags if tag == "style"]
    for tag, attrs in tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
    assert '<link rel="stylesheet" href="/static/rechecker.css">' in html


def test_pages_are_accessible_by_structure(client: FlaskClient) -> None:
    for path in ("/", f"/domain/{RICH}", "/incidents"):
        html = _page(client, path)
        assert '<html lang="en">' in html
        assert '<a class="skip-link" href="#main">Skip to content</a>' in html
        assert '<main id="main" tabindex="-1"' in html
        assert html.count("<h1") == 1
        assert "<caption" in html
        headers = re.findall(r"<th\b[^>]*>", html)
        assert headers and all("scope=" in th for th in headers), path
    overview = _page(client, "/")
    for field in ("q", "state", "error_class", "size"):
        assert f'<label for="{field}">' in overview
        assert f'id="{field}" name="{field}"' in overview
    assert 'role="search"' in overview
    assert 'aria-sort="ascending"' in overview
    domain = _page(client, f"/domain/{RICH}")
    assert re.search(r'role="img"\s+aria-labelledby="latency-title latency-desc"', domain)


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/static/rechecker.css", "text/css"),
        ("/static/dashboard.js", "text/javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
def test_static_assets_are_self_contained(client: FlaskClient, path: str, mimetype: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    body = response.get_data(as_text=True)
    response.close()
    assert "https://" not in body
    assert "@import" not in body
    assert "url(" not in body
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in body


# --- health and outages -------------------------------------------------------------------
def test_healthz_and_readyz_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready"}


def _unreachable_urls(tmp_path: Path) -> list[str]:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder should be")
    return [
        # SQLite cannot open a directory as a database: the driver fails.
        sqlite_url(tmp_path),
        # The store's folder cannot be created: the filesystem fails.
        sqlite_url(blocker / "store.sqlite3"),
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_unreachable_store_gives_503_pages_not_500(tmp_path: Path, which: int) -> None:
    url = _unreachable_urls(tmp_path)[which]
    app = create_app(settings_for(tmp_path, url))
    client = app.test_client()
    try:
        for path in ("/", "/?q=a", "/domain/alpha.example", "/incidents"):
            response = client.get(path)
            assert response.status_code == 503, path
            html = response.get_data(as_text=True)
            assert "The status store is unavailable" in html
            assert "Traceback" not in html
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        for path in ("/api/status", "/api/incidents", "/api/domain/alpha.example"):
            api = client.get(path)
            assert api.status_code == 503, path
            assert api.get_json()["status"] == "unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.get_json()
        assert body["status"] == "unavailable"
        assert body["error"]
        # Liveness stays up: a database outage must not get the dashboard restarted.
        assert client.get("/healthz").get_json() == {"status": "ok"}
    finally:
        close_app(app)


def test_closed_app_answers_503(app: Flask, client: FlaskClient) -> None:
    assert client.get("/").status_code == 200
    close_app(app)
    close_app(app)  # a second close is harmless
    for path in ("/", f"/domain/{RICH}", "/incidents", "/api/status"):
        assert client.get(path).status_code == 503, path
    assert client.get("/readyz").get_json()["status"] == "unavailable"


def test_close_stops_the_store_thread(tmp_path: Path, store_url: str) -> None:
    app = create_app(settings_for(tmp_path, store_url))
    assert any(t.name == "rechecker-frontend-store" for t in threading.enumerate())
    app.extensions[EXTENSION].close()
    assert not any(t.name == "rechecker-frontend-store" for t in threading.enumerate())


def test_create_app_uses_a_given_store(tmp_path: Path, store_url: str) -> None:
    unused = sqlite_url(tmp_path / "elsewhere" / "unused.sqlite3")
    app = create_app(settings_for(tmp_path, unused), store=create_store(store_url))
    try:
        data = app.test_client().get("/api/status").get_json()
        assert data["counts"]["sites"] == len(ORDER)
    finally:
        close_app(app)
    assert not (tmp_path / "elsewhere").exists()


def test_bridge_recovers_once_the_store_is_back(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("in the way")
    with StoreBridge(create_store(sqlite_url(blocker / "s.sqlite3")), reopen_delay=0) as bridge:
        with pytest.raises(StoreError):
            bridge.ping()
        blocker.unlink()
        bridge.ping()
        assert bridge.list_sites() == []
        assert bridge.list_incidents(open_only=True) == []
    assert bridge.closed
    with pytest.raises(StoreError, match="closed"):
        bridge.list_status()


def test_bridge_fails_fast_between_reopen_attempts(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("in the way")
    with StoreBridge(create_store(sqlite_url(blocker / "s.sqlite3")), reopen_delay=60) as bridge:
        blocker.unlink()
        # Still inside the delay: the last error stands, no new attempt is made yet.
        with pytest.raises(StoreError, match="cannot open the store"):
            bridge.ping()
