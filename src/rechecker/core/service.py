"""The core's work in one object: one check cycle over the monitored sites, with state,
incidents, alerts and metrics wired together; the scheduler and ``rechecker cycle`` share it."""

from __future__ import annotations

from collections.abc import Sequence

from rechecker.alerts import Alerter, AlertEvent
from rechecker.config import Settings
from rechecker.core.checker import CycleReport, run_cycle
from rechecker.core.metrics import CoreMetrics
from rechecker.core.recorder import Recorder, TransitionSink
from rechecker.core.state import Thresholds, Transition
from rechecker.models import CheckResult
from rechecker.probes import ProbeContext
from rechecker.store import Store, StoreError


def alert_for(transition: Transition) -> AlertEvent:
    """The alert a person gets for a state change: the cause when down, the downtime after."""
    incident = transition.incident
    return AlertEvent(
        kind=transition.kind,
        domain=transition.result.domain,
        at=transition.result.timestamp,
        message=incident.message,
        cause=incident.cause,
        incident_id=incident.id,
        downtime_s=incident.duration_s if transition.kind == "recovered" else None,
    )


def certificate_alert(result: CheckResult, warning_days: int) -> AlertEvent | None:
    """An alert for a certificate that expires within ``warning_days``, else None."""
    tls = None if result.http is None else result.http.tls
    if tls is None or tls.not_after is None or tls.days_left is None:
        return None
    if tls.days_left > warning_days:
        return None
    return AlertEvent(
        kind="cert_expiring",
        domain=result.domain,
        at=result.timestamp,
        message=f"The TLS certificate of {result.domain} expires on "
        f"{tls.not_after:%Y-%m-%d %H:%M} UTC ({tls.days_left} days).",
        cert_not_after=tls.not_after,
    )


class CheckService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        ctx: ProbeContext,
        *,
        metrics: CoreMetrics | None = None,
        alerter: Alerter | None = None,
        on_transition: TransitionSink | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.metrics = metrics
        self.alerter = alerter
        self._on_transition = on_transition
        self._checked: set[str] = set()
        self.recorder = Recorder(
            store,
            Thresholds(failures=settings.failure_threshold, successes=settings.success_threshold),
            on_transition=self._transition,
            on_results=self._results,
            buffer_limit=settings.result_buffer_limit,
            chunk_size=settings.result_batch_size,
            on_dropped=self._dropped,
        )
        if metrics is not None:
            metrics.watch_buffer(lambda: self.recorder.buffered)

    def _dropped(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.results_dropped.inc(count)

    def _results(self, results: Sequence[CheckResult]) -> None:
        if self.metrics is not None:
            self.metrics.observe(results)
        if self.alerter is None or self.settings.tls_expiry_warning_days <= 0:
            return
        for result in results:
            event = certificate_alert(result, self.settings.tls_expiry_warning_days)
            if event is not None:
                self.alerter.publish(event)  # the alerter sends one per certificate

    def _transition(self, transition: Transition) -> None:
        if self.metrics is not None:
            self.metrics.transition(transition)
        if self.alerter is not None:
            self.alerter.publish(alert_for(transition))
        if self._on_transition is not None:
            self._on_transition(transition)

    async def cycle(self) -> CycleReport:
        """``schedule_healthcheck_sync``: check every monitored site once."""
        sites = await self.store.list_sites()
        report = await run_cycle(
            self.store,
            self.ctx,
            sites=sites,
            recorder=self.recorder,
            concurrency=self.settings.check_concurrency,
            batch_size=self.settings.result_batch_size,
        )
        self.observe_cycle(report, {site.domain for site in sites})
        # A one-off cycle (``rechecker cycle``) has no later run to write what the store
        # refused: say so rather than end as if the results were recorded.
        await self.recorder.flush()
        if self.recorder.buffered:
            raise StoreError(
                f"the store did not take {self.recorder.buffered} of the cycle's results"
            )
        return report

    def observe_cycle(self, report: CycleReport, monitored: set[str] | None = None) -> None:
        """Cycle metrics; with ``monitored``, drop series of domains no longer monitored."""
        if self.metrics is None:
            return
        if monitored is not None:
            self.metrics.forget(self._checked - monitored)
            self._checked = monitored
        self.metrics.cycle(report)
