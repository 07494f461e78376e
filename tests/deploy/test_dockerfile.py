"""The Dockerfile and .dockerignore, read as files (no container engine runs here): one
multi-stage image installed from uv.lock, a fixed non-root user, the settings a container
needs, and a HEALTHCHECK whose script is run here against loopback servers."""

from __future__ import annotations

import ast
import re
import shlex
import socket
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rechecker.cli import app as cli
from rechecker.config import Settings
from tests.deploy.tools import DOCKERFILE, REPO, run

COMPONENTS = ("all", "backend", "core", "frontend")
HEALTHCHECK_SCRIPT = "/usr/local/bin/rechecker-healthcheck"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int
    heredoc: str | None = None


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions: continuations joined, heredocs kept, stages numbered from 0."""
    instructions: list[Instruction] = []
    lines = iter(text.splitlines())
    stage = -1
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            following = next(lines)
            if following.lstrip().startswith("#"):
                continue
            line = line[:-1] + " " + following.strip()
        keyword, _, args = line.strip().partition(" ")
        heredoc = None
        opened = re.search(r"<<-?'?\"?([A-Za-z_]+)'?\"?", args)
        if opened:
            body: list[str] = []
            for following in lines:
                if following == opened.group(1):
                    break
                body.append(following)
            heredoc = "\n".join(body) + "\n"
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage, heredoc))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def last_stage(instructions: list[Instruction]) -> list[Instruction]:
    final = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == final]


def stage_named(instructions: list[Instruction], name: str) -> list[Instruction]:
    (index,) = [
        i.stage
        for i in instructions
        if i.keyword == "FROM" and i.args.lower().endswith(f" as {name}")
    ]
    return [i for i in instructions if i.stage == index]


def exec_form(args: str) -> list[str]:
    """`["a", "b"]` as a list; a Dockerfile's JSON form."""
    found = re.search(r"\[.*\]", args)
    assert found is not None, f"not in exec (JSON) form: {args}"
    return list(ast.literal_eval(found.group(0)))


def settings_of(instructions: list[Instruction], keyword: str) -> dict[str, str]:
    """KEY=VALUE pairs of the ENV (or ARG) instructions."""
    pairs: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == keyword:
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                pairs[key] = value
    return pairs


# --- the build ------------------------------------------------------------------------------
def test_one_multi_stage_image_on_python_slim(dockerfile: list[Instruction]) -> None:
    froms = [i for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    arguments = settings_of([i for i in dockerfile if i.stage == -1], "ARG")
    for instruction in froms:
        image = instruction.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], image)
        assert image.startswith("python:3.11-slim"), image
    runtime = last_stage(dockerfile)
    assert any(i.keyword == "COPY" and "--from=builder" in i.args for i in runtime)


def test_the_builder_installs_the_locked_environment_with_uv(
    dockerfile: list[Instruction],
) -> None:
    builder = stage_named(dockerfile, "builder")
    runs = [i.args for i in builder if i.keyword == "RUN"]
    assert any("uv sync --frozen --no-dev" in command for command in runs)
    assert not any("--no-dev" not in command for command in runs if "uv sync" in command)
    # The same uv as the Makefile's.
    makefile = (REPO / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)", makefile, re.MULTILINE)
    assert pinned is not None
    assert settings_of(builder, "ARG")["UV_VERSION"] == pinned.group(1)
    # Nothing is installed in the runtime stage: it stays the slim base plus the venv.
    assert not any(
        i.keyword == "RUN" and re.search(r"\b(pip|uv|apt-get)\b", i.args)
        for i in last_stage(dockerfile)
    )


def test_the_runtime_runs_as_a_fixed_non_root_user(dockerfile: list[Instruction]) -> None:
    runtime = last_stage(dockerfile)
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid == "10001", "numeric, so Kubernetes' runAsNonRoot can verify it"
    assert gid == "10001"
    created = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "--uid 10001" in created and "--gid 10001" in created


def test_the_runtime_listens_everywhere_keeps_data_in_a_volume_and_exposes_the_ports(
    dockerfile: list[Instruction],
) -> None:
    runtime = last_stage(dockerfile)
    env = settings_of(runtime, "ENV")
    assert env["RECHECKER_HOST"] == "0.0.0.0"
    assert env["RECHECKER_DATA_DIR"] == "/data"
    volumes = [path for i in runtime if i.keyword == "VOLUME" for path in exec_form(i.args)]
    assert volumes == ["/data"]
    exposed = {int(port) for i in runtime if i.keyword == "EXPOSE" for port in i.args.split()}
    defaults = Settings(_env_file=None)
    assert exposed == {defaults.frontend_port, defaults.backend_port, defaults.core_port}


def test_the_command_picks_the_component(dockerfile: list[Instruction]) -> None:
    runtime = last_stage(dockerfile)
    (entrypoint,) = [exec_form(i.args) for i in runtime if i.keyword == "ENTRYPOINT"]
    (command,) = [exec_form(i.args) for i in runtime if i.keyword == "CMD"]
    assert entrypoint == ["rechecker"]
    assert command == ["all"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "rechecker" in scripts
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands
    }
    assert set(COMPONENTS) <= commands


