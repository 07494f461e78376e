"""Real database servers on loopback for the tests: MariaDB, PostgreSQL and FerretDB.

Each server runs as a child process of the test run, on 127.0.0.1 and a free port, with a
throw-away data directory, so the tests exercise the real drivers and real SQL/wire
protocols instead of a fake. ``scripts/install-test-servers.sh`` (run by ``make test``)
installs the binaries; this module only finds and runs them.

Every server offers the same small API: ``start()``, ``stop()`` (graceful, waits for the
exit), ``restart()`` (same port and data, for outage tests), ``kill()`` (a crash),
``url(database)`` and ``create_database(name)``. Servers are stopped and their directories
removed by ``close()``, which the fixtures call on teardown and an ``atexit`` hook calls for
anything left, so no server outlives pytest.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from glob import glob
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from pymongo import MongoClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
#: How long a server may take to accept queries before start() gives up.
STARTUP_TIMEOUT = 60.0
#: How long a graceful stop may take before the process is killed.
STOP_TIMEOUT = 30.0
FERRETDB_VERSION = "v1.24.2"
#: Overrides where the FerretDB binary is looked up.
FERRETDB_ENV = "RECHECKER_FERRETDB_BIN"
INSTALL_HINT = "run `bash scripts/install-test-servers.sh` (as root it installs what is missing)"

_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server failed to initialise, start or answer; the message carries its log tail."""


# --------------------------------------------------------------------------------------
# Finding binaries


def _which(name: str, extra_dirs: Iterable[str] = ()) -> Path | None:
    """``shutil.which`` that also looks in sbin directories, which non-root PATHs often lack."""
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *extra_dirs])
    found = shutil.which(name, path=path)
    return Path(found) if found else None


def find_mariadbd() -> Path | None:
    return _which("mariadbd", ["/usr/sbin", "/usr/local/sbin"])


def find_mariadb_install_db() -> Path | None:
    return _which("mariadb-install-db", ["/usr/bin", "/usr/local/bin"])


