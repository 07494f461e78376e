"""The dashboard in a real headless Chromium, served over HTTP from a seeded SQLite store.

What only a browser can show: the Content-Security-Policy lets the page run (no violation, no
console error), the refresh script really updates the table without a reload and keeps the
filters, hostile text stays text once parsed, keyboard navigation starts with the skip link.
Screenshots of each page in light and dark go to ``artifacts/screenshots/``.

Chromium comes from the system (Debian's ``chromium`` package), driven by Playwright's Python
package: Playwright's own browser download is not needed. Without either the tests skip,
except in CI where a missing browser fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import make_server

from rechecker.frontend import close_app, create_app
from rechecker.models import State
from tests.frontend.conftest import settings_for
from tests.frontend.seed import (
    HOSTILE_DOMAIN,
    HOSTILE_MESSAGE,
    ORDER,
    RICH,
    down_result,
    record,
    seed_fleet,
    sqlite_url,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Generous for a shared CI machine; every wait ends as soon as its condition holds.
TIMEOUT_MS = 20_000
#: Records what the Content-Security-Policy refused; injected before any page script runs.
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (
        os.environ.get("RECHECKER_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _unavailable("no Chromium found (apt-get install chromium, or set RECHECKER_CHROMIUM)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (uv sync installs it)")
        raise AssertionError("unreachable") from None
    path = _chromium()
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"Chromium at {path} does not start: {exc.message.splitlines()[0]}")
            raise AssertionError("unreachable") from exc
        try:
            yield launched
        finally:
            launched.close()


class Live:
    """The dashboard served on a loopback port, and the store under it."""

    def __init__(self, base_url: str, store_url: str, seeded_at: datetime) -> None:
        self.base_url = base_url
        self.store_url = store_url
        self.seeded_at = seeded_at


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """A freshly seeded store (tests may change it) and the dashboard on it, refreshing every
    second from a snapshot at most 0.2 s old."""
    url = sqlite_url(tmp_path / "store.sqlite3")
    seeded_at = seed_fleet(url)
    app = create_app(settings_for(tmp_path, url), refresh_seconds=1, snapshot_max_age=0.2)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-under-test")
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", url, seeded_at)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(app)


class Watched:
    """A page whose console errors, uncaught exceptions, dialogs and CSP violations are kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.add_init_script(CSP_PROBE)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.problems.append(f"a dialog opened: {dialog.message}")
        dialog.dismiss()

    def check(self) -> None:
        violations = self.page.evaluate("window.__csp || []")
        assert violations == [], violations
        assert self.problems == [], self.problems


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Any]:
    """Open pages in their own context (``color_scheme``, viewport); all are checked at the end."""
    watched: list[Watched] = []
    contexts = []

    def open_(url: str, *, scheme: str = "light", width: int = 1280) -> Page:
        context = browser.new_context(
            color_scheme=scheme,  # type: ignore[arg-type]
            viewport={"width": width, "height": 900},
            reduced_motion="reduce",
        )
        contexts.append(context)
        page = context.new_page()
        watched.append(Watched(page))
        page.goto(url)
        return page

    yield open_
    try:
        for item in watched:
            item.check()
    finally:
        for context in contexts:
            context.close()


def _row_keys(page: Page) -> list[str]:
    keys: list[str] = page.locator('tbody[data-rows="domains"] tr').evaluate_all(
        "rows => rows.map(row => row.dataset.key)"
    )
    return keys


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# --- the tests ------------------------------------------------------------------------------
def test_overview_shows_failing_domains_first(live: Live, open_page: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(live.base_url + "/")
    assert _row_keys(page) == ORDER
    expect(page.locator(".count-down .count-value")).to_have_text("4")
    first = page.locator('tbody[data-rows="domains"] tr').first
    expect(first).to_have_class("row-down")
    expect(first.locator(".badge")).to_have_text("DOWN")
    expect(first.locator(".cell-class")).to_have_text("http_tls")
    # The script started: the pause control only shows when auto-refresh runs.
    expect(page.locator("[data-refresh-toggle]")).to_be_visible()


def test_search_and_filters_narrow_the_table_and_the_url(live: Live, open_page: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(live.base_url + "/")
    page.fill("#q", "shop")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"/\?q=shop$"))
    assert _row_keys(page) == ["shop.example.com"]
    page.fill("#q", "")
    # Choosing a state applies at once, and empty fields stay out of the shared URL.
    page.select_option("#state", "failing")
    page.wait_for_url(re.compile(r"/\?state=failing$"))
    assert _row_keys(page) == [
        "legacy.example.com",
        "mail.example.org",
        "shop.example.com",
        "xss.example",
        "cdn.example.net",
    ]
    page.click("th.sortable >> text=Domain")
    page.wait_for_url(re.compile(r"sort=domain"))
    expect(page.locator("#state")).to_have_value("failing")
    assert _row_keys(page)[0] == "cdn.example.net"


