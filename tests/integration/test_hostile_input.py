"""Hostile input at every door: the backend and core APIs and the inventory, table-driven.

Each class of bad input (invalid names, overlong names, IDN, case, trailing dots, IP literals,
foreign URL schemes, credentials, SQL and shell metacharacters, control characters, NUL,
whitespace, invisible characters, lone surrogates) goes through the real apps and a real SQL
inventory. A value is either normalised to the expected domain or refused with a reason: on
the APIs a 422 that names the field, in the inventory a rejected row with its id, and never a
500, a failed sync or an emptied store.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rechecker.backend.api import create_app as backend_app
from rechecker.config import Settings
from rechecker.core.api import create_app as core_app
from rechecker.models import Site
from rechecker.security.settings import ApiSettings
from rechecker.store import Store
from tests.support.targets import Targets

#: Without a write token, writes are accepted from loopback clients only.
LOOPBACK_CLIENT = ("127.0.0.1", 50000)


@dataclass(frozen=True)
class Case:
    """One input: its class, the raw value, and the domain it normalises to (None: refused,
    with ``reason`` a part of the refusal's message)."""

    kind: str
    value: str
    domain: str | None = None
    reason: str = ""
    #: The reason when the value travels as UTF-8 bytes (a path, an inventory column) rather
    #: than as a JSON string: a lone surrogate then arrives as U+FFFD.
    bytes_reason: str | None = None

    @property
    def wire_reason(self) -> str:
        return self.reason if self.bytes_reason is None else self.bytes_reason

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.value[:40]!r}"


CASES = [
    # Names that are not domains.
    Case("invalid", "not a domain", reason="whitespace"),
    Case("invalid", "x_y.example", reason="label"),
    Case("invalid", "-bad.example", reason="label"),
    Case("invalid", "a..b.example", reason="label"),
    Case("invalid", "localhost", reason="single label"),
    Case("invalid", "example.123", reason="top-level"),
    Case("invalid", "xn--a.example", reason="punycode"),
    Case("invalid", "example.com:0", reason="port 0"),
    # Too long: a label over 63, a name over 253, a URL over 2048 characters.
    Case("overlong", "a" * 64 + ".example", reason="label"),
    Case("overlong", ("a" * 60 + ".") * 5 + "example", reason="253"),
    Case("overlong", "b" * 63 + "." + ("c" * 63 + ".") * 3 + "example", reason="253"),
    Case("overlong", "https://example.com/" + "p" * 2048, reason="2048"),
    # Internationalised names become punycode; invalid ones are refused.
    Case("idn", "bücher.example", "xn--bcher-kva.example"),
    Case("idn", "ＥＸＡＭＰＬＥ．com", "example.com"),  # noqa: RUF001 - fullwidth on purpose
    Case("idn", "straße.de", "xn--strae-oqa.de"),
    Case("idn", "exa\u200dmple.com", reason="internationalised"),
    Case("idn", "\U0001f4a9.la", reason="internationalised"),
    # Case and the trailing dot do not make another site.
    Case("mixed-case", "ExAmPle.COM", "example.com"),
    Case("mixed-case", "HTTPS://WWW.Example.ORG/Path", "www.example.org"),
    Case("trailing-dot", "example.com.", "example.com"),
    Case("trailing-dot", "example.com。", "example.com"),
    Case("trailing-dot", "example.com..", reason="label"),
    # IP literals, including the forms HTTP clients still read as addresses.
    Case("ipv4", "192.0.2.1", reason="IP address"),
    Case("ipv4", "127.1", reason="IP address"),
    Case("ipv4", "0x7f.0.0.1", reason="IP address"),
    Case("ipv4", "2130706433", reason="IP address"),
    Case("ipv6", "::1", reason="IP address"),
    Case("ipv6", "[::1]", reason="IP address"),
    Case("ipv6", "[2001:db8::1]", reason="IP address"),
    Case("ipv6", "http://[::ffff:127.0.0.1]:8080/", reason="IP address"),
    # Schemes other than http and https.
    Case("scheme", "file:///etc/passwd", reason="scheme"),
    Case("scheme", "javascript:alert(1)", reason="scheme"),
    Case("scheme", "javascript://example.com/%0aalert(1)", reason="scheme"),
    Case("scheme", "data:text/html,<script>alert(1)</script>", reason="scheme"),
    Case("scheme", "ftp://example.com/", reason="scheme"),
    # Credentials in the URL, in every spelling.
    Case("userinfo", "http://user:secret@example.com/", reason="credentials"),
    Case("userinfo", "http://user@example.com/", reason="credentials"),
    Case("userinfo", "https://example.com\\@evil.example/", reason="credentials"),
    # SQL and shell metacharacters.
    Case("sql", "x' OR '1'='1.example", reason="whitespace"),
    Case("sql", "example.com'--", reason="label"),
    Case("sql", "a.com;DROP_TABLE_sites;--", reason="label"),
    Case("sql", 'a.com"', reason="label"),
    Case("shell", "$(reboot).example.com", reason="label"),
    Case("shell", "`id`.example.com", reason="label"),
    Case("shell", "a.com;ls", reason="label"),
    Case("shell", "a.com|nc", reason="label"),
    Case("shell", "a.com&&id", reason="label"),
    Case("shell", "a.com>x", reason="label"),
    # Control characters, NUL, whitespace and invisible characters.
    Case("control", "example.com\x1b[31m", reason="control"),
    Case("control", "exa\x7fmple.com", reason="control"),
    Case("control", "example.com\r\nHost: evil.example", reason="whitespace"),
    Case("nul", "\x00", reason="control"),
    Case("nul", "example.com\x00", reason="control"),
    Case("nul", "\x00example.com", reason="control"),
    Case("whitespace", "   ", reason="empty"),
    Case("whitespace", "foo bar.example", reason="whitespace"),
    Case("whitespace", "  example.com\t", "example.com"),
    Case("whitespace", "exa\u3000mple.com", reason="whitespace"),
    Case("invisible", "exa\u200bmple.com", reason="invisible"),
    Case("invisible", "\ufeffexample.com", reason="invisible"),
    Case("surrogate", "\ud800.example", reason="control", bytes_reason="U+FFFD"),
]

