"""The targets (knot, nginx) and the competitor (blackbox_exporter) as child processes.

Each runs in the foreground on loopback with its own throw-away directory, in a new session
(Ctrl-C reaches only the harness, which then stops them in order) and with a parent-death
signal, so even a harness killed with SIGKILL leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ZONE = "bench.test"
#: A second loopback address where knot also answers on port 53: Go's resolver (used by
#: blackbox_exporter) only speaks to port 53 of the nameservers in /etc/resolv.conf.
RESOLVER_ALIAS = "127.0.1.53"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

#: Binary -> Debian package that provides it.
PACKAGES = {
    "knotd": "knot",
    "nginx": "nginx-light",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "wrk": "wrk",
    "dnsperf": "dnsperf",
}
_SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or failed; the message says what to do."""


def site_name(index: int) -> str:
    return f"d{index}.{ZONE}"


# --------------------------------------------------------------------------------------
# Tools


def find_tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN])
    return shutil.which(name, path=path)


def ensure_tools(names: Iterable[str]) -> dict[str, str]:
    """Path of each tool; installs the missing ones with apt-get when running as root."""
    wanted = list(names)
    missing = [name for name in wanted if find_tool(name) is None]
    if missing:
        packages = sorted({PACKAGES[name] for name in missing})
        if os.geteuid() != 0 or find_tool("apt-get") is None:
            raise BenchError(
                f"missing {', '.join(missing)}; install them first "
                f"(Debian: apt-get install -y {' '.join(packages)})"
            )
        log.warning("installing %s with apt-get", " ".join(packages))
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(command, env=env, timeout=900, check=False)
            if done.returncode != 0:
                raise BenchError(f"{' '.join(command)} failed with exit code {done.returncode}")
    found: dict[str, str] = {}
    for name in wanted:
        path = find_tool(name)
        if path is None:
            raise BenchError(f"{name} still not found after installing {PACKAGES[name]}")
        found[name] = path
    return found


def tool_version(argv: list[str]) -> str:
    """First line a tool prints about its version (stdout or stderr), or ''."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0].strip() if lines else ""
    return ""


def free_port(udp_too: bool = False) -> int:
    """A loopback port free for TCP (and for UDP when asked) right now."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise BenchError("no free loopback port found")


def can_use_resolver_alias() -> bool:
    """Root (for port 53 and the mount namespace), unshare, and port 53 free on the alias."""
    if os.geteuid() != 0 or find_tool("unshare") is None:
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((RESOLVER_ALIAS, 53))
        with socket.socket() as tcp:
            tcp.bind((RESOLVER_ALIAS, 53))
    except OSError:
        return False
    done = subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


