"""Antrian online's commands on a site's state (no I/O): the day's share kept from walk-ins,
a move within a full day, and bookings kept when their service stops taking new ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from itertools import count

import pytest

from queue_service.domain import errors, online
from queue_service.domain.events import Event
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import BookingStatus, Source
from tests.halls import Hall, counter, every_day, service

# Monday 2026-12-07, 07:00 in Asia/Makassar (UTC+8).
MONDAY_7AM = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
DAY = "2026-12-07"


def state_of(**booking: object) -> SiteState:
    hall = Hall(
        hours=every_day("08:00", "12:00"),
        services=(service("B", daily_quota=4, default_service_minutes=10, booking=booking),),
        counters=(counter("c1", "B"), counter("c2", "B")),
    )
    site = hall.site()
    return SiteState(site, site.service_day(MONDAY_7AM))


def apply(state: SiteState, events: list[Event]) -> list[Event]:
    for e in events:
        state.apply(e)
    return events


_ids = count(1)


def codes() -> str:
    return f"C{next(_ids):05d}"


def book(state: SiteState, slot: str, booking_id: str) -> list[Event]:
    return apply(
        state,
        online.book(
            state, MONDAY_7AM, booking_id=booking_id, service="B", day=DAY, slot=slot,
            new_code=codes,
        ),
    )  # fmt: skip


def test_a_day_keeps_the_walk_ins_share_and_a_move_within_it_takes_no_other_place() -> None:
    # Quota 4, half kept for walk-ins: 2 bookings a day, whatever the slots hold.
    state = state_of(slot_minutes=30, walk_in_share=0.5, cutoff_minutes=0)
    book(state, "08:00", "b1")
    book(state, "09:00", "b2")
    with pytest.raises(errors.SlotFull, match="every bookable place"):
        book(state, "10:00", "b3")
    moved = apply(
        state, online.reschedule(state, MONDAY_7AM, booking_id="b2", day=DAY, slot="10:00")
    )
    assert moved[0].data == {"day": DAY, "slot": "10:00"}
    monday = date(2026, 12, 7)
    assert state.bookings.per_day[("B", monday)] == 2
    # Walk-ins: 4 - 2 bookings not checked in = 2 tickets, then the quota.
    assert state.not_accepting("B", MONDAY_7AM + timedelta(hours=1)) is None
    assert state.bookings.pending[("B", monday)] == 2


def test_a_booking_is_kept_when_its_service_stops_taking_new_ones() -> None:
    state = state_of(slot_minutes=30, walk_in_share=0.5, cutoff_minutes=0, entry="fifo")
    book(state, "08:30", "b1")
    plain = dataclasses.replace(
        state.site,
        services={"B": dataclasses.replace(state.site.services["B"], booking=None)},
    )
    state.site = plain
    with pytest.raises(errors.NotBookable):
        book(state, "09:00", "b2")
    # Its check-in still runs (the default policy: 30 minutes early, 15 late), at the kiosk.
    code = state.bookings.bookings["b1"].code
    at = MONDAY_7AM + timedelta(hours=1, minutes=10)
    events = apply(state, online.check_in(state, at, code=code, ticket_id="t1"))
    assert state.bookings.bookings["b1"].state == BookingStatus.CHECKED_IN
    assert state.tickets["t1"].source == Source.BOOKING and events[1].ticket_id == "t1"


def test_a_booking_is_due_to_miss_once_its_window_closes_and_not_before() -> None:
    state = state_of(slot_minutes=30, walk_in_share=0.5, cutoff_minutes=0)
    book(state, "08:00", "b1")
    book(state, "09:00", "b2")
    site, book_ = state.site, state.bookings
    at = MONDAY_7AM + timedelta(hours=1, minutes=15)  # 08:15: the 08:00 window's end
    assert book_.due_to_miss(site, at - timedelta(seconds=1)) == []
    assert book_.due_to_miss(site, at - timedelta(seconds=1)) == []  # asked again: the same
    assert [b.id for b in book_.due_to_miss(site, at)] == ["b1"]
    apply(state, online.miss_due(state, at))
    assert book_.due_to_miss(site, at) == []
    assert [b.id for b in book_.due_to_miss(site, at + timedelta(hours=1))] == ["b2"]
    # A booking made meanwhile is seen at once (the book changed).
    book(state, "08:30", "b3")
    assert [b.id for b in book_.due_to_miss(site, at + timedelta(hours=1))] == ["b2", "b3"]
