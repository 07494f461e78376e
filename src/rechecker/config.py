"""Every setting Rechecker reads, in one place.

Settings come from the environment (``RECHECKER_*``) or a ``.env`` file in the working
directory. Defaults are the embedded setup: a SQLite store and a sample SQLite inventory
under ``data_dir``, every server bound to loopback.
"""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rechecker.alerts.config import AlertSettings
from rechecker.alerts.secrets import destination_label
from rechecker.redact import redact_url
from rechecker.security.settings import ApiSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECHECKER_",
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="__",
        # A rejected value may be a DSN or webhook URL: errors name the field, not the value.
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(Path("data"), description="Where the embedded SQLite files live.")

    # --- store -------------------------------------------------------------------------
    store_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the store; default: SQLite file in data_dir.",
    )

    # --- inventory -----------------------------------------------------------------------
    inventory_url: SecretStr | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the inventory database, or file:PATH for a plain list "
            "(one domain or URL a line); default: sample SQLite inventory in data_dir."
        ),
    )
    inventory_table: str = "sites"
    inventory_id_column: str = "id"
    inventory_url_column: str = "base_url"
    inventory_domain_column: str = "udomain"
    inventory_status_column: str = "status"
    inventory_active_value: str = "active"
    sync_max_drop_ratio: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="A sync that would remove more than this share of sites deletes nothing.",
    )

    # --- schedules (seconds) -------------------------------------------------------------
    schedulers_enabled: bool = True
    db_sync_interval: float = Field(900.0, gt=0)
    db_check_interval: float = Field(900.0, gt=0)
    healthcheck_interval: float = Field(480.0, gt=0)
    history_retention_days: float = Field(
        30.0, gt=0, description="History older than this is deleted, hourly."
    )

    # --- state ---------------------------------------------------------------------------
    failure_threshold: int = Field(
        2, ge=1, description="Failing checks in a row before a domain is DOWN."
    )
    success_threshold: int = Field(
        1, ge=1, description="Good checks in a row before a DOWN domain is back."
    )

    # --- checks --------------------------------------------------------------------------
    check_concurrency: int = Field(200, ge=1, le=10_000)
    result_batch_size: int = Field(500, ge=1)
    result_buffer_limit: int = Field(
        10_000,
        ge=1,
        description="Results held in memory while the store is down; beyond, the oldest go.",
    )
    dns_timeout: float = Field(3.0, gt=0)
    http_timeout: float = Field(10.0, gt=0)
    dns_resolvers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Resolvers as HOST or HOST:PORT, comma separated; default: the system's.",
    )
    http_max_redirects: int = Field(10, ge=0)
    http_body_limit: int = Field(64 * 1024, ge=0)
    http_user_agent: str = "Rechecker/3 (+https://github.com/rechecker)"
    ca_file: Path | None = Field(None, description="Extra CA bundle trusted by HTTP checks.")
    dns_record_types: str = Field(
        "A,AAAA",
        description="Record types the DNS check asks, comma separated; A and AAAA always.",
    )
    dns_compare_resolvers: bool = Field(
        True,
        description="With several dns_resolvers, ask all and warn when they disagree.",
    )
    http_fallback_to_http: bool = Field(
        False, description="Retry an https:// URL over http:// when it cannot connect."
    )
    http_accepted_status: str = Field("200-399", description="Accepted statuses, e.g. 200-399,401.")
    http_body_match: str = Field("", description="Text the body must contain; empty: no check.")
    http_body_regex: str = Field("", description="Pattern the body must match; empty: no check.")
    http_max_latency_ms: float | None = Field(
        None, gt=0, description="Slower HTTP answers are a warning (DEGRADED)."
    )
    tls_expiry_warning_days: int = Field(
        14, ge=0, description="Warn when a certificate expires within this many days."
    )
    checks_file: Path | None = Field(
        None, description="TOML file of per-domain check options (see docs/checks.md)."
    )

    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This core worker's name in leases; unique per process.",
    )
    lease_seconds: float = Field(
        300.0, gt=0, description="How long a claimed batch is reserved for one worker."
    )
    claim_size: int = Field(1000, ge=1, description="Sites a worker claims at once.")
    poll_interval: float = Field(
        5.0, gt=0, description="Seconds between looks for due sites when none are due."
    )
    metrics_per_domain: bool = Field(
        True, description="Per-domain series on the core's /metrics (off for huge fleets)."
    )

    alerts: AlertSettings = Field(
        default_factory=AlertSettings,
        description="Alert destinations and rules: RECHECKER_ALERTS__* (docs/alerts.md).",
    )

    # --- API security --------------------------------------------------------------------
    api: ApiSettings = Field(
        default_factory=ApiSettings,
        description="API tokens, SSRF allow-list, rate and size limits: RECHECKER_API__*.",
    )

    # --- dashboard -----------------------------------------------------------------------
    dashboard_user: str = Field("", description="Dashboard basic-auth user; empty: no basic auth.")
    dashboard_password: SecretStr = Field(
        SecretStr(""), description="Its password, plain or a Werkzeug hash (scrypt:…/pbkdf2:…)."
    )
    dashboard_auth_header: str = Field(
        "", description="Header a trusted proxy sets to the signed-in user (X-Forwarded-User)."
    )
    dashboard_auth_header_values: str = Field(
        "", description="Users that header may name, comma separated; empty: any."
    )
    dashboard_refresh_seconds: float = Field(
        30.0, ge=0, description="How often open dashboard pages refresh; 0: off."
    )
    dashboard_snapshot_seconds: float = Field(
        10.0, gt=0, description="How old the overview's fleet snapshot may get."
    )

    # --- servers -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    frontend_port: int = 8080
    backend_port: int = 8081
    core_port: int = 8082

    log_level: str = "INFO"

    @field_validator("dns_resolvers", mode="before")
    @classmethod
    def _split_resolvers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def resolved_store_url(self) -> str:
        if self.store_url is not None:
            return self.store_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir / 'rechecker.sqlite3'}"

    @cached_property
    def resolved_inventory_url(self) -> str:
        if self.inventory_url is not None:
            return self.inventory_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.sample_inventory_path}"

    @property
    def sample_inventory_path(self) -> Path:
        return self.data_dir / "inventory.sqlite3"

    @property
    def uses_sample_inventory(self) -> bool:
        return self.inventory_url is None

    def describe(self) -> dict[str, object]:
        """Settings as safe to log or show: every URL with its password masked."""
        shown = self.model_dump(exclude={"store_url", "inventory_url", "alerts"})
        shown["alerts"] = self.alerts.model_dump(exclude={"urls"}) | {
            "urls": [
                destination_label(url.get_secret_value(), index)
                for index, url in enumerate(self.alerts.urls, start=1)
            ]
        }
        shown["store_url"] = redact_url(self.resolved_store_url)
        shown["inventory_url"] = redact_url(self.resolved_inventory_url)
        return shown
