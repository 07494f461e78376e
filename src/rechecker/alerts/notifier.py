"""The alerter: decides whether a state change is told, then tells it without holding anyone up.

Rules, in the order they apply to each published event:

1. no destination configured: nothing to do (``no_destinations``);
2. the same transition seen before, within the last 10 000: ``duplicate`` — the core may emit
   twice (a retry, a restart) and a person must hear it once;
3. a muted domain: ``muted``;
4. inside a maintenance window: ``maintenance`` (checks go on, alerts wait for nobody);
5. per destination, a sliding-window rate limit: a destination over its budget skips the
   event (``rate_limited``), so one flapping fleet cannot flood a channel;
6. otherwise the event joins the destination's bounded queue (``queued``); a full queue drops
   its oldest event (``dropped``).

Each destination has its own queue and worker, so a dead mail server only delays its own
mail, and events reach a destination in the order they happened. A failed delivery is retried
with exponential backoff; every decision and outcome is a log line on ``rechecker.alerts`` and,
given a registry, a count in ``rechecker_alerts_total{kind,outcome}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from rechecker.alerts.config import AlertSettings, MaintenanceWindow
from rechecker.alerts.events import AlertEvent
from rechecker.alerts.providers import DeliveryError, Provider
from rechecker.alerts.secrets import SecretScrubber, destination_label, scrub, secret_parts
from rechecker.models import utcnow

log = logging.getLogger("rechecker.alerts")

Decision = Literal[
    "queued", "muted", "maintenance", "duplicate", "rate_limited", "dropped", "no_destinations"
]
#: How many transitions are remembered to recognise a duplicate (least recently seen go first).
DEDUP_MEMORY = 10_000


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable


@dataclass(eq=False)
class _Destination:
    """One destination's queue, rate-limit window and worker."""

    index: int
    url: SecretStr
    label: str
    secrets: frozenset[str]
    queue: deque[AlertEvent] = field(default_factory=deque)
    accepted_at: deque[float] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    current: AlertEvent | None = None
    task: asyncio.Task[None] | None = None


