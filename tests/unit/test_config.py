"""Settings: one place, documented, secrets kept out of what is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechecker.config import Settings
from rechecker.redact import redact_text, redact_url

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    documented = DOCS.read_text(encoding="utf-8")
    missing = [
        name for name in Settings.model_fields if f"`RECHECKER_{name.upper()}`" not in documented
    ]
    assert missing == []


def test_environment_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECHECKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RECHECKER_DNS_RESOLVERS", "127.0.0.1:5353, 192.0.2.53")
    settings = Settings(_env_file=None)
    assert settings.dns_resolvers == ["127.0.0.1:5353", "192.0.2.53"]
    assert settings.resolved_store_url == f"sqlite+aiosqlite:///{tmp_path / 'rechecker.sqlite3'}"
    assert settings.uses_sample_inventory
    assert settings.healthcheck_interval == 480 and settings.db_sync_interval == 900


def test_describe_masks_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHECKER_STORE_URL", "mysql+asyncmy://app:s3cret@db:3306/rechecker")
    settings = Settings(_env_file=None)
    shown = settings.describe()
    assert shown["store_url"] == "mysql+asyncmy://app:***@db:3306/rechecker"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(shown)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite+aiosqlite:////var/lib/x.sqlite3", "sqlite+aiosqlite:////var/lib/x.sqlite3"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:***@h/db"),
        (
            "https://hooks.example/services/T0/B0?token=abc",
            "https://hooks.example/services/T0/B0?***",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_urls_inside_messages() -> None:
    message = "connect failed for mysql://root:example@127.0.0.1:3306/db (timeout)"
    assert redact_text(message) == "connect failed for mysql://***@127.0.0.1:3306/db (timeout)"