# --------------------------------------------------------------------------------------
# Child processes

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the harness dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class Service:
    """One server process with a directory of its own under the run's work directory."""

    name = "service"
    stop_signal = signal.SIGTERM

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "output.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        log.info("%s: %s", self.name, " ".join(argv))
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=die_with_parent,  # only short-lived threads, all joined by now
            )

    def _wait_ready(self, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception as error:
                last = error
            time.sleep(0.1)
        raise BenchError(
            f"{self.name} not ready in {STARTUP_TIMEOUT:.0f}s ({last!r}):\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(self.stop_signal)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _http_ok(url: str, expect: bytes = b"") -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
        return bool(response.status == 200 and expect in response.read())


class Knot(Service):
    """knotd authoritative for ``bench.test`` with ``d0 .. d{names-1} A 127.0.0.1``."""

    name = "knot"

    def __init__(self, workdir: Path, tool: str, names: int, alias: bool) -> None:
        super().__init__(workdir)
        self.tool = tool
        self.names = names
        self.alias = alias
        self.port = free_port(udp_too=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _write_zone(self, path: Path) -> None:
        with path.open("w") as zone:
            zone.write(
                f"$ORIGIN {ZONE}.\n$TTL 300\n"
                f"@ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 300\n"
                "@ NS ns\nns A 127.0.0.1\n"
            )
            for start in range(0, self.names, 10_000):
                stop = min(start + 10_000, self.names)
                zone.write("".join(f"d{i} A 127.0.0.1\n" for i in range(start, stop)))

    def start(self) -> None:
        zones, run, db = self.dir / "zones", self.dir / "run", self.dir / "db"
        for folder in (zones, run, db):
            folder.mkdir(exist_ok=True)
        self._write_zone(zones / f"{ZONE}.zone")
        listen = [f"{LOOPBACK}@{self.port}"]
        if self.alias:
            listen.append(f"{RESOLVER_ALIAS}@53")
        config = self.dir / "knot.conf"
        config.write_text(
            f"""server:
    rundir: "{run}"
    pidfile: "{run}/knot.pid"
    listen: [ {", ".join(listen)} ]
control:
    listen: "{run}/knot.sock"
database:
    storage: "{db}"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{zones}"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
    semantic-checks: off
zone:
  - domain: {ZONE}.
"""
        )
        self._spawn([self.tool, "-c", str(config)])
        last = site_name(self.names - 1)
        self._wait_ready(lambda: _dns_answers(LOOPBACK, self.port, last))
        if self.alias:
            self._wait_ready(lambda: _dns_answers(RESOLVER_ALIAS, 53, last))


def _dns_answers(host: str, port: int, name: str) -> bool:
    response = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=0.5)
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


class Nginx(Service):
    """nginx answering ``200 ok`` to any Host on a loopback port, no access log."""

    name = "nginx"

    def __init__(self, workdir: Path, tool: str) -> None:
        super().__init__(workdir)
        self.tool = tool
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def start(self) -> None:
        temp = self.dir / "tmp"
        temp.mkdir(exist_ok=True)
        config = self.dir / "nginx.conf"
        config.write_text(
            f"""worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
worker_rlimit_nofile 65536;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    keepalive_requests 1000000;
    server {{
        listen {LOOPBACK}:{self.port} default_server backlog=4096;
        server_name _;
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""
        )
        self._spawn(
            [
                self.tool,
                "-p",
                str(self.dir),
                "-c",
                str(config),
                "-e",
                str(self.dir / "error.log"),
                "-g",
                "daemon off;",
            ]
        )
        self._wait_ready(lambda: _http_ok(self.url, b"ok"))


class Blackbox(Service):
    """prometheus-blackbox-exporter with ``http_2xx`` and ``dns_a`` modules.

    With ``resolv_alias`` it runs in a private mount namespace whose /etc/resolv.conf names
    knot's port-53 alias, so ``http_2xx`` resolves the bench names through the same knot as
    Rechecker (Go's resolver: A and AAAA per probe, no cache). Without it the HTTP targets
    are IP URLs and blackbox does no DNS.
    """

    name = "blackbox"

    def __init__(self, workdir: Path, tool: str, knot: Knot, resolv_alias: bool) -> None:
        super().__init__(workdir)
        self.tool = tool
        self.knot = knot
        self.resolv_alias = resolv_alias
        self.port = free_port()

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        config = self.dir / "blackbox.yml"
        config.write_text(
            f"""modules:
  http_2xx:
    prober: http
    timeout: 10s
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      query_name: "{site_name(0)}"
      query_type: "A"
      transport_protocol: "udp"
      preferred_ip_protocol: "ip4"
      ip_protocol_fallback: false
"""
        )
        argv = [
            self.tool,
            f"--config.file={config}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--log.level=warn",
        ]
        if self.resolv_alias:
            resolv = self.dir / "resolv.conf"
            resolv.write_text(f"nameserver {RESOLVER_ALIAS}\noptions timeout:2 attempts:1\n")
            script = 'mount --bind "$1" /etc/resolv.conf || exit 97; shift; exec "$@"'
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                str(resolv),
                *argv,
            ]
        self._spawn(argv)
        self._wait_ready(lambda: _http_ok(f"{self.base_url}/-/healthy"))

    def http_target(self, index: int, nginx: Nginx) -> str:
        if self.resolv_alias:
            return f"http://{site_name(index)}:{nginx.port}/"
        return nginx.url

    @property
    def dns_target(self) -> str:
        return self.knot.address
