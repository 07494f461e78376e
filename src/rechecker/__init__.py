"""Rechecker: keeps a fleet of domains in sync with an inventory and checks their health."""

__version__ = "3.0.0.dev0"
