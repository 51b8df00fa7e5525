"""The numbers of antrian online equal an independent recount of a test day.

A hall whose service B takes bookings (and remote joins) and whose service W does not is
driven through the real engine and PostgreSQL with the commands of `domain.online` and
`domain.commands`: bookings made the day before for Monday and Tuesday, one cancelled,
two moved, check-ins early, on time and late (a late one issued as a walk-in), one
missed, two remote joins (one confirmed at the kiosk), walk-ins. The test keeps its own
ledger of what it did, and from that ledger alone recounts what /metrics, the report and
`booking_visits_of()` must say: today's bookings by state, the online tickets waiting and
the bookings due, per service the bookings made / checked in / missed / cancelled, the
show rate and punctuality, and booked against walk-in waits with the share within target
(queue time: a booking's wait runs from the later of check-in and slot start).

The reminders of the report (notices delivered to the webhook or given up, by service day,
kind and service) equal a recount of what a real receiver on localhost answered a real
webhook worker.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import jsonschema_rs
import orjson
import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain import commands, online
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.notices import Contact
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import BookingStatus, NoticeKind, Source
from queue_service.engine import Engine
from queue_service.reports import render
from queue_service.reports.build import BOOKED, WALK_IN, build_report
from queue_service.store.event_store import EventStore
from queue_service.store.outbox import PgOutbox
from queue_service.web.keys import ENGINE
from queue_service.web.openapi import openapi_document
from queue_service.webhook import WebhookWorker
from tests.conftest import fetch
from tests.halls import Hall, counter, every_day, service
from tests.test_metrics import parse, pick
from tests.test_webhook import Receiver, quick, until

ANALYTICS = Path(__file__).resolve().parent.parent / "docs" / "analytics.md"
SITE = "hall"
ZONE = ZoneInfo("Asia/Makassar")  # WITA, UTC+8
SUNDAY, MONDAY, TUESDAY = date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)
TARGET = {"B": 15 * 60.0, "W": 20 * 60.0}

HALL = Hall(
    id=SITE,
    timezone=str(ZONE),
    hours=every_day("08:00", "16:00"),
    services=(
        service(
            "B",
            target_wait_minutes=15,
            default_service_minutes=5,
            booking={
                "slot_minutes": 30,
                "capacity": 3,
                "entry": "at_slot",
                "early_minutes": 30,
                "late_minutes": 15,
                "late": "walk_in",
                "remote_join": True,
                "confirm_on_arrival": True,
            },
        ),
        service("W", target_wait_minutes=20),
    ),
    counters=(counter("c1", "B", "W"), counter("c2", "B")),
)


@pytest.fixture
def config() -> AppConfig:
    return HALL.config()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at(SUNDAY, "10:00"))


def at(day: date, hhmm: str) -> datetime:
    """A site-local time of `day`, as the UTC instant the engine works in."""
    return datetime.combine(day, time.fromisoformat(hhmm), ZONE).astimezone(UTC)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# -- the ledger -------------------------------------------------------------------------------


@dataclass
class Booked:
    """What the test did with one booking."""

    id: str
    service: str
    day: date
    slot: str
    made_at: datetime
    code: str = ""
    state: BookingStatus = BookingStatus.BOOKED
    moves: int = 0
    checked_in_at: datetime | None = None
    ticket: str | None = None
    late: bool = False
    ended_at: datetime | None = None

    @property
    def starts_at(self) -> datetime:
        return at(self.day, self.slot)


@dataclass
class Visit:
    """What the test did with one ticket: from when it could be called (its queue time
    starts), and when it was first called, or how it ended without a call."""

    id: str
    service: str
    booked: bool  # issued at a booking's check-in within its window (source booking)
    source: Source
    issued_at: datetime
    ready_at: datetime
    code: str | None = None
    confirmed: bool = False
    called_at: datetime | None = None
    ended_at: datetime | None = None  # expired at the day's end, never called

    def wait(self) -> float | None:
        if self.called_at is None:
            return None
        return max(0.0, (self.called_at - self.ready_at).total_seconds())


@dataclass
class Ledger:
    bookings: dict[str, Booked] = field(default_factory=dict)
    visits: dict[str, Visit] = field(default_factory=dict)


class Driver:
    """Drives the engine with the commands of the domain, on the test's clock, and writes
    the ledger as it goes (from what it asked for, never from what the service answered)."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.engine, self.clock = engine, clock
        self.ledger = Ledger()
        self._ids = itertools.count(1)
        self._codes = (
            "".join(c) for c in itertools.product(online.CODE_ALPHABET, repeat=online.CODE_LENGTH)
        )

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}-{'x' * 20}"

    async def run(
        self,
        when: datetime,
        decide: Callable[[SiteState, datetime], list[Event]],
        contacts: Sequence[Contact] = (),
    ) -> list[Event]:
        self.clock.set(when)
        made: list[Event] = []

        def keep(state: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
            made.extend(events)
            return 200, {}

        await self.engine.execute(SITE, decide, keep, contacts=contacts)
        return made

    # -- bookings --

    async def book(
        self, when: datetime, service: str, day: date, slot: str, phone: str | None = None
    ) -> Booked:
        """Book a slot; with `phone`, the booking's notices go to the outbox."""
        booking_id = self.new_id("booking")
        events = await self.run(
            when,
            lambda s, now: online.book(
                s,
                now,
                booking_id=booking_id,
                service=service,
                day=day.isoformat(),
                slot=slot,
                new_code=lambda: next(self._codes),
            ),
            [Contact(SITE, booking_id, phone)] if phone else (),
        )
        b = Booked(booking_id, service, day, slot, when, code=events[0].data["code"])
        self.ledger.bookings[booking_id] = b
        return b

    async def move(self, when: datetime, b: Booked, day: date, slot: str) -> None:
        await self.run(
            when,
            lambda s, now: online.reschedule(
                s, now, booking_id=b.id, day=day.isoformat(), slot=slot
            ),
        )
        b.day, b.slot, b.moves = day, slot, b.moves + 1

    async def cancel(self, when: datetime, b: Booked) -> None:
        await self.run(when, lambda s, now: online.cancel_booking(s, now, booking_id=b.id))
        b.state, b.ended_at = BookingStatus.CANCELLED, when

    async def check_in(self, when: datetime, b: Booked, *, late: bool = False) -> str:
        ticket_id = self.new_id("ticket")
        await self.run(
            when, lambda s, now: online.check_in(s, now, code=b.code, ticket_id=ticket_id)
        )
        b.state, b.checked_in_at, b.ticket, b.late = BookingStatus.CHECKED_IN, when, ticket_id, late
        # On time it enters ahead of walk-ins from its slot start (at_slot); late, it is a
        # walk-in's ticket from its check-in.
        ready = when if late else max(when, b.starts_at)
        self.ledger.visits[ticket_id] = Visit(
            ticket_id, b.service, not late, Source.KIOSK if late else Source.BOOKING, when, ready
        )
        return ticket_id

    async def miss_due(self, when: datetime) -> list[Event]:
        events = await self.run(when, online.miss_due)
        for e in events:
            if e.ticket_id in self.ledger.bookings:
                b = self.ledger.bookings[e.ticket_id]
                b.state, b.ended_at = BookingStatus.MISSED, when
        return events

    # -- tickets --

    async def walk_in(self, when: datetime, service: str) -> str:
        ticket_id = self.new_id("ticket")
        await self.run(
            when, lambda s, now: commands.issue(s, now, ticket_id=ticket_id, service=service)
        )
        self.ledger.visits[ticket_id] = Visit(ticket_id, service, False, Source.KIOSK, when, when)
        return ticket_id

    async def join(self, when: datetime, service: str, phone: str | None = None) -> str:
        ticket_id = self.new_id("ticket")
        events = await self.run(
            when,
            lambda s, now: online.join(
                s, now, ticket_id=ticket_id, service=service, new_code=lambda: next(self._codes)
            ),
            [Contact(SITE, ticket_id, phone)] if phone else (),
        )
        code = events[0].data["code"]
        self.ledger.visits[ticket_id] = Visit(
            ticket_id, service, False, Source.ONLINE, when, when, code=code
        )
        return ticket_id

    async def confirm(self, when: datetime, ticket_id: str) -> None:
        visit = self.ledger.visits[ticket_id]
        assert visit.code is not None
        code = visit.code
        await self.run(when, lambda s, now: online.check_in(s, now, code=code, ticket_id="unused"))
        visit.confirmed = True

    async def open(self, when: datetime, counter_id: str) -> None:
        await self.run(when, lambda s, now: commands.open_counter(s, now, counter_id=counter_id))

    async def serve(self, called: datetime, counter_id: str, ticket_id: str) -> None:
        """Call a ticket to a counter, and finish it five minutes later."""
        await self.run(
            called,
            lambda s, now: commands.call_ticket(s, now, counter_id=counter_id, ticket_id=ticket_id),
        )
        self.ledger.visits[ticket_id].called_at = called
        await self.run(
            called + timedelta(minutes=5),
            lambda s, now: commands.finish(s, now, counter_id=counter_id),
        )


# -- the recount ----------------------------------------------------------------------------


def recount_bookings(bookings: list[Booked]) -> dict[str, Any]:
    """The report's bookings figures of `bookings`, counted from the ledger."""
    states = Counter(b.state for b in bookings)
    came, missed = states[BookingStatus.CHECKED_IN], states[BookingStatus.MISSED]
    punctual = [
        (b.checked_in_at - b.starts_at).total_seconds()
        for b in bookings
        if b.checked_in_at is not None
    ]
    return {
        "made": len(bookings),
        **{s.value: states[s] for s in BookingStatus},
        "late": sum(b.late for b in bookings),
        "moved": sum(b.moves > 0 for b in bookings),
        "show_rate": round(came / (came + missed), 4) if came + missed else None,
        "punctuality": {
            "count": len(punctual),
            "p50": percentile(punctual, 0.5),
            "p90": percentile(punctual, 0.9),
        },
    }


def recount_waits(visits: list[Visit], now: datetime) -> dict[str, Any]:
    """The waits of `visits` as the report gives them: called within target over called
    plus never called but waiting (or expired) past the target."""
    waits = [w for v in visits if (w := v.wait()) is not None]
    within = sum(1 for v in visits if (w := v.wait()) is not None and w <= TARGET[v.service])
    past = sum(
        1
        for v in visits
        if v.called_at is None
        and ((v.ended_at or now) - v.ready_at).total_seconds() > TARGET[v.service]
    )
    return {
        "visits": len(visits),
        "wait": {
            "count": len(waits),
            "p50": percentile(waits, 0.5),
            "p90": percentile(waits, 0.9),
            "mean": round(sum(waits) / len(waits), 3) if waits else None,
        },
        "within_target": {
            "count": within,
            "waiting_past_target": past,
            "share": round(within / (len(waits) + past), 4) if waits or past else None,
        },
    }


def rounded(figures: dict[str, Any]) -> dict[str, Any]:
    """Percentiles rounded as the report publishes them (3 decimals)."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out[key] = rounded(value)
        elif isinstance(value, float) and key in ("p50", "p90", "mean"):
            out[key] = round(value, 3)
        else:
            out[key] = value
    return out


def recount_reminders(outcomes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A report's reminders from (kind, outcome) pairs, one per notice."""
    n = Counter(outcomes)
    return {
        "delivered": sum(v for (_, o), v in n.items() if o == "delivered"),
        "failed": sum(v for (_, o), v in n.items() if o == "failed"),
        "by_kind": {str(k): {o: n[str(k), o] for o in ("delivered", "failed")} for k in NoticeKind},
    }


def expected_online(ledger: Ledger, day: date, now: datetime) -> dict[str, Any]:
    """The report's `online` section for `day`, from the ledger (no phone was given: no
    reminders)."""
    bookings = [b for b in ledger.bookings.values() if b.day == day]
    visits = [v for v in ledger.visits.values() if v.issued_at.astimezone(ZONE).date() == day]

    def waits(of: list[Visit]) -> dict[str, Any]:
        return {
            BOOKED: rounded(recount_waits([v for v in of if v.booked], now)),
            WALK_IN: rounded(recount_waits([v for v in of if not v.booked], now)),
        }

    return {
        "totals": {
            "bookings": rounded(recount_bookings(bookings)),
            "waits": waits(visits),
            "reminders": recount_reminders([]),
        },
        "services": {
            code: {
                "bookings": rounded(recount_bookings([b for b in bookings if b.service == code])),
                "waits": waits([v for v in visits if v.service == code]),
                "reminders": recount_reminders([]),
            }
            for code in ("B",)
        },
    }


def online_of(report: dict[str, Any]) -> dict[str, Any]:
    section = report["online"]
    return {
        "totals": section["totals"],
        "services": {
            s["code"]: {"bookings": s["bookings"], "waits": s["waits"], "reminders": s["reminders"]}
            for s in section["services"]
        },
    }


# -- the day --------------------------------------------------------------------------------


async def scrape(client: TestClient) -> tuple[str, Any]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    return text, parse(text)


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app[ENGINE]
    return engine


async def report(engine: Engine, first: date, last: date, now: datetime) -> dict[str, Any]:
    store = engine.store
    assert isinstance(store, EventStore)
    return await build_report(store.pool, engine.config.sites[SITE], first, last, now)


async def test_the_view_the_report_and_metrics_equal_a_recount_of_the_day(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    engine = engine_of(client)
    d = Driver(engine, clock)
    sunday = at(SUNDAY, "10:00")

    # Sunday: bookings for Monday and Tuesday; one cancelled, two moved.
    early = await d.book(sunday, "B", MONDAY, "09:00")
    on_time = await d.book(sunday, "B", MONDAY, "09:00")
    late = await d.book(sunday, "B", MONDAY, "09:30")
    missed = await d.book(sunday, "B", MONDAY, "10:00")
    cancelled = await d.book(sunday, "B", MONDAY, "10:30")
    moved_out = await d.book(sunday, "B", MONDAY, "11:00")
    moved_in = await d.book(sunday, "B", TUESDAY, "10:00")
    noon = await d.book(sunday, "B", MONDAY, "11:30")
    afternoon = await d.book(sunday, "B", MONDAY, "14:00")
    tuesday = await d.book(sunday, "B", TUESDAY, "10:00")
    await d.cancel(at(SUNDAY, "10:10"), cancelled)
    await d.move(at(SUNDAY, "10:15"), moved_out, TUESDAY, "09:00")
    await d.move(at(SUNDAY, "10:20"), moved_in, MONDAY, "11:00")

    # Monday morning.
    await d.open(at(MONDAY, "08:30"), "c1")
    await d.open(at(MONDAY, "08:30"), "c2")
    t_early = await d.check_in(at(MONDAY, "08:35"), early)  # 25 minutes early
    w1 = await d.walk_in(at(MONDAY, "08:40"), "B")
    w2 = await d.walk_in(at(MONDAY, "08:40"), "B")
    w3 = await d.walk_in(at(MONDAY, "08:41"), "W")
    r1 = await d.join(at(MONDAY, "08:45"), "B")
    await d.serve(at(MONDAY, "08:50"), "c1", w1)
    await d.serve(at(MONDAY, "08:55"), "c2", w2)
    t_on_time = await d.check_in(at(MONDAY, "09:02"), on_time)  # 2 minutes after its start
    await d.serve(at(MONDAY, "09:05"), "c1", t_early)
    await d.confirm(at(MONDAY, "09:10"), r1)
    await d.serve(at(MONDAY, "09:15"), "c2", t_on_time)
    await d.serve(at(MONDAY, "09:30"), "c1", r1)
    await d.join(at(MONDAY, "09:40"), "B")  # never confirmed, never called
    t_late = await d.check_in(at(MONDAY, "09:50"), late, late=True)  # window closed 09:45
    assert [e.ticket_id for e in await d.miss_due(at(MONDAY, "10:16"))] == [missed.id]
    t_moved_in = await d.check_in(at(MONDAY, "10:35"), moved_in)

    # /metrics at 10:40: today's bookings by state, the tickets waiting, the bookings due.
    clock.set(at(MONDAY, "10:40"))
    text, samples = await scrape(client)
    today = [b for b in d.ledger.bookings.values() if b.day == MONDAY]
    states = Counter(b.state for b in today)
    assert pick(samples, "qms_bookings", site=SITE, service="B") == {
        (("state", str(s)),): float(states[s]) for s in BookingStatus
    }
    assert not pick(samples, "qms_bookings", service="W"), "W takes no bookings"
    waiting = [
        v
        for v in d.ledger.visits.values()
        if v.service == "B" and v.called_at is None and v.ended_at is None
    ]
    by_source = Counter(v.source for v in waiting)
    assert pick(samples, "qms_queue_waiting_online_tickets", site=SITE, service="B") == {
        (("source", str(s)),): float(by_source[s]) for s in (Source.BOOKING, Source.ONLINE)
    }
    assert pick(samples, "qms_queue_unconfirmed_tickets", site=SITE, service="B") == {
        (): float(sum(v.source == Source.ONLINE and not v.confirmed for v in waiting))
    }
    assert pick(samples, "qms_queue_waiting_tickets", site=SITE, service="B") == {
        (): float(len(waiting))
    }
    due = sum(b.state == BookingStatus.BOOKED and b.starts_at < at(MONDAY, "11:40") for b in today)
    assert due == 1  # noon's; the afternoon's is later
    assert pick(samples, "qms_bookings_due_next_hour", site=SITE, service="B") == {(): float(due)}
    for b in d.ledger.bookings.values():  # nothing of a booking names a series
        assert b.id not in text and b.code not in text

    # Monday late morning: the rest of the calls, and noon's check-in on time.
    await d.serve(at(MONDAY, "10:45"), "c2", t_late)
    await d.serve(at(MONDAY, "10:50"), "c1", w3)
    await d.serve(at(MONDAY, "11:05"), "c2", t_moved_in)
    t_noon = await d.check_in(at(MONDAY, "11:35"), noon)
    await d.serve(at(MONDAY, "11:40"), "c2", t_noon)
    assert {v.booked for v in d.ledger.visits.values()} == {True, False}

    # The report of Monday, live (the day is not over).
    now = at(MONDAY, "12:00")
    clock.set(now)
    live = await report(engine, MONDAY, MONDAY, now)
    assert online_of(live) == expected_online(d.ledger, MONDAY, now)
    b_row = next(s for s in live["online"]["services"] if s["code"] == "B")
    assert b_row["takes_bookings"] is True
    assert [s["code"] for s in live["online"]["services"]] == ["B"]

    # The live counters agree with the recount of the same visits.
    _, samples = await scrape(client)
    called = [v for v in d.ledger.visits.values() if v.service == "B" and v.called_at]
    within = sum((v.wait() or 0) <= TARGET["B"] for v in called)
    assert pick(samples, "qms_tickets_called_within_target_total", site=SITE, service="B") == {
        (): float(within)
    }
    assert pick(samples, "qms_ticket_wait_seconds_sum", site=SITE, service="B") == {
        (): pytest.approx(sum(v.wait() or 0 for v in called))
    }

    # Tuesday: Monday's open tickets expire when the day rolls; the afternoon booking,
    # never checked in, is missed; the moved booking checks in early.
    events = await d.miss_due(at(TUESDAY, "08:40"))
    assert {e.ticket_id for e in events} == {afternoon.id}
    for v in d.ledger.visits.values():
        if v.called_at is None and v.ended_at is None:
            v.ended_at = at(TUESDAY, "00:00")  # the end of Monday's service day
    t_tuesday = await d.check_in(at(TUESDAY, "08:40"), moved_out)

    # Monday's report, now from the rollup (a closed day): the same recount.
    now = at(TUESDAY, "09:00")
    clock.set(now)
    rolled = await report(engine, MONDAY, MONDAY, now)
    assert rolled["partial_today"] is False
    assert online_of(rolled) == expected_online(d.ledger, MONDAY, now)
    rows = await fetch(
        database_url,
        "SELECT source, count(*) AS n FROM report_visits WHERE site_id = $1"
        " GROUP BY source ORDER BY source",
        SITE,
    )
    monday_sources = Counter(str(v.source) for v in d.ledger.visits.values() if v.id != t_tuesday)
    assert {r["source"]: r["n"] for r in rows} == monday_sources

    # The view: one row per booking, as the ledger has it.
    view = await fetch(
        database_url,
        "SELECT * FROM booking_visits_of($1, $2, $3, $4) ORDER BY booking_id",
        SITE,
        str(ZONE),
        SUNDAY,
        TUESDAY,
    )
    expected_rows = [
        {
            "site_id": SITE,
            "booking_id": b.id,
            "service": b.service,
            "slot_day": b.day,
            "slot_start": b.starts_at,
            "made_at": b.made_at,
            "state": str(b.state),
            "checked_in_at": b.checked_in_at,
            "punctuality_seconds": None
            if b.checked_in_at is None
            else (b.checked_in_at - b.starts_at).total_seconds(),
            "ticket_id": b.ticket,
            "late": b.late,
            "moves": b.moves,
            "ended_at": b.ended_at,
        }
        for b in sorted(d.ledger.bookings.values(), key=lambda b: b.id)
    ]
    assert [dict(r) for r in view] == expected_rows
    # A range of slot days: Tuesday's bookings only (moved there or made for it).
    tuesday_rows = await fetch(
        database_url,
        "SELECT booking_id FROM booking_visits_of($1, $2, $3, $3) ORDER BY booking_id",
        SITE,
        str(ZONE),
        TUESDAY,
    )
    assert [r["booking_id"] for r in tuesday_rows] == sorted([moved_out.id, tuesday.id])

    # The ticket visits of the bookings wait from their slot start when checked in early.
    visits = await fetch(
        database_url,
        "SELECT ticket_id, ticket_issued_at, enqueued_at, wait_seconds FROM ticket_visits"
        " WHERE site_id = $1 AND service_day = $2",
        SITE,
        MONDAY,
    )
    for r in visits:
        v = d.ledger.visits[r["ticket_id"]]
        assert (r["enqueued_at"], r["wait_seconds"]) == (v.ready_at, v.wait()), v

    # The examples of docs/analytics.md run on this day, and say what the ledger says.
    for sql in re.findall(r"```sql\n(.*?)```", ANALYTICS.read_text("utf-8"), re.S):
        rows = await fetch(database_url, sql.replace("'mpp-banjarmasin'", f"'{SITE}'"))
        if "show_rate" in sql:
            states = Counter(b.state for b in d.ledger.bookings.values())
            [row] = rows
            assert row["show_rate"] == states[BookingStatus.CHECKED_IN] / (
                states[BookingStatus.CHECKED_IN] + states[BookingStatus.MISSED]
            )

    # The report's CSV and HTML carry the section, and nothing of a booking's identity.
    [table] = [t for t in csv_tables(render.to_csv(rolled, locale="en")) if "made" in t[0][3]]
    site_row, b_row = (dict(zip(table[0], row, strict=True)) for row in table[1:])
    recount = expected_online(d.ledger, MONDAY, now)["totals"]["bookings"]
    assert (site_row["id"], b_row["id"]) == (SITE, "B")
    assert site_row["booking dibuat/bookings made"] == str(recount["made"])
    assert site_row["tidak datang/missed"] == str(recount["missed"])
    assert site_row["% hadir/show rate"] == f"{recount['show_rate']:.4f}".rstrip("0")
    b_waits = expected_online(d.ledger, MONDAY, now)["services"]["B"]["waits"]
    for entry, header in (
        (BOOKED, "booking: % dalam standar/booked: % within target"),
        (WALK_IN, "datang langsung: % dalam standar/walk-in: % within target"),
    ):
        share = b_waits[entry]["within_target"]["share"]
        assert b_row[header] == f"{share:.4f}".rstrip("0").rstrip("."), header
    html = render.to_html(rolled)
    assert "Antrian online" in html
    for text in (render.to_csv(rolled), html, render.to_json(rolled)):
        for b in d.ledger.bookings.values():
            assert b.id not in text and b.code not in text


def csv_tables(text: str) -> list[list[list[str]]]:
    """The tables of a report's CSV (blank lines between them), header row first."""
    tables: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text.removeprefix(render.CSV_BOM))):
        if row:
            tables[-1].append(row)
        elif tables[-1]:
            tables.append([])
    return [t for t in tables if t]


