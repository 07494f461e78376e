"""ymls/: every compose file is valid (docker-compose config, with its .env.example), the
component files join the external network `shared` as in the original, credentials come only
from env files, the mock data is mounted, and the MariaDB init script really creates a
read-only inventory account (run against a real MariaDB)."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from rechecker.inventory.sql import SqlInventory
from tests.deploy.tools import (
    REPO,
    URL_CREDENTIALS,
    YMLS,
    Doc,
    docker_compose,
    load_yaml,
    missing,
    read_env_file,
    run,
    strings,
)

#: The original's layout: one file per component, joined by the external network `shared`.
COMPONENTS = ("backend", "core", "frontend", "mongodb", "mysql")
ALL_FILES = (*COMPONENTS, "all-in-one")
MYSQL_INITDB = YMLS / "mysql" / "initdb"
MONGODB_INITDB = YMLS / "mongodb" / "initdb"
READER_SCRIPT = MYSQL_INITDB / "02-inventory-reader.sh"
INITDB_TARGET = "/docker-entrypoint-initdb.d"
#: `${NAME}`, `${NAME:?message}`, `${NAME:-default}` and the like.
INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_]+)(?:(:?[-?+])([^}]*))?\}")
SENSITIVE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN", re.IGNORECASE)


def compose_file(name: str) -> Path:
    return YMLS / name / "docker-compose.yml"


def env_example(name: str) -> Path:
    return YMLS / name / ".env.example"


def compose_config(name: str, env_file: Path) -> tuple[int, str, str]:
    """``docker-compose -f FILE --env-file ENV config``, with no RECHECKER_* or other
    variable of the caller's environment leaking into the interpolation."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}
    done = run(
        [docker_compose(), "-f", compose_file(name), "--env-file", env_file, "config"], env=env
    )
    return done.returncode, done.stdout, done.stderr


_configs: dict[str, Doc] = {}


def resolved(name: str) -> Doc:
    """The file as compose resolves it with the example env file, once per session."""
    if name not in _configs:
        code, out, err = compose_config(name, env_example(name))
        assert code == 0, f"docker-compose config of ymls/{name} failed:\n{err}"
        config: Doc = load_yaml(out)
        _configs[name] = config
    return _configs[name]


def raw(name: str) -> Doc:
    """The file as written (YAML anchors and merge keys resolved, nothing interpolated)."""
    config: Doc = load_yaml(compose_file(name).read_text())
    return config


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either of compose's two spellings."""
    value = service.get("environment", {})
    if isinstance(value, list):
        return dict(item.partition("=")[::2] for item in value)
    return {str(key): "" if item is None else str(item) for key, item in value.items()}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of every bind mount in a resolved service."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


