"""From check verdicts to domain states, incidents and alerts, with thresholds against blips.

A domain's state only turns DOWN after ``failure_threshold`` failing checks in a row, and
back after ``success_threshold`` good ones, so one lost packet pages nobody. UP and DEGRADED
follow the latest verdict at once: both mean the site serves. The first check of a new domain
sets its state directly; there is no earlier state to protect.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rechecker.models import CheckResult, Incident, State


@dataclass(frozen=True, slots=True)
class Thresholds:
    failures: int = 2
    successes: int = 1


@dataclass(frozen=True, slots=True)
class Transition:
    """A change a person should hear about."""

    kind: Literal["down", "recovered"]
    result: CheckResult
    incident: Incident


@dataclass(slots=True)
class Applied:
    """Results with their state filled in, and what changed because of them."""

    results: list[CheckResult] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)


def apply_thresholds(
    results: Sequence[CheckResult],
    previous: dict[str, CheckResult],
    open_incidents: dict[str, Incident],
    thresholds: Thresholds,
) -> Applied:
    """Give each result (whose ``verdict`` is set) the domain state it leads to.

    ``previous`` is each domain's last stored status; ``open_incidents`` its open incident,
    if any. Results for one domain are applied in order.
    """
    applied = Applied()
    last = dict(previous)
    for raw in results:
        verdict = raw.verdict or raw.state
        before = last.get(raw.domain)
        result = _advance(raw, verdict, before, thresholds)
        change = _incident_change(result, open_incidents)
        if change is not None:
            kind, incident = change
            applied.incidents.append(incident)
            applied.transitions.append(Transition(kind, result, incident))
            if kind == "down":
                open_incidents[result.domain] = incident
            else:
                open_incidents.pop(result.domain, None)
        result.incident_id = (
            open_incidents[result.domain].id if result.domain in open_incidents else None
        )
        applied.results.append(result)
        last[raw.domain] = result
    return applied


def _advance(
    raw: CheckResult, verdict: State, before: CheckResult | None, thresholds: Thresholds
) -> CheckResult:
    failed = verdict is State.DOWN
    if before is None:
        return raw.model_copy(
            update={
                "verdict": verdict,
                "state": verdict,
                "state_since": raw.timestamp,
                "consecutive_failures": int(failed),
                "consecutive_successes": int(not failed),
            }
        )
    failures = before.consecutive_failures + 1 if failed else 0
    successes = 0 if failed else before.consecutive_successes + 1
    state = before.state
    if before.state is State.DOWN:
        if not failed and successes >= thresholds.successes:
            state = verdict
    elif failed:
        if failures >= thresholds.failures:
            state = State.DOWN
    else:
        state = verdict
    since = before.state_since if state is before.state else raw.timestamp
    return raw.model_copy(
        update={
            "verdict": verdict,
            "state": state,
            "state_since": since or raw.timestamp,
            "consecutive_failures": failures,
            "consecutive_successes": successes,
        }
    )


def _incident_change(
    result: CheckResult, open_incidents: dict[str, Incident]
) -> tuple[Literal["down", "recovered"], Incident] | None:
    is_down = result.state is State.DOWN
    current = open_incidents.get(result.domain)
    if is_down and current is None:
        return "down", Incident(
            id=uuid.uuid4().hex,
            domain=result.domain,
            started_at=result.timestamp,
            cause=result.error_class,
            message=result.error_message[:1000],
        )
    if not is_down and current is not None:
        return "recovered", current.model_copy(update={"ended_at": result.timestamp})
    return None
