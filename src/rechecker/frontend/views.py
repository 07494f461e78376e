"""The dashboard's routes: every page has a JSON twin built from the same data, which the
page's refresh script fetches and anyone can script against.

| page | JSON twin |
|---|---|
| ``/`` overview (filters, sort and paging in the query string) | ``/api/status`` |
| ``/domain/<domain>?period=24h|7d|30d`` | ``/api/domain/<domain>`` |
| ``/incidents`` | ``/api/incidents`` |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from rechecker.core.summary import WINDOWS, Summary, summarize
from rechecker.domains import MAX_DOMAIN_LENGTH, InvalidDomainError, normalize_domain
from rechecker.frontend.auth import DashboardAuth
from rechecker.frontend.charts import (
    PERIODS,
    LatencyChart,
    Period,
    Phase,
    Strip,
    latency_chart,
    period_from_arg,
    up_down_strip,
    waterfall,
)
from rechecker.frontend.fleet import PENDING, FleetCache, Row, cut
from rechecker.frontend.formatting import as_utc, format_iso
from rechecker.frontend.overview import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    Filters,
    build_overview,
)
from rechecker.frontend.storebridge import StoreBridge
from rechecker.models import CheckResult, Incident, Site, utcnow
from rechecker.store import StoreError

log = logging.getLogger(__name__)

#: Key of the :class:`StoreBridge` in ``app.extensions``.
EXTENSION = "rechecker"
#: Key of the :class:`Dashboard` in ``app.extensions``.
DASHBOARD = "rechecker.dashboard"
HISTORY_LIMIT = 25
DOMAIN_INCIDENT_LIMIT = 50
OPEN_INCIDENT_LIMIT = 500
RECENT_INCIDENT_LIMIT = 200
#: A certificate expiring sooner shows amber (the probe's own warning threshold is a setting).
CERT_WARNING_DAYS = 14

#: Rendered once, empty, inside ``<template>``: the refresh script fills copies of it.
BLANK_ROW = Row(
    domain="",
    url="",
    state=PENDING,
    since=None,
    checked_at=None,
    status_code=None,
    error_class="",
    message="",
    latency_ms=None,
    incident_id=None,
    search="",
)

bp = Blueprint("dashboard", __name__)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What the views need besides the store: the overview's cache and page settings."""

    fleet: FleetCache
    refresh_seconds: float
    auth: DashboardAuth | None


def bridge(app: Flask | None = None) -> StoreBridge:
    store_bridge: StoreBridge = (app or current_app).extensions[EXTENSION]
    return store_bridge


def dashboard(app: Flask | None = None) -> Dashboard:
    found: Dashboard = (app or current_app).extensions[DASHBOARD]
    return found


def incident_json(incident: Incident, now: datetime) -> dict[str, Any]:
    """An incident with its duration so far: to recovery, or to now while it is open."""
    end = now if incident.ended_at is None else incident.ended_at
    return {
        "id": incident.id,
        "domain": incident.domain,
        "started_at": format_iso(incident.started_at),
        "ended_at": format_iso(incident.ended_at) or None,
        "status": "ongoing" if incident.open else "resolved",
        "duration_s": round((as_utc(end) - as_utc(incident.started_at)).total_seconds()),
        "cause": incident.cause,
        "message": cut(incident.message),
    }


# --- overview ------------------------------------------------------------------------------
@bp.get("/")
def index() -> ResponseReturnValue:
    cache = dashboard().fleet
    overview = build_overview(cache.get(), Filters.from_args(request.args))
    return render_template(
        "index.html",
        overview=overview,
        fleet=overview.fleet,
        counts=overview.fleet.counts,
        filters=overview.filters,
        page=overview.page,
        page_sizes=PAGE_SIZES,
        default_page_size=DEFAULT_PAGE_SIZE,
        blank_row=BLANK_ROW,
        refresh_error=cache.refresh_error,
        refresh_seconds=dashboard().refresh_seconds,
    )


@bp.get("/api/status")
def api_status() -> ResponseReturnValue:
    cache = dashboard().fleet
    overview = build_overview(cache.get(), Filters.from_args(request.args))
    error = cache.refresh_error
    return jsonify(
        {
            "generated_at": format_iso(utcnow()),
            "as_of": format_iso(overview.fleet.loaded_at),
            "refresh_error": (
                None if error is None else {"at": format_iso(error[0]), "error": error[1]}
            ),
            "counts": overview.fleet.counts.as_dict(),
            "error_classes": overview.fleet.error_classes,
            "filters": overview.filters.as_dict(),
            "page": overview.page.as_dict(),
            "domains": [row.as_json() for row in overview.rows],
        }
    )


# --- one domain ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DomainView:
    domain: str
    now: datetime
    status: CheckResult | None
    site: Site | None
    history: list[CheckResult]
    summary: Summary
    period: Period
    chart: LatencyChart
    strip: Strip
    incidents: list[Incident]
    phases: list[Phase] = field(default_factory=list)


def _canonical(domain: str) -> str:
    """The stored spelling of a name typed differently (``Example.COM``, a Unicode name)."""
    try:
        return normalize_domain(domain)
    except InvalidDomainError:
        return domain


