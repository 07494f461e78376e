"""Delivery through apprise: one URL scheme per service (Slack, e-mail, webhooks, PagerDuty…).

Apprise is synchronous (requests, smtplib), so each notification runs in a worker thread and
the event loop never waits on a mail server. One ``Apprise`` object is kept per destination:
apprise throttles per service object, and building one loads its plugins once.
"""

from __future__ import annotations

import asyncio

from apprise import Apprise, AppriseAsset, NotifyFormat, NotifyType
from pydantic import SecretStr

from rechecker.alerts.events import AlertEvent, AlertKind, render
from rechecker.alerts.providers import DeliveryError
from rechecker.alerts.secrets import scrub, secret_parts

_NOTIFY_TYPES: dict[AlertKind, NotifyType] = {
    "down": NotifyType.FAILURE,
    "recovered": NotifyType.SUCCESS,
    "cert_expiring": NotifyType.WARNING,
}


class AppriseProvider:
    """Sends alerts to apprise URLs; failures come back as :class:`DeliveryError`."""

    def __init__(self) -> None:
        # Kept in memory only: apprise's persistent store would otherwise write to disk.
        self._asset = AppriseAsset(
            app_id="Rechecker",
            app_desc="Rechecker alerts",
            storage_mode="memory",
            secure_logging=True,
        )
        self._clients: dict[str, Apprise] = {}

    async def send(self, destination: SecretStr, event: AlertEvent) -> None:
        url = destination.get_secret_value()
        client = self._clients.get(url)
        if client is None:
            client = await asyncio.to_thread(self._build, url)
            self._clients[url] = client
        title, body = render(event)
        result = await asyncio.to_thread(
            client.notify,
            body=body,
            title=title,
            notify_type=_NOTIFY_TYPES[event.kind],
            body_format=NotifyFormat.TEXT,
        )
        if not result:
            problems = [entry.message for entry in result.logs() if entry.message]
            reason = problems[-1] if problems else f"apprise reported {result.status.name}"
            raise DeliveryError(scrub(reason, secret_parts(url)))

    def _build(self, url: str) -> Apprise:
        """An Apprise object for one URL, or a non-retryable error saying why it is unusable."""
        try:
            plugin = Apprise.instantiate(url, asset=self._asset, suppress_exceptions=False)
        except Exception as exc:  # a plugin refuses its arguments in its own way
            reason = scrub(str(exc), secret_parts(url)) or type(exc).__name__
            raise DeliveryError(f"apprise cannot use this URL: {reason}", retryable=False) from exc
        if plugin is None:
            raise DeliveryError(
                "apprise cannot use this URL: unknown scheme or malformed", retryable=False
            )
        client = Apprise(asset=self._asset)
        client.add(plugin)
        return client
