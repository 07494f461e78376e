"""The original's databases for real: MySQL (MariaDB) inventory, MongoDB (FerretDB) store."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from fastapi.testclient import TestClient
from pymongo import AsyncMongoClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rechecker.backend.api import create_app as backend_app
from rechecker.backend.sync import sync
from rechecker.config import Settings
from rechecker.core.checker import run_cycle
from rechecker.frontend.app import create_app as frontend_app
from rechecker.inventory import InventoryError
from rechecker.inventory.sql import SqlInventory
from rechecker.models import State
from rechecker.probes import ProbeContext, ProbeSettings
from rechecker.store import Store, create_store
from tests.support.inventory import inventory_rows
from tests.support.targets import Targets

YMLS = Path(__file__).resolve().parents[2] / "ymls"
MOCK_SQL = YMLS / "mysql" / "initdb" / "01-inventory.sql"
MOCK_JS = YMLS / "mongodb" / "initdb" / "01-endpoints.js"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def load_rows(url: str, rows: list[tuple[int, str, str, str]]) -> None:
    """The inventory table in the original's shape, filled with ``rows``."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS sites"))
            await conn.execute(
                text(
                    "CREATE TABLE sites (id INT PRIMARY KEY, base_url VARCHAR(2048), "
                    "status VARCHAR(32) NOT NULL, udomain VARCHAR(255), source_id INT) "
                    "CHARACTER SET utf8mb4"
                )
            )
            if rows:
                await conn.execute(
                    text(
                        "INSERT INTO sites (id, base_url, status, udomain) VALUES (:i, :u, :s, :d)"
                    ),
                    [{"i": i, "u": u, "s": s, "d": d} for i, u, s, d in rows],
                )
    finally:
        await engine.dispose()


async def load_mock_sql(url: str) -> None:
    """Run ymls/mysql's init script, as the MySQL image does, into this test's database."""
    script = MOCK_SQL.read_text(encoding="utf-8")
    statements = [
        part.strip()
        for part in script.split(";\n")
        if part.strip() and not part.strip().startswith(("CREATE DATABASE", "USE "))
    ]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                body = "\n".join(
                    line for line in statement.splitlines() if not line.startswith("--")
                )
                await conn.exec_driver_sql(body)
    finally:
        await engine.dispose()


async def test_the_mock_inventory_loads_and_reads_with_reasons(mariadb: Any) -> None:
    url = mariadb.create_database(unique("inventory"))
    await load_mock_sql(url)
    inventory = SqlInventory(url)
    try:
        read = await inventory.read()
    finally:
        await inventory.close()
    domains = [site.domain for site in read.sites]
    assert len(domains) == len(set(domains)) == 220  # 200 plain + 20 IDN, inactive left out
    assert all(domain.isascii() and domain == domain.lower() for domain in domains)
    assert "xn--bcher0-3ya.example" in domains
    assert not any(domain.startswith("retired") for domain in domains)
    reasons = [row.reason for row in read.rejected]
    assert len(reasons) == 40
    assert sum(reason.startswith("duplicate of site0") for reason in reasons) == 20
    assert any("scheme 'javascript'" in reason for reason in reasons)
    assert any("IP address" in reason for reason in reasons)


async def test_the_mock_endpoints_database_is_readable_by_the_store(ferretdb: Any) -> None:
    url = ferretdb.create_database(unique("endpoints"))
    script = MOCK_JS.read_text(encoding="utf-8")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        database = client.get_default_database()
        for collection, payload in re.findall(
            r"endpoints\.(\w+)\.insertMany\(EJSON\.deserialize\((.*?)\)\);", script, re.S
        ):
            await database[collection].insert_many(json_util.loads(payload))
    finally:
        await client.close()
    store = create_store(url)
    await store.open()
    try:
        statuses = await store.list_status()
        sites = await store.list_sites()
    finally:
        await store.close()
    assert len(sites) == len(statuses) == 12
    down = [s for s in statuses if s.state is State.DOWN]
    assert [s.error_message for s in down] == ["Connection failed"] * 3


