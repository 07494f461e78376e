"""What a check expects of one site: global defaults from the settings, per-domain overrides.

Everything is parsed and validated once, at startup, so that a typo in a status range or a
regular expression stops the service with a clear message instead of failing every check,
and a check only does a dictionary lookup to find its options.

The overrides file (``RECHECKER_CHECKS_FILE``) is TOML with one table per domain::

    ["shop.example.com"]
    record_types = ["MX", "TXT"]
    expected_addresses = ["192.0.2.10"]
    accepted_status = "200-299,401"
    body_match = "Add to cart"
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from rechecker.config import Settings
from rechecker.domains import InvalidDomainError, normalize_domain

T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Address types are always asked (HTTP needs them); the others only when configured.
ADDRESS_TYPES = ("A", "AAAA")
RECORD_TYPES = (*ADDRESS_TYPES, "CNAME", "MX", "NS", "TXT", "CAA")


class OptionsError(ValueError):
    """A setting or the checks file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class StatusRanges:
    """Accepted HTTP status codes, written like ``200-399,401``."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: str) -> StatusRanges:
        ranges = []
        for part in (p.strip() for p in text.split(",")):
            low, _, high = part.partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                raise OptionsError(
                    f"{part!r} is not a status code or a range like 200-399"
                ) from None
            if not 100 <= first <= last <= 599:
                raise OptionsError(f"{part!r} is not a range of status codes within 100-599")
            ranges.append((first, last))
        return cls(tuple(ranges))

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """The expectations of the DNS and HTTP probes for one site."""

    record_types: tuple[str, ...] = ADDRESS_TYPES
    expected_addresses: frozenset[IPAddress] | None = None
    expected_cname: str | None = None
    accepted_status: StatusRanges = StatusRanges(((200, 399),))
    body_match: str | None = None
    body_regex: re.Pattern[str] | None = None
    max_latency_ms: float | None = None

    @property
    def checks_body(self) -> bool:
        return self.body_match is not None or self.body_regex is not None


def parse_record_types(values: Iterable[str]) -> tuple[str, ...]:
    """The types to query: A and AAAA first, then the other known types asked for, each once.

    CNAME is accepted but needs no query of its own: the chain is in the address answers
    and is always recorded.
    """
    wanted = [v.strip().upper() for v in values if v.strip()]
    unknown = sorted(set(wanted) - set(RECORD_TYPES))
    if unknown:
        raise OptionsError(
            f"unsupported record type {', '.join(unknown)} (known: {', '.join(RECORD_TYPES)})"
        )
    return tuple(t for t in RECORD_TYPES if t in ADDRESS_TYPES or (t in wanted and t != "CNAME"))


def compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise OptionsError(f"invalid regular expression {pattern!r}: {exc}") from None


class _Overrides(BaseModel):
    """One domain's table in the checks file; unset fields keep the global default."""

    model_config = ConfigDict(extra="forbid")

    record_types: list[str] | None = None
    expected_addresses: list[IPAddress] | None = None
    expected_cname: str | None = None
    accepted_status: str | None = None
    body_match: str | None = None
    body_regex: str | None = None
    max_latency_ms: float | None = Field(None, gt=0)

    @field_validator("expected_cname")
    @classmethod
    def _cname(cls, value: str | None) -> str | None:
        return None if value is None else normalize_domain(value)

    def apply(self, defaults: ProbeOptions) -> ProbeOptions:
        changes: dict[str, Any] = {
            name: _CONVERT.get(name, _same)(value) for name, value in self if value is not None
        }
        return dataclasses.replace(defaults, **changes)


def _same(value: object) -> object:
    return value


#: How a checks-file value becomes a ProbeOptions field; an empty body check turns it off.
_CONVERT: dict[str, Callable[[Any], object]] = {
    "record_types": parse_record_types,
    "expected_addresses": frozenset,
    "accepted_status": StatusRanges.parse,
    "body_match": lambda text: text or None,
    "body_regex": lambda text: compile_regex(text) if text else None,
}


def defaults_from_settings(settings: Settings) -> ProbeOptions:
    """The options of every site without an override; errors name the setting at fault."""

    def parsed(name: str, parse: Callable[[str], T], value: str) -> T:
        try:
            return parse(value)
        except OptionsError as exc:
            raise OptionsError(f"RECHECKER_{name.upper()}: {exc}") from None

    return ProbeOptions(
        record_types=parsed("dns_record_types", _split_record_types, settings.dns_record_types),
        accepted_status=parsed(
            "http_accepted_status", StatusRanges.parse, settings.http_accepted_status
        ),
        body_match=settings.http_body_match or None,
        body_regex=parsed("http_body_regex", compile_regex, settings.http_body_regex)
        if settings.http_body_regex
        else None,
        max_latency_ms=settings.http_max_latency_ms,
    )


def _split_record_types(text: str) -> tuple[str, ...]:
    return parse_record_types(text.split(","))


def load_checks_file(path: Path, defaults: ProbeOptions) -> dict[str, ProbeOptions]:
    """Per-domain options from the TOML file at ``path``; raises OptionsError naming the file,
    the domain and the field at fault."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionsError(f"{path}: not valid TOML: {exc}") from None
    sites: dict[str, ProbeOptions] = {}
    for key, table in document.items():
        where = f"{path}: [{key!r}]"
        try:
            domain = normalize_domain(key)
            if not isinstance(table, Mapping):
                raise OptionsError("expected a table of options, got a single value")
            if domain in sites:
                raise OptionsError(f"{domain} has options twice")
            sites[domain] = _Overrides.model_validate(table).apply(defaults)
        except ValidationError as exc:
            problems = "; ".join(_describe(error) for error in exc.errors())
            raise OptionsError(f"{where}: {problems}{_quote_hint(key, table)}") from None
        except InvalidDomainError as exc:
            raise OptionsError(f"{where}: {exc.reason}{_quote_hint(key, table)}") from None
        except OptionsError as exc:
            raise OptionsError(f"{where}: {exc}") from None
    return sites


def _dotted(key: str, table: object) -> str:
    """The name an unquoted ``[www.example.com]`` header meant: TOML reads it as nested
    tables ``www`` > ``example`` > ``com``."""
    while isinstance(table, Mapping) and len(table) == 1:
        ((child, table),) = table.items()
        if not isinstance(table, Mapping):
            break
        key = f"{key}.{child}"
    return key


def _quote_hint(key: str, table: object) -> str:
    dotted = _dotted(key, table)
    return f' (for {dotted}, quote the name: ["{dotted}"])' if dotted != key else ""


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown option {location!r}"
    return f"{location}: {error['msg']}"