# --- valid, and nothing without its credentials -------------------------------------------
@pytest.mark.parametrize("name", ALL_FILES)
def test_the_compose_file_is_valid_with_its_env_example(name: str) -> None:
    config = resolved(name)
    assert config["services"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_the_compose_file_refuses_to_start_without_its_credentials(
    name: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    code, _, err = compose_config(name, empty)
    assert code != 0, f"ymls/{name} starts with no credentials at all"
    assert f"in ymls/{name}/.env" in err, "the error says where to set it"


@pytest.mark.parametrize("name", ALL_FILES)
def test_the_env_example_defines_every_variable_the_file_requires(name: str) -> None:
    required = {
        match.group(1)
        for value in strings(raw(name))
        for match in INTERPOLATION.finditer(value)
        if match.group(2) in ("?", ":?")
    }
    assert required
    assert required <= set(read_env_file(env_example(name)))


# --- the original's network layout ----------------------------------------------------------
@pytest.mark.parametrize("name", COMPONENTS)
def test_each_component_file_joins_the_external_network_shared(name: str) -> None:
    for config in (raw(name), resolved(name)):
        assert config["networks"] == {"shared": {"external": True, "name": "shared"}}
        for service_name, service in config["services"].items():
            assert "shared" in service["networks"], f"{name}/{service_name}"


def test_all_in_one_brings_up_the_whole_stack_on_its_own_network() -> None:
    config = resolved("all-in-one")
    services = config["services"]
    assert {"mysql", "mongodb", "backend", "core", "frontend"} <= set(services)
    assert services["core"]["deploy"]["replicas"] == 2
    (network,) = config["networks"]
    assert not config["networks"][network] or not config["networks"][network].get("external")
    for service_name, service in services.items():
        assert list(service["networks"]) == [network], service_name
    # The admin UIs only on demand.
    for admin in ("adminer", "mongo-express"):
        assert services[admin]["profiles"] == ["admin"]


@pytest.mark.parametrize("name", ("backend", "core", "frontend", "all-in-one"))
def test_rechecker_services_run_the_image_hardened(name: str) -> None:
    services = resolved(name)["services"]
    rechecker = {
        key: svc for key, svc in services.items() if key in ("backend", "core", "frontend")
    }
    assert rechecker
    for key, service in rechecker.items():
        assert service["command"] == [key], "the one image; the command picks the component"
        assert Path(service["build"]["context"]) == REPO, "built from the repository's Dockerfile"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "/tmp" in service["tmpfs"]
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else str(port.get("host_ip", ""))
            assert published.startswith("127.0.0.1"), f"{key}: published beyond loopback"


# --- credentials: env files only ------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_FILES)
def test_no_service_has_a_hard_coded_password(name: str) -> None:
    for service_name, service in raw(name)["services"].items():
        where = f"ymls/{name} {service_name}"
        for value in strings(service):
            for match in INTERPOLATION.finditer(value):
                variable, operator, default = match.groups()
                if SENSITIVE.search(variable) and operator in ("-", ":-"):
                    assert not default, f"{where}: {variable} has a default value"
            # With every ${…} replaced, any password left in a URL was written in the file.
            plain = INTERPOLATION.sub("INTERPOLATED", value)
            for _user, password in URL_CREDENTIALS.findall(plain):
                assert password == "INTERPOLATED", f"{where}: a password in a URL"
        for key, value in environment(service).items():
            if SENSITIVE.search(key):
                assert INTERPOLATION.sub("", value) == "", f"{where}: {key} is not from .env"


@pytest.mark.parametrize("name", ALL_FILES)
def test_the_env_example_holds_placeholders_only(name: str) -> None:
    for key, value in read_env_file(env_example(name)).items():
        if SENSITIVE.search(key):
            assert value.startswith("change-me"), f"{name}/.env.example: {key}"
        for _user, password in URL_CREDENTIALS.findall(value):
            assert password.startswith("change-me"), f"{name}/.env.example: {key}"


def test_the_split_examples_agree_on_accounts_and_host_names() -> None:
    """Following docs/deploy.md with the examples as they are gives a working stack."""
    mysql = read_env_file(env_example("mysql"))
    mongodb = read_env_file(env_example("mongodb"))
    backend = read_env_file(env_example("backend"))
    inventory = make_url(backend["RECHECKER_INVENTORY_URL"])
    assert (inventory.username, inventory.password) == (
        mysql["INVENTORY_READER_USER"],
        mysql["INVENTORY_READER_PASSWORD"],
    ), "the backend reads the inventory with the read-only account"
    assert inventory.host in raw("mysql")["services"]
    assert inventory.database == "database", "01-inventory.sql's database"
    for component in ("backend", "core", "frontend"):
        store = make_url(read_env_file(env_example(component))["RECHECKER_STORE_URL"])
        assert (store.username, store.password) == (
            mongodb["MONGO_RECHECKER_USER"],
            mongodb["MONGO_RECHECKER_PASSWORD"],
        ), f"{component}: Rechecker's own MongoDB account, not root"
        assert store.host in raw("mongodb")["services"]
        assert store.database == "endpoints"


def test_all_in_one_backend_reads_the_inventory_as_the_read_only_account() -> None:
    services = resolved("all-in-one")["services"]
    mysql = environment(services["mysql"])
    url = make_url(environment(services["backend"])["RECHECKER_INVENTORY_URL"])
    assert url.username == mysql["INVENTORY_READER_USER"] != "root"
    assert url.password == mysql["INVENTORY_READER_PASSWORD"]
    store = make_url(environment(services["core"])["RECHECKER_STORE_URL"])
    assert store.username == environment(services["mongodb-users"])["MONGO_RECHECKER_USER"]
    assert store.username != environment(services["mongodb"])["MONGO_INITDB_ROOT_USERNAME"]


# --- mock data -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "service", "initdb"),
    [
        ("mysql", "mysql", MYSQL_INITDB),
        ("mongodb", "mongodb", MONGODB_INITDB),
        ("all-in-one", "mysql", MYSQL_INITDB),
        ("all-in-one", "mongodb", MONGODB_INITDB),
    ],
)
def test_the_mock_data_is_mounted_into_the_database_image(
    name: str, service: str, initdb: Path
) -> None:
    mounts = bind_mounts(resolved(name)["services"][service])
    assert mounts[INITDB_TARGET] == initdb
    assert any(initdb.glob("01-*")), "the mock data itself"


# --- the read-only inventory account, for real -------------------------------------------------
def mariadb_client() -> Path:
    for name in ("mariadb", "mysql"):
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    missing("no mariadb client (package mariadb-client); run scripts/install-test-servers.sh")


def run_initdb(
    client: Path, server: Any, files: list[Path], env: dict[str, str]
) -> tuple[int, str]:
    """Run init files as the image's entrypoint does: SQL piped to docker_process_sql, shell
    scripts sourced, all under `set -eo pipefail`; docker_process_sql is the server's root."""
    steps = []
    for path in files:
        if path.suffix == ".sql":
            steps.append(f'docker_process_sql < "{path}"')
        else:
            steps.append(f'. "{path}"')
    script = "\n".join(
        [
            "set -eo pipefail",
            "docker_process_sql() {",
            f'  "{client}" --no-defaults --protocol=tcp -h {server.host} -P {server.port}'
            ' -uroot "$@"',
            "}",
            *steps,
        ]
    )
    # The images set LANG=C.UTF-8, from which the client takes its character set (utf8mb4).
    done = run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env})
    return done.returncode, done.stdout + done.stderr


