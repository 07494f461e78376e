"""Fixtures of the dashboard tests: a real SQLite store seeded with tests.frontend.seed.

The seeded store is shared by a module's tests (they only read it); each test gets its own
app, so closing or breaking one app cannot leak into the next test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from rechecker.config import Settings
from rechecker.frontend import close_app, create_app
from tests.frontend.seed import seed_fleet, sqlite_url


def settings_for(tmp_path: Path, url: str) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, store_url=SecretStr(url))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, datetime]:
    """The URL of a store holding the seeded fleet, and the moment it was seeded for."""
    url = sqlite_url(tmp_path_factory.mktemp("store") / "store.sqlite3")
    return url, seed_fleet(url)


@pytest.fixture
def store_url(seeded: tuple[str, datetime]) -> str:
    return seeded[0]


@pytest.fixture
def app(tmp_path: Path, store_url: str) -> Iterator[Flask]:
    flask_app = create_app(settings_for(tmp_path, store_url))
    try:
        yield flask_app
    finally:
        close_app(flask_app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
