"""Thresholds turn a sequence of verdicts into states, incidents and transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rechecker.core.state import Thresholds, apply_thresholds
from rechecker.models import CheckResult, DnsOutcome, DnsResult, Incident, State

START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def verdicts(*states: State) -> list[CheckResult]:
    return [
        CheckResult(
            domain="a.example",
            url="https://a.example/",
            timestamp=START + timedelta(minutes=8 * n),
            state=state,
            verdict=state,
            error_class="" if state is not State.DOWN else "http_timeout",
            error_message="" if state is not State.DOWN else "no complete response within 10s",
            dns=DnsResult(outcome=DnsOutcome.OK),
        )
        for n, state in enumerate(states)
    ]


def run(
    states: list[State], thresholds: Thresholds | None = None
) -> tuple[list[State], list[str], dict[str, Incident]]:
    """Feed verdicts one check at a time, as cycles would, carrying state along."""
    previous: dict[str, CheckResult] = {}
    open_incidents: dict[str, Incident] = {}
    seen: list[State] = []
    kinds: list[str] = []
    for result in verdicts(*states):
        applied = apply_thresholds([result], previous, open_incidents, thresholds or Thresholds())
        previous = {r.domain: r for r in applied.results}
        seen.append(applied.results[0].state)
        kinds.extend(t.kind for t in applied.transitions)
    return seen, kinds, open_incidents


UP, DOWN, DEGRADED = State.UP, State.DOWN, State.DEGRADED


def test_a_single_blip_pages_nobody() -> None:
    states, kinds, _ = run([UP, DOWN, UP, UP])
    assert states == [UP, UP, UP, UP]
    assert kinds == []


def test_two_failures_in_a_row_make_it_down_and_one_success_brings_it_back() -> None:
    states, kinds, still_open = run([UP, DOWN, DOWN, DOWN, UP])
    assert states == [UP, UP, DOWN, DOWN, UP]
    assert kinds == ["down", "recovered"]
    assert still_open == {}


def test_success_threshold_holds_down_until_enough_good_checks() -> None:
    states, kinds, _ = run([UP, DOWN, DOWN, UP, DOWN, UP, UP], Thresholds(failures=2, successes=2))
    assert states == [UP, UP, DOWN, DOWN, DOWN, DOWN, UP]
    assert kinds == ["down", "recovered"]


def test_degraded_follows_at_once_and_is_not_an_incident() -> None:
    states, kinds, _ = run([UP, DEGRADED, UP])
    assert states == [UP, DEGRADED, UP]
    assert kinds == []


def test_a_new_domain_that_is_down_is_down_at_once() -> None:
    states, kinds, still_open = run([DOWN, DOWN, UP])
    assert states == [DOWN, DOWN, UP]
    assert kinds == ["down", "recovered"]
    assert still_open == {}


def test_the_incident_records_cause_start_end_and_duration() -> None:
    previous: dict[str, CheckResult] = {}
    open_incidents: dict[str, Incident] = {}
    incidents: list[Incident] = []
    for result in verdicts(UP, DOWN, DOWN, UP):
        applied = apply_thresholds([result], previous, open_incidents, Thresholds())
        previous = {r.domain: r for r in applied.results}
        incidents.extend(applied.incidents)
    opened, closed = incidents
    assert opened.id == closed.id and opened.open and not closed.open
    assert opened.cause == "http_timeout"
    assert opened.started_at == START + timedelta(minutes=16)
    assert closed.duration_s == pytest.approx(8 * 60)


def test_results_carry_counters_and_the_open_incident() -> None:
    applied = apply_thresholds(verdicts(UP, DOWN, DOWN), {}, {}, Thresholds())
    last = applied.results[-1]
    assert (last.state, last.consecutive_failures, last.consecutive_successes) == (DOWN, 2, 0)
    assert last.incident_id == applied.incidents[0].id
    assert last.state_since == last.timestamp
