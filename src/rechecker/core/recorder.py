"""Where check results become state: thresholds, incidents, persistence, then alerts and metrics.

Checks run without looking at the store; results are recorded in batches. Each batch reads
the previous state of its domains once, so state costs one read and one write per batch, not
per check.

A store outage must not cost the checks made during it. Results wait in a bounded in-memory
backlog and are written, oldest first, once the store answers again; past the bound the
oldest are dropped and counted, so an outage longer than the buffer can hold costs memory up
to the bound and no more. A batch whose state was computed but whose write failed is written
again exactly as computed (same incident ids, same transitions), so a retry after a write cut
off half-way updates what it wrote rather than opening a second incident.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice

from rechecker.core.state import Applied, Thresholds, Transition, apply_thresholds
from rechecker.models import CheckResult
from rechecker.store import Store, StoreError

log = logging.getLogger(__name__)

TransitionSink = Callable[[Transition], object]
ResultSink = Callable[[Sequence[CheckResult]], None]
DropSink = Callable[[int], object]

#: Results held while the store cannot be written, unless told otherwise.
DEFAULT_BUFFER_LIMIT = 10_000
#: Results written per store call when the backlog is worked off.
DEFAULT_CHUNK_SIZE = 500
#: While the store is down, new results are only buffered for this long before the next
#: write attempt: a store that times out (MongoDB waits 5 s to select a server) would
#: otherwise hold every check of the cycle behind each attempt.
RETRY_SECONDS = 5.0


class Recorder:
    def __init__(
        self,
        store: Store,
        thresholds: Thresholds,
        *,
        on_transition: TransitionSink | None = None,
        on_results: ResultSink | None = None,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_dropped: DropSink | None = None,
    ) -> None:
        if buffer_limit < 1 or chunk_size < 1:
            raise ValueError("buffer_limit and chunk_size must be at least 1")
        self._store = store
        self._thresholds = thresholds
        self._on_transition = on_transition
        self._on_results = on_results
        self._on_dropped = on_dropped
        self._listeners: list[ResultSink] = []
        self._limit = buffer_limit
        self._chunk = chunk_size
        #: Raw results not yet written, oldest first.
        self._backlog: deque[CheckResult] = deque()
        #: The backlog's first results with their state computed, when writing them failed.
        self._computed: tuple[int, Applied] | None = None
        self._lock = asyncio.Lock()
        self._failing = False
        self._retry_at = 0.0
        #: Results dropped because the backlog was full, since start.
        self.dropped = 0

    @property
    def buffered(self) -> int:
        """Results waiting for the store."""
        return len(self._backlog)

    def subscribe(self, listener: ResultSink) -> None:
        """Call ``listener`` with every batch of results once it is stored (lease keeping)."""
        self._listeners.append(listener)

    async def record(self, raw: Sequence[CheckResult]) -> list[CheckResult]:
        """Apply thresholds to ``raw`` results and store them, after any still buffered.

        Returns the results stored by this call, with their state: ``raw`` and whatever the
        backlog held, or nothing while the store is down, in which case they stay buffered
        for the next call or :meth:`flush`. Never raises for a store outage.
        """
        async with self._lock:
            self._backlog.extend(raw)
            self._trim()
            if self._failing and time.monotonic() < self._retry_at:
                return []
            return await self._write()

    async def flush(self) -> list[CheckResult]:
        """Try to write what is buffered now, whenever the last attempt was; returns what
        was stored (see :meth:`record`)."""
        async with self._lock:
            return await self._write()

    def _trim(self) -> None:
        """Drop the oldest results beyond the bound, counted, so memory stays bounded."""
        excess = len(self._backlog) - self._limit
        if excess <= 0:
            return
        for _ in range(excess):
            self._backlog.popleft()
        # What was computed for the head of the backlog no longer matches it.
        self._computed = None
        self.dropped += excess
        log.warning(
            "result buffer full (%d): dropped the %d oldest results",
            self._limit,
            excess,
            extra={"dropped": excess, "buffered": len(self._backlog)},
        )
        if self._on_dropped is not None:
            self._on_dropped(excess)

    async def _write(self) -> list[CheckResult]:
        written: list[CheckResult] = []
        while self._backlog:
            if self._computed is None:
                head = list(islice(self._backlog, self._chunk))
                try:
                    applied = await self._apply(head)
                except StoreError as exc:
                    self._outage(exc)
                    break
                self._computed = (len(head), applied)
            count, applied = self._computed
            try:
                await self._persist(applied)
            except StoreError as exc:
                self._outage(exc)
                break
            self._computed = None
            for _ in range(count):
                self._backlog.popleft()
            self._published(applied)
            written.extend(applied.results)
        else:
            if self._failing:
                self._failing = False
                log.info("store writable again: buffered results written")
        return written

    def _outage(self, exc: StoreError) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._failing:
            self._failing = True
            log.warning(
                "cannot write results, keeping them in memory (up to %d): %s",
                self._limit,
                exc,
                extra={"buffered": len(self._backlog)},
            )

    async def _apply(self, raw: Sequence[CheckResult]) -> Applied:
        previous = await self._store.get_statuses([result.domain for result in raw])
        open_ids = [status.incident_id for status in previous.values() if status.incident_id]
        open_incidents = {
            incident.domain: incident
            for incident in await self._store.get_incidents(open_ids)
            if incident.open
        }
        return apply_thresholds(raw, previous, open_incidents, self._thresholds)

    async def _persist(self, applied: Applied) -> None:
        # Incidents first: after a crash in between, an open incident without its status is
        # visible and closes itself on recovery; a status pointing at nothing would not.
        await self._store.save_incidents(applied.incidents)
        await self._store.record_results(applied.results)

    def _published(self, applied: Applied) -> None:
        """Hand what was stored on: transitions to alerts, results to metrics and listeners."""
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
        for listener in self._listeners:
            listener(applied.results)
