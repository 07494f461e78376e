"""The store on SQL databases through SQLAlchemy 2 (async): SQLite by default.

Plain SQLAlchemy Core, no ORM: the check pipeline writes results in batches and the ORM's
identity map would only cost memory there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import pydantic_core
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    delete,
    event,
    func,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from rechecker.models import CheckResult, HistoryPoint, Incident, Site
from rechecker.redact import redact_text, redact_url
from rechecker.store.base import Lease, Store, StoreError

log = logging.getLogger(__name__)

_CHUNK = 500


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite, MySQL and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

sites = Table(
    "sites",
    metadata,
    Column("domain", String(253), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("inventory_id", String(64), nullable=True),
    Column("added_at", UTCDateTime(), nullable=False),
    Column("next_due_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_token", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Index("ix_sites_next_due_at", "next_due_at"),
    Index("ix_sites_lease_token", "lease_token"),
    Index("ix_sites_lease_owner", "lease_owner"),
)

_SITE_COLUMNS = [sites.c.domain, sites.c.url, sites.c.inventory_id, sites.c.added_at]


def _result_columns() -> list[Column[Any]]:
    return [
        Column("timestamp", UTCDateTime(), nullable=False),
        Column("url", String(2048), nullable=False),
        Column("state", String(16), nullable=False),
        Column("verdict", String(16), nullable=True),
        Column("status_code", Integer, nullable=True),
        Column("error_class", String(32), nullable=False),
        Column("error_message", Text, nullable=False),
        Column("latency_ms", Float, nullable=True),
        Column("detail", JSON, nullable=False),
    ]


status = Table(
    "status",
    metadata,
    Column("domain", String(253), primary_key=True),
    *_result_columns(),
    Column("state_since", UTCDateTime(), nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("consecutive_successes", Integer, nullable=False),
    Column("incident_id", String(64), nullable=True),
)

history = Table(
    "history",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("domain", String(253), nullable=False),
    *_result_columns(),
    Index("ix_history_domain_timestamp", "domain", "timestamp"),
    Index("ix_history_timestamp", "timestamp"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("domain", String(253), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("cause", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_incidents_domain_started", "domain", "started_at"),
    Index("ix_incidents_started", "started_at"),
)

_STATE_FIELDS = ("state_since", "consecutive_failures", "consecutive_successes", "incident_id")


def _row_from_result(result: CheckResult) -> dict[str, Any]:
    """A history row; status rows add the state-tracking fields (see _status_row)."""
    return {
        "domain": result.domain,
        "timestamp": result.timestamp,
        "url": result.url,
        "state": result.state.value,
        "verdict": None if result.verdict is None else result.verdict.value,
        "status_code": result.status_code,
        "error_class": result.error_class,
        "error_message": result.error_message,
        "latency_ms": result.latency_ms,
        "detail": result.model_dump(mode="json", include={"dns", "http"}),
    }


def _status_row(result: CheckResult, history_row: dict[str, Any]) -> dict[str, Any]:
    """The status row of ``result``: its history row (built once) and the state fields."""
    return history_row | {field: getattr(result, field) for field in _STATE_FIELDS}


def _result_from_row(row: Any) -> CheckResult:
    mapping = row._mapping
    return CheckResult.model_validate(
        {
            **{field: mapping[field] for field in _STATE_FIELDS if field in mapping},
            "domain": row.domain,
            "url": row.url,
            "timestamp": row.timestamp,
            "state": row.state,
            "verdict": row.verdict,
            "status_code": row.status_code,
            "error_class": row.error_class,
            "error_message": row.error_message,
            "latency_ms": row.latency_ms,
            **row.detail,
        }
    )


def _json_text(value: Any) -> str:
    """JSON columns (each check's DNS and HTTP detail) written by pydantic-core's encoder:
    the standard library's took ~4% of a check cycle."""
    return pydantic_core.to_json(value).decode()


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the dashboard read while core writes; busy_timeout waits instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


MIGRATIONS = Path(__file__).with_name("migrations")

_MYSQL_CLAIM = text(
    "UPDATE sites SET lease_owner = :lease_owner, lease_token = :lease_token, "
    "lease_expires_at = :lease_expires_at "
    "WHERE next_due_at <= :now AND (lease_token IS NULL OR lease_expires_at < :now) "
    "ORDER BY next_due_at LIMIT :limit"
).bindparams(
    bindparam("lease_expires_at", type_=UTCDateTime()),
    bindparam("now", type_=UTCDateTime()),
)


_migration_locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _migration_lock() -> asyncio.Lock:
    """One migration at a time per event loop.

    Alembic keeps its migration context in a module global, and ``run_sync`` interleaves
    two migrations on one loop (``rechecker all`` opens a store per component), which would
    mix their contexts. Separate processes are separate modules and need no lock.
    """
    loop = asyncio.get_running_loop()
    lock = _migration_locks.get(loop)
    if lock is None:
        lock = _migration_locks[loop] = asyncio.Lock()
    return lock


def _migrate(connection: Connection) -> None:
    """Bring the schema to the newest revision; versioned, so a deployed store never drifts."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if MigrationContext.configure(connection).get_current_revision() == head:
        return
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    alembic_command.upgrade(config, "head")


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self._url = make_url(url)
        self._engine: AsyncEngine | None = None

    def __repr__(self) -> str:
        return f"SqlStore({redact_url(str(self._url))!r})"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreError("store is not open")
        return self._engine

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = create_async_engine(self._url, pool_pre_ping=True, json_serializer=_json_text)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        self._engine = engine
        try:
            if engine.dialect.name == "sqlite" and self._url.database:
                Path(self._url.database).parent.mkdir(parents=True, exist_ok=True)
            async with _migration_lock(), engine.begin() as conn:
                await conn.run_sync(_migrate)
        except (SQLAlchemyError, OSError) as exc:
            await self.close()
            raise self._error("cannot open the store", exc) from exc

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{what} at {redact_url(str(self._url))}: {redact_text(str(exc))}")

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose driver errors surface as StoreError, with secrets masked."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise self._error("store unavailable", exc) from exc

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """Like _connect, in one transaction committed on success."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise self._error("store write failed", exc) from exc

    async def ping(self) -> None:
        async with self._connect() as conn:
            await conn.execute(text("SELECT 1"))

    # --- sites -----------------------------------------------------------------------------
    async def list_sites(self) -> list[Site]:
        async with self._connect() as conn:
            rows = await conn.execute(select(*_SITE_COLUMNS).order_by(sites.c.domain))
            return [Site.model_validate(row._mapping) for row in rows]

    async def get_site(self, domain: str) -> Site | None:
        async with self._connect() as conn:
            query = select(*_SITE_COLUMNS).where(sites.c.domain == domain)
            row = (await conn.execute(query)).first()
            return None if row is None else Site.model_validate(row._mapping)

    async def _existing(self, conn: AsyncConnection, domains: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(domains):
            rows = await conn.execute(select(sites).where(sites.c.domain.in_(chunk)))
            found.update({row.domain: row for row in rows})
        return found

    async def add_sites(self, new_sites: Sequence[Site]) -> list[str]:
        # Sorted, so that concurrent syncs take row locks in one order and cannot deadlock.
        unique = sorted({site.domain: site for site in new_sites}.values(), key=lambda s: s.domain)
        async with self._begin() as conn:
            existing = await self._existing(conn, [site.domain for site in unique])
            to_insert = [site for site in unique if site.domain not in existing]
            for site in unique:
                old = existing.get(site.domain)
                if old is not None and (old.url, old.inventory_id) != (site.url, site.inventory_id):
                    await conn.execute(
                        update(sites)
                        .where(sites.c.domain == site.domain)
                        .values(url=site.url, inventory_id=site.inventory_id)
                    )
            for chunk in _chunks(to_insert):
                await conn.execute(
                    self._insert_ignore(conn, sites),
                    [{**site.model_dump(), "next_due_at": site.added_at} for site in chunk],
                )
        return [site.domain for site in to_insert]

    async def remove_sites(self, domains: Sequence[str]) -> list[str]:
        async with self._begin() as conn:
            present = sorted(await self._existing(conn, list(dict.fromkeys(domains))))
            for chunk in _chunks(present):
                await conn.execute(delete(status).where(status.c.domain.in_(chunk)))
                await conn.execute(delete(sites).where(sites.c.domain.in_(chunk)))
        return present

    # --- shared work ------------------------------------------------------------------------
    async def claim_due(self, owner: str, now: datetime, lease_s: float, limit: int) -> Lease:
        token = uuid.uuid4().hex
        expires = now + timedelta(seconds=lease_s)
        free = and_(
            sites.c.next_due_at <= now,
            or_(sites.c.lease_token.is_(None), sites.c.lease_expires_at < now),
        )
        lease = {"lease_owner": owner[:128], "lease_token": token, "lease_expires_at": expires}
        async with self._begin() as conn:
            if conn.dialect.name in ("mysql", "mariadb"):
                # MySQL cannot update a table it selects from; it can update in index order.
                await conn.execute(_MYSQL_CLAIM, {**lease, "now": now, "limit": limit})
            else:
                due = select(sites.c.domain).where(free).order_by(sites.c.next_due_at).limit(limit)
                if conn.dialect.name == "postgresql":
                    due = due.with_for_update(skip_locked=True)
                await conn.execute(
                    update(sites)
                    .where(sites.c.domain.in_(due.scalar_subquery()), free)
                    .values(**lease)
                )
            rows = await conn.execute(
                select(*_SITE_COLUMNS).where(sites.c.lease_token == token).order_by(sites.c.domain)
            )
            claimed = [Site.model_validate(row._mapping) for row in rows]
        return Lease(token=token, sites=claimed)

    async def complete_lease(
        self, token: str, domains: Sequence[str], next_due_at: datetime
    ) -> int:
        done = 0
        async with self._begin() as conn:
            for chunk in _chunks(sorted(set(domains))):
                result = await conn.execute(
                    update(sites)
                    .where(sites.c.domain.in_(chunk), sites.c.lease_token == token)
                    .values(
                        lease_owner=None,
                        lease_token=None,
                        lease_expires_at=None,
                        next_due_at=next_due_at,
                    )
                )
                done += int(result.rowcount or 0)
        return done

    async def release_leases(self, owner: str) -> int:
        async with self._begin() as conn:
            result = await conn.execute(
                update(sites)
                .where(sites.c.lease_owner == owner[:128])
                .values(lease_owner=None, lease_token=None, lease_expires_at=None)
            )
            return int(result.rowcount or 0)

    async def next_due_at(self) -> datetime | None:
        async with self._connect() as conn:
            value = (await conn.execute(select(func.min(sites.c.next_due_at)))).scalar()
        return value if isinstance(value, datetime) or value is None else None

    # --- results ---------------------------------------------------------------------------
    async def record_results(self, results: Sequence[CheckResult]) -> None:
        if not results:
            return
        rows = [_row_from_result(result) for result in results]
        async with self._begin() as conn:
            await conn.execute(history.insert(), rows)
            monitored = await self._existing(conn, [row["domain"] for row in rows])
            latest = {
                r.domain: _status_row(r, row)
                for r, row in zip(results, rows, strict=True)
                if r.domain in monitored
            }
            if latest:
                rows = [latest[domain] for domain in sorted(latest)]  # one lock order, no deadlock
                await conn.execute(self._upsert_status(conn), rows)

    def _insert_ignore(self, conn: AsyncConnection, table: Table) -> Any:
        name = conn.dialect.name
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        if name in ("mysql", "mariadb"):
            return table.insert().prefix_with("IGNORE")
        raise StoreError(f"unsupported SQL dialect {name!r}")

    def _upsert_status(self, conn: AsyncConnection) -> Any:
        name = conn.dialect.name
        columns = [c.name for c in status.columns if c.name != "domain"]
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            lite = sqlite_insert(status)
            return lite.on_conflict_do_update(
                index_elements=[status.c.domain],
                set_={column: lite.excluded[column] for column in columns},
            )
        if name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(status)
            return pg.on_conflict_do_update(
                index_elements=[status.c.domain],
                set_={column: pg.excluded[column] for column in columns},
            )
        if name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            mstmt = mysql_insert(status)
            return mstmt.on_duplicate_key_update(
                {column: mstmt.inserted[column] for column in columns}
            )
        raise StoreError(f"unsupported SQL dialect {name!r}")

    async def list_status(self) -> list[CheckResult]:
        async with self._connect() as conn:
            rows = await conn.execute(select(status).order_by(status.c.domain))
            return [_result_from_row(row) for row in rows]

    async def get_status(self, domain: str) -> CheckResult | None:
        async with self._connect() as conn:
            row = (await conn.execute(select(status).where(status.c.domain == domain))).first()
            return None if row is None else _result_from_row(row)

    async def get_statuses(self, domains: Sequence[str]) -> dict[str, CheckResult]:
        found: dict[str, CheckResult] = {}
        async with self._connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(domains))):
                rows = await conn.execute(select(status).where(status.c.domain.in_(chunk)))
                found.update({row.domain: _result_from_row(row) for row in rows})
        return found

    async def history_points(self, domain: str, since: datetime) -> list[HistoryPoint]:
        async with self._connect() as conn:
            rows = await conn.execute(
                select(
                    history.c.timestamp, history.c.state, history.c.verdict, history.c.latency_ms
                )
                .where(history.c.domain == domain, history.c.timestamp >= since)
                .order_by(history.c.timestamp, history.c.id)
            )
            return [
                HistoryPoint(
                    timestamp=row.timestamp,
                    verdict=row.verdict or row.state,
                    latency_ms=row.latency_ms,
                )
                for row in rows
            ]

    async def save_incidents(self, items: Sequence[Incident]) -> None:
        if not items:
            return
        async with self._begin() as conn:
            known: set[str] = set()
            ids = [item.id for item in items]
            for chunk in _chunks(ids):
                rows = await conn.execute(select(incidents.c.id).where(incidents.c.id.in_(chunk)))
                known.update(row.id for row in rows)
            for item in items:
                row = item.model_dump(
                    include={"id", "domain", "started_at", "ended_at", "cause", "message"}
                )
                if item.id in known:
                    await conn.execute(
                        update(incidents).where(incidents.c.id == item.id).values(**row)
                    )
                else:
                    await conn.execute(self._insert_ignore(conn, incidents), [row])

    async def get_incidents(self, ids: Sequence[str]) -> list[Incident]:
        found: list[Incident] = []
        async with self._connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                rows = await conn.execute(select(incidents).where(incidents.c.id.in_(chunk)))
                found.extend(Incident.model_validate(row._mapping) for row in rows)
        return found

    async def list_incidents(
        self, *, domain: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        query = select(incidents).order_by(incidents.c.started_at.desc()).limit(limit)
        if domain is not None:
            query = query.where(incidents.c.domain == domain)
        if open_only:
            query = query.where(incidents.c.ended_at.is_(None))
        async with self._connect() as conn:
            return [Incident.model_validate(row._mapping) for row in await conn.execute(query)]

    async def history(self, domain: str, limit: int = 100) -> list[CheckResult]:
        async with self._connect() as conn:
            rows = await conn.execute(
                select(history)
                .where(history.c.domain == domain)
                .order_by(history.c.timestamp.desc(), history.c.id.desc())
                .limit(limit)
            )
            return [_result_from_row(row) for row in rows]

    async def purge_history(self, before: datetime) -> int:
        async with self._begin() as conn:
            result = await conn.execute(delete(history).where(history.c.timestamp < before))
            return int(result.rowcount or 0)