GOOD = [case for case in CASES if case.domain is not None]
BAD = [case for case in CASES if case.domain is None]
#: Values a path can carry: a "/" ends the path parameter (routing answers those with 404).
PATH_CASES = [case for case in CASES if "/" not in case.value]


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def post_json(client: TestClient, path: str, body: object) -> Any:
    """POST ``body`` as JSON with \\u escapes, so lone surrogates reach the app as JSON does."""
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def in_path(value: str) -> str:
    """``value`` as one path segment; a lone surrogate goes as the bytes a client would send."""
    return quote(value, safe="", errors="surrogatepass")


def assert_field_error(response: Any, loc: list[object], reason: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [error["loc"] for error in errors] == [loc]
    assert reason in errors[0]["msg"]


# --- backend -----------------------------------------------------------------------------


@pytest.fixture
def backend(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        backend_app(settings), client=LOOPBACK_CLIENT, raise_server_exceptions=False
    ) as client:
        yield client


@pytest.mark.parametrize("case", GOOD, ids=ids(GOOD))
def test_add_new_normalises(backend: TestClient, case: Case) -> None:
    response = post_json(backend, "/add_new", {"targets": [case.value]})
    assert response.status_code == 200, response.text
    assert response.json() == {"added": [case.domain], "rejected": []}


@pytest.mark.parametrize("case", BAD, ids=ids(BAD))
def test_add_new_refuses_naming_the_field(backend: TestClient, case: Case) -> None:
    response = post_json(backend, "/add_new", {"targets": [case.value]})
    assert_field_error(response, ["body", "targets", 0], case.reason)


@pytest.mark.parametrize("case", BAD, ids=ids(BAD))
def test_add_new_keeps_the_good_and_reports_the_bad(backend: TestClient, case: Case) -> None:
    response = post_json(backend, "/add_new", {"targets": ["good.example", case.value]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["added"] == ["good.example"]
    (rejected,) = body["rejected"]
    assert case.reason in rejected["reason"]
    assert len(rejected["value"]) <= 301
    assert "secret" not in rejected["value"]
    rejected["value"].encode("utf-8")  # control characters and surrogates come back escaped


@pytest.mark.parametrize("case", GOOD, ids=ids(GOOD))
def test_delete_old_normalises(backend: TestClient, case: Case) -> None:
    assert case.domain is not None
    post_json(backend, "/add_new", {"targets": [case.domain]})
    response = post_json(backend, "/delete_old", {"domains": [case.value]})
    assert response.status_code == 200, response.text
    assert response.json()["removed"] == [case.domain]


@pytest.mark.parametrize("case", BAD, ids=ids(BAD))
def test_delete_old_refuses_naming_the_field_and_removes_nothing(
    backend: TestClient, case: Case
) -> None:
    post_json(backend, "/add_new", {"targets": ["keep.example"]})
    response = post_json(backend, "/delete_old", {"domains": ["keep.example", case.value]})
    assert_field_error(response, ["body", "domains", 1], case.reason)
    store: Store = backend.app.state.store  # type: ignore[attr-defined]
    assert backend.portal is not None
    assert [site.domain for site in backend.portal.call(store.list_sites)] == ["keep.example"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"targets": "\\ud800", "domains": "\\ud800"}',
        b'{"targets": [1, null, {"\\ud800": 2}], "domains": [1, null, {"\\ud800": 2}]}',
        b'{"targets": {"\\u0000": 1}, "domains": {"\\u0000": 1}}',
        b'"\\ud800"',
        b'{"targets": ["a.example"',
    ],
    ids=["surrogate-string", "wrong-types", "nul-key", "bare-surrogate", "truncated"],
)
@pytest.mark.parametrize("path", ["/add_new", "/delete_old"])
def test_malformed_bodies_are_422_naming_the_body(
    backend: TestClient, path: str, body: bytes
) -> None:
    response = backend.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert {error["loc"][0] for error in response.json()["detail"]} == {"body"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000, "nests deeper"),
        (b'{"targets": ["\xff\xfe.example"], "domains": ["\xff"]}', "UTF-8"),
    ],
    ids=["deep", "not-utf8"],
)
@pytest.mark.parametrize("path", ["/add_new", "/delete_old"])
def test_unparseable_bodies_are_422_naming_the_body(
    backend: TestClient, path: str, body: bytes, reason: str
) -> None:
    response = backend.post(path, content=body, headers={"content-type": "application/json"})
    assert_field_error(response, ["body"], reason)


