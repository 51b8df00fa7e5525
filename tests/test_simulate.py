"""The hall simulator: reproducible days through the real domain (offline), and the same
day driven through a running service's HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from queue_service.config import AppConfig, load_config
from queue_service.domain.bookings import policy_of, window
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import BOOKING_STATE_AFTER, Event
from queue_service.domain.site import WEEKDAYS
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import (
    CLOSED,
    BookingEntry,
    BookingStatus,
    CounterStatus,
    EventType,
    Role,
    Source,
    TicketStatus,
)
from queue_service.settings import Settings
from queue_service.simulate.day import HallDay
from queue_service.simulate.http import HttpDriver
from queue_service.simulate.offline import OfflineDriver, run_day
from queue_service.simulate.profiles import (
    SIM_COUNTER_TOKEN,
    SIM_KIOSK_TOKEN,
    profile,
    sample_hall,
)
from queue_service.web.app import create_app
from tests.conftest import EXAMPLE, ROOT, fetch
from tests.halls import DEMO_KIOSK, Bearer, Hall, counter
from tests.service_process import Service

_ACTION_OF: dict[str, str] = {
    EventType.TICKET_ISSUED: "issued",
    EventType.TICKET_CALLED: "called",
    EventType.TICKET_RECALLED: "recalled",
    EventType.TICKET_STARTED: "started",
    EventType.TICKET_FINISHED: "finished",
    EventType.TICKET_NO_SHOW: "no_show",
    EventType.TICKET_TRANSFERRED: "transferred",
    EventType.TICKET_CANCELLED: "cancelled",
    EventType.COUNTER_OPENED: "opened",
    EventType.COUNTER_PAUSED: "paused",
    EventType.COUNTER_CLOSED: "closed",
    EventType.BOOKING_MADE: "booked",
    EventType.BOOKING_CANCELLED: "booking_cancelled",
    EventType.BOOKING_CHECKED_IN: "checked_in",
    EventType.BOOKING_MISSED: "missed",
    EventType.TICKET_CONFIRMED: "confirmed",
}
# What a check-in, a remote join or the day closer may be refused with in an online day:
# the simulated citizen reacts (comes back when check-in opens, or takes a walk-in ticket).
_ONLINE_REFUSALS = {"too_early", "site_closed", "booking_not_found", "too_late"}
# The actions done at a counter: their events name it.
_COUNTER_ACTIONS = {"called", "recalled", "started", "finished", "no_show", "transferred"}


def recount(events: list[Event]) -> Counter[str]:
    """The simulator's actions as the stored events tell them (a remote join is a ticket
    issued from the phone: also `joined`)."""
    out = Counter(_ACTION_OF[e.type] for e in events)
    out["joined"] = sum(
        1 for e in events if e.type == EventType.TICKET_ISSUED and e.data["source"] == Source.ONLINE
    )
    return +out


def site_of(config: AppConfig) -> Any:
    return next(iter(config.sites.values()))


async def test_the_same_seed_gives_the_same_day_event_for_event() -> None:
    site = site_of(sample_hall(20))
    first = await run_day(site, profile("typical"), 7)
    again = await run_day(site, profile("typical"), 7)
    assert len(first.events) > 2000
    assert first.events == again.events
    assert first.summary == again.summary


async def test_another_seed_gives_another_day() -> None:
    site = site_of(sample_hall(20))
    one = await run_day(site, profile("typical"), 7, date(2026, 11, 24))
    other = await run_day(site, profile("typical"), 8, date(2026, 11, 24))
    assert [(e.type, e.ts) for e in one.events] != [(e.type, e.ts) for e in other.events]


@pytest.mark.parametrize("name", ["quiet", "typical", "overloaded", "closing-early"])
async def test_an_offline_day_runs_through_the_domain_and_keeps_its_invariants(name: str) -> None:
    site = site_of(sample_hall(20))
    day = await run_day(site, profile(name), 3)
    events = day.events
    state = day.driver.state
    # The summary counts exactly what was stored.
    assert Counter(_ACTION_OF[e.type] for e in events) == Counter(day.summary.actions)
    assert day.summary.refused == {}
    # Every command's events, applied afresh in order, give the same state.
    again = SiteState(site, day.driver.day)
    for e in events:
        again.apply(e)
    assert again.tickets == state.tickets
    # The day ends with every counter closed, holding nothing, and no ticket held.
    assert all(
        c.state == CounterStatus.CLOSED and c.ticket_id is None for c in state.counters.values()
    )
    assert all(t.state in CLOSED or t.state == TicketStatus.WAITING for t in state.tickets.values())
    # Each ticket: issued first, called before it is started, finished, transferred or
    # marked a no-show; a visit's first call never before its start; one counter at a time.
    by_ticket: dict[str, list[Event]] = {}
    for e in events:
        if e.ticket_id is not None:
            by_ticket.setdefault(e.ticket_id, []).append(e)
    for history in by_ticket.values():
        assert history[0].type == EventType.TICKET_ISSUED
        assert [e.ts for e in history] == sorted(e.ts for e in history)
        holder = None
        for e in history[1:]:
            if e.type == EventType.TICKET_CALLED:
                assert holder is None
                holder = e.counter_id
            elif e.type in (EventType.TICKET_RECALLED, EventType.TICKET_STARTED):
                assert e.counter_id == holder
            elif e.type in (
                EventType.TICKET_FINISHED,
                EventType.TICKET_NO_SHOW,
                EventType.TICKET_TRANSFERRED,
            ):
                assert e.counter_id == holder
                holder = None
    held: dict[str, str] = {}
    for e in events:  # never two tickets at one counter
        if e.type == EventType.TICKET_CALLED:
            assert e.counter_id not in held
            held[e.counter_id or ""] = e.ticket_id or ""
        elif e.type in (
            EventType.TICKET_FINISHED,
            EventType.TICKET_NO_SHOW,
            EventType.TICKET_TRANSFERRED,
        ):
            assert held.pop(e.counter_id or "") == e.ticket_id
    numbers = [e.data["number"] for e in events if e.type == EventType.TICKET_ISSUED]
    assert len(numbers) == len(set(numbers))


async def test_a_day_has_the_hall_life_the_profile_describes() -> None:
    site = site_of(sample_hall(20))
    friday = await run_day(site, profile("typical"), 4, date(2026, 11, 27))
    acts = friday.summary.actions
    for happened in ("recalled", "no_show", "transferred", "cancelled", "paused"):
        assert acts.get(happened, 0) > 0, happened
    issued = [e for e in friday.events if e.type == EventType.TICKET_ISSUED]
    priority = sum(1 for e in issued if "priority" in e.data) / len(issued)
    assert 0.04 < priority < 0.13
    # The Friday prayer break (11:30-13:00 in this hall): counters pause for it.
    prayer = [
        e
        for e in friday.events
        if e.type == EventType.COUNTER_PAUSED
        and e.data.get("reason") == "Istirahat"
        and dt_time(11, 30) <= e.ts.astimezone(site.timezone).time() < dt_time(13, 0)
    ]
    assert len(prayer) >= 15
    # Arrivals peak in the morning and dip over the break; an overloaded day has more.
    hours = Counter(e.ts.astimezone(site.timezone).hour for e in issued)
    assert hours[9] > 2 * hours[12]
    overloaded = await run_day(site, profile("overloaded"), 4, date(2026, 11, 27))
    quiet = await run_day(site, profile("quiet"), 4, date(2026, 11, 27))
    assert quiet.summary.actions["issued"] < acts["issued"] < overloaded.summary.actions["issued"]


async def test_a_full_day_of_the_example_hall_runs_offline() -> None:
    site = load_config(EXAMPLE).sites["mpp-banjarmasin"]
    day = await run_day(site, profile("typical"), 2, date(2026, 11, 23))
    # Arrivals before opening and past a service's cutoff are refused, as the API would.
    assert set(day.summary.refused) <= {"site_closed", "cutoff_passed", "quota_reached"}
    assert day.summary.actions["issued"] > 500


async def test_an_online_day_ends_every_booking_as_a_recount_of_its_events_says() -> None:
    """Bookers book that morning, cancel, never come or check in early, on time or late;
    others join from home and confirm at the kiosk. Each booking ends checked in, cancelled
    or missed, and the book at the end of the day is what the events and the simulator's
    own counts say; the same seed gives the same day."""
    site = site_of(sample_hall(20))
    hall = HallDay(site, profile("online"), 5)
    driver = OfflineDriver(site, hall.day)
    summary = await driver.run(hall)
    again = await run_day(site, profile("online"), 5)
    assert driver.events == again.events
    events = driver.events
    assert recount(events) == Counter(summary.actions)
    assert set(summary.refused) <= _ONLINE_REFUSALS, summary.refused

    # Every booking made ended exactly once, as the book holds it at the end of the day.
    made = {e.ticket_id for e in events if e.type == EventType.BOOKING_MADE}
    ended: dict[str | None, BookingStatus] = {}
    for e in events:
        if e.type.is_booking_event and e.type != EventType.BOOKING_MADE:
            assert e.ticket_id not in ended, e
            ended[e.ticket_id] = BOOKING_STATE_AFTER[e.type]
    book = driver.state.bookings
    assert set(ended) == made == set(book.bookings)
    assert {b.id: b.state for b in book.bookings.values()} == ended
    outcomes = Counter(ended.values())
    assert outcomes == Counter(b.state for b in book.bookings.values())
    assert len(made) == summary.actions["booked"] > 50
    assert outcomes[BookingStatus.CHECKED_IN] == summary.actions["checked_in"] > 0
    assert outcomes[BookingStatus.CANCELLED] == summary.actions["booking_cancelled"] > 0
    assert outcomes[BookingStatus.MISSED] == summary.actions["missed"] > 0
    assert all(n == 0 for n in book.pending.values())  # none left waiting for check-in

    # Each booker's plan came true: those who cancel cancelled, those who never come were
    # missed, those who come checked in inside their window or, late, were missed.
    for b in hall.bookers:
        if b.booking_id is None:
            continue  # no slot left for them: walked in
        record = book.bookings[b.booking_id]
        if b.fate == "cancels":
            assert record.state == BookingStatus.CANCELLED
        elif b.fate == "absent":
            assert record.state == BookingStatus.MISSED
        else:
            svc = site.services[b.service]
            opens, closes = window(site, svc, record)
            arrives = record.checked_in_at
            if arrives is None:
                assert record.state == BookingStatus.MISSED
                assert b.slot is not None
                assert b.slot.starts_at + b.offset > closes
            else:
                assert record.state == BookingStatus.CHECKED_IN
                assert opens <= arrives <= closes
    assert {b.fate for b in hall.bookers} == {"comes", "absent", "cancels"}

    # Booked tickets name their booking; at_slot ones are due at their slot; remote joins
    # were confirmed at the kiosk; the replayed log gives the same state and book.
    issued = {e.ticket_id: e for e in events if e.type == EventType.TICKET_ISSUED}
    sources = Counter(e.data["source"] for e in issued.values())
    assert sources[Source.BOOKING] > 0 and sources[Source.ONLINE] > 0, sources
    for record in book.bookings.values():
        if record.ticket_id is None:
            continue
        ticket = issued[record.ticket_id]
        assert ticket.data["booking"] == record.id
        entry = policy_of(site.services[record.service]).entry
        if entry == BookingEntry.AT_SLOT and not record.late:
            due = datetime.fromisoformat(ticket.data["due_at"])
            assert due == datetime.combine(record.day, record.slot, site.timezone)
    assert summary.actions["confirmed"] > 0
    replayed = SiteState(site, driver.day)
    for e in events:
        replayed.apply(e)
    assert replayed.tickets == driver.state.tickets
    assert replayed.bookings.bookings == book.bookings
    # Predictions were kept for each kind of ticket, the booked ones' as the domain made
    # them (the driver checks its reading of the policy against each ticket's due time).
    kinds = Counter(p.source for p in driver.predictions.values() if p.wait is not None)
    assert kinds[Source.BOOKING] > 0 and kinds[Source.ONLINE] > 0 and kinds[Source.KIOSK] > 0


# -- mode (a): through HTTP -----------------------------------------------------------


class RunningClock:
    """Real time, started at a chosen instant: the service's clock in mode (a)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.began = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)