async def test_a_site_without_bookings_exports_no_booking_series(
    client: TestClient, clock: ManualClock, config: AppConfig
) -> None:
    """Only services that take bookings have the booking gauges (no empty series for the
    rest of a large hall)."""
    _, samples = await scrape(client)
    services = {dict(k[1]).get("service") for k in samples if k[0] == "qms_bookings"}
    assert services == {
        code for code, s in config.sites[SITE].services.items() if s.booking is not None
    }


async def test_the_view_takes_the_sites_timezone(
    database_url: str, client: TestClient, clock: ManualClock
) -> None:
    """The events hold a slot as a local day and time: the function makes it an instant
    with the timezone it is given (the site's)."""
    d = Driver(engine_of(client), clock)
    b = await d.book(at(SUNDAY, "10:00"), "B", MONDAY, "09:00")
    sql = "SELECT slot_start FROM booking_visits_of($1, $2, $3, $3)"
    [wita] = await fetch(database_url, sql, SITE, "Asia/Makassar", MONDAY)
    [wib] = await fetch(database_url, sql, SITE, "Asia/Jakarta", MONDAY)
    assert wita["slot_start"] == b.starts_at
    assert wib["slot_start"] - wita["slot_start"] == timedelta(hours=1)
    # The slot days are ISO text in the events, whatever dates look like in the session.
    conn = await asyncpg.connect(database_url, server_settings={"DateStyle": "SQL, DMY"})
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM booking_visits_of($1, $2, $3, $3)", SITE, str(ZONE), MONDAY
            )
            == 1
        )
    finally:
        await conn.close()