def test_clicking_a_domain_opens_its_page_with_charts(live: Live, open_page: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(live.base_url + "/?q=api")
    page.click(f"a[href='/domain/{RICH}']")
    page.wait_for_url(f"**/domain/{RICH}")
    expect(page.locator("h1")).to_have_text(RICH)
    expect(page.locator("svg.chart-plot polyline.line").first).to_be_visible()
    assert page.locator("svg.strip rect.cell").count() == 48
    page.click("nav.segmented >> text=30d")
    page.wait_for_url("**?period=30d")
    expect(page.locator("nav.segmented [aria-current='true']")).to_have_text("30d")
    expect(page.locator("svg.chart-plot polyline.line").first).to_be_visible()


def test_refresh_updates_a_changed_status_without_reloading(live: Live, open_page: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(live.base_url + "/?q=www")
    page.evaluate("window.__marker = 'same page'")
    row = page.locator('tr[data-key="www.example.com"]')
    expect(row).to_have_class("row-up")
    # The core records an outage under the page's feet.
    now = datetime.now(live.seeded_at.tzinfo)
    outage = down_result("shop.example.com", now, now=now).model_copy(
        update={
            "domain": "www.example.com",
            "url": "https://www.example.com/",
            "state_since": now,
            "error_message": "connection refused by 192.0.2.10:443",
            "error_class": "http_refused",
        }
    )
    assert outage.state is State.DOWN
    record(live.store_url, [outage])
    expect(row).to_have_class(re.compile(r"\brow-down\b"))
    expect(row.locator(".badge")).to_have_text("DOWN")
    expect(row.locator(".cell-message")).to_have_text("connection refused by 192.0.2.10:443")
    expect(page.locator(".count-down .count-value")).to_have_text("5")
    # Same document, same filters, same URL.
    assert page.evaluate("window.__marker") == "same page"
    assert page.url.endswith("/?q=www")
    expect(page.locator("#q")).to_have_value("www")
    assert _row_keys(page) == ["www.example.com"]


def test_hostile_text_renders_as_text(live: Live, open_page: Any) -> None:
    page = open_page(live.base_url + "/?q=xss")
    message = page.locator('tr[data-key="xss.example"] .cell-message').inner_text()
    assert message.startswith(HOSTILE_MESSAGE[:30])
    assert message.endswith("…")
    page = open_page(live.base_url + "/?sort=domain")
    link = page.locator('tbody[data-rows="domains"] tr').first.locator("th a")
    assert link.inner_text() == HOSTILE_DOMAIN
    assert page.locator("main img").count() == 0
    # Its own page opens, titled with the name as text; the refresh fills it in as text too.
    link.click()
    page.wait_for_load_state()
    assert page.title().startswith(HOSTILE_DOMAIN)
    assert page.locator("h1").inner_text() == HOSTILE_DOMAIN
    detail = open_page(live.base_url + "/domain/xss.example")
    assert HOSTILE_MESSAGE in detail.locator("#latest-heading + dl .message").inner_text()


def test_keyboard_starts_at_the_skip_link(live: Live, open_page: Any) -> None:
    page = open_page(live.base_url + "/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    assert page.locator(".skip-link").bounding_box() is not None
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_incidents_page_refreshes_too(live: Live, open_page: Any) -> None:
    from playwright.sync_api import expect

    page = open_page(live.base_url + "/incidents")
    expect(page.locator('tbody[data-rows="open"] tr')).to_have_count(4)
    stamp = page.locator("[data-refresh-state]")
    expect(stamp).to_contain_text("updated")
    expect(page.locator('tbody[data-rows="open"] tr').first).to_have_attribute(
        "data-key", "inc-xss.example"
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(live: Live, open_page: Any, scheme: str) -> None:
    """Pages as a reader sees them, for the docs and for a human to look at in CI artifacts."""
    from playwright.sync_api import expect

    overview = open_page(live.base_url + "/", scheme=scheme)
    expect(overview.locator("[data-refresh-state]")).to_contain_text("updated")
    _shot(overview, f"overview-{scheme}")
    domain = open_page(live.base_url + f"/domain/{RICH}?period=7d", scheme=scheme)
    expect(domain.locator("svg.chart-plot")).to_be_visible()
    expect(domain.locator("[data-refresh-state]")).to_contain_text("updated")
    _shot(domain, f"domain-{scheme}")
    incidents = open_page(live.base_url + "/incidents", scheme=scheme)
    _shot(incidents, f"incidents-{scheme}")
    phone = open_page(live.base_url + "/", scheme=scheme, width=390)
    _shot(phone, f"overview-phone-{scheme}")
    background = overview.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert (background == "rgb(13, 17, 23)") == (scheme == "dark"), background
    assert overview.evaluate("document.documentElement.scrollWidth") <= 1280
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