async def test_http_mode_drives_a_running_service_and_the_store_holds_what_it_reports(
    database_url: str, aiohttp_server: Any
) -> None:
    config = sample_hall(4)
    site = site_of(config)
    day = date(2026, 11, 24)  # a Tuesday, inside the hall's hours from 07:30
    start = datetime.combine(day, dt_time(7, 45), site.timezone).astimezone(UTC)
    settings = Settings(config_path=EXAMPLE, database_url=database_url)
    server = await aiohttp_server(create_app(settings, config, RunningClock(start)))
    hall = HallDay(site, profile("typical", load=0.6), 11, day)
    async with aiohttp.ClientSession() as session:
        driver = HttpDriver(
            session,
            str(server.make_url("/")),
            site.id,
            SIM_KIOSK_TOKEN,
            SIM_COUNTER_TOKEN,
            hall.start,
            speed=1800.0,  # half an hour a second
        )
        summary = await hall.run(driver, until=dt_time(9, 0))
    assert summary.actions["issued"] >= 10
    assert summary.actions["called"] >= 5
    assert summary.refused == {}

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, data ->> 'number' AS number, counter_id FROM ticket_events"
            " WHERE site_id = $1 ORDER BY seq",
            site.id,
        )
    finally:
        await conn.close()
    stored = [
        (r["type"], r["number"] if EventType(r["type"]).is_ticket_event else None, r["counter_id"])
        for r in rows
    ]
    # Ticket events carry their counter except issue and cancel; counter events name theirs.
    reported = [
        (t, n, None if t in (EventType.TICKET_ISSUED, EventType.TICKET_CANCELLED) else c)
        for t, n, c in driver.done
    ]
    assert stored == reported
    assert Counter(_ACTION_OF[t] for t, _, _ in driver.done) == Counter(summary.actions)
    assert dataclasses.asdict(summary)["day"] == day


