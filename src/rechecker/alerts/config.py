"""Alert settings: where alerts go, and the rules that keep them few.

``AlertSettings`` is nested into the main settings as ``alerts``, so every field is read from
``RECHECKER_ALERTS__<FIELD>`` (``RECHECKER_ALERTS__URLS``, ``RECHECKER_ALERTS__MAINTENANCE``…).
Lists arrive from the environment as plain strings: URLs and muted domains separated by commas
or whitespace, maintenance windows as JSON. Destination URLs are credentials, so they are
held as secrets and never echoed in a validation error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

from rechecker.domains import InvalidDomainError, normalize_domain
from rechecker.listsettings import parse_json, split_list
from rechecker.redact import redact_text

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES: dict[str, Weekday] = {
    **{day: day for day in WEEKDAYS},
    **dict(
        zip(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
            WEEKDAYS,
            strict=True,
        )
    ),
}

#: A URL starts with a scheme; what follows is the provider's business (apprise checks it).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")
#: URLs are separated by whitespace, or by a comma that starts the next URL: a comma inside a
#: URL (``mailto://…?to=a@x.test,b@x.test``) is apprise's own list separator and stays.
_URL_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.\-]*://)")
_MAX_WEEKLY_DURATION = timedelta(days=7)


def _domains(values: list[str]) -> list[str]:
    """Normalise names the way the inventory does, so ``Example.COM.`` mutes ``example.com``."""
    found: list[str] = []
    for value in values:
        try:
            domain = normalize_domain(value)
        except InvalidDomainError as exc:
            raise ValueError(f"{redact_text(value)!r} is not a domain: {exc.reason}") from exc
        if domain not in found:
            found.append(domain)
    return found


class MaintenanceWindow(BaseModel):
    """A time when alerts are held back (checks go on): one-off, or weekly in UTC.

    One-off: ``start`` and ``end``, with a timezone. Weekly: ``days``, ``start_time`` (UTC) and
    ``duration``; a window may run past midnight. ``domains`` scopes it; empty means all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", description="Shown in the log line of each alert held back.")
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    days: list[Weekday] = Field(default_factory=list)
    start_time: time | None = None
    duration: timedelta | None = None
    domains: list[str] = Field(default_factory=list)

    @field_validator("start", "end")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @field_validator("days", mode="before")
    @classmethod
    def _parse_days(cls, value: object) -> object:
        value = split_list(value)
        if not isinstance(value, list):
            return value
        days: list[Weekday] = []
        for item in value:
            day = _DAY_NAMES.get(str(item).strip().lower())
            if day is None:
                raise ValueError(f"unknown day {item!r}; use {', '.join(WEEKDAYS)}")
            if day not in days:
                days.append(day)
        return days

    @field_validator("start_time")
    @classmethod
    def _utc_time(cls, value: time | None) -> time | None:
        if value is None or value.tzinfo is None:
            return value
        if value.utcoffset() != timedelta(0):
            raise ValueError("start_time is in UTC; write it without an offset, e.g. 02:00")
        return value.replace(tzinfo=None)

    @field_validator("domains", mode="before")
    @classmethod
    def _split_domains(cls, value: object) -> object:
        return split_list(value)

    @field_validator("domains")
    @classmethod
    def _normalise_domains(cls, value: list[str]) -> list[str]:
        return _domains(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        one_off = self.start is not None or self.end is not None
        weekly = bool(self.days) or self.start_time is not None or self.duration is not None
        if one_off and weekly:
            raise ValueError(
                "a maintenance window is either one-off (start, end) or weekly "
                "(days, start_time, duration), not both"
            )
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off maintenance window needs both start and end")
            if self.end <= self.start:
                raise ValueError("a maintenance window must end after it starts")
        elif weekly:
            if not self.days or self.start_time is None or self.duration is None:
                raise ValueError("a weekly maintenance window needs days, start_time and duration")
            if not timedelta(0) < self.duration <= _MAX_WEEKLY_DURATION:
                raise ValueError("a weekly maintenance window lasts more than 0 and at most 7 days")
        else:
            raise ValueError(
                "a maintenance window needs start and end (one-off) "
                "or days, start_time and duration (weekly)"
            )
        return self

    def covers(self, domain: str, now: datetime) -> bool:
        """Whether alerts for ``domain`` are held back at ``now`` (an aware datetime)."""
        if self.domains and domain not in self.domains:
            return False
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        if self.start_time is None or self.duration is None:
            return False
        now = now.astimezone(UTC)
        # A weekly window that covers now began today or on one of the 7 days before.
        for days_back in range(8):
            day = (now - timedelta(days=days_back)).date()
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            began = datetime.combine(day, self.start_time, tzinfo=UTC)
            if began <= now < began + self.duration:
                return True
        return False


class AlertSettings(BaseModel):
    """Where alerts go and the rules that keep them to one per state change."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    urls: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Apprise URLs, one per destination (json://, mailto://, slack://, pagerduty://…), "
            "separated by commas or whitespace, or a JSON list. None: alerts are off."
        ),
    )
    rate_limit_per_destination: int = Field(
        20, ge=1, description="Alerts a destination receives at most per rate_limit_window_s."
    )
    rate_limit_window_s: float = Field(3600.0, gt=0)
    muted_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Domains that never alert; checks go on."
    )
    maintenance: Annotated[list[MaintenanceWindow], NoDecode] = Field(
        default_factory=list, description="Windows when alerts are held back, as JSON."
    )
    retry_attempts: int = Field(
        5, ge=1, le=100, description="Delivery attempts per alert and destination, first included."
    )
    retry_initial_backoff_s: float = Field(
        1.0, gt=0, description="Wait before the first retry; doubles on each retry."
    )
    retry_max_backoff_s: float = Field(60.0, gt=0, description="Longest wait between retries.")
    queue_size: int = Field(
        1000, ge=1, description="Alerts waiting per destination; when full the oldest is dropped."
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return parse_json(value, "a JSON list of URLs")
            return [part for part in _URL_SEPARATOR.split(value.strip()) if part]
        return value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        seen: set[str] = set()
        urls: list[SecretStr] = []
        for position, url in enumerate(value, start=1):
            raw = url.get_secret_value().strip()
            if not _URL.match(raw):
                # The value is a credential: say which one and why, never what it is.
                raise ValueError(
                    f"URL #{position} is not an apprise URL: expected SCHEME://…, "
                    "e.g. json://host/path or mailto://user:pass@host (value not shown)"
                )
            if raw not in seen:
                seen.add(raw)
                urls.append(SecretStr(raw))
        return urls

    @field_validator("muted_domains", mode="before")
    @classmethod
    def _split_muted(cls, value: object) -> object:
        return split_list(value)

    @field_validator("muted_domains")
    @classmethod
    def _normalise_muted(cls, value: list[str]) -> list[str]:
        return _domains(value)

    @field_validator("maintenance", mode="before")
    @classmethod
    def _parse_maintenance(cls, value: object) -> object:
        if isinstance(value, str):
            value = parse_json(value, "a JSON list of maintenance windows") if value.strip() else []
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.retry_max_backoff_s < self.retry_initial_backoff_s:
            raise ValueError("retry_max_backoff_s must not be below retry_initial_backoff_s")
        return self
