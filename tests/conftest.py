"""Fixtures shared by every test: the loopback targets and settings that point at them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rechecker.config import Settings
from tests.support.targets import LoopThread, Targets, start_targets

pytest_plugins = ["tests.support.databases"]


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """DNS, HTTP and HTTPS servers on loopback, alive for the whole session."""
    thread = LoopThread()
    found, stop = thread.run(start_targets(tmp_path_factory.mktemp("targets")))
    try:
        yield found
    finally:
        thread.run(stop())
        thread.close()


@pytest.fixture
def settings(tmp_path: Path, targets: Targets) -> Settings:
    """Settings for one test: its own data dir, the test resolver, short timeouts, no schedulers."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        dns_resolvers=[targets.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
    )


_skipped_in_ci: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """In CI a skip hides a missing server; count it so the run fails."""
    if report.skipped and os.environ.get("CI") == "true":
        _skipped_in_ci.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_in_ci:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CI=true: {len(_skipped_in_ci)} skipped tests count as failures: "
                + ", ".join(_skipped_in_ci[:10]),
                red=True,
            )
