"""Antrian: queue and service-time monitoring for Indonesian public service halls (MPP)."""

__version__ = "0.1.0"