@pytest.fixture
async def mongo_store(ferretdb: Any) -> AsyncIterator[Store]:
    store = create_store(ferretdb.create_database(unique("endpoints")))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_inventory_server_down_mid_sync_deletes_nothing_and_recovers(
    mariadb: Any, mongo_store: Store, targets: Targets
) -> None:
    url = mariadb.create_database(unique("inventory"))
    await load_rows(url, inventory_rows(targets))
    inventory = SqlInventory(url)
    try:
        first = await sync(mongo_store, inventory, max_drop_ratio=0.2)
        assert len(first.added) == len(targets.urls())
        mariadb.stop()
        try:
            with pytest.raises(InventoryError) as failure:
                await sync(mongo_store, inventory, max_drop_ratio=0.2)
            assert "cannot read inventory" in str(failure.value)
            assert len(await mongo_store.list_sites()) == len(targets.urls())
        finally:
            mariadb.start()
        again = await sync(mongo_store, inventory, max_drop_ratio=0.2)
        assert again.added == [] and again.removed == [] and again.removal_blocked is None
    finally:
        await inventory.close()


async def test_a_half_empty_inventory_removes_nothing(
    mariadb: Any, mongo_store: Store, targets: Targets
) -> None:
    url = mariadb.create_database(unique("inventory"))
    rows = inventory_rows(targets)
    await load_rows(url, rows)
    inventory = SqlInventory(url)
    try:
        await sync(mongo_store, inventory, max_drop_ratio=0.2)
        await load_rows(url, rows[: len(rows) // 2])
        report = await sync(mongo_store, inventory, max_drop_ratio=0.2)
        assert report.removed == []
        assert (
            report.removal_blocked is not None
            and "more than the allowed 20%" in report.removal_blocked
        )
        assert len(await mongo_store.list_sites()) == len(targets.urls())
        await load_rows(url, [])
        empty = await sync(mongo_store, inventory, max_drop_ratio=0.2)
        assert empty.removed == [] and "no usable sites" in (empty.removal_blocked or "")
    finally:
        await inventory.close()


def test_the_original_stack_end_to_end(
    mariadb: Any, ferretdb: Any, targets: Targets, tmp_path: Path
) -> None:
    """MySQL inventory → backend → MongoDB → core → dashboard, as the original drew it."""
    inventory_url = mariadb.create_database(unique("inventory"))
    asyncio.run(load_rows(inventory_url, inventory_rows(targets)))
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        inventory_url=inventory_url,
        store_url=ferretdb.create_database(unique("endpoints")),
        dns_resolvers=[targets.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
    )
    with TestClient(backend_app(settings), client=("127.0.0.1", 50000)) as backend:
        report = backend.post("/sync").json()
        assert sorted(report["added"]) == sorted(targets.urls())
        assert report["rejected"][0]["inventory_id"] == "6901"

    async def check_all() -> None:
        store = create_store(settings.resolved_store_url)
        await store.open()
        try:
            async with ProbeContext(ProbeSettings.from_settings(settings)) as ctx:
                cycle = await run_cycle(store, ctx, concurrency=20, batch_size=4)
            assert cycle.checked == len(targets.urls())
        finally:
            await store.close()

    asyncio.run(check_all())
    dashboard = frontend_app(settings)
    try:
        data = dashboard.test_client().get("/api/status").get_json()
        html = dashboard.test_client().get("/").get_data(as_text=True)
    finally:
        dashboard.extensions["rechecker"].close()
    states = {item["domain"]: item["state"] for item in data["domains"]}
    assert {d for d, s in states.items() if s == "UP"} == {"ok.test", "moved.test"}
    assert len(states) == len(targets.urls())
    assert html.index("unavailable.test") < html.index("ok.test")
