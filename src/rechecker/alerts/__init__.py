"""Alerts: tell people when a domain goes down, comes back or its certificate nears expiry.

The core's state machine and the probes publish :class:`AlertEvent` objects; the
:class:`Alerter` keeps them to one per transition (deduplication, mutes, maintenance windows,
rate limits) and delivers them through apprise with retries. Settings: :class:`AlertSettings`,
read from ``RECHECKER_ALERTS__*``; see docs/alerts.md.
"""

from rechecker.alerts.config import AlertSettings, MaintenanceWindow
from rechecker.alerts.events import AlertEvent
from rechecker.alerts.notifier import Alerter

__all__ = ["AlertEvent", "AlertSettings", "Alerter", "MaintenanceWindow"]