def test_other_http_errors_keep_their_status_and_headers(backend: TestClient) -> None:
    assert backend.get("/no/such/route").status_code == 404
    remote = TestClient(backend.app, client=("192.0.2.7", 50000))
    refused = remote.post("/sync")
    assert refused.status_code == 403, refused.text
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", ["\ud800", "\x00", "yes please", "1" * 3000, "<script>"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/check_db"), ("POST", "/sync")])
def test_a_bad_force_flag_is_422_naming_it(
    backend: TestClient, method: str, path: str, value: str
) -> None:
    response = backend.request(method, f"{path}?force={in_path(value)}")
    assert_field_error(response, ["query", "force"], "boolean")


def test_sync_status_ignores_stray_parameters(backend: TestClient) -> None:
    assert backend.post("/sync").status_code == 200
    response = backend.get(f"/sync/status?job={in_path(chr(0))}&x={in_path(chr(0xD800))}")
    assert response.status_code == 200
    assert response.json()["sync"]["ok"] is True


# --- core --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory, targets: Targets) -> Iterator[TestClient]:
    """One core for the module: each request is independent and nothing here is recorded."""
    config = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("hostile-core"),
        dns_resolvers=[targets.resolver],
        dns_timeout=1.0,
        http_timeout=2.0,
        schedulers_enabled=False,
        # Hundreds of requests from one client: the rate limit is not what is tested here.
        api=ApiSettings(rate_limit_per_second=0),
    )
    with TestClient(
        core_app(config), client=LOOPBACK_CLIENT, raise_server_exceptions=False
    ) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(
            store.add_sites, [Site(domain=d, url=u) for d, u in targets.urls().items()]
        )
        yield client


CORE_ROUTES = [("POST", "/dns"), ("POST", "/http"), ("POST", "/check"), ("GET", "/status")]


