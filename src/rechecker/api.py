"""Pieces both FastAPI apps share: dependency accessors and the error mapping."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from starlette.types import Lifespan

from rechecker import __version__
from rechecker.config import Settings
from rechecker.domains import InvalidDomainError, normalize_domain
from rechecker.scheduling import Periodic, SchedulerStatus
from rechecker.store import Store, StoreError


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def domain_param(domain: str) -> str:
    """A path's domain, normalised; a bad one is a 422 naming the field and the reason."""
    try:
        return normalize_domain(domain)
    except InvalidDomainError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["path", "domain"], "msg": exc.reason, "type": "value_error"}],
        ) from exc


def build_app(
    title: str, description: str, lifespan: Lifespan[FastAPI], router: APIRouter
) -> FastAPI:
    """A component's app: its own routes plus the shared health, readiness and metrics."""
    app = FastAPI(title=title, version=__version__, description=description, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """A store outage is a 503 with a masked message, not a 500 with a traceback."""

    async def store_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    app.add_exception_handler(StoreError, store_unavailable)


class HealthResponse(BaseModel):
    status: str
    version: str
    store: str
    schedulers: list[SchedulerStatus]


health_router = APIRouter()


@health_router.get("/healthz", response_model=HealthResponse, summary="Liveness and schedulers")
async def healthz(request: Request, store: Annotated[Store, Depends(get_store)]) -> HealthResponse:
    """Always 200 while the process runs; ``status`` says whether the store answers."""
    try:
        await store.ping()
        store_state = "ok"
    except StoreError as exc:
        store_state = str(exc)
    schedulers: list[Periodic] = request.app.state.schedulers
    return HealthResponse(
        status="ok" if store_state == "ok" else "degraded",
        version=__version__,
        store=store_state,
        schedulers=[s.status for s in schedulers],
    )


@health_router.get("/readyz", summary="Readiness: the store answers")
async def readyz(store: Annotated[Store, Depends(get_store)]) -> JSONResponse:
    """503 while the store is unreachable, so a load balancer or Kubernetes stops routing."""
    try:
        await store.ping()
    except StoreError as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "error": str(exc)})
    return JSONResponse(content={"status": "ready"})


metrics_router = APIRouter()


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
