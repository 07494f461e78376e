"""Running the real ``rechecker`` command in a subprocess, configured by environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rechecker.config import Settings


def environment(settings: Settings) -> dict[str, str]:
    """The settings a test uses, as the RECHECKER_* variables a user would export."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECHECKER_")}
    env.update(
        {
            "RECHECKER_DATA_DIR": str(settings.data_dir),
            "RECHECKER_DNS_RESOLVERS": ",".join(settings.dns_resolvers),
            "RECHECKER_DNS_TIMEOUT": str(settings.dns_timeout),
            "RECHECKER_HTTP_TIMEOUT": str(settings.http_timeout),
            "RECHECKER_FRONTEND_PORT": str(settings.frontend_port),
            "RECHECKER_BACKEND_PORT": str(settings.backend_port),
            "RECHECKER_CORE_PORT": str(settings.core_port),
        }
    )
    return env


def rechecker(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rechecker", *args],
        env=environment(settings),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
