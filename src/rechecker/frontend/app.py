"""The dashboard's Flask app: pages, their JSON twins, a health probe, and what every response
gets (security headers, access control, error pages).

The app only reads. Everything it shows may come from the network or the inventory (domains,
error messages, reasons, addresses), so templates rely on Jinja's autoescape and never mark
data safe, the refresh script writes text with ``textContent`` only, and a strict
Content-Security-Policy (scripts from here only, no inline script or style, Trusted Types)
backs that up should a mistake slip through.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from jinja2 import StrictUndefined
from werkzeug.exceptions import InternalServerError, NotFound

from rechecker import __version__
from rechecker.config import Settings
from rechecker.frontend import formatting
from rechecker.frontend.auth import DashboardAuth
from rechecker.frontend.fleet import FleetCache, cut
from rechecker.frontend.storebridge import StoreBridge
from rechecker.frontend.views import DASHBOARD, EXTENSION, Dashboard, bp, bridge, dashboard
from rechecker.models import utcnow
from rechecker.store import Store, StoreError, create_store

log = logging.getLogger(__name__)

__all__ = ["EXTENSION", "close_app", "create_app"]

#: How often open pages fetch fresh data; a check cycle takes minutes, so this is plenty.
REFRESH_SECONDS = 30.0
#: How old the overview's snapshot of the fleet may get before it is read again.
SNAPSHOT_MAX_AGE = 10.0

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(
    settings: Settings,
    store: Store | None = None,
    *,
    auth: DashboardAuth | None = None,
    refresh_seconds: float = REFRESH_SECONDS,
    snapshot_max_age: float = SNAPSHOT_MAX_AGE,
) -> Flask:
    """Build the dashboard; its store runs on a private event loop until :func:`close_app`.

    ``store`` defaults to the one ``settings`` names. The app owns it either way: it opens it
    on its own loop (so pass one that is not open yet) and closes it in :func:`close_app`.
    ``auth`` None leaves the dashboard open to whoever can reach it. ``refresh_seconds`` 0
    turns the pages' auto-refresh off.
    """
    app = Flask(__name__)
    app.jinja_env.undefined = StrictUndefined
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters.update(
        utc=formatting.format_utc,
        isotime=formatting.format_iso,
        ms=formatting.format_ms,
        duration=formatting.format_duration,
        age=formatting.format_age,
        between=formatting.format_between,
        count=formatting.format_count,
        percent=formatting.format_percent,
        cut=cut,
    )
    app.register_blueprint(bp)
    app.before_request(_check_access)
    app.after_request(_add_headers)
    app.register_error_handler(StoreError, _store_unavailable)
    app.register_error_handler(NotFound, _not_found)
    app.register_error_handler(InternalServerError, _internal_error)
    app.context_processor(lambda: {"version": __version__, "now": utcnow()})
    if store is None:
        store = create_store(settings.resolved_store_url)
    store_bridge = StoreBridge(store)
    app.extensions[EXTENSION] = store_bridge
    fleet = FleetCache(store_bridge, max_age=snapshot_max_age)
    app.extensions[DASHBOARD] = Dashboard(fleet, max(0.0, refresh_seconds), auth)
    # A big fleet takes seconds to read: start now rather than in the first visitor's request.
    fleet.prefetch()
    return app


def close_app(app: Flask) -> None:
    """Close the app's store and stop its event loop; the app answers 503 afterwards."""
    bridge(app).close()


# --- what every request and response goes through --------------------------------------------
#: Answered without sign-in: load balancers and Kubernetes probe them, and they say nothing
#: but whether the server and the store answer.
_OPEN_ENDPOINTS = frozenset({"dashboard.healthz", "dashboard.readyz"})


def _check_access() -> ResponseReturnValue | None:
    auth = dashboard().auth
    if auth is None or request.endpoint in _OPEN_ENDPOINTS or auth.allows(request):
        return None
    return auth.challenge()


def _add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Live state: a cached copy would show an outage as still up.
        response.headers.setdefault("Cache-Control", "no-store")
    if dashboard().auth is not None:
        # Pages differ by who asks; no shared cache may keep them.
        response.vary.add("Authorization")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")


def _store_unavailable(exc: StoreError) -> ResponseReturnValue:
    log.warning("store unavailable for %s %s: %s", request.method, request.path, exc)
    if _wants_json():
        return jsonify({"status": "unavailable", "error": str(exc)}), 503
    # The first line says what failed; the rest is driver boilerplate (links to its docs).
    summary = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
    return render_template("unavailable.html", error=summary), 503


def _not_found(exc: NotFound) -> ResponseReturnValue:
    if _wants_json():
        return jsonify({"error": "not found"}), 404
    return render_template("not_found.html", domain=None), 404


def _internal_error(exc: InternalServerError) -> ResponseReturnValue:
    # Flask has already logged the traceback; the page must not show it.
    if _wants_json():
        return jsonify({"error": "internal error"}), 500
    return render_template("error.html"), 500
