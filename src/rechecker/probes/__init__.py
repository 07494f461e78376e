"""Probes: one kind a module, all with the same call shape, selected by name.

Like blackbox_exporter's probers, every probe is ``async (site, ctx) -> result`` and turns
every network outcome into a classified result instead of raising. ``tls`` is the HTTP
probe's certificate check (HTTPS only); ``options`` holds what a site's checks expect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from rechecker.models import Site
from rechecker.probes import dns, http
from rechecker.probes.context import ProbeContext, ProbeSettings

Probe = Callable[[Site, ProbeContext], Awaitable[BaseModel]]

PROBES: dict[str, Probe] = {
    "dns": dns.probe,
    "http": http.probe,
}

__all__ = ["PROBES", "Probe", "ProbeContext", "ProbeSettings"]
