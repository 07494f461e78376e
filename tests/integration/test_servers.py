"""The database servers the tests rely on really work: through the real async drivers, and
across the stop/start cycle that outage tests use."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.servers import DatabaseServer, FerretDBServer

SQL_SERVERS = ["mariadb", "postgres"]
#: Not ASCII on purpose: MariaDB's compiled-in default charset (latin1) would mangle it.
NAME = "bücher.example"


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def mongo_for(
    url: str, timeout_ms: int = 2000
) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        yield client
    finally:
        await client.close()


async def write_row(url: str) -> None:
    async with engine_for(url) as engine, engine.begin() as connection:
        await connection.execute(text("CREATE TABLE domains (id INTEGER PRIMARY KEY, name TEXT)"))
        await connection.execute(
            text("INSERT INTO domains (id, name) VALUES (1, :name)"), {"name": NAME}
        )


async def read_names(url: str) -> list[str]:
    async with engine_for(url) as engine, engine.connect() as connection:
        result = await connection.execute(text("SELECT name FROM domains ORDER BY id"))
        return [str(name) for name in result.scalars()]


@pytest.mark.parametrize("server_name", SQL_SERVERS)
async def test_sql_database_round_trip(server_name: str, request: pytest.FixtureRequest) -> None:
    server: DatabaseServer = request.getfixturevalue(server_name)
    url = server.create_database(fresh_name("round_trip"))

    await write_row(url)

    assert await read_names(url) == [NAME]


@pytest.mark.parametrize("server_name", SQL_SERVERS)
async def test_created_sql_database_is_empty(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    server: DatabaseServer = request.getfixturevalue(server_name)
    first = server.create_database(fresh_name("first"))
    await write_row(first)

    second = server.create_database(fresh_name("second"))

    with pytest.raises(DBAPIError):
        await read_names(second)


@pytest.mark.parametrize("server_name", SQL_SERVERS)
async def test_sql_data_survives_restart(server_name: str, request: pytest.FixtureRequest) -> None:
    server: DatabaseServer = request.getfixturevalue(server_name)
    url = server.create_database(fresh_name("restart"))
    await write_row(url)
    port = server.port

    server.stop()
    try:
        assert not server.running
        with pytest.raises((DBAPIError, OSError)):
            await read_names(url)
    finally:
        server.start()

    assert server.port == port
    assert server.url("x").endswith(f":{port}/x")
    assert await read_names(url) == [NAME]


async def test_ferretdb_round_trip(ferretdb: FerretDBServer) -> None:
    url = ferretdb.create_database(fresh_name("round_trip"))

    async with mongo_for(url) as client:
        database = client.get_default_database()
        await database.domains.insert_one({"_id": 1, "name": NAME})
        found = await database.domains.find_one({"_id": 1})

    assert found == {"_id": 1, "name": NAME}


async def test_ferretdb_data_survives_restart(ferretdb: FerretDBServer) -> None:
    name = fresh_name("restart")
    url = ferretdb.create_database(name)
    async with mongo_for(url) as client:
        await client.get_default_database().domains.insert_one({"_id": 1, "name": NAME})

    ferretdb.stop()
    try:
        async with mongo_for(url, timeout_ms=300) as client:
            with pytest.raises(PyMongoError):
                await client.get_default_database().domains.find_one({"_id": 1})
    finally:
        ferretdb.start()

    async with mongo_for(url) as client:
        assert name in await client.list_database_names()
        found = await client.get_default_database().domains.find_one({"_id": 1})
    assert found == {"_id": 1, "name": NAME}


def test_create_database_rejects_unsafe_names(ferretdb: FerretDBServer) -> None:
    with pytest.raises(ValueError, match="database name"):
        ferretdb.create_database("x; DROP DATABASE y")
