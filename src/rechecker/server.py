"""Runs one or more ASGI apps under uvicorn in one event loop (``rechecker all`` runs three).

uvicorn's own signal capture is per server; with several servers in one loop only the last
would hear SIGTERM, so this module installs one handler that stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    app: ASGIApp
    port: int


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(listeners: list[Listener], host: str) -> None:
    """Serve every listener until SIGINT/SIGTERM, then shut all of them down gracefully."""
    servers = [
        _Server(
            uvicorn.Config(
                listener.app,
                host=host,
                port=listener.port,
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                lifespan="auto",
            )
        )
        for listener in listeners
    ]
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
