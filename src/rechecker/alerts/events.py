"""What the state machine and the probes hand to the alerter, and how it reads to a person.

The core emits one :class:`AlertEvent` per state transition (down, recovered) and the probes
one per certificate nearing expiry; the alerter decides whether it goes out. The text is
rendered here, once, so that every destination (chat, e-mail, webhook) says the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from rechecker.domains import InvalidDomainError, normalize_domain
from rechecker.models import utcnow

AlertKind = Literal["down", "recovered", "cert_expiring"]

_TITLES: dict[AlertKind, str] = {
    "down": "DOWN: {domain}",
    "recovered": "RECOVERED: {domain}",
    "cert_expiring": "Certificate expiring: {domain}",
}
_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


class AlertEvent(BaseModel):
    """One state change worth telling someone about.

    ``title``, when empty, becomes a short line naming the kind and domain; ``message`` is the
    producer's detail (the check's error message, for instance) and goes into the body.
    ``incident_id`` ties a recovery to its outage; ``downtime_s`` belongs to recoveries and
    ``cert_not_after`` (required) to certificate events.
    """

    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    domain: str
    at: AwareDatetime = Field(default_factory=utcnow)
    title: str = ""
    message: str = ""
    cause: str = Field("", description="Machine-readable reason, e.g. the check's error class.")
    incident_id: str | None = None
    downtime_s: float | None = Field(None, ge=0)
    cert_not_after: AwareDatetime | None = None

    @field_validator("domain")
    @classmethod
    def _normalise_domain(cls, value: str) -> str:
        try:
            return normalize_domain(value)
        except InvalidDomainError as exc:
            raise ValueError(f"{value!r} is not a domain: {exc.reason}") from exc

    @field_validator("at", "cert_not_after")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _fit_kind(self) -> Self:
        if self.kind == "cert_expiring" and self.cert_not_after is None:
            raise ValueError("a cert_expiring event needs cert_not_after")
        if self.kind != "recovered" and self.downtime_s is not None:
            raise ValueError("downtime_s belongs to recovered events only")
        return self

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        """What makes two events the same transition.

        Outages are told apart by ``incident_id``; without one, by the time of the change.
        A certificate is told apart by its expiry date, so a renewed one alerts again.
        """
        if self.cert_not_after is not None and self.kind == "cert_expiring":
            return (self.kind, self.domain, self.cert_not_after.isoformat())
        return (self.kind, self.domain, self.incident_id or self.at.isoformat())


def format_duration(seconds: float) -> str:
    """A duration as a person says it: its two largest units, e.g. ``12 min 30 s``."""
    remaining = round(seconds)
    if remaining <= 0:
        return "0 s"
    parts: list[str] = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count} {unit}")
        elif parts:
            break
        if len(parts) == 2:
            break
    return " ".join(parts)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(event: AlertEvent) -> tuple[str, str]:
    """The title and plain-text body of an alert, the same for every destination."""
    lines: list[str]
    if event.kind == "down":
        lines = [f"{event.domain} is DOWN since {_when(event.at)}."]
        if event.cause:
            lines.append(f"Cause: {event.cause}")
    elif event.kind == "recovered":
        sentence = f"{event.domain} is UP again since {_when(event.at)}"
        if event.downtime_s is not None:
            sentence += f", down for {format_duration(event.downtime_s)}"
        lines = [sentence + "."]
    else:
        lines = [_certificate_sentence(event)]
    if event.message:
        lines.append(event.message)
    if event.incident_id:
        lines.append(f"Incident: {event.incident_id}")
    title = event.title or _TITLES[event.kind].format(domain=event.domain)
    return title, "\n".join(lines)


def _certificate_sentence(event: AlertEvent) -> str:
    not_after = event.cert_not_after or event.at
    left = (not_after - event.at).total_seconds()
    if left > 0:
        return (
            f"The TLS certificate of {event.domain} expires on {_when(not_after)}, "
            f"in {format_duration(left)}."
        )
    return (
        f"The TLS certificate of {event.domain} expired on {_when(not_after)}, "
        f"{format_duration(-left)} ago."
    )
