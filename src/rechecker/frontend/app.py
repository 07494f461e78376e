"""The dashboard's Flask app: the HTML pages, a JSON twin of the overview, and a health probe.

The app only reads. Everything it shows may come from the network (error messages, reasons,
addresses), so templates rely on Jinja's autoescape and never mark data safe; a strict
Content-Security-Policy backs that up by refusing any script or asset not served from here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from jinja2 import StrictUndefined
from werkzeug.exceptions import InternalServerError, NotFound

from rechecker import __version__
from rechecker.config import Settings
from rechecker.domains import MAX_DOMAIN_LENGTH, InvalidDomainError, normalize_domain
from rechecker.frontend.overview import Overview, build_overview, clean_query
from rechecker.frontend.storebridge import StoreBridge
from rechecker.models import utcnow
from rechecker.store import Store, StoreError, create_store

log = logging.getLogger(__name__)

#: Key of the :class:`StoreBridge` in ``app.extensions``.
EXTENSION = "rechecker"
HISTORY_LIMIT = 50
#: Error messages can be kilobytes long; tables show this much, the domain page all of it.
TABLE_MESSAGE_LENGTH = 240

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

bp = Blueprint("dashboard", __name__)


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    """Build the dashboard; its store runs on a private event loop until :func:`close_app`.

    ``store`` defaults to the one ``settings`` names. The app owns it either way: it opens it
    on its own loop (so pass one that is not open yet) and closes it in :func:`close_app`.
    """
    app = Flask(__name__)
    app.jinja_env.undefined = StrictUndefined
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters["utc"] = format_utc
    app.jinja_env.filters["isotime"] = format_iso
    app.jinja_env.filters["ms"] = format_ms
    app.register_blueprint(bp)
    app.after_request(_add_headers)
    app.register_error_handler(StoreError, _store_unavailable)
    app.register_error_handler(NotFound, _not_found)
    app.register_error_handler(InternalServerError, _internal_error)
    app.context_processor(lambda: {"version": __version__, "now": utcnow()})
    if store is None:
        store = create_store(settings.resolved_store_url)
    app.extensions[EXTENSION] = StoreBridge(store)
    return app


def close_app(app: Flask) -> None:
    """Close the app's store and stop its event loop; the app answers 503 afterwards."""
    bridge(app).close()


def bridge(app: Flask | None = None) -> StoreBridge:
    store_bridge: StoreBridge = (app or current_app).extensions[EXTENSION]
    return store_bridge


# --- template filters ----------------------------------------------------------------------
def format_utc(value: datetime | None) -> str:
    """Every time on the dashboard is UTC and says so, whatever the server's zone."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def format_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


# --- responses for every route -------------------------------------------------------------
def _add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Live state: a cached copy would show an outage as still up.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


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


# --- routes --------------------------------------------------------------------------------
def _overview_from_request() -> tuple[Overview, str]:
    query = clean_query(request.args.get("q"))
    store = bridge()
    sites = store.list_sites()
    statuses = store.list_status()
    return build_overview(sites, statuses, query), query


@bp.get("/")
def index() -> ResponseReturnValue:
    overview, query = _overview_from_request()
    return render_template(
        "index.html",
        counts=overview.counts,
        results=overview.results,
        pending=overview.pending,
        query=query,
        message_length=TABLE_MESSAGE_LENGTH,
    )


@bp.get("/api/status")
def api_status() -> ResponseReturnValue:
    overview, query = _overview_from_request()
    return jsonify(
        {
            "counts": overview.counts.as_dict(),
            "query": query,
            "domains": [result.model_dump(mode="json") for result in overview.results],
            "pending": [site.model_dump(mode="json") for site in overview.pending],
        }
    )


@bp.get("/domain/<domain>")
def domain(domain: str) -> ResponseReturnValue:
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise NotFound()
    store = bridge()
    status = store.get_status(domain)
    site = None if status is not None else store.get_site(domain)
    if status is None and site is None:
        # ``Example.COM`` or a Unicode name: send the reader to the stored spelling.
        try:
            canonical = normalize_domain(domain)
        except InvalidDomainError:
            canonical = domain
        if canonical != domain:
            return redirect(url_for("dashboard.domain", domain=canonical), 308)
    history = store.history(domain, HISTORY_LIMIT)
    if status is None and site is None and not history:
        return render_template("not_found.html", domain=domain), 404
    return render_template(
        "domain.html",
        domain=domain,
        status=status,
        site=site,
        history=history,
        history_limit=HISTORY_LIMIT,
        message_length=TABLE_MESSAGE_LENGTH,
    )


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        bridge().ping()
    except StoreError as exc:
        log.warning("health check failed: %s", exc)
        return jsonify({"status": "unavailable", "error": str(exc)}), 503
    return jsonify({"status": "ok"})
