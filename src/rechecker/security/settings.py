"""API security settings: tokens, the SSRF allow-list, rate and size limits.

``ApiSettings`` is nested into the main settings as ``api``, so every field is read from
``RECHECKER_API__<FIELD>`` (``RECHECKER_API__WRITE_TOKENS``, ``RECHECKER_API__SSRF_ALLOW``…).
Lists arrive from the environment as plain strings separated by commas or whitespace, or as a
JSON list. Tokens are credentials: they are held as secrets and a validation error names the
token's position, never its value.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from rechecker.listsettings import split_list

#: Shorter tokens can be guessed; 16 characters of ``openssl rand -hex 16`` give 128 bits.
MIN_TOKEN_LENGTH = 16

#: A name of the allow-list: a host name, or ``*.`` and a suffix for every name under it.
_NAME = re.compile(r"^(\*\.)?([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}$")


def read_token_file(path: Path) -> list[SecretStr]:
    """Tokens from a mounted secret: one a line, blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from None
    lines = (line.strip() for line in text.splitlines())
    tokens = [SecretStr(line) for line in lines if line and not line.startswith("#")]
    return _check_tokens(tokens, str(path))


def _check_tokens(tokens: list[SecretStr], source: str) -> list[SecretStr]:
    for position, token in enumerate(tokens, start=1):
        if len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"token #{position} of {source} is shorter than {MIN_TOKEN_LENGTH} characters "
                "(value not shown); make one with: openssl rand -hex 32"
            )
    return tokens


class ApiSettings(BaseModel):
    """Who may call the backend and core APIs, what on-demand checks may reach, and how much."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    read_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens that may read (GET); comma/whitespace separated.",
    )
    write_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens that may read and write (POST: sync, add, delete, checks).",
    )
    read_tokens_file: Path | None = Field(
        None, description="File of read tokens, one a line (a mounted secret)."
    )
    write_tokens_file: Path | None = Field(
        None, description="File of write tokens, one a line (a mounted secret)."
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without a token even when tokens are configured."
    )
    ssrf_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "CIDRs and host names (*.suffix for a whole zone) that on-demand checks of "
            "unmonitored names may reach although they are private, loopback, link-local…"
        ),
    )
    rate_limit_per_second: float = Field(
        20.0, ge=0, description="Requests a client may make per second, sustained; 0: no limit."
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests a client may make at once before the rate applies."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=0, description="Largest request body accepted; larger ones get 413."
    )

    @field_validator("read_tokens", "write_tokens", "ssrf_allow", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return split_list(value)

    @field_validator("read_tokens", "write_tokens")
    @classmethod
    def _check_length(cls, value: list[SecretStr]) -> list[SecretStr]:
        stripped = [SecretStr(token.get_secret_value().strip()) for token in value]
        return _check_tokens([token for token in stripped if token.get_secret_value()], "the list")

    @field_validator("ssrf_allow")
    @classmethod
    def _check_allow_list(cls, value: list[str]) -> list[str]:
        entries: list[str] = []
        for raw in value:
            entry = raw.strip().lower().rstrip(".")
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _NAME.match(entry):
                    raise ValueError(
                        f"{raw!r} is neither a CIDR (10.0.0.0/8, fd00::/8, 192.0.2.7) "
                        "nor a host name (intranet.example, *.corp.example)"
                    ) from None
            entries.append(entry)
        return entries
