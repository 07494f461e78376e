"""The ``rechecker`` command as a user meets it: help, errors in one line, check, and ``all``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rechecker.config import Settings
from tests.support.inventory import inventory_rows, use_inventory
from tests.support.process import environment, rechecker
from tests.support.targets import Targets, free_port

COMMANDS = ["all", "backend", "core", "frontend", "sync", "cycle", "check"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(settings: Settings, tmp_path: Path, command: str) -> None:
    done = rechecker(settings, command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert f"Usage: rechecker {command}" in done.stdout
    docstring_start = {
        "all": "Run backend, core and frontend",
        "sync": "Run one inventory sync",
        "check": "Check domains once",
    }.get(command, "Run")
    assert docstring_start in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["check"], "Missing argument"),
        (["check", "javascript:alert(1)"], "unsupported URL scheme 'javascript'"),
        (["sync", "--force=maybe"], "--force"),
    ],
)
def test_bad_input_is_one_line_not_a_traceback(
    settings: Settings, tmp_path: Path, args: list[str], message: str
) -> None:
    done = rechecker(settings, *args, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rechecker: error: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr


def test_invalid_settings_are_one_line(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings) | {"RECHECKER_CHECK_CONCURRENCY": "zero"}
    done = subprocess.run(
        [sys.executable, "-m", "rechecker", "cycle"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "rechecker: error: invalid settings: RECHECKER_CHECK_CONCURRENCY: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_check_prints_a_table_and_exits_1_when_a_domain_is_down(
    settings: Settings, targets: Targets, tmp_path: Path
) -> None:
    urls = targets.urls()
    done = rechecker(settings, "check", urls["ok.test"], urls["unavailable.test"], cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    header, ok, down = done.stdout.splitlines()
    assert header.split() == ["DOMAIN", "STATE", "CODE", "LATENCY", "ERROR"]
    assert ok.split()[:3] == ["ok.test", "UP", "200"]
    assert down.split()[:3] == ["unavailable.test", "DOWN", "503"]
    assert down.endswith("http_http_status: HTTP 503 Service Unavailable")


def test_check_json(settings: Settings, targets: Targets, tmp_path: Path) -> None:
    done = rechecker(settings, "check", "--json", targets.urls()["ok.test"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["domain"] == "ok.test"
    assert result["state"] == "UP"
    assert result["error_message"] == ""
    assert result["dns"]["addresses"] == ["127.0.0.1"]


def wait_for(url: str, ready: object, deadline_s: float = 60) -> httpx.Response:
    """Poll ``url`` until ``ready(response)`` holds; the server is another process."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if callable(ready) and ready(response):
                return response
            last = response.text[:300]
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready; last: {last}")


def test_all_serves_three_components_and_checks_the_inventory(
    settings: Settings, targets: Targets, tmp_path: Path
) -> None:
    ports = {"frontend_port": free_port(), "backend_port": free_port(), "core_port": free_port()}
    configured = settings.model_copy(update=ports)
    rows = inventory_rows(targets)
    use_inventory(configured, rows)
    process = subprocess.Popen(
        [sys.executable, "-m", "rechecker", "all"],
        env=environment(configured),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = "http://127.0.0.1"
        status = wait_for(
            f"{base}:{ports['frontend_port']}/api/status",
            lambda r: (
                r.status_code == 200
                and r.json()["counts"].get("pending", 1) == 0
                and len(r.json()["domains"]) == len(targets.urls())
            ),
        ).json()
        assert {d["domain"] for d in status["domains"] if d["state"] == "UP"} == {
            "ok.test",
            "moved.test",
        }
        page = httpx.get(f"{base}:{ports['frontend_port']}/", timeout=5)
        assert page.status_code == 200 and "unavailable.test" in page.text
        for port in (ports["backend_port"], ports["core_port"]):
            assert httpx.get(f"{base}:{port}/healthz", timeout=5).json()["status"] == "ok"
        core_status = httpx.get(f"{base}:{ports['core_port']}/status", timeout=5).json()
        assert len(core_status) == len(targets.urls())
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
