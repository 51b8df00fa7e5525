"""Cumulative counts and histograms of a site since the process started.

Kept beside the committed live state and updated as events are applied, in plain Python
(no metrics library on the replay path). Unlike the day's state they survive the service
day's rollover, so exported counters never decrease while the process runs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

WAIT_BASE_BOUNDS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)
WALK_BOUNDS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SERVICE_BOUNDS = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0)
# |actual wait - the estimate given at issue|; 300 s is the evaluation's "within 5 minutes".
ESTIMATE_ERROR_BOUNDS = (120.0, 300.0, 600.0, 1800.0)
CLOSED_OUTCOMES = ("served", "incomplete", "referred", "transferred", "no_show", "cancelled")


def wait_bounds(targets_seconds: Iterable[int]) -> tuple[float, ...]:
    """Wait buckets: a base scale plus every configured target, so ratios are exact."""
    return tuple(float(b) for b in sorted(set(WAIT_BASE_BOUNDS) | set(targets_seconds)))


class Histogram:
    """Per-bucket counts (not cumulative; the last slot is +Inf), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.bounds, self.counts, self.sum, self.count) == (
            other.bounds,
            other.counts,
            other.sum,
            other.count,
        )

    __hash__ = None  # type: ignore[assignment]

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out


class SiteTotals:
    def __init__(
        self, services: Iterable[str], counters: Iterable[str], wait: tuple[float, ...]
    ) -> None:
        services = list(services)
        self.version = 0  # bumped on every change; lets the exporter cache rendered text
        self.issued = dict.fromkeys(services, 0)
        self.called = dict.fromkeys(services, 0)
        self.called_within = dict.fromkeys(services, 0)
        self.recalled = dict.fromkeys(services, 0)
        self.closed = {(s, o): 0 for s in services for o in CLOSED_OUTCOMES}
        self.wait = {s: Histogram(wait) for s in services}
        self.walk = {s: Histogram(WALK_BOUNDS) for s in services}
        self.service = {s: Histogram(SERVICE_BOUNDS) for s in services}
        # Accountability of the estimated wait (first visits given an estimate at issue,
        # at their first call): |actual - estimate|, and the seconds waited beyond what
        # was told (under) and short of it (over); bias = (over - under) / count.
        self.estimate_error = {s: Histogram(ESTIMATE_ERROR_BOUNDS) for s in services}
        self.estimate_under = dict.fromkeys(services, 0.0)
        self.estimate_over = dict.fromkeys(services, 0.0)
        self.counter_served = dict.fromkeys(counters, 0)
        self.counter_busy = dict.fromkeys(counters, 0.0)
