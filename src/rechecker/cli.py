"""The ``rechecker`` command: run the services, or do one sync, cycle or check by hand."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar, cast

import typer
from pydantic import ValidationError
from starlette.types import ASGIApp

from rechecker.alerts import Alerter
from rechecker.config import Settings
from rechecker.core.checker import CycleReport, check_site
from rechecker.core.service import CheckService
from rechecker.domains import InvalidDomainError, normalize_target
from rechecker.inventory import InventoryError, create_inventory
from rechecker.logs import setup_logging
from rechecker.models import CheckResult, Site
from rechecker.probes import ProbeContext, ProbeSettings
from rechecker.probes.options import OptionsError
from rechecker.server import Listener, serve
from rechecker.store import StoreError, create_store

T = TypeVar("T")

app = typer.Typer(
    name="rechecker",
    help="Keeps a fleet of domains in sync with an inventory and checks their DNS and HTTP health.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Remove sites even when the drop looks suspicious.")
]


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"RECHECKER_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}") from None
    setup_logging(settings.log_level)
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is missing only on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _sync_once(settings: Settings, force: bool) -> dict[str, Any]:
    from rechecker.backend.sync import sync

    store = create_store(settings.resolved_store_url)
    inventory = create_inventory(settings)
    await store.open()
    try:
        report = await sync(
            store, inventory, max_drop_ratio=settings.sync_max_drop_ratio, force=force
        )
    finally:
        await inventory.close()
        await store.close()
    return {
        "added": report.added,
        "removed": report.removed,
        "removal_blocked": report.removal_blocked,
        "rejected": [
            {"inventory_id": r.inventory_id, "value": r.value, "reason": r.reason}
            for r in report.rejected
        ],
    }


@app.command()
def sync(force: ForceOption = False, as_json: JsonOption = False) -> None:
    """Run one inventory sync: add new sites, remove those gone from the inventory."""
    settings = _settings()
    report = _run(_sync_once(settings, force))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"added {len(report['added'])}: {' '.join(report['added']) or '-'}")
    typer.echo(f"removed {len(report['removed'])}: {' '.join(report['removed']) or '-'}")
    if report["removal_blocked"]:
        typer.echo(f"removal blocked: {report['removal_blocked']}")
    for row in report["rejected"]:
        typer.echo(
            f"rejected (inventory id {row['inventory_id']}): {row['value']!r}: {row['reason']}"
        )


async def _cycle_once(settings: Settings) -> CycleReport:
    store = create_store(settings.resolved_store_url)
    await store.open()
    try:
        alerter = Alerter(settings.alerts)
        await alerter.start()
        try:
            async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
                return await CheckService(settings, store, ctx, alerter=alerter).cycle()
        finally:
            await alerter.stop(drain_timeout_s=30)
    finally:
        await store.close()


@app.command()
def cycle(as_json: JsonOption = False) -> None:
    """Run one check cycle over every monitored site and record the results."""
    report = _run(_cycle_once(_settings()))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "sites": report.sites,
                    "checked": report.checked,
                    "up": report.up,
                    "down": report.down,
                    "duration_s": report.duration_s,
                }
            )
        )
        return
    typer.echo(
        f"checked {report.checked} of {report.sites} sites in {report.duration_s:.1f}s: "
        f"{report.up} up, {report.down} down"
    )


async def _check_many(settings: Settings, sites: list[Site]) -> list[CheckResult]:
    async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
        return list(await asyncio.gather(*(check_site(site, ctx) for site in sites)))


def _table(results: list[CheckResult]) -> str:
    rows = [("DOMAIN", "STATE", "CODE", "LATENCY", "ERROR")]
    for r in results:
        latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
        error = f"{r.error_class}: {r.error_message}" if r.error_class else ""
        rows.append((r.domain, r.state.value, str(r.status_code or "-"), latency, error))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


@app.command()
def check(
    targets: Annotated[list[str], typer.Argument(help="Domains or URLs to check.")],
    as_json: JsonOption = False,
) -> None:
    """Check domains once (DNS, then HTTP) and print the results; nothing is recorded.

    Exits 0 when every domain is up, 1 when any is down.
    """
    settings = _settings()
    sites = []
    for value in targets:
        try:
            target = normalize_target(value)
        except InvalidDomainError as exc:
            raise CliError(f"{value!r}: {exc.reason}") from None
        sites.append(Site(domain=target.domain, url=target.url))
    results = _run(_check_many(settings, sites))
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        typer.echo(_table(results))
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _listeners(settings: Settings, names: list[str]) -> tuple[list[Listener], list[Any]]:
    listeners: list[Listener] = []
    closers: list[Any] = []
    if "backend" in names:
        from rechecker.backend.api import create_app as backend_app

        listeners.append(Listener("backend", backend_app(settings), settings.backend_port))
    if "core" in names:
        from rechecker.core.api import create_app as core_app

        listeners.append(Listener("core", core_app(settings), settings.core_port))
    if "frontend" in names:
        from a2wsgi import WSGIMiddleware

        from rechecker.frontend import DashboardAuth
        from rechecker.frontend.app import create_app as frontend_app

        try:
            auth = DashboardAuth.configured(
                user=settings.dashboard_user,
                password=settings.dashboard_password.get_secret_value(),
                header=settings.dashboard_auth_header,
                header_values=[
                    v.strip() for v in settings.dashboard_auth_header_values.split(",") if v.strip()
                ],
            )
        except ValueError as exc:
            raise CliError(f"dashboard access control: {exc}") from None
        flask_app = frontend_app(
            settings,
            auth=auth,
            refresh_seconds=settings.dashboard_refresh_seconds,
            snapshot_max_age=settings.dashboard_snapshot_seconds,
        )
        closers.append(flask_app.extensions["rechecker"].close)
        # a2wsgi and Flask spell the WSGI and ASGI types differently; both are the standard.
        wsgi = cast("ASGIApp", WSGIMiddleware(cast("Any", flask_app)))
        listeners.append(Listener("frontend", wsgi, settings.frontend_port))
    return listeners, closers


def _serve(names: list[str], sync_first: bool = False) -> None:
    settings = _settings()
    if sync_first:
        # The checker's first cycle starts at once: give it the inventory's sites to check.
        _run(_sync_once(settings, force=False))
    listeners, closers = _listeners(settings, names)
    try:
        _run(serve(listeners, settings.host))
    finally:
        for close in closers:
            close()


@app.command(name="all")
def run_all() -> None:
    """Run backend, core and frontend in one process (the embedded default)."""
    _serve(["backend", "core", "frontend"], sync_first=True)


@app.command()
def backend() -> None:
    """Run the backend: inventory sync API and its schedulers."""
    _serve(["backend"])


@app.command()
def core() -> None:
    """Run the core: health-check API and its scheduler."""
    _serve(["core"])


@app.command()
def frontend() -> None:
    """Run the frontend: the dashboard."""
    _serve(["frontend"])


def main(argv: list[str] | None = None) -> None:
    """Entry point: errors end in one line on stderr, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args or ["--help"], prog_name="rechecker", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:
        typer.echo(f"rechecker: error: {exc.format_message()} (see --help)", err=True)
        sys.exit(2)
    except (CliError, InventoryError, StoreError, OptionsError) as exc:
        typer.echo(f"rechecker: error: {exc}", err=True)
        sys.exit(1)
    # Outside standalone mode, typer returns a command's ``typer.Exit`` code instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)