class Alerter:
    """Turns state-change events into alerts, at most one per transition and destination.

    ``publish`` never waits: it decides, queues and returns. ``start`` runs one delivery
    worker per destination; ``stop`` lets them drain, then ends them. Call ``publish`` from the
    event loop's thread.
    """

    def __init__(
        self,
        settings: AlertSettings,
        registry: CollectorRegistry | None = None,
        provider: Provider | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if provider is None:
            # Imported here: the main settings import this package, and apprise takes a fifth
            # of a second to import, which every CLI command would otherwise pay.
            from rechecker.alerts.providers.apprise import AppriseProvider

            provider = AppriseProvider()
        self._settings = settings
        self._provider = provider
        self._clock = clock
        self._muted = frozenset(settings.muted_domains)
        self._destinations = [
            _Destination(
                index=index,
                url=url,
                label=destination_label(url.get_secret_value(), index),
                secrets=secret_parts(url.get_secret_value()),
            )
            for index, url in enumerate(settings.urls, start=1)
        ]
        for destination in self._destinations:
            destination.idle.set()
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._scrubber = SecretScrubber(url.get_secret_value() for url in settings.urls)
        self._state: Literal["new", "running", "stopped"] = "new"
        self._counter = (
            Counter(
                "rechecker_alerts",
                "Alerts by kind and outcome (sent, failed, muted, maintenance, duplicate, "
                "rate_limited, dropped); per destination for sent, failed, rate_limited, dropped.",
                ["kind", "outcome"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    @property
    def destinations(self) -> list[str]:
        """The destinations as safe to show: scheme and host, no credentials."""
        return [destination.label for destination in self._destinations]

    async def start(self) -> None:
        """Start one delivery worker per destination; events published before are delivered."""
        if self._state != "new":
            return
        self._state = "running"
        apprise_log = logging.getLogger("apprise")
        if apprise_log.level == logging.NOTSET:
            # Apprise's info and debug lines are per-message chatter. Its warnings stay: they
            # say why a delivery failed, and the provider reads its failure reasons from them.
            apprise_log.setLevel(logging.WARNING)
        self._scrubber.attach()
        for destination in self._destinations:
            destination.task = asyncio.create_task(
                self._run(destination), name=f"alerts {destination.label}"
            )

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued alert is delivered or given up; False on timeout."""
        if not any(destination.task is not None for destination in self._destinations):
            # No worker (not started, or stopped): nothing queued will move.
            return not any(destination.queue for destination in self._destinations)
        try:
            async with asyncio.timeout(timeout_s):
                for destination in self._destinations:
                    await destination.idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Refuse new events, deliver what is queued for up to ``drain_timeout_s``, then end.

        Whatever is still queued or in flight at the end is counted and logged as dropped.
        """
        if self._state == "stopped":
            return
        was_running = self._state == "running"
        self._state = "stopped"
        if was_running:
            await self.flush(drain_timeout_s)
        for destination in self._destinations:
            if destination.task is not None:
                destination.task.cancel()
                await asyncio.gather(destination.task, return_exceptions=True)
                destination.task = None
            left = list(destination.queue)
            if destination.current is not None:
                left.insert(0, destination.current)
            destination.queue.clear()
            destination.current = None
            destination.idle.set()
            for event in left:
                self._outcome(event, "dropped", destination, "not delivered before shutdown")
        self._scrubber.detach()

    def publish(self, event: AlertEvent) -> Decision:
        """Decide what happens to ``event`` and return the decision; never waits for delivery."""
        if not self._destinations:
            return self._decide(event, "no_destinations", level=logging.DEBUG)
        key = event.dedup_key
        if key in self._seen:
            self._seen.move_to_end(key)
            return self._decide(event, "duplicate", counted=True)
        self._seen[key] = None
        if len(self._seen) > DEDUP_MEMORY:
            self._seen.popitem(last=False)
        if event.domain in self._muted:
            return self._decide(event, "muted", counted=True)
        now = self._clock()
        window = self._maintenance_window(event.domain, now)
        if window is not None:
            return self._decide(event, "maintenance", counted=True, window=window)
        if self._state == "stopped":
            for _ in self._destinations:
                self._count(event, "dropped")
            return self._decide(event, "dropped")
        queued = False
        for destination in self._destinations:
            if self._within_rate_limit(destination, now.timestamp()):
                self._enqueue(destination, event)
                queued = True
            else:
                self._outcome(event, "rate_limited", destination, "over its rate limit")
        return self._decide(event, "queued" if queued else "rate_limited")

    # --- decisions -------------------------------------------------------------------------

    def _maintenance_window(self, domain: str, now: datetime) -> str | None:
        """The name of the first window holding ``domain``'s alerts back at ``now``, if any."""
        for position, window in enumerate(self._settings.maintenance, start=1):
            if window.covers(domain, now):
                return _window_name(window, position)
        return None

    def _within_rate_limit(self, destination: _Destination, now: float) -> bool:
        """Sliding window: at most N events accepted per destination in the last window_s."""
        horizon = now - self._settings.rate_limit_window_s
        accepted = destination.accepted_at
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
        if len(accepted) >= self._settings.rate_limit_per_destination:
            return False
        accepted.append(now)
        return True

    def _enqueue(self, destination: _Destination, event: AlertEvent) -> None:
        if len(destination.queue) >= self._settings.queue_size:
            oldest = destination.queue.popleft()
            self._outcome(oldest, "dropped", destination, "queue full, oldest alert dropped")
        destination.queue.append(event)
        destination.idle.clear()
        destination.wake.set()

    # --- delivery --------------------------------------------------------------------------

    async def _run(self, destination: _Destination) -> None:
        while True:
            if not destination.queue:
                destination.idle.set()
                destination.wake.clear()
                await destination.wake.wait()
                continue
            event = destination.queue.popleft()
            destination.current = event
            await self._deliver(destination, event)
            destination.current = None

    async def _deliver(self, destination: _Destination, event: AlertEvent) -> None:
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retry_attempts),
            wait=wait_exponential(
                multiplier=settings.retry_initial_backoff_s, max=settings.retry_max_backoff_s
            ),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    await self._attempt(destination, event, attempts)
        except DeliveryError as exc:
            self._outcome(
                event,
                "failed",
                destination,
                f"gave up after {attempts} attempt(s): {exc}",
                level=logging.ERROR,
                attempts=attempts,
            )
        else:
            self._outcome(event, "sent", destination, f"attempt {attempts}", attempts=attempts)

    async def _attempt(self, destination: _Destination, event: AlertEvent, number: int) -> None:
        """One delivery attempt; any failure comes out as a DeliveryError safe to log."""
        try:
            await self._provider.send(destination.url, event)
        except DeliveryError as exc:
            error = DeliveryError(scrub(str(exc), destination.secrets), retryable=exc.retryable)
        except Exception as exc:  # a provider bug must not end the destination's worker
            error = DeliveryError(scrub(f"{type(exc).__name__}: {exc}", destination.secrets))
        else:
            return
        log.warning(
            "alert %s %s to %s: attempt %d/%d failed: %s",
            event.kind,
            event.domain,
            destination.label,
            number,
            self._settings.retry_attempts,
            error,
            extra={
                "domain": event.domain,
                "kind": event.kind,
                "outcome": "attempt_failed",
                "incident_id": event.incident_id,
                "destination": destination.label,
                "attempt": number,
                "error": str(error),
            },
        )
        raise error

    # --- accounting ------------------------------------------------------------------------

    def _count(self, event: AlertEvent, outcome: str) -> None:
        if self._counter is not None:
            self._counter.labels(kind=event.kind, outcome=outcome).inc()

    def _decide(
        self,
        event: AlertEvent,
        decision: Decision,
        *,
        counted: bool = False,
        window: str | None = None,
        level: int = logging.INFO,
    ) -> Decision:
        """Log the decision on one event (and count it when it is not per destination)."""
        if counted:
            self._count(event, decision)
        extra: dict[str, object] = {
            "domain": event.domain,
            "kind": event.kind,
            "outcome": decision,
            "incident_id": event.incident_id,
        }
        if window is not None:
            extra["maintenance_window"] = window
        suffix = f" (maintenance window {window})" if window is not None else ""
        log.log(level, "alert %s %s: %s%s", event.kind, event.domain, decision, suffix, extra=extra)
        return decision

    def _outcome(
        self,
        event: AlertEvent,
        outcome: Literal["sent", "failed", "rate_limited", "dropped"],
        destination: _Destination,
        detail: str,
        *,
        level: int | None = None,
        attempts: int | None = None,
    ) -> None:
        """Count and log what happened to an event at one destination."""
        self._count(event, outcome)
        extra: dict[str, object] = {
            "domain": event.domain,
            "kind": event.kind,
            "outcome": outcome,
            "incident_id": event.incident_id,
            "destination": destination.label,
        }
        if attempts is not None:
            extra["attempts"] = attempts
        if level is None:
            level = logging.INFO if outcome == "sent" else logging.WARNING
        log.log(
            level,
            "alert %s %s to %s: %s (%s)",
            event.kind,
            event.domain,
            destination.label,
            outcome,
            detail,
            extra=extra,
        )


def _window_name(window: MaintenanceWindow, position: int) -> str:
    return window.name or f"#{position}"
