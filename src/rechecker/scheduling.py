"""In-process schedulers: run a job now, then every interval, never two runs at once.

The original ran its schedulers from cron and had them call their own HTTP APIs. Here a
scheduler calls the same Python function the API endpoint calls, and survives the job
failing (a database outage must not kill it): the error is logged and shown on ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from pydantic import BaseModel

from rechecker.models import utcnow
from rechecker.redact import redact_text

log = logging.getLogger(__name__)


class SchedulerStatus(BaseModel):
    name: str
    interval_s: float
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_duration_s: float | None = None
    last_error: str | None = None
    next_run: datetime | None = None
    #: How far the last run overran its interval, delaying the next: a sign of overload.
    lag_s: float = 0.0


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self._job = job
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: When the run in progress started (monotonic clock), None between runs.
        self._run_started: float | None = None
        self.status = SchedulerStatus(name=name, interval_s=interval)

    def lag(self) -> float:
        """How far behind its interval the scheduler is now: while a run overruns, by how
        much so far (a stuck cycle shows at once, not only when it ends); between runs, the
        last run's overrun."""
        started = self._run_started
        if started is None:
            return self.status.lag_s
        return round(max(self.status.lag_s, time.monotonic() - started - self.interval), 3)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop; a run in progress gets ``grace_s`` seconds to finish before it is cancelled."""
        if self._task is not None:
            if grace_s > 0 and not self._idle.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), grace_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> None:
        """One run of the job, with its outcome recorded; exceptions are logged, not raised."""
        status = self.status
        status.running = True
        self._idle.clear()
        status.last_started = utcnow()
        started = time.perf_counter()
        self._run_started = time.monotonic()
        try:
            await self._job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status.failures += 1
            status.last_error = redact_text(f"{type(exc).__name__}: {exc}")
            log.exception("scheduler %s failed", self.name, extra={"scheduler": self.name})
        else:
            status.last_error = None
        finally:
            self._run_started = None
            status.running = False
            self._idle.set()
            status.runs += 1
            status.last_finished = utcnow()
            status.last_duration_s = round(time.perf_counter() - started, 3)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.run_once()
            elapsed = loop.time() - started
            self.status.lag_s = round(max(0.0, elapsed - self.interval), 3)
            delay = max(0.0, self.interval - elapsed)
            self.status.next_run = utcnow() + timedelta(seconds=delay)
            await asyncio.sleep(delay)
