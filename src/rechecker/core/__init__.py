"""core: checks every monitored domain's DNS and HTTP health on a schedule."""