def _domain_view(domain: str) -> DomainView | str | None:
    """The page's data; the stored spelling to redirect to; or None when nothing is known."""
    if len(domain) > MAX_DOMAIN_LENGTH:
        return None
    store = bridge()
    status = store.get_status(domain)
    site = store.get_site(domain)
    if status is None and site is None:
        canonical = _canonical(domain)
        if canonical != domain:
            return canonical
    history = store.history(domain, HISTORY_LIMIT)
    if status is None and site is None and not history:
        return None
    now = utcnow()
    period = period_from_arg(request.args.get("period"))
    points = store.history_points(domain, now - max(WINDOWS.values()))
    http = None if status is None else status.http
    return DomainView(
        domain=domain,
        now=now,
        status=status,
        site=site,
        history=history,
        summary=summarize(points, now),
        period=period,
        chart=latency_chart(points, period, now),
        strip=up_down_strip(points, period, now),
        incidents=store.list_incidents(domain=domain, limit=DOMAIN_INCIDENT_LIMIT),
        phases=[] if http is None else waterfall(http.timings),
    )


def _domain_or_redirect(domain: str, endpoint: str) -> DomainView | ResponseReturnValue:
    found = _domain_view(domain)
    if isinstance(found, str):
        period = request.args.get("period")
        return redirect(url_for(endpoint, domain=found, period=period), 308)
    if found is None:
        if endpoint == "dashboard.api_domain":
            raise NotFound()
        return render_template("not_found.html", domain=domain), 404
    return found


@bp.get("/domain/<domain>")
def domain(domain: str) -> ResponseReturnValue:
    view = _domain_or_redirect(domain, "dashboard.domain")
    if not isinstance(view, DomainView):
        return view
    return render_template(
        "domain.html",
        view=view,
        status=view.status,
        periods=PERIODS,
        cert_warning_days=CERT_WARNING_DAYS,
        refresh_seconds=dashboard().refresh_seconds,
    )


def _history_json(result: CheckResult) -> dict[str, Any]:
    return {
        "timestamp": format_iso(result.timestamp),
        "state": result.state.value,
        "verdict": None if result.verdict is None else result.verdict.value,
        "status_code": result.status_code,
        "error_class": result.error_class,
        "error_message": result.error_message,
        "latency_ms": result.latency_ms,
    }


@bp.get("/api/domain/<domain>")
def api_domain(domain: str) -> ResponseReturnValue:
    view = _domain_or_redirect(domain, "dashboard.api_domain")
    if not isinstance(view, DomainView):
        return view
    return jsonify(
        {
            "domain": view.domain,
            "generated_at": format_iso(view.now),
            "status": None if view.status is None else view.status.model_dump(mode="json"),
            "site": None if view.site is None else view.site.model_dump(mode="json"),
            "summary": view.summary.model_dump(mode="json"),
            "period": {
                "key": view.period.key,
                "start": format_iso(view.now - view.period.span),
                "end": format_iso(view.now),
            },
            "latency": [
                {"at": format_iso(at), "latency_ms": latency} for at, latency in view.chart.series
            ],
            "strip": [
                {
                    "start": format_iso(cell.start),
                    "end": format_iso(cell.end),
                    "checks": cell.checks,
                    "down": cell.down,
                    "degraded": cell.degraded,
                    "kind": cell.kind,
                }
                for cell in view.strip.cells
            ],
            "incidents": [incident_json(i, view.now) for i in view.incidents],
            "history": [_history_json(result) for result in view.history],
        }
    )


# --- incidents -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IncidentsView:
    now: datetime
    open: list[Incident]
    resolved: list[Incident]


def _incidents_view() -> IncidentsView:
    store = bridge()
    recent = store.list_incidents(limit=RECENT_INCIDENT_LIMIT)
    return IncidentsView(
        now=utcnow(),
        open=store.list_incidents(open_only=True, limit=OPEN_INCIDENT_LIMIT),
        resolved=[incident for incident in recent if not incident.open],
    )


@bp.get("/incidents")
def incidents() -> ResponseReturnValue:
    view = _incidents_view()
    return render_template(
        "incidents.html",
        view=view,
        blank_incident=Incident(id="", domain="", started_at=view.now),
        open_limit=OPEN_INCIDENT_LIMIT,
        refresh_seconds=dashboard().refresh_seconds,
    )


@bp.get("/api/incidents")
def api_incidents() -> ResponseReturnValue:
    view = _incidents_view()
    return jsonify(
        {
            "generated_at": format_iso(view.now),
            "counts": {"open": len(view.open), "resolved": len(view.resolved)},
            "limits": {"open": OPEN_INCIDENT_LIMIT, "recent": RECENT_INCIDENT_LIMIT},
            "open": [incident_json(i, view.now) for i in view.open],
            "resolved": [incident_json(i, view.now) for i in view.resolved],
        }
    )


# --- health --------------------------------------------------------------------------------
@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the server answers. 200 even while the store is down, so that a database
    outage never gets the dashboard restarted (as for backend and core)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: 503 while the store does not answer, so a load balancer stops routing."""
    try:
        bridge().ping()
    except StoreError as exc:
        log.warning("readiness check failed: %s", exc)
        return jsonify({"status": "unavailable", "error": str(exc)}), 503
    return jsonify({"status": "ready"})
