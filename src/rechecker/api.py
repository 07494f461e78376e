"""Pieces both FastAPI apps share: dependency accessors and the error mapping."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Lifespan

from rechecker import __version__
from rechecker.config import Settings
from rechecker.domains import InvalidDomainError, normalize_domain
from rechecker.scheduling import Periodic, SchedulerStatus
from rechecker.security.limits import BodyLimitMiddleware, RateLimitMiddleware
from rechecker.security.tokens import (
    AccessPolicy,
    require_metrics_token,
    require_token,
    warn_about_defaults,
)
from rechecker.store import Store, StoreError


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DomainPath = Annotated[
    str,
    Path(
        description="A domain name (IDN, any case, a trailing dot are fine); normalised.",
        examples=["example.com"],
    ),
]


def domain_param(domain: DomainPath) -> str:
    """A path's domain, normalised; a bad one is a 422 naming the field and the reason."""
    try:
        return normalize_domain(domain)
    except InvalidDomainError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["path", "domain"], "msg": exc.reason, "type": "value_error"}],
        ) from exc


class ErrorResponse(BaseModel):
    detail: str


#: Answers any guarded route may give, documented so that clients and schema checks expect them.
GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or one that is not valid", "model": ErrorResponse},
    403: {"description": "The token (or client) may not do this", "model": ErrorResponse},
    413: {"description": "Request body over RECHECKER_API__MAX_BODY_BYTES", "model": ErrorResponse},
    429: {"description": "Over the client's rate limit; see Retry-After", "model": ErrorResponse},
}


def build_app(
    title: str,
    description: str,
    lifespan: Lifespan[FastAPI],
    router: APIRouter,
    settings: Settings,
) -> FastAPI:
    """A component's app: its own routes behind tokens, the open health and readiness probes,
    metrics, and the rate and body limits in front of all of them (docs/security.md)."""
    app = FastAPI(title=title, version=__version__, description=description, lifespan=lifespan)
    app.state.access = access = AccessPolicy.from_settings(settings.api)
    warn_about_defaults(access, settings.host)
    install_error_handlers(app)
    app.include_router(router, dependencies=[Depends(require_token)], responses=GUARDED_RESPONSES)
    app.include_router(health_router)
    app.include_router(
        metrics_router, dependencies=[Depends(require_metrics_token)], responses=GUARDED_RESPONSES
    )
    # Added last is outermost: a client over its rate is turned away before the body check.
    app.add_middleware(BodyLimitMiddleware, limit=settings.api.max_body_bytes)
    if settings.api.rate_limit_per_second > 0:
        app.add_middleware(
            RateLimitMiddleware,
            rate=settings.api.rate_limit_per_second,
            burst=settings.api.rate_limit_burst,
        )
    return app


def install_error_handlers(app: FastAPI) -> None:
    """A store outage is a 503 with a masked message, not a 500 with a traceback; invalid
    input is always a 422, whatever it contains."""

    async def store_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own handler echoes the input; JSON may carry a lone surrogate ("\ud800")
        # that UTF-8 cannot encode, which turned the 422 into a 500.
        assert isinstance(exc, RequestValidationError)
        errors = _encodable(jsonable_encoder(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": errors})

    async def unparseable_body(request: Request, exc: Exception) -> Response:
        # FastAPI answers a JSON body that is not UTF-8, or nests deeper than the parser
        # goes, with a bare 400 that no schema documents; it is invalid input like any other.
        assert isinstance(exc, StarletteHTTPException)
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, ValueError | RecursionError):
            error = {"type": "json_invalid", "loc": ["body"], "msg": _unparseable(cause)}
            return JSONResponse(status_code=422, content={"detail": [error]})
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StoreError, store_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, unparseable_body)


def _unparseable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(cause, RecursionError):
        return "the body nests deeper than the JSON parser allows"
    return "the body is not valid JSON"


def _encodable(value: Any) -> Any:
    """``value`` with every string made UTF-8 encodable (lone surrogates as ``\\udxxx``)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    return value


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
