"""Synchronous access to the async store, for Flask's threaded views.

The store's engine and connections belong to the event loop that opened them, so one loop
must own the store for its whole life. A blocking portal runs that loop in a background
thread; every view thread hands its store call to the portal and waits for the answer.
Views only see plain methods and :class:`~rechecker.store.StoreError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar, TypeVarTuple

from anyio.from_thread import BlockingPortal, start_blocking_portal

from rechecker.models import CheckResult, HistoryPoint, Incident, Site
from rechecker.store import Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: After a failed open, requests fail fast for this long instead of each waiting on the
#: database's connect timeout in turn.
REOPEN_DELAY = 5.0


class StoreBridge:
    """One store, opened and used on a private event loop, callable from any thread.

    The dashboard must come up even while the store is down (it then answers 503 until the
    store is back), so a failed open is logged and retried by later calls rather than raised
    from the constructor. Configuration mistakes that are not a :class:`StoreError` (a
    missing driver, say) still raise at once.
    """

    def __init__(self, store: Store, *, reopen_delay: float = REOPEN_DELAY) -> None:
        self._store = store
        self._reopen_delay = reopen_delay
        self._lock = threading.Lock()
        self._opened = False
        self._closed = False
        self._last_error: StoreError | None = None
        self._retry_at = 0.0
        self._stack = ExitStack()
        self._portal: BlockingPortal = self._stack.enter_context(
            start_blocking_portal(name="rechecker-frontend-store")
        )
        try:
            self._ensure_open()
        except StoreError as exc:
            log.warning("dashboard started without its store: %s", exc)
        except BaseException:
            self._stack.close()
            raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._opened else "not open"
        return f"StoreBridge({self._store!r}, {state})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_open(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreError("the dashboard's store connection is closed")
            if self._opened:
                return
            if self._last_error is not None and time.monotonic() < self._retry_at:
                raise StoreError(str(self._last_error))
            try:
                self._portal.call(self._store.open)
            except StoreError as exc:
                self._fail(exc)
                raise
            self._opened = True
            self._last_error = None
            log.info("dashboard store open: %r", self._store)

    def _fail(self, error: StoreError) -> None:
        self._last_error = error
        self._retry_at = time.monotonic() + self._reopen_delay

    def _call(self, func: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        self._ensure_open()
        try:
            return self._portal.call(func, *args)
        except RuntimeError as exc:
            # The portal refuses work once it has stopped: a call racing close().
            if self._closed:
                raise StoreError("the dashboard's store connection is closed") from exc
            raise

    # --- the store calls the dashboard needs ---------------------------------------------
    def ping(self) -> None:
        self._call(self._store.ping)

    def list_status(self) -> list[CheckResult]:
        return self._call(self._store.list_status)

    def get_status(self, domain: str) -> CheckResult | None:
        return self._call(self._store.get_status, domain)

    def history(self, domain: str, limit: int = 50) -> list[CheckResult]:
        return self._call(self._store.history, domain, limit)

    def history_points(self, domain: str, since: datetime) -> list[HistoryPoint]:
        return self._call(self._store.history_points, domain, since)

    def list_incidents(
        self, *, domain: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        async def call() -> list[Incident]:
            return await self._store.list_incidents(domain=domain, open_only=open_only, limit=limit)

        return self._call(call)

    def list_sites(self) -> list[Site]:
        return self._call(self._store.list_sites)

    def get_site(self, domain: str) -> Site | None:
        return self._call(self._store.get_site, domain)

    def close(self) -> None:
        """Close the store on its own loop, then stop the loop; safe to call twice.

        Explicit rather than atexit, so tests and servers decide when connections go away.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._opened:
                    self._portal.call(self._store.close)
            except Exception:
                log.exception("closing the dashboard's store failed")
            finally:
                self._opened = False
                self._stack.close()