@dataclasses.dataclass(slots=True)
class SteppedDriver(HttpDriver):
    """The HTTP driver with the service's clock moved to each command's time (instead of
    waiting for it in real time): the service's slots and check-in windows are the
    simulated day's."""

    clock: ManualClock | None = None

    async def wait_until(self, at: datetime) -> None:
        assert self.clock is not None
        if at > self.clock.now():
            self.clock.set(at)


async def test_http_mode_books_checks_in_and_joins_through_the_api(
    database_url: str, aiohttp_server: Any
) -> None:
    """The online profile against the real service and PostgreSQL: bookings and their
    cancellations through the public API, check-ins and remote joins' confirmations with
    the kiosk token, remote joins from the "phone"; the service's day closer marks missed
    whatever was never checked in. The store holds what the simulator reports, and every
    booking ends as the simulator's counts say."""
    config = sample_hall(4)
    site = site_of(config)
    day = date(2026, 11, 24)
    # Joining from home whatever the wait shown (no trip): remote joins surely happen.
    online = profile("online", remote_travel_minutes=(0.0, 0.0), remote_margin_minutes=(0.0, 0.0))
    hall = HallDay(site, online, 2, day)  # a day with every outcome of a booking
    clock = ManualClock(hall.start)
    settings = Settings(config_path=EXAMPLE, database_url=database_url)
    server = await aiohttp_server(create_app(settings, config, clock))
    async with aiohttp.ClientSession() as session:
        driver = SteppedDriver(
            session,
            str(server.make_url("/")),
            site.id,
            SIM_KIOSK_TOKEN,
            SIM_COUNTER_TOKEN,
            hall.start,
            clock=clock,
        )
        summary = await hall.run(driver)
        acts = summary.actions
        unfinished = acts["booked"] - acts["checked_in"] - acts["booking_cancelled"]

        async def all_missed() -> bool:
            rows = await fetch(
                database_url, "SELECT count(*) FROM ticket_events WHERE type = 'booking_missed'"
            )
            return int(rows[0][0]) >= unfinished

        deadline = time.monotonic() + 10
        while not await all_missed():
            assert time.monotonic() < deadline, "the day closer left bookings not missed"
            await asyncio.sleep(0.1)
    assert acts["booked"] >= 10
    assert acts["checked_in"] >= 3
    assert acts["joined"] >= 1 and acts["confirmed"] >= 1
    assert set(summary.refused) <= _ONLINE_REFUSALS, summary.refused

    rows = await fetch(
        database_url,
        "SELECT type, data ->> 'number' AS number, counter_id, ticket_id FROM ticket_events"
        " WHERE site_id = $1 ORDER BY seq",
        site.id,
    )
    stored = [
        (r["type"], r["number"] if EventType(r["type"]).is_ticket_event else None, r["counter_id"])
        for r in rows
        if r["type"] != EventType.BOOKING_MISSED
    ]
    reported = [
        (t, n, c if _ACTION_OF[t] in _COUNTER_ACTIONS or t.startswith("counter_") else None)
        for t, n, c in driver.done
    ]
    assert stored == reported
    # Every booking ended once: checked in, cancelled or (by the service's clock) missed.
    ends: Counter[str] = Counter()
    ended = set()
    for r in rows:
        kind = EventType(r["type"])
        if kind.is_booking_event and kind != EventType.BOOKING_MADE:
            assert r["ticket_id"] not in ended
            ended.add(r["ticket_id"])
            ends[BOOKING_STATE_AFTER[kind]] += 1
    assert ends == {
        BookingStatus.CHECKED_IN: acts["checked_in"],
        BookingStatus.CANCELLED: acts["booking_cancelled"],
        BookingStatus.MISSED: unfinished,
    }
    assert sum(ends.values()) == acts["booked"]


