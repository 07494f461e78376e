"""Alert providers: one folder a provider, one call shape, ``send(destination, event)``.

A provider delivers one event to one destination or raises :class:`DeliveryError`; retries,
rate limits and the queue are the alerter's, so a provider stays a thin adapter (the layout
Gatus uses for its alert providers).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from rechecker.alerts.events import AlertEvent


class DeliveryError(Exception):
    """A delivery that did not happen. The message must be safe to log (no secrets).

    ``retryable`` is False when trying again cannot help (a URL the provider cannot use).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(Protocol):
    async def send(self, destination: SecretStr, event: AlertEvent) -> None:
        """Deliver ``event`` to ``destination`` once, or raise :class:`DeliveryError`."""
        ...


__all__ = ["DeliveryError", "Provider"]
