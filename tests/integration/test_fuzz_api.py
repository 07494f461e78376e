"""Fuzzing the backend and core APIs from their own OpenAPI schemas with schemathesis.

Each app runs under a real uvicorn on loopback with a SQLite store, and the core's probes ask
only the loopback test DNS server, so an on-demand check of a generated name never leaves the
machine (unknown names are NXDOMAIN there). Every response must be below 500 and match the
schema the app publishes for its status code. Examples are derandomized and bounded so CI
runs the same requests each time; the totals are written to the terminal for
docs/reliability.md.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from rechecker.backend.api import create_app as backend_app
from rechecker.config import Settings
from rechecker.core.api import create_app as core_app
from rechecker.models import Site
from rechecker.security.settings import ApiSettings
from rechecker.store import create_store
from tests.support.inventory import inventory_rows, use_inventory
from tests.support.targets import Targets
from tests.unit.test_domains_properties import idn_names, near_names

#: A write token for the fuzzer, so that every route is reached past authentication.
TOKEN = "fuzz-" + "0123456789abcdef" * 2
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: No 5xx; every status documented, and every body matching the schema of its status.
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


class Tally:
    """Requests made and 5xx seen, per app, reported when the module ends."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.server_errors: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def record(self, app: str, response: Response) -> None:
        self.requests[app] += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.server_errors[app] += 1

    def summary(self) -> str:
        apps = ", ".join(
            f"{app} {count} requests / {self.server_errors[app]} 5xx"
            for app, count in sorted(self.requests.items())
        )
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses.items()))
        return f"schemathesis: {apps}; statuses {statuses}"


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    found = Tally()
    yield found
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(found.summary())


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, lifespan and all; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def fuzz_settings(data_dir: Path, targets: Targets) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        dns_resolvers=[targets.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
        api=ApiSettings(write_tokens=[TOKEN], rate_limit_per_second=0),
    )


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory, targets: Targets) -> Iterator[str]:
    config = fuzz_settings(tmp_path_factory.mktemp("fuzz-backend"), targets)
    use_inventory(config, inventory_rows(targets))
    with serve(backend_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
def core_url(tmp_path_factory: pytest.TempPathFactory, targets: Targets) -> Iterator[str]:
    config = fuzz_settings(tmp_path_factory.mktemp("fuzz-core"), targets)
    anyio.run(seed_sites, config, targets)
    with serve(core_app(config)) as url:
        yield url


async def seed_sites(config: Settings, targets: Targets) -> None:
    """Monitored sites give the status and on-demand routes something to find."""
    store = create_store(config.resolved_store_url)
    await store.open()
    try:
        await store.add_sites([Site(domain=d, url=u) for d, u in targets.urls().items()])
    finally:
        await store.close()


def published_schema(create_app: Callable[[Settings], FastAPI]) -> BaseSchema:
    """The schema an app publishes at /openapi.json; building it starts nothing."""
    config = Settings(_env_file=None, api=ApiSettings(write_tokens=[TOKEN]))
    return schemathesis.openapi.from_dict(create_app(config).openapi())


backend = published_schema(backend_app)
core = published_schema(core_app)


@backend.parametrize()
@FUZZ
def test_backend_api_answers_every_request_within_its_schema(
    case: Case[Any], backend_url: str, tally: Tally
) -> None:
    response = case.call(base_url=backend_url, headers=AUTH)
    tally.record("backend", response)
    case.validate_response(response, checks=CHECKS, headers=AUTH)


@core.parametrize()
@FUZZ
def test_core_api_answers_every_request_within_its_schema(
    case: Case[Any], core_url: str, tally: Tally
) -> None:
    response = case.call(base_url=core_url, headers=AUTH)
    tally.record("core", response)
    case.validate_response(response, checks=CHECKS, headers=AUTH)


#: Monitored names that answer at once (no slow or silent target), in any case, with or
#: without the root's trailing dot: on-demand checks must find the monitored site.
monitored_spellings = st.builds(
    lambda name, flips, dot: (
        "".join(ch.upper() if flip else ch for ch, flip in zip(name, flips, strict=False)) + dot
    ),
    st.sampled_from(["ok.test", "moved.test", "unavailable.test", "nxdomain.test"]),
    st.lists(st.booleans(), min_size=16, max_size=16),
    st.sampled_from(["", "."]),
)
#: An empty name, a "/" (even encoded) or a dot segment leaves the route, and routing's 404
#: is not the operation's answer: such names are tested in test_hostile_input.
names = st.one_of(monitored_spellings, domains(), idn_names, near_names).filter(
    lambda name: "/" not in name and name not in ("", ".", "..")
)
CORE_ROUTES = [
    ("/dns/{domain}", "POST"),
    ("/http/{domain}", "POST"),
    ("/check/{domain}", "POST"),
    ("/status/{domain}", "GET"),
]


@FUZZ
@given(route=st.sampled_from(CORE_ROUTES), name=names)
def test_core_domain_routes_with_names_that_look_real(
    core_url: str, tally: Tally, route: tuple[str, str], name: str
) -> None:
    """Schemathesis's strings rarely make a valid name; these reach the probes and the store."""
    path, method = route
    case = core[path][method].Case(path_parameters={"domain": name})
    response = case.call(base_url=core_url, headers=AUTH)
    tally.record("core", response)
    case.validate_response(response, checks=CHECKS, headers=AUTH)


@FUZZ
@given(
    route=st.sampled_from([("/add_new", "targets"), ("/delete_old", "domains")]),
    values=st.lists(st.one_of(domains(), idn_names, near_names, st.text()), max_size=5),
)
def test_backend_lists_of_names_that_look_real(
    backend_url: str, tally: Tally, route: tuple[str, str], values: list[str]
) -> None:
    path, field = route
    body: dict[str, Any] = {field: values}
    case = backend[path]["POST"].Case(body=body, media_type="application/json")
    response = case.call(base_url=backend_url, headers=AUTH)
    tally.record("backend", response)
    case.validate_response(response, checks=CHECKS, headers=AUTH)
