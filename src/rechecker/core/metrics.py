"""The core's Prometheus series: per-domain health, probe timings, checks, cycles, schedulers.

Per-domain series (``domain`` label) are what blackbox_exporter users alert on; with
``metrics_per_domain`` off, a fleet of 100,000 domains keeps /metrics small and only the
aggregate series remain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rechecker.core.checker import CycleReport
from rechecker.core.state import Transition
from rechecker.models import CheckResult, State
from rechecker.scheduling import Periodic


class CoreMetrics:
    def __init__(self, registry: CollectorRegistry, *, per_domain: bool = True) -> None:
        self.per_domain = per_domain
        self.checks = Counter(
            "rechecker_checks", "Checks by verdict.", ["verdict"], registry=registry
        )
        self.transitions = Counter(
            "rechecker_state_transitions",
            "Domains going down or recovering.",
            ["kind"],
            registry=registry,
        )
        self.domains = Gauge(
            "rechecker_domains",
            "Domains by state after the last check.",
            ["state"],
            registry=registry,
        )
        self.cycle_duration = Gauge(
            "rechecker_cycle_duration_seconds",
            "Duration of the last check cycle.",
            registry=registry,
        )
        self.cycle_checked = Gauge(
            "rechecker_cycle_checked",
            "Domains checked by the last check cycle.",
            registry=registry,
        )
        self.domain_up = Gauge(
            "rechecker_domain_up", "1 unless the domain is DOWN.", ["domain"], registry=registry
        )
        self.probe_duration = Gauge(
            "rechecker_probe_duration_seconds",
            "Duration of the last check by phase.",
            ["domain", "phase"],
            registry=registry,
        )
        self.cert_expiry = Gauge(
            "rechecker_cert_expiry_timestamp_seconds",
            "When the domain's TLS certificate expires (Unix time).",
            ["domain"],
            registry=registry,
        )
        self._lag = Gauge(
            "rechecker_check_lag_seconds",
            "How overdue the oldest due site was at the last claim (0 when keeping up).",
            registry=registry,
        )
        self.results_dropped = Counter(
            "rechecker_results_dropped",
            "Check results dropped unwritten: the store was down and the buffer full.",
            registry=registry,
        )
        self._buffered = Gauge(
            "rechecker_results_buffered",
            "Check results waiting in memory for the store to take them.",
            registry=registry,
        )
        self._states: dict[str, State] = {}

    def watch_lag(self, read: Callable[[], float]) -> None:
        self._lag.set_function(read)

    def watch_buffer(self, read: Callable[[], float]) -> None:
        self._buffered.set_function(read)

    def observe(self, results: Sequence[CheckResult]) -> None:
        for result in results:
            self.checks.labels((result.verdict or result.state).value).inc()
            self._states[result.domain] = result.state
            if self.per_domain:
                self._observe_domain(result)
        for state in State:
            self.domains.labels(state.value).set(
                sum(1 for value in self._states.values() if value is state)
            )

    def _observe_domain(self, result: CheckResult) -> None:
        domain = result.domain
        self.domain_up.labels(domain).set(0 if result.state is State.DOWN else 1)
        self.probe_duration.labels(domain, "dns").set(result.dns.latency_ms / 1000)
        if result.http is not None:
            self.probe_duration.labels(domain, "total").set(result.http.latency_ms / 1000)
            for phase, seconds in _http_phases(result):
                self.probe_duration.labels(domain, phase).set(seconds)
            not_after = _cert_not_after(result)
            if not_after is not None:
                self.cert_expiry.labels(domain).set(not_after)

    def transition(self, transition: Transition) -> None:
        self.transitions.labels(transition.kind).inc()

    def cycle(self, report: CycleReport) -> None:
        self.cycle_duration.set(report.duration_s)
        self.cycle_checked.set(report.checked)

    def forget(self, domains: Iterable[str]) -> None:
        """Drop the series of domains no longer monitored."""
        for domain in domains:
            self._states.pop(domain, None)
            for gauge in (self.domain_up, self.cert_expiry):
                with contextlib.suppress(KeyError):
                    gauge.remove(domain)


def _http_phases(result: CheckResult) -> list[tuple[str, float]]:
    """The HTTP probe's phase timings in seconds (total is reported on its own)."""
    if result.http is None:
        return []
    timings = result.http.timings
    return [
        ("connect", timings.connect_ms / 1000),
        ("tls", timings.tls_ms / 1000),
        ("first_byte", timings.first_byte_ms / 1000),
        ("body", timings.body_ms / 1000),
    ]


def _cert_not_after(result: CheckResult) -> float | None:
    tls = None if result.http is None else result.http.tls
    if tls is None or tls.not_after is None:
        return None
    return tls.not_after.timestamp()


class SchedulerCollector(Collector):
    """Scheduler lag, runs and failures, read from the schedulers at scrape time."""

    def __init__(self, schedulers: Sequence[Periodic]) -> None:
        self._schedulers = schedulers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "rechecker_scheduler_lag_seconds",
            "How far the scheduler's run in progress (else its last run) overran its interval.",
            labels=["scheduler"],
        )
        failures = GaugeMetricFamily(
            "rechecker_scheduler_failures", "Failed runs since start.", labels=["scheduler"]
        )
        runs = GaugeMetricFamily(
            "rechecker_scheduler_runs", "Runs since start.", labels=["scheduler"]
        )
        for scheduler in self._schedulers:
            status = scheduler.status
            lag.add_metric([status.name], scheduler.lag())
            failures.add_metric([status.name], status.failures)
            runs.add_metric([status.name], status.runs)
        yield from (lag, failures, runs)
