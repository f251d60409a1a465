"""`flux report`: what really happened at a site, from its telemetry database."""
