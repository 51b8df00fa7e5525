"""Soak: a simulated week of a large hall through the real service, at accelerated speed.

The real app (`create_app`) runs on a PostgreSQL database with an injected `ManualClock`
that this module moves forward: each day is the simulator's `HallDay` (arrivals, service
times, counter schedules, breaks, pauses, no-shows, transfers, cancellations) played
through the public HTTP API with the kiosk and counter tokens and an Idempotency-Key on
every command, as fast as the service answers. Between two days the clock crosses local
midnight (Asia/Makassar) with commands just before and just after it.

After every day it records what a leak would show: RSS, open file descriptors, asyncio
tasks, objects the garbage collector tracks (and those frozen by `queue_service.heap`),
the tickets in the engine's committed state and the events committed; at every midnight,
that the day rolled over right (numbering restarts at 001, yesterday's tickets gone from
the live state and the ticket API, the stored `service_day` of the events just before and
just after midnight the right local dates).

    python -m bench.soak                      # a week of a 24-counter hall
    python -m bench.soak --days 3 --counters 8

`tests/faults/test_soak.py` runs it shortened in CI (and full with ANTRIAN_SOAK_FULL=1)
and asserts on the figures; this module only measures and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
from aiohttp.test_utils import TestServer

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.site import WEEKDAYS, Site
from queue_service.domain.vocab import CounterStatus
from queue_service.settings import Settings
from queue_service.simulate.day import HallDay
from queue_service.simulate.http import HttpDriver
from queue_service.simulate.profiles import (
    SIM_COUNTER_TOKEN,
    SIM_KIOSK_TOKEN,
    profile,
    sample_hall,
)
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE

# Tuesday 24 November 2026: the week then holds a Sunday and ends on a Monday.
FIRST_DAY = date(2026, 11, 24)
MIB = 1 << 20


def soak_hall(counters: int) -> AppConfig:
    """The simulator's sample hall, open around the clock every day, so that tickets can
    be issued just before and just after midnight (the simulated traffic keeps to the
    profile's hours, 07:50 to 16:30)."""
    config = sample_hall(counters, site_id="mpp-soak")
    site = next(iter(config.sites.values()))
    site = replace(site, hours={d: (day_time(0, 0), day_time(23, 59)) for d in WEEKDAYS})
    return replace(config, path="<soak hall>", sites={site.id: site})


@dataclass(slots=True)
class ClockDriver(HttpDriver):
    """The HTTP driver with the service's clock moved to each command's time, instead of
    waiting for it in real time: a day takes as long as its commands take to answer."""

    clock: ManualClock | None = None

    async def wait_until(self, at: datetime) -> None:
        assert self.clock is not None
        if at > self.clock.now():
            self.clock.set(at)


@dataclass(slots=True)
class DayFigures:
    day: date
    seconds: float  # real time the day took
    issued: int  # tickets issued that day (simulator and midnight probe)
    commands: int  # commands the service carried out that day
    refused: int  # commands answered with an error code (queue_empty excluded)
    events: int  # events the engine committed that day
    stored: int  # events stored for the day's service_day
    live: int  # tickets in the engine's committed state at the end of the day
    live_other_days: int  # of those, tickets issued on another local day (must be 0)
    rss: int
    fds: int
    tasks: int
    gc_tracked: int  # objects the collector tracks (generations 0-2)
    gc_frozen: int  # objects frozen by the heap policy
    # Python's allocated memory blocks (sys.getallocatedblocks(), cheap and exact): at the
    # end of the day's traffic, and right after the next midnight (the day's state gone).
    blocks_end: int = 0
    blocks_after_midnight: int | None = None
    # Python heap (tracemalloc, when traced): at the end of the day's traffic, and right
    # after the next midnight, when the day's state has been dropped.
    heap_end: int | None = None
    heap_after_midnight: int | None = None

    def row(self) -> str:
        return (
            f"{self.day.isoformat()} {WEEKDAYS[self.day.weekday()]} "
            f"{self.seconds:6.1f} s  issued {self.issued:5d}  commands {self.commands:6d}  "
            f"events {self.events:6d} (stored {self.stored:6d})  live {self.live:5d} "
            f"(other days {self.live_other_days})  RSS {self.rss / MIB:7.1f} MiB  "
            f"fds {self.fds:3d}  tasks {self.tasks:3d}  gc {self.gc_tracked:8d} "
            f"frozen {self.gc_frozen:8d}  blocks {self.blocks_end:8d}"
            + ("" if self.blocks_after_midnight is None else f" -> {self.blocks_after_midnight:8d}")
            + (
                ""
                if self.heap_end is None
                else f"  heap {self.heap_end / MIB:6.2f} MiB"
                + (
                    ""
                    if self.heap_after_midnight is None
                    else f" -> {self.heap_after_midnight / MIB:6.2f} after midnight"
                )
            )
        )


@dataclass(slots=True)
class Midnight:
    """What was seen crossing from `before` to `before + 1 day` at local midnight."""

    before: date
    numbers_before: str  # the ticket issued at 23:58:59
    number_after: str  # the first ticket issued at 00:00:01 (must end in 001)
    expected_after: str
    stored_days: dict[str, tuple[date, date]]  # event: (stored service_day, expected)
    yesterday_ticket_status: int  # GET of the 23:58:59 ticket after midnight (404)
    live_after: int  # tickets in the committed state right after midnight
    live_day_after: date | None
    events_at_crossing: int  # the engine's committed events at midnight

    @property
    def ok(self) -> bool:
        return (
            self.number_after == self.expected_after
            and all(stored == expected for stored, expected in self.stored_days.values())
            and self.yesterday_ticket_status == 404
            and self.live_after == 1
            and self.live_day_after == self.before + timedelta(days=1)
        )

    def row(self) -> str:
        days = ", ".join(
            f"{name} {stored.isoformat()}" + ("" if stored == want else f" (want {want})")
            for name, (stored, want) in self.stored_days.items()
        )
        return (
            f"midnight {self.before.isoformat()} -> {self.before + timedelta(days=1)}: "
            f"{self.numbers_before} at 23:58:59, {self.number_after} at 00:00:01 "
            f"(want {self.expected_after}); stored service_day: {days}; yesterday's ticket "
            f"-> {self.yesterday_ticket_status}; live after midnight {self.live_after} "
            f"ticket(s) of {self.live_day_after}; {'ok' if self.ok else 'WRONG'}"
        )


@dataclass(slots=True)
class SoakResult:
    counters: int
    days: list[DayFigures] = field(default_factory=list)
    midnights: list[Midnight] = field(default_factory=list)
    numbering_errors: list[str] = field(default_factory=list)
    leftover_tasks: int = 0
    # The lines whose Python allocations grew most from the middle midnight to the last
    # (tracemalloc; when traced and the run crosses at least two midnights).
    heap_growth: list[str] = field(default_factory=list)

    def summary(self) -> str:
        first, last = self.days[0], self.days[-1]
        base = self.days[1] if len(self.days) > 1 else first
        return (
            f"{len(self.days)} days of a {self.counters}-counter hall: "
            f"{sum(d.issued for d in self.days)} tickets, {sum(d.commands for d in self.days)} "
            f"commands, {sum(d.events for d in self.days)} events; RSS day 2 "
            f"{base.rss / MIB:.1f} MiB -> day {len(self.days)} {last.rss / MIB:.1f} MiB "
            f"({(last.rss - base.rss) / MIB:+.1f}); fds {first.fds} -> {last.fds}; tasks "
            f"{first.tasks} -> {last.tasks}; live tickets of other days "
            f"{sum(d.live_other_days for d in self.days)}; Python heap after midnight "
            f"{self._heap_after_midnights()}; midnights right "
            f"{sum(m.ok for m in self.midnights)}/{len(self.midnights)}; numbering errors "
            f"{len(self.numbering_errors)}"
        )

    def _heap_after_midnights(self) -> str:
        blocks = [d.blocks_after_midnight for d in self.days if d.blocks_after_midnight]
        if len(blocks) < 2:
            return "n/a (one midnight)"
        growth = blocks[-1] - blocks[1]
        return f"{blocks[1]} -> {blocks[-1]} blocks ({growth:+d}) from the second to the last"


class _Api:
    """Direct calls for the midnight probe (the simulator's driver is for the day)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, site: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.site = site

    async def post(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        async with self.session.post(self.base_url + path, json=body, headers=headers) as resp:
            data: dict[str, Any] = await resp.json()
            assert resp.status in (200, 201), (path, resp.status, data)
            return data

    async def issue(self, service: str) -> dict[str, Any]:
        return await self.post(
            f"/api/v1/sites/{self.site}/tickets", SIM_KIOSK_TOKEN, {"service": service}
        )

    async def counter(self, counter: str, action: str) -> dict[str, Any]:
        token = SIM_COUNTER_TOKEN.format(counter=counter)
        path = f"/api/v1/sites/{self.site}/counters/{counter}/{action}"
        return await self.post(path, token, {})

    async def status(self, path: str) -> int:
        async with self.session.get(self.base_url + path) as resp:
            await resp.read()
            return resp.status


def _local(site: Site, day: date, t: day_time) -> datetime:
    return datetime.combine(day, t, tzinfo=site.timezone).astimezone(UTC)


async def _stored_days(database_url: str, seqs: dict[str, int]) -> dict[str, date]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT seq, service_day FROM ticket_events WHERE seq = ANY($1::bigint[])",
            list(seqs.values()),
        )
    finally:
        await conn.close()
    by_seq = {r["seq"]: r["service_day"] for r in rows}
    return {name: by_seq[seq] for name, seq in seqs.items()}


async def _stored_per_day(database_url: str, site_id: str) -> dict[date, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT service_day, count(*) AS n FROM ticket_events WHERE site_id = $1"
            " GROUP BY service_day",
            site_id,
        )
    finally:
        await conn.close()
    return {r["service_day"]: r["n"] for r in rows}


def _check_numbering(day: date, numbers: list[str], errors: list[str]) -> None:
    """Per prefix, the day's numbers are 001, 002, ... in issue order, without a gap."""
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for number in numbers:
        by_prefix[number.rstrip("0123456789")].append(
            int(number[len(number.rstrip("0123456789")) :])
        )
    for prefix, seen in sorted(by_prefix.items()):
        if seen != list(range(1, len(seen) + 1)):
            errors.append(f"{day}: {prefix} numbers {seen[:5]}... are not 1..{len(seen)}")


async def run_soak(
    database_url: str,
    *,
    days: int,
    counters: int,
    seed: int = 1,
    load: float | None = None,
    first_day: date = FIRST_DAY,
    report: Callable[[str], None] = print,
    trace: bool = False,
) -> SoakResult:
    """Play `days` simulated days of a `counters`-counter hall through the real service.

    With `trace`, tracemalloc follows the Python heap (slower): its size at the end of
    every day and after every midnight, and what grew between the second midnight and the
    last."""
    config = soak_hall(counters)
    site = next(iter(config.sites.values()))
    clock = ManualClock(_local(site, first_day, day_time(7, 0)))
    settings = Settings(config_path=Path(config.path), database_url=database_url)
    app = create_app(settings, config, clock)
    process = psutil.Process()
    result = SoakResult(counters)
    probe_service = next(iter(site.services))
    probe_prefix = site.services[probe_service].prefix
    day_profile = profile("typical") if load is None else profile("typical", load=load)
    tasks_before = len(asyncio.all_tasks())
    snapshots: list[tracemalloc.Snapshot] = []
    if trace:
        tracemalloc.start(8)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            base_url = str(server.make_url("/"))
            api = _Api(session, base_url, site.id)
            engine = app[ENGINE]
            probe_numbers: list[str] = []  # issued by the midnight probe on the current day
            committed_at_midnight = engine.stats.events_committed
            for n in range(days):
                day = first_day + timedelta(days=n)
                began = time.perf_counter()
                hall = HallDay(site, day_profile, seed + n, day)
                clock.set(max(clock.now(), hall.start - timedelta(minutes=1)))
                driver = ClockDriver(
                    session,
                    base_url,
                    site.id,
                    SIM_KIOSK_TOKEN,
                    SIM_COUNTER_TOKEN,
                    hall.start,
                    clock=clock,
                )
                summary = await hall.run(driver)
                await api.status("/metrics")  # the collector reads the live state too
                await api.status(f"/api/v1/sites/{site.id}/display")
                issued_numbers = probe_numbers + [
                    number for kind, number, _ in driver.done if kind == "ticket_issued" and number
                ]
                state = engine.site_state(site.id)
                live = len(state.tickets)
                other_days = sum(
                    1 for t in state.tickets.values() if site.service_day(t.issued_at) != day
                )
                seconds = time.perf_counter() - began
                rss, fds = process.memory_info().rss, process.num_fds()
                tasks = len(asyncio.all_tasks())
                tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
                heap_end = tracemalloc.get_traced_memory()[0] if trace else None
                blocks_end = sys.getallocatedblocks()
                heap_after = blocks_after = None
                midnight = None
                if n < days - 1:
                    midnight = await _cross_midnight(
                        api, engine, clock, site, day, probe_service, database_url
                    )
                    # The 23:58:59 ticket continues the day's numbering; the new day's
                    # first ticket is 001.
                    issued_numbers.append(midnight.numbers_before)
                    probe_numbers = [midnight.number_after]
                    if midnight.number_after != f"{probe_prefix}001":
                        result.numbering_errors.append(
                            f"{day + timedelta(days=1)}: first ticket {midnight.number_after}"
                        )
                    committed = midnight.events_at_crossing
                    blocks_after = sys.getallocatedblocks()
                    if trace:
                        heap_after = tracemalloc.get_traced_memory()[0]
                        if n in (days // 2 - 1, days - 2):
                            snapshots.append(tracemalloc.take_snapshot())
                else:
                    committed = engine.stats.events_committed
                _check_numbering(day, issued_numbers, result.numbering_errors)
                figures = DayFigures(
                    day=day,
                    seconds=seconds,
                    issued=len(issued_numbers),
                    commands=len(driver.done),
                    refused=sum(summary.refused.values()),
                    events=committed - committed_at_midnight,
                    stored=(await _stored_per_day(database_url, site.id)).get(day, 0),
                    live=live,
                    live_other_days=other_days,
                    rss=rss,
                    fds=fds,
                    tasks=tasks,
                    gc_tracked=tracked,
                    gc_frozen=frozen,
                    blocks_end=blocks_end,
                    blocks_after_midnight=blocks_after,
                    heap_end=heap_end,
                    heap_after_midnight=heap_after,
                )
                committed_at_midnight = committed
                result.days.append(figures)
                report(figures.row())
                if midnight is not None:
                    result.midnights.append(midnight)
                    report(midnight.row())
    finally:
        await server.close()
        if trace:
            tracemalloc.stop()
    if len(snapshots) == 2 and days >= 4:
        keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
        older, newer = (snap.filter_traces(keep) for snap in snapshots)
        for stat in newer.compare_to(older, "lineno")[:8]:
            result.heap_growth.append(str(stat))
    result.leftover_tasks = len(asyncio.all_tasks()) - tasks_before
    return result


async def _cross_midnight(
    api: _Api,
    engine: Any,
    clock: ManualClock,
    site: Site,
    day: date,
    service: str,
    database_url: str,
) -> Midnight:
    """Commands at 23:58:59, 23:59:59.999, 00:00:00.000, 00:00:01 and 00:00:02 local time:
    a counter opened just before midnight is closed again on the new day, where it starts
    closed (opening it is allowed), and the first ticket of the new day is number 001."""
    today = engine.site_state(site.id)
    counter = next(
        c.id
        for c in today.counters.values()
        if c.state != CounterStatus.OPEN and c.ticket_id is None
    )
    next_day = day + timedelta(days=1)
    clock.set(_local(site, day, day_time(23, 58, 59)))
    before = await api.issue(service)
    clock.set(_local(site, day, day_time(23, 59, 59, 999_000)))
    opened_before = await api.counter(counter, "open")
    clock.set(_local(site, next_day, day_time(0, 0, 0)))
    opened_after = await api.counter(counter, "open")
    # Every event of `day` is committed by now: the day's own, and the expiry of the
    # tickets it left open, which the first command of the new day commits ahead of its
    # own events (if the day closer did not already).
    crossing = engine.stats.events_committed - (await _stored_per_day(database_url, site.id)).get(
        next_day, 0
    )
    clock.set(_local(site, next_day, day_time(0, 0, 1)))
    after = await api.issue(service)
    clock.set(_local(site, next_day, day_time(0, 0, 2)))
    await api.counter(counter, "close")
    yesterday = await api.status(f"/api/v1/tickets/{before['id']}")
    state = engine.site_state(site.id)
    stored = await _stored_days(
        database_url,
        {
            "issued 23:58:59": before["seq"],
            "opened 23:59:59.999": opened_before["seq"],
            "opened 00:00:00": opened_after["seq"],
            "issued 00:00:01": after["seq"],
        },
    )
    expected = {
        "issued 23:58:59": day,
        "opened 23:59:59.999": day,
        "opened 00:00:00": next_day,
        "issued 00:00:01": next_day,
    }
    prefix = site.services[service].prefix
    return Midnight(
        before=day,
        numbers_before=before["number"],
        number_after=after["number"],
        expected_after=f"{prefix}001",
        stored_days={name: (stored[name], expected[name]) for name in expected},
        yesterday_ticket_status=yesterday,
        live_after=len(state.tickets),
        live_day_after=state.day,
        events_at_crossing=crossing,
    )


# -- the command -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from bench.common import fresh_database, run_on_server

    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--counters", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", type=float, default=None, help="offered load (default 0.75)")
    parser.add_argument("--trace", action="store_true", help="follow the heap with tracemalloc")
    args = parser.parse_args(argv)

    async def run(server_url: str) -> SoakResult:
        async with fresh_database(server_url, "soak") as url:
            return await run_soak(
                url,
                days=args.days,
                counters=args.counters,
                seed=args.seed,
                load=args.load,
                trace=args.trace,
            )

    result = run_on_server(None, run)
    print(result.summary())
    for error in result.numbering_errors:
        print("numbering:", error)
    for line in result.heap_growth:
        print("heap growth, middle midnight to last:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
