"""Cumulative counts and histograms of a site over its whole history.

Kept beside the committed live state and updated as events are applied, in plain Python
(no metrics library on the replay path). Unlike the day's state they survive the service
day's rollover; at start-up they are restored from the totals stored through the last
closed service day (`to_json` / `from_json`, table `site_totals`) before today is
replayed on top, so exported counters never decrease, across restarts and days alike.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from queue_service.domain.vocab import Outcome

WAIT_BASE_BOUNDS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)
WALK_BOUNDS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SERVICE_BOUNDS = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0)
# |actual wait - the estimate given at issue|; 300 s is the evaluation's "within 5 minutes".
ESTIMATE_ERROR_BOUNDS = (120.0, 300.0, 600.0, 1800.0)


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

    def add(self, bounds: tuple[float, ...], counts: list[int], total: float, count: int) -> None:
        """Add another histogram's per-bucket counts (see `SiteTotals.add_json`)."""
        if bounds == self.bounds:
            for i, c in enumerate(counts):
                self.counts[i] += c
        else:
            for bound, c in zip((*bounds, float("inf")), counts, strict=True):
                self.counts[bisect_left(self.bounds, bound)] += c
        self.sum += total
        self.count += count

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
        # Segments closed, by service and how they closed (`Outcome`).
        self.closed = {(s, o): 0 for s in services for o in Outcome}
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
        # Seconds each counter was open, holding no ticket, while one of its services had
        # tickets waiting (closed intervals; the open one is added at scrape time).
        self.counter_idle = dict.fromkeys(counters, 0.0)

    _COUNTS = ("issued", "called", "called_within", "recalled")
    _SERVICE_SUMS = ("estimate_under", "estimate_over")
    _HISTOGRAMS = ("wait", "walk", "service", "estimate_error")
    _COUNTER_SUMS = ("counter_served", "counter_busy", "counter_idle")

    def to_json(self) -> dict[str, Any]:
        """Every total, keyed by name, as JSON-ready values (stored in `site_totals`)."""
        out: dict[str, Any] = {}
        for name in (*self._COUNTS, *self._SERVICE_SUMS, *self._COUNTER_SUMS):
            out[name] = dict(getattr(self, name))
        out["closed"] = {f"{s}|{o}": n for (s, o), n in self.closed.items()}
        for name in self._HISTOGRAMS:
            out[name] = {
                key: {"bounds": list(h.bounds), "counts": h.counts, "sum": h.sum, "count": h.count}
                for key, h in getattr(self, name).items()
            }
        return out

    def add_json(self, stored: Mapping[str, Any]) -> None:
        """Add totals stored by `to_json` (of an earlier configuration, perhaps) to these.

        Services, counters and outcomes no longer configured are left out (their series are
        gone). A histogram stored with other bucket bounds than configured now (a service's
        target changed) is re-bucketed: the observations of a stored bucket are counted in
        the first current bucket whose bound is at least the stored bound, which keeps
        every cumulative bucket exact at bounds that both layouts share and never lets a
        bucket decrease."""
        for name in (*self._COUNTS, *self._SERVICE_SUMS, *self._COUNTER_SUMS):
            mine = getattr(self, name)
            for key, value in stored.get(name, {}).items():
                if key in mine:
                    mine[key] += value
        for key, value in stored.get("closed", {}).items():
            service, _, outcome = key.partition("|")
            if (service, outcome) in self.closed:
                self.closed[(service, outcome)] += value
        for name in self._HISTOGRAMS:
            mine = getattr(self, name)
            for key, h in stored.get(name, {}).items():
                if key in mine:
                    mine[key].add(tuple(h["bounds"]), h["counts"], h["sum"], h["count"])
        self.version += 1
