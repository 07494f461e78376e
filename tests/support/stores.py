"""A test's own view of a store: open it, run one action, close it, apart from the processes
under test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rechecker.store import Store, create_store

T = TypeVar("T")


def on_store(url: str, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` on a store of its own at ``url`` and return what it returns."""

    async def run() -> T:
        store = create_store(url)
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())
