"""Tokens, rate and body limits of the backend and core APIs, served by uvicorn on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rechecker.backend.api import create_app as backend_app
from rechecker.config import Settings
from rechecker.core.api import create_app as core_app
from rechecker.security.settings import ApiSettings
from tests.support.inventory import inventory_rows, use_inventory
from tests.support.targets import Targets, free_port

READ = "read-0123456789abcdef0123456789"
WRITE = "write-0123456789abcdef0123456789"
FILE_WRITE = "file-write-0123456789abcdef01234"
#: Long enough for any start on a loaded CI machine; the loop ends as soon as it is up.
START_DEADLINE_S = 60.0


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, as ``rechecker backend|core`` runs it."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_DEADLINE_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def with_api(settings: Settings, **api: object) -> Settings:
    return settings.model_copy(update={"api": ApiSettings.model_validate(api)})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def backend(settings: Settings, targets: Targets, tmp_path: Path) -> Iterator[str]:
    use_inventory(settings, inventory_rows(targets))
    token_file = tmp_path / "write-tokens"
    token_file.write_text(f"# mounted secret\n{FILE_WRITE}\n", encoding="utf-8")
    secured = with_api(
        settings, read_tokens=[READ], write_tokens=[WRITE], write_tokens_file=token_file
    )
    with serving(backend_app(secured)) as url:
        yield url


def test_reads_need_a_token_and_writes_a_write_token(backend: str) -> None:
    missing = httpx.get(f"{backend}/query_db")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token is required" in missing.json()["detail"]
    wrong = httpx.get(f"{backend}/query_db", headers=bearer("not-a-token-0123456789"))
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "the token is not valid")
    assert httpx.get(f"{backend}/query_db", headers=bearer(READ)).status_code == 200
    assert httpx.get(f"{backend}/check_db", headers=bearer(WRITE)).status_code == 200

    for path in ("/sync", "/add_new", "/delete_old"):
        assert httpx.post(f"{backend}{path}").status_code == 401
        refused = httpx.post(f"{backend}{path}", headers=bearer(READ))
        assert refused.status_code == 403, path
        assert "write token is required" in refused.json()["detail"]
    assert httpx.get(f"{backend}/sync/status", headers=bearer(READ)).json() == {}

    synced = httpx.post(f"{backend}/sync", headers=bearer(WRITE), timeout=30)
    assert synced.status_code == 200 and len(synced.json()["added"]) == 9
    added = httpx.post(
        f"{backend}/add_new", headers=bearer(FILE_WRITE), json={"targets": ["extra.test"]}
    )
    assert added.json()["added"] == ["extra.test"]


def test_probes_and_docs_stay_open_and_metrics_need_a_token(backend: str) -> None:
    assert httpx.get(f"{backend}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{backend}/readyz").status_code == 200
    assert httpx.get(f"{backend}/docs").status_code == 200
    schema = httpx.get(f"{backend}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert {"401", "403", "413", "429"} <= set(schema["paths"]["/sync"]["post"]["responses"])
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert httpx.get(f"{backend}/metrics").status_code == 401
    assert httpx.get(f"{backend}/metrics", headers=bearer(READ)).status_code == 200


def test_metrics_can_be_public(settings: Settings) -> None:
    with serving(backend_app(with_api(settings, read_tokens=[READ], metrics_public=True))) as url:
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.get(f"{url}/query_db").status_code == 401


def test_without_tokens_writes_come_from_loopback_only(
    settings: Settings, targets: Targets, caplog: pytest.LogCaptureFixture
) -> None:
    use_inventory(settings, inventory_rows(targets))
    app = backend_app(settings)
    assert "accepted from loopback clients only" in caplog.text
    with serving(app) as url:
        assert httpx.get(f"{url}/check_db").status_code == 200
        assert httpx.post(f"{url}/sync", timeout=30).status_code == 200
        proxied = httpx.post(f"{url}/sync", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403
        assert "loopback clients only" in proxied.json()["detail"]
    with TestClient(app, client=("203.0.113.9", 40000)) as remote:
        assert remote.get("/check_db").status_code == 200
        assert remote.post("/sync").status_code == 403
        assert remote.post("/delete_old", json={"domains": ["ok.test"]}).status_code == 403


def test_on_demand_checks_need_a_write_token(settings: Settings) -> None:
    with serving(core_app(with_api(settings, read_tokens=[READ], write_tokens=[WRITE]))) as url:
        assert httpx.get(f"{url}/status", headers=bearer(READ)).status_code == 200
        assert httpx.get(f"{url}/endpoint").status_code == 401
        for path in ("/dns/ok.test", "/http/ok.test", "/check/ok.test"):
            assert httpx.post(f"{url}{path}", headers=bearer(READ)).status_code == 403
        checked = httpx.post(f"{url}/dns/ok.test", headers=bearer(WRITE), timeout=30)
        assert checked.status_code == 403  # unmonitored and on loopback: the SSRF guard
        assert "loopback address" in checked.json()["detail"]


def test_a_client_over_its_rate_gets_429_and_probes_do_not(settings: Settings) -> None:
    # One request in about 17 minutes after the burst: the test cannot be fast enough to refill.
    limited = with_api(settings, rate_limit_per_second=0.001, rate_limit_burst=3)
    with serving(core_app(limited)) as url:
        assert [httpx.get(f"{url}/status").status_code for _ in range(3)] == [200] * 3
        over = httpx.get(f"{url}/status")
        assert over.status_code == 429
        assert int(over.headers["Retry-After"]) >= 900
        assert "too many requests" in over.json()["detail"]
        assert httpx.post(f"{url}/dns/ok.test").status_code == 429
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_bodies_over_the_limit_get_413_before_the_endpoint_acts(
    settings: Settings, targets: Targets
) -> None:
    use_inventory(settings, inventory_rows(targets))
    with serving(backend_app(with_api(settings, max_body_bytes=1000))) as url:
        targets_list = [f"site{n}.test" for n in range(200)]
        declared = httpx.post(f"{url}/add_new", json={"targets": targets_list})
        assert declared.status_code == 413
        assert declared.json()["detail"] == "request body larger than 1000 bytes"

        def chunks() -> Iterator[bytes]:
            yield b'{"targets": ['
            yield b",".join(b'"%d.example.test"' % n for n in range(200))
            yield b"]}"

        streamed = httpx.post(
            f"{url}/add_new", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413

        # The body of /sync is not read at all; the declared length alone stops it.
        ignored = httpx.post(f"{url}/sync", content=b" " * 5000)
        assert ignored.status_code == 413
        assert httpx.get(f"{url}/sync/status").json() == {}
        assert httpx.get(f"{url}/check_db").json()["store_sites"] == 0

        small = httpx.post(f"{url}/add_new", json={"targets": ["small.test"]})
        assert small.json()["added"] == ["small.test"]