def find_postgres_bindir() -> Path | None:
    """Debian keeps ``initdb`` and ``postgres`` in /usr/lib/postgresql/<major>/bin, off PATH.

    The newest major version wins; a PATH-installed PostgreSQL (another distribution, a
    laptop) is the fallback.
    """

    def major(bindir: str) -> int:
        version = Path(bindir).parent.name
        return int(version) if version.isdigit() else -1

    candidates = sorted(glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)
    on_path = _which("initdb")
    if on_path is not None:
        candidates.append(str(on_path.parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return bindir
    return None


def ferretdb_cache_path() -> Path:
    """Where ``scripts/install-test-servers.sh`` caches the FerretDB it builds."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rechecker" / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def find_ferretdb() -> Path | None:
    """``$RECHECKER_FERRETDB_BIN`` if set, else the install script's cache, else PATH."""
    override = os.environ.get(FERRETDB_ENV)
    if override:
        return Path(override) if os.access(override, os.X_OK) else None
    cached = ferretdb_cache_path()
    if os.access(cached, os.X_OK):
        return cached
    return _which("ferretdb")


# --------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    """A loopback port nothing listens on right now (bound, read and released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    The servers are driven from sync fixtures and from async tests alike; a fresh loop in a
    worker thread works in both cases and never touches the test's own loop.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-server") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


async def _execute_sql(url: str, statements: Iterable[str]) -> None:
    """Run statements in autocommit mode (CREATE DATABASE refuses a transaction)."""
    engine = create_async_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5} if url.startswith("mysql") else {"timeout": 5},
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _check_database_name(name: str) -> str:
    """Names are spliced into DDL, so only plain identifiers valid on every server pass."""
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name must match {_DATABASE_NAME.pattern}: {name!r}")
    return name


_OWNER_FILE = "owner.pid"
_SERVER_PID_FILE = "server.pid"


def _pid_alive(path: Path) -> bool:
    try:
        os.kill(int(path.read_text()), 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _sweep_abandoned(name: str) -> None:
    """Remove directories left by test runs that died without cleaning up (SIGKILL).

    A directory is abandoned when both the test process that made it and its server are
    gone; directories of runs still alive, here or in parallel, are left alone.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"rechecker-{name}-*"):
        owner = candidate / _OWNER_FILE
        if not owner.is_file() or _pid_alive(owner) or _pid_alive(candidate / _SERVER_PID_FILE):
            continue
        shutil.rmtree(candidate, ignore_errors=True)


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM the server if pytest dies without running atexit (SIGKILL).

    Runs in the child between fork and exec, after the uid switch (which would reset it).
    ``prctl`` is looked up beforehand: loading libraries after a fork can deadlock.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


# --------------------------------------------------------------------------------------
# The common server process


class DatabaseServer(ABC):
    """One server process on loopback with its own data directory.

    ``base_dir`` holds ``data/`` (the server's data), ``server.log`` (stdout and stderr of
    every command run for this server, across restarts) and sockets or state files.
    """

    #: Short name used for directories, logs and messages.
    name: ClassVar[str]
    #: The signal that asks this server for a graceful (but not client-waiting) shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, base_dir: Path | None = None) -> None:
        self._owns_base_dir = base_dir is None
        if base_dir is None:
            _sweep_abandoned(self.name)
            # Under the system temp dir, not pytest's tmp_path: that one is 0700 for root,
            # which a server dropped to another user (PostgreSQL) could not enter.
            base_dir = Path(tempfile.mkdtemp(prefix=f"rechecker-{self.name}-"))
            (base_dir / _OWNER_FILE).write_text(str(os.getpid()))
        base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "server.log"
        self.host = LOOPBACK
        self.port = free_port()
        self.started_seconds: float | None = None
        self._initialized = False
        self._process: subprocess.Popen[bytes] | None = None
        _ALL_SERVERS.append(self)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} {self.base_dir}>"

    # -- what each server provides --------------------------------------------------

    @classmethod
    @abstractmethod
    def unavailable(cls) -> str | None:
        """Why this server cannot run on this machine, or None when it can."""

    @abstractmethod
    def url(self, database: str) -> str:
        """The SQLAlchemy/MongoDB URL of ``database`` on this server."""

    @abstractmethod
    def _initialize(self) -> None:
        """Create the data directory, once per server object."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abstractmethod
    def _check_ready(self) -> None:
        """Raise unless the server answers a real query."""

    @abstractmethod
    def _create_database(self, name: str) -> None:
        """Create an empty database ``name``; fail if it exists."""

    def _run_as(self) -> str | None:
        """The user to run commands as, when it must not be the current one."""
        return None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def start(self) -> None:
        """Start the server (initialising its data once) and wait until it answers queries."""
        if self.running:
            return
        reason = self.unavailable()
        if reason is not None:
            raise ServerError(reason)
        began = time.monotonic()
        if not self._initialized:
            self._initialize()
            self._initialized = True
        self._process = self._spawn(self._command())
        self._wait_ready()
        self.started_seconds = time.monotonic() - began

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the server down gracefully and wait for it; kill it if it takes too long."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._log(f"graceful stop took over {timeout}s; killing")
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Kill the server without letting it shut down: a crash, for recovery tests."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def close(self, remove_files: bool = True) -> None:
        """Stop the server and remove its directory; the object is unusable afterwards.

        ``remove_files=False`` keeps the directory, e.g. the log of a server that failed to
        start; the next run sweeps it away.
        """
        self.stop()
        if self._owns_base_dir and remove_files:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _ALL_SERVERS.remove(self)

    def __enter__(self) -> DatabaseServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._create_database(_check_database_name(name))
        return self.url(name)

    def log_tail(self, lines: int = 40) -> str:
        try:
            content = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(content.splitlines()[-lines:])

    # -- plumbing --------------------------------------------------------------------

    def _log(self, message: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {message}\n")

    def _popen_kwargs(self) -> dict[str, Any]:
        user = self._run_as()
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stderr": subprocess.STDOUT,
            "cwd": self.base_dir,
        }
        if user is not None:
            kwargs.update(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        return kwargs

    def _run(self, command: list[str], what: str) -> None:
        """Run a one-off command (data directory set-up), its output going to the log."""
        self._log(f"{what}: {' '.join(command)}")
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                command, stdout=log, timeout=STARTUP_TIMEOUT, check=False, **self._popen_kwargs()
            )
        if result.returncode != 0:
            raise ServerError(
                f"{self.name}: {what} failed with exit code {result.returncode}; "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        self._log(f"start on {self.host}:{self.port}: {' '.join(command)}")
        # A new session keeps the terminal's Ctrl-C away from the server, so pytest can
        # still stop it gracefully. Dying with the parent only works when the starting
        # thread lives as long as pytest (the kernel ties it to the thread), hence main only.
        on_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if on_main_thread and _prctl else None,
                **self._popen_kwargs(),
            )
        (self.base_dir / _SERVER_PID_FILE).write_text(str(process.pid))
        return process

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                self._process = None
                raise ServerError(
                    f"{self.name} exited with code {returncode} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                # A bare TCP connect first: cheap, and it spares drivers that back off after
                # a refused connection (pymongo waits 0.5 s) from trying too early.
                socket.create_connection((self.host, self.port), timeout=1).close()
                self._check_ready()
            except Exception as error:
                last_error = error
            else:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.name} did not answer on {self.host}:{self.port} within "
                    f"{STARTUP_TIMEOUT:.0f}s (last error: {last_error!r}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)


# --------------------------------------------------------------------------------------
# The servers


class MariaDBServer(DatabaseServer):
    """MariaDB (Debian ``mariadb-server``), root without password over TCP.

    The grant tables are real (no ``--skip-grant-tables``), so users and passwords can be
    created and checked like in production.
    """

    name = "mariadb"

    @classmethod
    def unavailable(cls) -> str | None:
        missing = [
            tool
            for tool, path in (
                ("mariadbd", find_mariadbd()),
                ("mariadb-install-db", find_mariadb_install_db()),
            )
            if path is None
        ]
        if missing:
            return f"MariaDB not installed ({', '.join(missing)} not found); {INSTALL_HINT}"
        return None

    @property
    def _is_root(self) -> bool:
        return os.geteuid() == 0

    def url(self, database: str) -> str:
        return f"mysql+asyncmy://root@{self.host}:{self.port}/{database}"

    def _initialize(self) -> None:
        install_db = find_mariadb_install_db()
        assert install_db is not None
        command = [
            str(install_db),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            # Gives root@127.0.0.1 (and @localhost) an empty password instead of unix_socket.
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if self._is_root:
            command.append("--user=root")
        self._run(command, "mariadb-install-db")

    def _command(self) -> list[str]:
        mariadbd = find_mariadbd()
        assert mariadbd is not None
        command = [
            str(mariadbd),
            # Ignore /etc/mysql: the system server's socket, pid file and port would clash.
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.base_dir / 'mysqld.sock'}",
            f"--pid-file={self.base_dir / 'mariadbd.pid'}",
            "--skip-name-resolve",
            # Debian's defaults (from /etc/mysql, skipped above): domain names may be Unicode.
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            # Commit without fsync: the data only has to survive a graceful restart.
            "--innodb-flush-log-at-trx-commit=2",
        ]
        if self._is_root:
            command.append("--user=root")
        return command

    def _check_ready(self) -> None:
        _run_async(lambda: _execute_sql(self.url(""), ["SELECT 1"]))

    def _create_database(self, name: str) -> None:
        _run_async(lambda: _execute_sql(self.url(""), [f"CREATE DATABASE `{name}`"]))


class PostgresServer(DatabaseServer):
    """PostgreSQL (Debian ``postgresql``), user ``postgres`` trusted on loopback.

    PostgreSQL refuses to run as root, so under root (CI) the data directory belongs to the
    ``postgres`` system user the Debian package creates and every command runs as that user.
    """

    name = "postgres"
    #: SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients. SIGTERM ("smart")
    #: would wait for every client, and a pool a test left open would hang stop().
    stop_signal = signal.SIGINT
    SYSTEM_USER: ClassVar[str] = "postgres"

    @classmethod
    def unavailable(cls) -> str | None:
        if find_postgres_bindir() is None:
            return (
                "PostgreSQL not installed (initdb/postgres not found in "
                f"/usr/lib/postgresql/*/bin or PATH); {INSTALL_HINT}"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(cls.SYSTEM_USER)
            except KeyError:
                return (
                    f"running as root but there is no {cls.SYSTEM_USER!r} user to run "
                    f"PostgreSQL as; {INSTALL_HINT}"
                )
        return None

    def _run_as(self) -> str | None:
        return self.SYSTEM_USER if os.geteuid() == 0 else None

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@{self.host}:{self.port}/{database}"

    def _bin(self, tool: str) -> str:
        bindir = find_postgres_bindir()
        assert bindir is not None
        return str(bindir / tool)

    def _initialize(self) -> None:
        user = self._run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
            if self.log_path.exists():
                os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        command = [
            self._bin("initdb"),
            f"--pgdata={self.data_dir}",
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            # C locale: independent of which locales the machine generated.
            "--locale=C",
            "--no-sync",
        ]
        self._run(command, "initdb")

    def _command(self) -> list[str]:
        return [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-k",
            str(self.base_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            # No fsync: the data only has to survive a graceful restart.
            "-F",
        ]

    def _check_ready(self) -> None:
        _run_async(lambda: _execute_sql(self.url("postgres"), ["SELECT 1"]))

    def _create_database(self, name: str) -> None:
        _run_async(lambda: _execute_sql(self.url("postgres"), [f'CREATE DATABASE "{name}"']))


class FerretDBServer(DatabaseServer):
    """FerretDB (MongoDB wire protocol) with its SQLite backend, one file per database."""

    name = "ferretdb"

    @classmethod
    def unavailable(cls) -> str | None:
        if find_ferretdb() is not None:
            return None
        override = os.environ.get(FERRETDB_ENV)
        if override:
            return f"${FERRETDB_ENV}={override} is not an executable file"
        return (
            f"FerretDB {FERRETDB_VERSION} not found (neither at {ferretdb_cache_path()} "
            f"nor on PATH); {INSTALL_HINT} (building it needs Go)"
        )

    def url(self, database: str) -> str:
        return f"mongodb://{self.host}:{self.port}/{database}"

    def _initialize(self) -> None:
        self.data_dir.mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        ferretdb = find_ferretdb()
        assert ferretdb is not None
        return [
            str(ferretdb),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir}/",
            f"--listen-addr={self.host}:{self.port}",
            # The metrics/pprof listener defaults to 127.0.0.1:8088 and would clash; "-" = off.
            "--debug-addr=-",
            # Its state.json (instance id, telemetry choice) otherwise lands in the cwd.
            f"--state-dir={self.base_dir}",
            "--telemetry=disable",
            "--log-level=warn",
        ]

    def _client(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(
            self.url(""),
            serverSelectionTimeoutMS=2000,
            connectTimeoutMS=2000,
            directConnection=True,
        )

    def _check_ready(self) -> None:
        with self._client() as client:
            client.admin.command("ping")

    def _create_database(self, name: str) -> None:
        """MongoDB creates databases on first write; this only checks the name is unused."""
        with self._client() as client:
            if name in client.list_database_names():
                raise ServerError(f"{self.name}: database {name!r} already exists")


# --------------------------------------------------------------------------------------
# Clean-up at exit

_ALL_SERVERS: list[DatabaseServer] = []


def all_servers() -> Iterator[DatabaseServer]:
    """Every server created and not yet closed in this process."""
    return iter(list(_ALL_SERVERS))


@atexit.register
def _close_all() -> None:
    """Whatever the fixtures did not close (an interrupted run) is stopped here."""
    for server in reversed(list(_ALL_SERVERS)):
        with contextlib.suppress(Exception):
            server.close()
