"""Pytest plugin: session fixtures for real MariaDB, PostgreSQL and FerretDB servers.

Loaded with ``pytest_plugins = ["tests.support.databases"]`` (or ``-p tests.support.databases``).
A server starts only when a test first asks for its fixture and lives for the session; each
test makes its own database with ``server.create_database(name)``.

A server missing from the machine skips the tests that need it, with the reason, so a
laptop without, say, Go still runs everything else. In CI (``CI=true``) the same situation
fails those tests instead: a green CI run means every server really ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.support.servers import (
    DatabaseServer,
    FerretDBServer,
    MariaDBServer,
    PostgresServer,
)

ServerT = TypeVar("ServerT", bound=DatabaseServer)

#: Servers started by the fixtures below, for the per-test health check.
_session_servers: list[DatabaseServer] = []


def require(server_class: type[DatabaseServer]) -> None:
    """Skip (or, in CI, fail) the current test when ``server_class`` cannot run here."""
    reason = server_class.unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so a missing server is an error: {reason}", pytrace=False)
    pytest.skip(reason)


def _serve(server_class: type[ServerT]) -> Iterator[ServerT]:
    require(server_class)
    server = server_class()
    try:
        server.start()
    except BaseException:
        server.close(remove_files=False)  # the error names its log: keep it to read
        raise
    _session_servers.append(server)
    try:
        yield server
    finally:
        _session_servers.remove(server)
        server.close()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """A MariaDB server; URLs look like ``mysql+asyncmy://root@127.0.0.1:PORT/NAME``."""
    yield from _serve(MariaDBServer)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server; URLs look like ``postgresql+asyncpg://postgres@127.0.0.1:PORT/NAME``."""
    yield from _serve(PostgresServer)


@pytest.fixture(scope="session")
def ferretdb() -> Iterator[FerretDBServer]:
    """A FerretDB server (MongoDB protocol); URLs look like ``mongodb://127.0.0.1:PORT/NAME``."""
    yield from _serve(FerretDBServer)


@pytest.fixture(autouse=True)
def _database_servers_running() -> Iterator[None]:
    """After each test, start again any session server the test stopped or killed.

    Outage tests stop servers on purpose; if one fails before bringing its server back,
    the error stays with that test instead of spreading to every later one.
    """
    yield
    for server in list(_session_servers):
        if not server.running:
            server.start()