# -- the command line against a real service process ------------------------------------

# How long the service stays down in the restart test: 10 s, or 30 s (the long form) with
# ANTRIAN_RESTART_FULL=1.
OUTAGE = 30.0 if os.environ.get("ANTRIAN_RESTART_FULL") == "1" else 10.0


def open_all_day_example(target: Path) -> Path:
    """The example hall open round the clock (as `make demo` serves it)."""
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.demo_config(EXAMPLE, target)
    return target


def simulate(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "queue_service", "simulate", "http", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _stored(database_url: str, event: str) -> int:
    rows = await fetch(database_url, "SELECT count(*) FROM ticket_events WHERE type = $1", event)
    return int(rows[0][0])


async def _until(what: Any, seconds: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + seconds
    while not await what():
        assert proc.poll() is None, f"the simulator exited: {proc.communicate()}"
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(150)
async def test_http_mode_rides_out_a_restart_of_the_service_and_stops_on_ctrl_c(
    database_url: str, tmp_path: Path
) -> None:
    """The real service, SIGKILLed mid-day and started again OUTAGE seconds later: the
    simulator retries with growing delays, one line each, resumes the day, is rate limited
    on the way (waits, never dies), and Ctrl-C stops it with status 130 and no traceback.
    Nothing is done twice: the tickets stored are the ones it counted (+1 in flight)."""
    config = open_all_day_example(tmp_path / "hall.toml")
    service = Service(
        config,
        {
            **os.environ,
            "DATABASE_URL": database_url,
            "ANTRIAN_RATE_LIMITS": "on",
            "ANTRIAN_RATE_ISSUE_PER_KIOSK": "0.5/1",  # a ticket every 2 s
        },
    )
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        sim = simulate("--url", service.url, "--config", str(config), "--speed", "120")
        try:
            issued = 2  # past a burst of 1: it has been rate limited

            async def more_issued() -> bool:
                return await _stored(database_url, EventType.TICKET_ISSUED) > issued

            await _until(more_issued, 30, sim)
            service.kill()
            issued = await _stored(database_url, EventType.TICKET_ISSUED)
            await asyncio.sleep(OUTAGE)
            assert sim.poll() is None, sim.communicate()
            await service.start(session)
            await _until(more_issued, 60, sim)
            sim.send_signal(signal.SIGINT)
            out, err = await asyncio.to_thread(sim.communicate, timeout=30)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.communicate()
            service.terminate()
    assert sim.returncode == 130, err
    assert "Traceback" not in err, err
    delays = [float(d) for d in re.findall(r"; retry \d+ in ([\d.]+) s \(no answer", err)]
    assert len(delays) >= 4, err
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and max(delays) <= 10.0, err
    assert "the service answers again after" in err
    assert "rate limited by the service (429" in err
    assert "simulate: interrupted" in err
    counted = int(re.search(r"issued (\d+)", out).group(1))  # type: ignore[union-attr]
    stored = await _stored(database_url, EventType.TICKET_ISSUED)
    assert counted <= stored <= counted + 1, (counted, stored, out)


def closed_hall(weekday: str) -> Hall:
    """A one-counter hall (UTC) open only on `weekday`, with the demo kiosk and counter tokens."""
    loket = Bearer(
        "demo-loket-01", Role.COUNTER, name="loket 1", sites=("hall",), counters=("loket-01",)
    )
    return Hall(
        timezone="UTC",
        hours={weekday: ("08:00", "15:00")},
        counters=(counter("loket-01", name="Loket 1"),),
        tokens=(DEMO_KIOSK, loket),
    )


async def test_http_mode_says_the_hall_is_closed_and_when_it_opens(
    database_url: str, tmp_path: Path
) -> None:
    # Open only on the day after tomorrow (UTC): closed now, whatever the hour.
    weekday = WEEKDAYS[(datetime.now(UTC).weekday() + 2) % 7]
    config = closed_hall(weekday).write(tmp_path)
    service = Service(config, {**os.environ, "DATABASE_URL": database_url})
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        try:
            sim = simulate("--url", service.url, "--config", str(config))
            try:
                _, err = await asyncio.to_thread(sim.communicate, timeout=30)
            finally:
                if sim.poll() is None:
                    sim.kill()
                    sim.communicate()
        finally:
            service.terminate()
    assert sim.returncode == 3, err
    assert "Test hall (hall) is closed now" in err, err
    assert f"it opens {weekday.capitalize()} " in err and "08:00 UTC" in err, err
    assert "make demo" in err
    assert await _stored(database_url, EventType.TICKET_ISSUED) == 0
