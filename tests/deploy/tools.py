"""What the deployment tests share: the repository's paths, the external tools, YAML.

The tools (kustomize, kubernetes-validate, docker-compose) come from
``scripts/install-deploy-tools.sh``, which ``make servers`` runs: pinned versions in a cache
directory first, then whatever is on ``PATH``. A missing tool skips the test on a laptop and
fails it in CI (``CI=true``), where nothing may skip for a missing tool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
YMLS = REPO / "ymls"
DOCKERFILE = REPO / "Dockerfile"
INSTALL_SCRIPT = REPO / "scripts" / "install-deploy-tools.sh"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rechecker"
INSTALL_HINT = "run `bash scripts/install-deploy-tools.sh` (`make servers` does)"

#: One object of a rendered manifest or of a compose file.
Doc = dict[str, Any]


def missing(reason: str) -> NoReturn:
    """Skip the current test for a missing tool; in CI, fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so a missing tool is an error: {reason}", pytrace=False)
    pytest.skip(reason)


def pinned(variable: str) -> str:
    """A version the install script pins (``KUSTOMIZE_VERSION="v5.7.1"``): one source of truth."""
    found = re.search(rf'^{variable}="([^"]+)"', INSTALL_SCRIPT.read_text(), re.MULTILINE)
    assert found is not None, f"{INSTALL_SCRIPT.name} pins no {variable}"
    return found.group(1)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def require_tool(name: str, cached: Sequence[Path] = ()) -> Path:
    """The tool ``name``: the install script's cached copy first, else the one on ``PATH``."""
    for path in cached:
        if _executable(path):
            return path
    found = shutil.which(name)
    if found is None:
        places = "".join(f" nor at {path}" for path in cached)
        missing(f"{name} not found on PATH{places}; {INSTALL_HINT}")
    return Path(found)


def kustomize() -> Path:
    return require_tool("kustomize", [CACHE_ROOT / "bin" / "kustomize"])


def kubernetes_validate() -> Path:
    version = pinned("KUBERNETES_VALIDATE_VERSION")
    cached = CACHE_ROOT / f"kubernetes-validate-{version}" / "bin" / "kubernetes-validate"
    return require_tool("kubernetes-validate", [cached])


def docker_compose() -> Path:
    return require_tool("docker-compose")


def run(command: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool to the end, output captured as text; the caller checks the outcome."""
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        **kwargs,
    )


def load_yaml(text: str) -> Any:
    return yaml.safe_load(text)


def load_documents(text: str) -> list[Doc]:
    """Every object of a multi-document YAML stream, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines, as compose and kustomize read them; comments and blanks skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def strings(value: Any) -> Iterator[str]:
    """Every string inside a YAML value, keys included, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


#: ``scheme://user:password@host``: the userinfo of a URL.
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://([^/\s:@]+):([^@\s]+)@", re.IGNORECASE)
