"""Prometheus metrics: the exposition of live state, totals and the service's own health."""