@pytest.mark.parametrize("case", PATH_CASES, ids=ids(PATH_CASES))
@pytest.mark.parametrize(("method", "route"), CORE_ROUTES)
def test_core_domain_routes_normalise_or_refuse(
    core: TestClient, method: str, route: str, case: Case
) -> None:
    response = core.request(method, f"{route}/{in_path(case.value)}")
    if case.domain is None:
        assert_field_error(response, ["path", "domain"], case.wire_reason)
        return
    # A valid name is accepted: checked (unknown to the test DNS server), or 404 on /status.
    assert response.status_code < 500, response.text
    assert response.status_code != 422, response.text


def test_core_routes_find_a_monitored_site_under_any_spelling(
    core: TestClient, targets: Targets
) -> None:
    spelling = in_path("OK.Test.")
    dns = core.post(f"/dns/{spelling}").json()
    assert (dns["outcome"], dns["addresses"]) == ("OK", ["127.0.0.1"])
    assert core.post(f"/http/{spelling}").json()["url"] == targets.urls()["ok.test"]
    assert core.post(f"/check/{spelling}").json()["domain"] == "ok.test"
    assert core.get(f"/status/{spelling}").json()["site"]["domain"] == "ok.test"


@pytest.mark.parametrize("value", ["file:///etc/passwd", "http://[::1]/", "a/b.example"])
def test_a_slash_in_a_path_domain_is_a_404_from_routing(core: TestClient, value: str) -> None:
    assert core.post(f"/dns/{in_path(value)}").status_code == 404


@pytest.mark.parametrize("value", ["0", "-1", "1001", "\x00", "1e3", "\ud800"])
def test_core_query_parameters_are_422_naming_them(core: TestClient, value: str) -> None:
    response = core.get(f"/status/ok.test?limit={in_path(value)}")
    assert_field_error(response, ["query", "limit"], "")
    response = core.get(f"/incidents?limit={in_path(value)}")
    assert_field_error(response, ["query", "limit"], "")


def test_core_endpoint_and_status_ignore_stray_parameters(core: TestClient) -> None:
    assert core.get(f"/endpoint?domain={in_path(chr(0))}").status_code == 200
    response = core.get(f"/status?failing=false&x={in_path(chr(0xD800))}")
    assert response.status_code == 200
    assert_field_error(core.get(f"/status?failing={in_path(chr(0))}"), ["query", "failing"], "")


# --- inventory ---------------------------------------------------------------------------

#: Inventory rows get a fresh id each, from this base; the good rows come first.
FIRST_ID = 7000
#: NUL and lone surrogates cannot be stored in MariaDB's utf8mb4 columns; SQLite keeps them.
NOT_IN_MARIADB = ("\x00", "\ud800")


def inventory_cases(backend_name: str) -> list[Case]:
    """The cases a database can hold, each with the reason it gives once stored as bytes."""
    cases = [replace(case, reason=case.wire_reason) for case in CASES]
    if backend_name == "sqlite":
        return cases
    return [case for case in cases if not any(ch in case.value for ch in NOT_IN_MARIADB)]


def inventory_rows(cases: list[Case]) -> list[tuple[int, str, str, str]]:
    return [(FIRST_ID + n, case.value, "active", "") for n, case in enumerate(cases)]


