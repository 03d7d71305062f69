"""Prometheus gauges derived from the database (the sync outbox, dead letters, sync lag)."""
