"""A full run with test secrets everywhere, and every byte it showed grepped for them.

``rechecker all`` runs against a password-protected MariaDB store and inventory, with read and
write tokens (from the environment and from files), dashboard basic auth and an apprise
destination that carries a token. The test drives every API and dashboard page (authorised,
unauthorised, refused, errors), lets a check cycle run and an alert go out, runs the CLI with a
wrong database password, stops the stack — then looks for each secret in all of it: the
process logs, every response body and header, /docs and /openapi.json, the dashboard pages.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rechecker.config import Settings
from tests.support.inventory import inventory_rows
from tests.support.process import environment
from tests.support.receivers import WebhookReceiver
from tests.support.targets import LoopThread, Targets, free_port

pytestmark = pytest.mark.e2e

DB_USER = "rc_secret_test"
DB_PASSWORD = "Db-pa55-e2e-7f3a9c1d5b"
WRONG_DB_PASSWORD = "Wr0ng-pa55-e2e-2c4e6a8b"
READ_TOKEN = "rt-env-e2e-0a1b2c3d4e5f6a7b8c9d"
WRITE_TOKEN = "wt-env-e2e-9f8e7d6c5b4a3f2e1d0c"
FILE_READ_TOKEN = "rt-file-e2e-1234567890abcdefabcd"
FILE_WRITE_TOKEN = "wt-file-e2e-fedcba0987654321fedc"
DASHBOARD_PASSWORD = "dash-pa55-e2e-5e6f7a8b9c"
HOOK_TOKEN = "hook-e2e-token-3c5e7a9b1d"

SECRETS = {
    "database password": DB_PASSWORD,
    "wrong database password": WRONG_DB_PASSWORD,
    "read token": READ_TOKEN,
    "write token": WRITE_TOKEN,
    "read token from file": FILE_READ_TOKEN,
    "write token from file": FILE_WRITE_TOKEN,
    "dashboard password": DASHBOARD_PASSWORD,
    "apprise URL token": HOOK_TOKEN,
}
#: How long the stack gets to check every site once; it ends as soon as it has.
READY_DEADLINE_S = 90.0


def forms(secret: str) -> set[str]:
    """The secret as it could show up: raw, percent-encoded, in a Basic credential."""
    return {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}


def hits(texts: dict[str, str]) -> list[str]:
    """``secret name in source`` for every secret found in any captured text."""
    return [
        f"{name} in {source}"
        for name, secret in SECRETS.items()
        for source, captured in texts.items()
        if any(form in captured for form in forms(secret))
    ]


def test_the_grep_finds_a_planted_secret() -> None:
    """The check below can fail: a secret in any of its forms is found."""
    assert hits({"log": f"connect mysql://u:{DB_PASSWORD}@h/db"}) == ["database password in log"]
    encoded = quote(HOOK_TOKEN + "/x", safe="")
    assert hits({"page": encoded}) == ["apprise URL token in page"]


@dataclass
class Captured:
    texts: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def keep(self, label: str, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.texts[label] = f"{response.status_code}\n{headers}\n\n{response.text}"
        self.statuses[label] = response.status_code
        return response


async def _prepare_database(root_url: str, store: str, inventory: str, targets: Targets) -> None:
    """Two databases that only a user with a password may use, the inventory filled."""
    engine = create_async_engine(root_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in (
                f"CREATE DATABASE `{store}`",
                f"CREATE DATABASE `{inventory}`",
                f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'",
                f"GRANT ALL ON `{store}`.* TO '{DB_USER}'@'127.0.0.1'",
                f"GRANT ALL ON `{inventory}`.* TO '{DB_USER}'@'127.0.0.1'",
            ):
                await conn.execute(text(statement))
            await conn.execute(
                text(
                    f"CREATE TABLE `{inventory}`.sites (id INT PRIMARY KEY, "
                    "base_url VARCHAR(2048), status VARCHAR(32) NOT NULL, udomain VARCHAR(255))"
                )
            )
            await conn.execute(
                text(
                    f"INSERT INTO `{inventory}`.sites (id, base_url, status, udomain) "
                    "VALUES (:i, :u, :s, :d)"
                ),
                [{"i": i, "u": u, "s": s, "d": d} for i, u, s, d in inventory_rows(targets)],
            )
    finally:
        await engine.dispose()


@pytest.fixture
def receiver() -> Iterator[tuple[LoopThread, WebhookReceiver]]:
    thread = LoopThread()

    async def start() -> WebhookReceiver:
        hook = WebhookReceiver(token=HOOK_TOKEN)
        await hook.start()
        return hook

    hook = thread.run(start())
    try:
        yield thread, hook
    finally:
        thread.run(hook.stop())
        thread.close()


def wait_until_checked(url: str, auth: tuple[str, str], sites: int) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, auth=auth, timeout=5)
            body = response.json() if response.status_code == 200 else {}
            if body and body["counts"].get("pending", 1) == 0 and len(body["domains"]) == sites:
                return
            last = response.text[:300]
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"the stack never checked every site; last: {last}")


def test_no_secret_shows_in_any_output_of_a_full_run(
    settings: Settings,
    targets: Targets,
    mariadb: Any,
    receiver: tuple[LoopThread, WebhookReceiver],
    tmp_path: Path,
) -> None:
    thread, hook = receiver
    suffix = uuid.uuid4().hex[:8]
    store_db, inventory_db = f"secret_store_{suffix}", f"secret_inventory_{suffix}"
    asyncio.run(_prepare_database(mariadb.url(""), store_db, inventory_db, targets))
    server = f"{mariadb.host}:{mariadb.port}"
    dsn = f"mysql+asyncmy://{DB_USER}:{DB_PASSWORD}@{server}"

    read_file, write_file = tmp_path / "read-tokens", tmp_path / "write-tokens"
    read_file.write_text(f"{FILE_READ_TOKEN}\n", encoding="utf-8")
    write_file.write_text(f"# mounted secret\n{FILE_WRITE_TOKEN}\n", encoding="utf-8")
    ports = {"frontend_port": free_port(), "backend_port": free_port(), "core_port": free_port()}
    env = environment(settings.model_copy(update=ports)) | {
        "RECHECKER_STORE_URL": f"{dsn}/{store_db}",
        "RECHECKER_INVENTORY_URL": f"{dsn}/{inventory_db}",
        "RECHECKER_API__READ_TOKENS": READ_TOKEN,
        "RECHECKER_API__WRITE_TOKENS": WRITE_TOKEN,
        "RECHECKER_API__READ_TOKENS_FILE": str(read_file),
        "RECHECKER_API__WRITE_TOKENS_FILE": str(write_file),
        "RECHECKER_ALERTS__URLS": hook.url,
        "RECHECKER_DASHBOARD_USER": "sre",
        "RECHECKER_DASHBOARD_PASSWORD": DASHBOARD_PASSWORD,
        "RECHECKER_FAILURE_THRESHOLD": "1",
        "RECHECKER_LOG_LEVEL": "DEBUG",
    }
    captured = Captured()
    base = "http://127.0.0.1"
    backend, core = f"{base}:{ports['backend_port']}", f"{base}:{ports['core_port']}"
    frontend = f"{base}:{ports['frontend_port']}"
    read, write = "read", "write"
    file_read, file_write, wrong = "file-read", "file-write", "wrong"
    tokens = {
        "": None,
        read: READ_TOKEN,
        write: WRITE_TOKEN,
        file_read: FILE_READ_TOKEN,
        file_write: FILE_WRITE_TOKEN,
        wrong: "not-a-real-token-0123456789",
    }
    auth = ("sre", DASHBOARD_PASSWORD)

    process = subprocess.Popen(
        [sys.executable, "-m", "rechecker", "all"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_checked(f"{frontend}/api/status", auth, len(targets.urls()))
        with httpx.Client(timeout=30) as client:
            requests: list[tuple[str, str, str, str, Any]] = [
                ("GET", backend, "/docs", "", None),
                ("GET", backend, "/openapi.json", "", None),
                ("GET", backend, "/healthz", "", None),
                ("GET", backend, "/readyz", "", None),
                ("GET", backend, "/query_db", "", None),
                ("GET", backend, "/query_db", wrong, None),
                ("GET", backend, "/query_db", read, None),
                ("GET", backend, "/check_db", file_read, None),
                ("GET", backend, "/sync/status", read, None),
                ("GET", backend, "/metrics", read, None),
                ("GET", backend, "/metrics", "", None),
                ("POST", backend, "/sync", read, None),
                ("POST", backend, "/sync", write, None),
                ("POST", backend, "/add_new", file_write, {"targets": ["extra.test", "x:y"]}),
                ("POST", backend, "/delete_old", write, {"domains": ["extra.test"]}),
                ("POST", backend, "/add_new", write, {"targets": ["a" * 300]}),
                ("GET", core, "/docs", "", None),
                ("GET", core, "/openapi.json", "", None),
                ("GET", core, "/healthz", "", None),
                ("GET", core, "/readyz", "", None),
                ("GET", core, "/endpoint", read, None),
                ("GET", core, "/status", read, None),
                ("GET", core, "/status/ok.test", read, None),
                ("GET", core, "/status/nxdomain.test", file_read, None),
                ("GET", core, "/incidents", read, None),
                ("GET", core, "/metrics", read, None),
                ("POST", core, "/check/ok.test", write, None),
                ("POST", core, "/http/unavailable.test", write, None),
                ("POST", core, "/dns/nxdomain.test", file_write, None),
                ("POST", core, "/dns/ok.test", read, None),
                ("POST", core, "/check/v6.test", write, None),
                ("GET", frontend, "/", "", None),
                ("GET", frontend, "/healthz", "", None),
            ]
            for method, origin, path, scope, body in requests:
                token = tokens[scope]
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                label = f"{method} {origin}{path} ({scope or 'no'} token)"
                captured.keep(
                    label, client.request(method, origin + path, headers=headers, json=body)
                )
            for path in (
                "/",
                "/incidents",
                "/api/status",
                "/api/incidents",
                "/domain/ok.test",
                "/api/domain/nxdomain.test",
                "/domain/unavailable.test",
                "/nowhere",
            ):
                captured.keep(
                    f"GET {frontend}{path} (auth)", client.get(frontend + path, auth=auth)
                )
            captured.keep(
                "dashboard with a wrong password",
                client.get(frontend + "/", auth=("sre", "wrong-password")),
            )
        thread.run(hook.wait_for_posts(1))
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    captured.texts["rechecker all stdout"] = stdout
    captured.texts["rechecker all stderr"] = stderr

    cli_env = env | {"RECHECKER_LOG_LEVEL": "DEBUG"}
    for label, extra, args in (
        ("rechecker sync", {}, ["sync", "--json"]),
        (
            "rechecker sync with a wrong password",
            {
                "RECHECKER_INVENTORY_URL": f"mysql+asyncmy://{DB_USER}:{WRONG_DB_PASSWORD}@"
                f"{server}/{inventory_db}"
            },
            ["sync"],
        ),
        ("rechecker check", {}, ["check", "ok.test", "nxdomain.test"]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "rechecker", *args],
            env=cli_env | extra,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        captured.texts[f"{label} stdout"] = done.stdout
        captured.texts[f"{label} stderr"] = done.stderr

    # The run really used every secret: the stack connected to the database with its
    # password, accepted each token, served the dashboard behind its password and alerted.
    assert process.returncode == 0, stderr[-2000:]
    statuses = captured.statuses
    assert statuses[f"POST {backend}/sync (read token)"] == 403
    assert statuses[f"POST {backend}/sync (write token)"] == 200
    assert statuses[f"POST {backend}/add_new (file-write token)"] == 200
    assert statuses[f"POST {core}/check/ok.test (write token)"] == 200
    assert statuses[f"POST {core}/check/v6.test (write token)"] == 403  # SSRF guard: ::1
    assert statuses[f"GET {backend}/query_db (no token)"] == 401
    assert statuses[f"GET {backend}/query_db (wrong token)"] == 401
    assert statuses[f"GET {backend}/check_db (file-read token)"] == 200
    assert statuses[f"GET {core}/status (read token)"] == 200
    assert statuses[f"GET {frontend}/ (auth)"] == 200
    assert statuses["dashboard with a wrong password"] == 401
    assert hook.posts, "no alert reached the apprise destination"
    assert (
        '"ecs.version"' in stderr
        and "Access denied"
        in captured.texts["rechecker sync with a wrong password stderr"]
        + captured.texts["rechecker sync with a wrong password stdout"]
    )

    texts = captured.texts
    assert len(texts) >= 50
    found = hits(texts)
    report = (
        f"{len(SECRETS)} secrets in {len(texts)} outputs, {sum(map(len, texts.values()))} chars"
    )
    assert found == [], f"{report}: {found}"
