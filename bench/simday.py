"""(e) The offline simulator: one full day of a 20-counter hall, on a simulated clock.

Timed per profile (median of `--reps` runs, in this process):

  simulate          `queue_service.simulate.offline.run_day`: the day's plan, every command
                    decided by the pure domain (the shipped estimate computed at each issue)
                    and applied, plus the baseline predictor asked at each issue
  simulate, no eval the same without asking any predictor beyond the one the issue stores
  apply only        the baseline: the same day's events, already in memory, applied to a
                    fresh `SiteState` (what the day costs the domain without deciding)
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import banner, median, spread
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.simulate.day import HallDay
from queue_service.simulate.offline import OfflineDriver
from queue_service.simulate.profiles import profile, sample_hall


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--counters", type=int, default=20)
    p.add_argument("--profiles", nargs="*", default=["typical", "overloaded"])
    p.add_argument("--seed", type=int, default=1)


def main(args: argparse.Namespace, url: str | None = None) -> None:
    site = next(iter(sample_hall(args.counters).sites.values()))
    banner(f"simday: one offline day of a {args.counters}-counter hall, median of {args.reps}")
    for name in args.profiles:
        sim: list[float] = []
        bare: list[float] = []
        apply: list[float] = []
        events = 0
        for _ in range(args.reps):
            began = time.perf_counter()
            hall = HallDay(site, profile(name), args.seed)
            driver = OfflineDriver(site, hall.day)
            asyncio.run(driver.run(hall))
            sim.append(time.perf_counter() - began)

            began = time.perf_counter()
            hall = HallDay(site, profile(name), args.seed)
            lean = OfflineDriver(site, hall.day, predictors={})
            asyncio.run(lean.run(hall))
            bare.append(time.perf_counter() - began)
            assert [e.type for e in lean.events] == [e.type for e in driver.events]

            day_events = driver.events
            events = len(day_events)
            bounds = wait_bounds(s.target_wait_seconds for s in site.services.values())
            began = time.perf_counter()
            state = SiteState(site, hall.day, SiteTotals(site.services, site.counters, bounds))
            for e in day_events:
                state.apply(e)
            apply.append(time.perf_counter() - began)
        print(
            f"{name}: {events:,} events; simulate {spread(sim, '{:.3f}')} s, "
            f"simulate without evaluation {spread(bare, '{:.3f}')} s, "
            f"apply only {spread(apply, '{:.4f}')} s; "
            f"simulate / apply = {median(sim) / median(apply):.0f}x; "
            f"{events / median(sim):,.0f} events/s",
            flush=True,
        )