async def test_the_reports_reminders_equal_a_recount_of_what_the_receiver_answered(
    client: TestClient, clock: ManualClock
) -> None:
    """Bookings and a remote join with phone numbers make notices; a webhook worker posts
    them to a receiver that refuses one booking's (given up after the one attempt allowed)
    over two of the worker's days. The report's reminders, for each day and for both, per
    kind, for the site and per service, equal the receiver's own count of what it answered;
    the CSV and the HTML carry them, and no phone number."""
    engine = engine_of(client)
    store = engine.store
    assert isinstance(store, EventStore)
    site = engine.config.sites[SITE]
    d = Driver(engine, clock)
    receiver = Receiver()
    # The worker's time: after the rows were made (they are due at once), fixed, so each
    # batch's outcomes fall on a known service day of the site.
    worker_clock = ManualClock(datetime.now(UTC) + timedelta(days=1))
    worker = WebhookWorker(
        PgOutbox(store.pool),
        quick(receiver.url, max_attempts=1),
        sites=engine.config.sites,
        clock=worker_clock,
    )
    phones = [f"+62812000000{i:02d}" for i in range(4)]

    async def delivered_or_given_up() -> None:
        async def settled() -> bool:
            states = await store.pool.fetch("SELECT state FROM outbox")
            return bool(states) and all(r["state"] != "pending" for r in states)

        worker.wake()
        await until(settled, "every notice delivered or given up")

    try:
        await receiver.listen()
        worker.start()
        # Sunday: three bookings with a number, one without; one cancelled, one moved
        # (the receiver refuses the moved one's notices); a remote join called at B,
        # transferred to W and called there.
        sunday = at(SUNDAY, "10:00")
        await d.open(sunday, "c1")
        kept = await d.book(sunday, "B", MONDAY, "09:00", phone=phones[0])
        cancelled = await d.book(sunday, "B", MONDAY, "09:30", phone=phones[1])
        moved = await d.book(sunday, "B", MONDAY, "10:00", phone=phones[2])
        await d.book(sunday, "B", MONDAY, "10:30")
        receiver.failing.add(moved.id)
        await d.cancel(at(SUNDAY, "10:05"), cancelled)
        await d.move(at(SUNDAY, "10:10"), moved, TUESDAY, "09:00")
        joined = await d.join(at(SUNDAY, "10:15"), "B", phone=phones[3])
        await d.confirm(at(SUNDAY, "10:16"), joined)
        steps: list[tuple[str, Callable[[SiteState, datetime], list[Event]]]] = [
            (
                "10:20",
                lambda s, now: commands.call_ticket(s, now, counter_id="c1", ticket_id=joined),
            ),
            ("10:25", lambda s, now: commands.transfer(s, now, counter_id="c1", to_service="W")),
            (
                "10:30",
                lambda s, now: commands.call_ticket(s, now, counter_id="c1", ticket_id=joined),
            ),
            ("10:35", lambda s, now: commands.finish(s, now, counter_id="c1")),
        ]
        for hhmm, decide in steps:
            await d.run(at(SUNDAY, hhmm), decide)
        await delivered_or_given_up()
        first_day = site.service_day(worker_clock.now())
        first_batch = len(receiver.requests)
        # The worker's next day: the kept booking is cancelled.
        worker_clock.advance(days=1)
        await d.cancel(at(SUNDAY, "10:40"), kept)
        await delivered_or_given_up()
        second_day = site.service_day(worker_clock.now())
    finally:
        await worker.stop()
        await receiver.close()

    # The receiver's count: each notice once (one attempt each), refused or taken.
    sent = [orjson.loads(payload) for _, payload in receiver.requests]
    assert len({n["id"] for n in sent}) == len(sent)
    assert {n["data"]["service"] for n in sent} == {"B", "W"}
    assert {n["kind"] for n in sent} >= {"booked", "cancelled", "rescheduled", "near", "called"}

    def recount(notices: list[dict[str, Any]]) -> dict[str, Any]:
        def of(chosen: list[dict[str, Any]]) -> dict[str, Any]:
            return recount_reminders(
                (n["kind"], "failed" if n["subject"] in receiver.failing else "delivered")
                for n in chosen
            )

        # B takes bookings and is always listed; W, only with reminders in the range.
        codes = ["B"] + (["W"] if any(n["data"]["service"] == "W" for n in notices) else [])
        return {
            "totals": of(notices),
            "services": {
                code: of([n for n in notices if n["data"]["service"] == code]) for code in codes
            },
        }

    def reminders_of(report: dict[str, Any]) -> dict[str, Any]:
        section = report["online"]
        return {
            "totals": section["totals"]["reminders"],
            "services": {s["code"]: s["reminders"] for s in section["services"]},
        }

    now = worker_clock.now()
    made: dict[str, Any] = {}
    for first, last, notices in (
        (first_day, first_day, sent[:first_batch]),
        (second_day, second_day, sent[first_batch:]),
        (first_day, second_day, sent),
    ):
        made = await build_report(store.pool, site, first, last, now)
        assert reminders_of(made) == recount(notices), (first, last)
    both = recount(sent)["totals"]
    assert both["failed"] == sum(n["subject"] == moved.id for n in sent) >= 2
    # W takes no bookings, and is listed for its reminders.
    assert [s["code"] for s in made["online"]["services"]] == ["B", "W"]

    tables = csv_tables(render.to_csv(made, locale="en"))
    [table] = [t for t in tables if "pengingat terkirim/reminders delivered" in t[0]]
    site_row = dict(zip(table[0], table[1], strict=True))
    assert site_row["pengingat terkirim/reminders delivered"] == str(both["delivered"])
    assert site_row["pengingat gagal/reminders failed"] == str(both["failed"])
    assert site_row["dipindah jadwal: gagal/moved: failed"] == str(
        both["by_kind"]["rescheduled"]["failed"]
    )
    html = render.to_html(made)
    assert "Pengingat" in html
    for text in (render.to_csv(made), html, render.to_json(made)):
        assert not any(phone in text for phone in phones)
    # The report, reminders and all, is what the OpenAPI document says a report is.
    schema = {"$ref": "#/components/schemas/Report", "components": openapi_document()["components"]}
    errors = jsonschema_rs.validator_for(schema).iter_errors(orjson.loads(render.to_json(made)))
    assert [str(e) for e in errors] == []
