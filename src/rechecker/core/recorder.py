"""Where check results become state: thresholds, incidents, persistence, then alerts and metrics.

Checks run without looking at the store; results are recorded in batches. Each batch reads
the previous state of its domains once, so state costs one read and one write per batch, not
per check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from rechecker.core.state import Thresholds, Transition, apply_thresholds
from rechecker.models import CheckResult
from rechecker.store import Store

log = logging.getLogger(__name__)

TransitionSink = Callable[[Transition], object]
ResultSink = Callable[[Sequence[CheckResult]], None]


class Recorder:
    def __init__(
        self,
        store: Store,
        thresholds: Thresholds,
        *,
        on_transition: TransitionSink | None = None,
        on_results: ResultSink | None = None,
    ) -> None:
        self._store = store
        self._thresholds = thresholds
        self._on_transition = on_transition
        self._on_results = on_results

    async def record(self, raw: Sequence[CheckResult]) -> list[CheckResult]:
        """Apply thresholds to ``raw`` results and store them; returns them with their state."""
        if not raw:
            return []
        previous = await self._store.get_statuses([result.domain for result in raw])
        open_ids = [status.incident_id for status in previous.values() if status.incident_id]
        open_incidents = {
            incident.domain: incident
            for incident in await self._store.get_incidents(open_ids)
            if incident.open
        }
        applied = apply_thresholds(raw, previous, open_incidents, self._thresholds)
        # Incidents first: after a crash in between, an open incident without its status is
        # visible and closes itself on recovery; a status pointing at nothing would not.
        await self._store.save_incidents(applied.incidents)
        await self._store.record_results(applied.results)
        for transition in applied.transitions:
            log.warning(
                "%s is %s: %s",
                transition.result.domain,
                "DOWN" if transition.kind == "down" else "back up",
                transition.incident.message if transition.kind == "down" else "recovered",
                extra={
                    "domain": transition.result.domain,
                    "transition": transition.kind,
                    "incident_id": transition.incident.id,
                    "error_class": transition.incident.cause,
                },
            )
            if self._on_transition is not None:
                self._on_transition(transition)
        if self._on_results is not None:
            self._on_results(applied.results)
        return applied.results