# --- the HEALTHCHECK ------------------------------------------------------------------------
def healthcheck_script(instructions: list[Instruction]) -> str:
    (copied,) = [
        i for i in last_stage(instructions) if i.keyword == "COPY" and HEALTHCHECK_SCRIPT in i.args
    ]
    assert copied.heredoc is not None
    return copied.heredoc


def test_the_healthcheck_runs_a_stdlib_only_script(dockerfile: list[Instruction]) -> None:
    (healthcheck,) = [i for i in last_stage(dockerfile) if i.keyword == "HEALTHCHECK"]
    command = exec_form(healthcheck.args.partition("CMD")[2])
    assert command == [Path(HEALTHCHECK_SCRIPT).name], "on PATH, from the COPY below"
    assert "--chmod=0755" in next(
        i.args for i in last_stage(dockerfile) if HEALTHCHECK_SCRIPT in i.args
    )
    tree = ast.parse(healthcheck_script(dockerfile))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


class _Answer(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Failing(_Answer):
    status = 503


@dataclass(frozen=True)
class Ports:
    healthy: int
    failing: int
    closed: int


@pytest.fixture(scope="module")
def ports() -> Iterator[Ports]:
    """A /healthz that answers 200, one that answers 503, and a port nobody listens on."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (_Answer, _Failing)]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        yield Ports(
            servers[0].server_address[1], servers[1].server_address[1], closed.getsockname()[1]
        )
    finally:
        closed.close()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    ("pid1", "port_env", "healthy"),
    [
        # RECHECKER_HEALTH_PORT wins.
        ("rechecker core", {"RECHECKER_HEALTH_PORT": "healthy"}, True),
        ("rechecker core", {"RECHECKER_HEALTH_PORT": "failing"}, False),
        # Else the component on PID 1's command line, on its port setting.
        ("rechecker core", {"RECHECKER_CORE_PORT": "healthy"}, True),
        ("rechecker core", {"RECHECKER_CORE_PORT": "failing"}, False),
        ("rechecker core", {"RECHECKER_CORE_PORT": "closed"}, False),
        ("rechecker backend", {"RECHECKER_BACKEND_PORT": "healthy"}, True),
        # `docker run --init` puts docker-init first.
        ("/sbin/docker-init -- rechecker frontend", {"RECHECKER_FRONTEND_PORT": "healthy"}, True),
        # `all` asks all three.
        (
            "rechecker all",
            {
                "RECHECKER_FRONTEND_PORT": "healthy",
                "RECHECKER_BACKEND_PORT": "healthy",
                "RECHECKER_CORE_PORT": "healthy",
            },
            True,
        ),
        (
            "rechecker all",
            {
                "RECHECKER_FRONTEND_PORT": "healthy",
                "RECHECKER_BACKEND_PORT": "failing",
                "RECHECKER_CORE_PORT": "healthy",
            },
            False,
        ),
        # A one-shot command serves nothing.
        ("rechecker sync", {}, True),
    ],
)
def test_the_healthcheck_asks_the_healthz_of_the_component_it_runs(
    pid1: str,
    port_env: dict[str, str],
    healthy: bool,
    dockerfile: list[Instruction],
    ports: Ports,
    tmp_path: Path,
) -> None:
    script = tmp_path / "rechecker-healthcheck"
    script.write_text(healthcheck_script(dockerfile))
    # PID 1 as the kernel shows it: the console script runs under the venv's Python.
    words = [
        "/opt/rechecker/venv/bin/rechecker" if word == "rechecker" else word
        for word in pid1.split()
    ]
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(
        b"\0".join(w.encode() for w in ["/opt/rechecker/venv/bin/python", *words]) + b"\0"
    )
    env = {"PATH": "/usr/bin:/bin", "RECHECKER_HOST": "0.0.0.0"}
    for variable, which in port_env.items():
        env[variable] = str(getattr(ports, which))
    done = run([sys.executable, script, cmdline], env=env)
    assert (done.returncode == 0) is healthy, done.stdout + done.stderr


# --- the build context ----------------------------------------------------------------------
def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) of each .dockerignore line, in order; the last match wins."""
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, token if token.startswith("[") else re.escape(token)
            )
        rules.append((negated, re.compile(regex)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern that matches a path or one of its parent folders applies."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "data/rechecker.sqlite3",
        ".mypy_cache/3.11/cache.json",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/content",
        "tests/unit/test_config.py",
        "artifacts/junit.xml",
        "bench/results/run.json",
        ".env",
        "ymls/mysql/.env",
        "src/rechecker/__pycache__/cli.cpython-311.pyc",
        "src/rechecker/.env",
        "src/data.sqlite3",
    ],
)
def test_the_build_context_leaves_out_what_the_image_must_not_hold(path: str) -> None:
    assert ignored(path, dockerignore_rules())


def test_the_build_context_holds_everything_the_dockerfile_copies(
    dockerfile: list[Instruction],
) -> None:
    rules = dockerignore_rules()
    sources = [
        word
        for i in dockerfile
        if i.keyword == "COPY" and "--from" not in i.args and i.heredoc is None
        for word in i.args.split()[:-1]
        if not word.startswith("--")
    ]
    assert {"pyproject.toml", "uv.lock", "README.md", "src"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source, rules), f"{source} is copied but left out of the context"
    for path in (REPO / "src").rglob("*"):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and "__pycache__" not in relative:
            assert not ignored(relative, rules), relative