def write_sqlite_inventory(path: Path, rows: list[tuple[int, str, str, str]]) -> str:
    """The original's table shape with a TEXT id (so that odd ids can be written too)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE IF EXISTS sites")
        conn.execute(
            "CREATE TABLE sites (id TEXT PRIMARY KEY, base_url TEXT, status TEXT, udomain TEXT)"
        )
        conn.executemany(
            "INSERT INTO sites VALUES (?, ?, ?, ?)",
            [(str(i), u.encode("utf-8", "surrogatepass"), s, d) for i, u, s, d in rows],
        )
        # Stored as bytes and read back as TEXT: what SQLite holds when a writer sent bad bytes.
        conn.execute("UPDATE sites SET base_url = CAST(base_url AS TEXT)")
    return f"sqlite+aiosqlite:///{path}"


async def write_mariadb_inventory(url: str, rows: list[tuple[int, str, str, str]]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE sites (id INT PRIMARY KEY, base_url VARCHAR(4096), "
                    "status VARCHAR(32) NOT NULL, udomain VARCHAR(255)) CHARACTER SET utf8mb4"
                )
            )
            await conn.execute(
                text("INSERT INTO sites (id, base_url, status, udomain) VALUES (:i, :u, :s, :d)"),
                [{"i": i, "u": u, "s": s, "d": d} for i, u, s, d in rows],
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def inventory(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> tuple[Settings, list[Case]]:
    """Settings whose inventory holds one row per hostile case, in a real SQL database."""
    cases = inventory_cases(request.param)
    rows = inventory_rows(cases)
    if request.param == "sqlite":
        url = write_sqlite_inventory(tmp_path / "inventory.sqlite3", rows)
    else:
        mariadb = request.getfixturevalue("mariadb")
        url = mariadb.create_database(f"hostile_{uuid.uuid4().hex[:10]}")
        import anyio

        anyio.run(write_mariadb_inventory, url, rows)
    return settings.model_copy(update={"inventory_url": SecretStr(url)}), cases


def test_inventory_sync_skips_and_reports_each_bad_row(
    inventory: tuple[Settings, list[Case]],
) -> None:
    config, cases = inventory
    with TestClient(backend_app(config), client=LOOPBACK_CLIENT) as client:
        response = client.post("/sync")
        assert response.status_code == 200, response.text
        report = response.json()
        by_id = {row["inventory_id"]: row for row in report["rejected"]}
        expected_sites: set[str] = set()
        for n, case in enumerate(cases):
            row_id = str(FIRST_ID + n)
            if case.domain is None:
                assert case.reason in by_id[row_id]["reason"], (case, by_id[row_id])
            elif case.domain in expected_sites:
                assert by_id[row_id]["reason"].startswith(f"duplicate of {case.domain}")
            else:
                expected_sites.add(case.domain)
        assert sorted(report["added"]) == sorted(expected_sites)
        assert len(report["rejected"]) == len(cases) - len(expected_sites)
        assert "secret" not in json.dumps(report)
        status = client.get("/sync/status").json()["sync"]
        assert status["ok"] is True and status["rejected"] == len(report["rejected"])


def test_an_inventory_of_only_bad_rows_empties_nothing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite3"
    url = write_sqlite_inventory(path, [(1, "keep.example", "active", "")])
    config = settings.model_copy(update={"inventory_url": SecretStr(url)})
    with TestClient(backend_app(config), client=LOOPBACK_CLIENT) as client:
        assert client.post("/sync").json()["added"] == ["keep.example"]
        bad = [case for case in inventory_cases("sqlite") if case.domain is None]
        write_sqlite_inventory(path, inventory_rows(bad))
        report = client.post("/sync").json()
        assert report["removed"] == [] and "no usable sites" in report["removal_blocked"]
        assert len(report["rejected"]) == len(bad)
        assert [s["domain"] for s in client.get("/check_db").json()["to_add"]] == []
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        assert client.portal is not None
        assert [site.domain for site in client.portal.call(store.list_sites)] == ["keep.example"]


@pytest.mark.parametrize(
    ("row_id", "base_url", "reason"),
    [
        ("x" * 65, "ok.example", "inventory id longer than 64"),
        ("id\x00", "ok.example", "inventory id contains control"),
        ("7", b"https://\xff\xfe.example/", "U+FFFD"),
        ("8", b"https://ok.example/\x00", "control"),
    ],
    ids=["overlong-id", "nul-in-id", "invalid-utf8", "nul-bytes"],
)
def test_rows_a_store_could_not_keep_are_refused_alone(
    settings: Settings, tmp_path: Path, row_id: str, base_url: str | bytes, reason: str
) -> None:
    path = tmp_path / "inventory.sqlite3"
    write_sqlite_inventory(path, [(1, "good.example", "active", "")])
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO sites VALUES (?, CAST(? AS TEXT), 'active', '')", (row_id, base_url)
        )
    config = settings.model_copy(update={"inventory_url": SecretStr(f"sqlite+aiosqlite:///{path}")})
    with TestClient(backend_app(config), client=LOOPBACK_CLIENT) as client:
        response = client.post("/sync")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["added"] == ["good.example"]
        (rejected,) = report["rejected"]
        assert reason in rejected["reason"]