async def denied(url: str, statement: str) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    except DBAPIError as exc:
        return "denied" in str(exc)
    finally:
        await engine.dispose()
    return False


async def test_the_init_script_creates_a_read_only_inventory_account(
    mariadb: Any, tmp_path: Path
) -> None:
    client = mariadb_client()
    database = f"inventory_{uuid.uuid4().hex[:10]}"
    user = f"reader_{uuid.uuid4().hex[:10]}"
    password = 'it\'s a \\ tricky "one"'
    # 01-inventory.sql names its database `database`; this test's is its own.
    sql = (MYSQL_INITDB / "01-inventory.sql").read_text().replace("`database`", f"`{database}`")
    renamed = tmp_path / "01-inventory.sql"
    renamed.write_text(sql)
    env = {
        "INVENTORY_READER_USER": user,
        "INVENTORY_READER_PASSWORD": password,
        "INVENTORY_DATABASE": database,
    }
    code, output = run_initdb(client, mariadb, [renamed, READER_SCRIPT], env)
    assert code == 0, output
    # Run again (a restarted init): the account is updated, not duplicated.
    code, output = run_initdb(client, mariadb, [READER_SCRIPT], env)
    assert code == 0, output

    reader = URL.create(
        "mysql+asyncmy",
        username=user,
        password=password,
        host=mariadb.host,
        port=mariadb.port,
        database=database,
    ).render_as_string(hide_password=False)
    inventory = SqlInventory(reader)
    try:
        read = await inventory.read()
    finally:
        await inventory.close()
    assert len(read.sites) == 220, "the mock inventory's active, valid rows"

    assert await denied(reader, "INSERT INTO sites (id, status) VALUES (1, 'active')")
    assert await denied(reader, "UPDATE sites SET status = 'gone'")
    assert await denied(reader, "DELETE FROM sites")
    assert await denied(reader, "CREATE TABLE other (id INT)")
    assert await denied(reader, "SELECT * FROM mysql.user")


def test_the_init_script_is_sourced_so_it_must_not_be_executable() -> None:
    # The entrypoints run an executable *.sh in a child process, where docker_process_sql
    # (and the root password it holds) does not exist; a non-executable one is sourced.
    assert not READER_SCRIPT.stat().st_mode & 0o111


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "INVENTORY_READER_PASSWORD is not set"),
        (
            {"INVENTORY_READER_PASSWORD": "x", "INVENTORY_READER_USER": "x'; DROP USER root; --"},
            "not a plain identifier",
        ),
    ],
)
def test_the_init_script_stops_the_init_on_a_bad_setting(
    env: dict[str, str], complaint: str, mariadb: Any
) -> None:
    code, output = run_initdb(mariadb_client(), mariadb, [READER_SCRIPT], env)
    assert code != 0
    assert complaint in output
