# syntax=docker/dockerfile:1.7
# One image for every component; the command picks which one runs:
#
#   docker build -t rechecker:local .
#   docker run --rm -p 127.0.0.1:8080-8082:8080-8082 rechecker:local all    # everything, SQLite in /data
#   docker run --rm rechecker:local backend | core | frontend               # one component each
#   docker run --rm rechecker:local check example.com                       # any other CLI command
#
# Settings are RECHECKER_* environment variables (docs/configuration.md); docs/deploy.md has
# the compose files and the Kubernetes manifests that use this image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the locked environment, installed by uv from uv.lock ----------------------------
FROM ${PYTHON_IMAGE} AS builder

# The uv the Makefile pins (UV_VERSION), from PyPI like everything else.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# The environment goes to the path it keeps in the runtime stage (a venv is not relocatable),
# byte-compiled (the runtime's root filesystem is read-only), on the image's own Python.
ENV UV_PROJECT_ENVIRONMENT=/opt/rechecker/venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src
# Dependencies first: this layer is rebuilt only when uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# Then the project, as a regular (not editable) install: the runtime needs no /src.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the Python base, the environment, a non-root user -------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="rechecker" \
      org.opencontainers.image.description="DNS and HTTP health of a fleet of domains, kept in sync with an inventory." \
      org.opencontainers.image.licenses="MIT"

# A fixed UID/GID, so that Kubernetes (runAsUser) and volume owners can name it.
RUN groupadd --system --gid 10001 rechecker \
    && useradd --system --uid 10001 --gid rechecker --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin rechecker \
    && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=builder /opt/rechecker/venv /opt/rechecker/venv

# The HEALTHCHECK. One image serves three components on three ports, so it asks the /healthz
# of the component this container runs: RECHECKER_HEALTH_PORT when set (comma-separated
# ports), else the component named on PID 1's command line (`rechecker core`, also behind
# `docker run --init`) and that component's port setting; `all` checks all three. A one-shot
# command (sync, cycle, check) serves nothing and counts as healthy. Python stdlib only.
COPY --chmod=0755 <<'EOF' /usr/local/bin/rechecker-healthcheck
#!/usr/local/bin/python3
"""Exit 0 when the /healthz of every server this container runs answers 200, else 1."""

import os
import sys
import urllib.error
import urllib.request

PORT_SETTINGS = {
    "frontend": ("RECHECKER_FRONTEND_PORT", 8080),
    "backend": ("RECHECKER_BACKEND_PORT", 8081),
    "core": ("RECHECKER_CORE_PORT", 8082),
}


def port_of(component):
    variable, default = PORT_SETTINGS[component]
    return int(os.environ.get(variable) or default)


def command_of_pid1(path):
    try:
        with open(path, "rb") as handle:
            args = handle.read().split(b"\0")
    except OSError:
        return None
    names = [arg.decode("utf-8", "replace") for arg in args if arg]
    for index, arg in enumerate(names[:-1]):
        if os.path.basename(arg) == "rechecker":
            return names[index + 1]
    return names[0] if names else None


def ports(cmdline_path):
    explicit = os.environ.get("RECHECKER_HEALTH_PORT", "").strip()
    if explicit:
        return [int(part) for part in explicit.split(",") if part.strip()]
    command = command_of_pid1(cmdline_path)
    if command == "all":
        return [port_of(component) for component in PORT_SETTINGS]
    if command in PORT_SETTINGS:
        return [port_of(command)]
    return []


def main(argv):
    host = os.environ.get("RECHECKER_HOST", "").strip()
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    selected = ports(argv[1] if len(argv) > 1 else "/proc/1/cmdline")
    if not selected:
        print("no rechecker server in this container: nothing to check")
        return 0
    healthy = True
    for port in selected:
        url = f"http://{host}:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=4) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            print(f"{url}: {exc}")
            healthy = False
            continue
        print(f"{url}: {status}")
        healthy = healthy and status == 200
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
EOF

ENV PATH=/opt/rechecker/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECHECKER_HOST=0.0.0.0 \
    RECHECKER_DATA_DIR=/data

# Settings also come from a .env file in the working directory: this one is root's and empty.
WORKDIR /opt/rechecker
# The embedded SQLite store and sample inventory (`rechecker all` without database URLs).
VOLUME ["/data"]
# frontend (dashboard), backend API, core API
EXPOSE 8080 8081 8082

USER 10001:10001

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["rechecker-healthcheck"]

ENTRYPOINT ["rechecker"]
CMD ["all"]
