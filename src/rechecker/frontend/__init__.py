"""The ``flask_web`` component: a read-only dashboard of every monitored domain's health.

Flask serves requests from plain threads while the store is async, so the dashboard reaches
the store through :class:`~rechecker.frontend.storebridge.StoreBridge`, which keeps one event
loop of its own. Build the app with :func:`~rechecker.frontend.app.create_app`; what the
pages show and why is in docs/dashboard.md.
"""

from __future__ import annotations

from rechecker.frontend.app import close_app, create_app
from rechecker.frontend.auth import DashboardAuth
from rechecker.frontend.storebridge import StoreBridge

__all__ = ["DashboardAuth", "StoreBridge", "close_app", "create_app"]
