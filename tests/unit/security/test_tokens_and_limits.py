"""Token scopes, token settings and files, and the token buckets, without a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from rechecker.config import Settings
from rechecker.security.limits import TokenBuckets, client_key
from rechecker.security.settings import ApiSettings
from rechecker.security.tokens import AccessPolicy, Scope

READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def status_of(policy: AccessPolicy, needed: Scope, token: str | None, local: bool) -> int:
    try:
        policy.check(needed, token, local)
    except HTTPException as exc:
        assert token is None or token not in str(exc.detail)
        return exc.status_code
    return 200


@pytest.mark.parametrize(
    ("needed", "token", "local", "status"),
    [
        (Scope.READ, None, False, 401),
        (Scope.READ, "wrong-token-0123456789", True, 401),
        (Scope.READ, READ, False, 200),
        (Scope.READ, WRITE, False, 200),
        (Scope.WRITE, None, True, 401),
        (Scope.WRITE, "wrong-token-0123456789", True, 401),
        (Scope.WRITE, READ, True, 403),
        (Scope.WRITE, WRITE, False, 200),
    ],
)
def test_with_tokens_everything_is_enforced(
    needed: Scope, token: str | None, local: bool, status: int
) -> None:
    policy = AccessPolicy.from_settings(ApiSettings(read_tokens=[READ], write_tokens=[WRITE]))
    assert status_of(policy, needed, token, local) == status


def test_without_tokens_reads_are_open_and_writes_local_only() -> None:
    policy = AccessPolicy.from_settings(ApiSettings())
    assert status_of(policy, Scope.READ, None, False) == 200
    assert status_of(policy, Scope.WRITE, None, True) == 200
    assert status_of(policy, Scope.WRITE, None, False) == 403


def test_read_tokens_alone_keep_writes_local() -> None:
    policy = AccessPolicy.from_settings(ApiSettings(read_tokens=[READ]))
    assert status_of(policy, Scope.READ, None, True) == 401
    assert status_of(policy, Scope.WRITE, None, True) == 200
    assert status_of(policy, Scope.WRITE, READ, False) == 403


def test_tokens_from_the_environment_and_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "write-tokens"
    secret.write_text(f"# rotated 2026-12-01\n\n  {WRITE}-file  \n", encoding="utf-8")
    monkeypatch.setenv("RECHECKER_API__READ_TOKENS", f"{READ}, {READ}-2")
    monkeypatch.setenv("RECHECKER_API__WRITE_TOKENS_FILE", str(secret))
    settings = Settings(_env_file=None)
    assert [t.get_secret_value() for t in settings.api.read_tokens] == [READ, f"{READ}-2"]
    policy = AccessPolicy.from_settings(settings.api)
    assert policy.scope_of(f"{WRITE}-file") is Scope.WRITE
    assert policy.scope_of(f"{READ}-2") is Scope.READ
    assert policy.scope_of(WRITE) is None
    shown = f"{settings!r} {settings.describe()}"
    assert READ not in shown


def test_a_short_token_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECHECKER_API__WRITE_TOKENS", "hunter2-short")
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert "shorter than 16" in str(error.value) and "hunter2" not in str(error.value)
    short = tmp_path / "tokens"
    short.write_text("tiny-secret\n", encoding="utf-8")
    with pytest.raises(ValueError, match="shorter than 16") as file_error:
        AccessPolicy.from_settings(ApiSettings(read_tokens_file=short))
    assert "tiny-secret" not in str(file_error.value)
    with pytest.raises(ValueError, match="cannot read token file"):
        AccessPolicy.from_settings(ApiSettings(read_tokens_file=tmp_path / "missing"))


def test_every_api_setting_is_documented() -> None:
    documented = DOCS.read_text(encoding="utf-8")
    missing = [
        name
        for name in ApiSettings.model_fields
        if f"`RECHECKER_API__{name.upper()}`" not in documented
    ]
    assert missing == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # per client
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 60
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("testclient", "testclient"),
    ],
)
def test_clients_are_keyed_by_address_and_ipv6_by_64(host: str, key: str) -> None:
    assert client_key({"type": "http", "client": (host, 1234)}) == key


def test_the_401_challenge_names_bearer() -> None:
    policy = AccessPolicy.from_settings(ApiSettings(read_tokens=[READ]))
    with pytest.raises(HTTPException) as denied:
        policy.check(Scope.READ, None, local=True)
    assert denied.value.headers is not None
    assert re.match(r'Bearer realm="rechecker"', denied.value.headers["WWW-Authenticate"])
