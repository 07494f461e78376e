"""Real ``rechecker`` processes and a target that counts its checks, for the fault tests.

A fault test needs to know, from outside, every check that happened: the target counts the
requests it receives per Host, so "no result lost, none written twice" becomes "history holds
exactly one row per request the target saw".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from rechecker.models import CheckResult, Site
from rechecker.store import Store
from tests.support.dns_server import Answer, DnsServer
from tests.support.stores import on_store
from tests.support.targets import LoopThread, free_port

#: How long a started component may take to answer /healthz.
START_TIMEOUT = 60.0


@dataclass
class CountingTarget:
    """An HTTP server that answers 200 after ``delay`` seconds and counts requests per host."""

    delay: float
    port: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    #: Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    most_in_flight: int = 0

    async def start(self) -> Callable[[], Coroutine[Any, Any, None]]:
        async def handle(request: web.Request) -> web.Response:
            self.hits[request.host.split(":")[0]] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            return web.Response(text="counted")

        app = web.Application()
        app.router.add_get("/", handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        return runner.cleanup


@dataclass
class World:
    """A nameserver that knows the sites and the counting target they point at."""

    resolver: str
    target: CountingTarget
    domains: list[str]

    def sites(self) -> list[Site]:
        return [
            Site(domain=domain, url=f"http://{domain}:{self.target.port}/")
            for domain in self.domains
        ]


@contextmanager
def world(count: int, delay: float, zone: str) -> Iterator[World]:
    """``count`` sites ``sNNN.ZONE`` at 127.0.0.1, served by a counting target."""
    thread = LoopThread()
    domains = [f"s{n:03d}.{zone}" for n in range(count)]
    nameserver = DnsServer({domain: Answer(a=["127.0.0.1"]) for domain in domains})
    target = CountingTarget(delay)
    thread.run(nameserver.start())
    stop_target = thread.run(target.start())
    try:
        yield World(f"127.0.0.1:{nameserver.port}", target, domains)
    finally:
        thread.run(stop_target())
        thread.run(nameserver.stop())
        thread.close()


def history_of(url: str, domains: list[str]) -> dict[str, list[CheckResult]]:
    async def read(store: Store) -> dict[str, list[CheckResult]]:
        return {domain: await store.history(domain, limit=1000) for domain in domains}

    return on_store(url, read)


@dataclass
class Component:
    """One ``rechecker`` subprocess (``core``, ``backend``…) and where it answers."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 15.0) -> httpx.Response:
        return httpx.get(self.url(path), timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if self.get("/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no /healthz within {START_TIMEOUT}s:\n{self.log_tail()}")

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics."""
        text = self.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise AssertionError(f"{name} {labels} not on /metrics")

    def terminate(self, timeout: float = 60.0) -> int:
        if self.alive:
            self.process.terminate()
        return self.process.wait(timeout)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start(command: str, workdir: Path, env: dict[str, str]) -> Component:
    """``rechecker COMMAND`` with only the given RECHECKER_* settings, logging to a file."""
    port = free_port()
    port_setting = {"core": "RECHECKER_CORE_PORT", "backend": "RECHECKER_BACKEND_PORT"}[command]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECHECKER_")}
    environment |= {"RECHECKER_DATA_DIR": str(workdir), port_setting: str(port), **env}
    log = workdir / f"{command}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rechecker", command],
            env=environment,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Component(process, port, log)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)
