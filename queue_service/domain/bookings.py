"""Bookings (antrian online): a service's slots, and the book of a site's bookings.

A booking holds a place in one slot of a service on one day. Unlike a ticket it outlives
the day it is made on, so the site's `BookingBook` is kept across service days (the site
state carries it over when it rolls) and start-up loads the events of every booking still
to come with a query of its own, ahead of the day's replay. The book is changed only by
booking events (`apply`), like the rest of the state; the commands that make them are in
`domain/online.py`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from queue_service.domain.events import BOOKING_STATE_AFTER, Event
from queue_service.domain.site import (
    WEEKDAYS,
    Booking,
    EndOfDay,
    Service,
    Site,
    SpanEnd,
    at_local,
)
from queue_service.domain.vocab import BookingStatus, EventType

ACTIVE = frozenset({BookingStatus.BOOKED, BookingStatus.CHECKED_IN})  # hold their place


@dataclass(frozen=True, slots=True)
class Slot:
    """One bookable slot of a service's day: [start, end) site-local, and as UTC instants."""

    start: time
    end: time
    starts_at: datetime
    ends_at: datetime

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}"


def slots_of(site: Site, service: Service, day: date) -> list[Slot]:
    """The slots of `service` on `day`: from the day's opening in steps of the slot
    length, each ending by the closing (and the service's cutoff), none overlapping a
    break that day. None on a closed day or for a service that takes no bookings."""
    policy = service.booking
    weekday = WEEKDAYS[day.weekday()]
    hours = site.hours.get(weekday)
    if policy is None or hours is None:
        return []
    breaks = tuple((b.start, b.end) for b in site.breaks if weekday in b.days)
    return list(
        _slots(day, hours[0], hours[1], service.cutoff, breaks, policy.slot_minutes, site.timezone)
    )


# Every booking decides against its day's slots, in the engine's one-at-a-time decision
# step: computed once per (day, hours, breaks, slot length, zone), not per request (the
# rush's profile had half the server's time here: bench/README.md).
@functools.lru_cache(maxsize=4096)
def _slots(
    day: date,
    opening: time,
    closing: SpanEnd,
    cutoff: time | None,
    day_breaks: tuple[tuple[time, SpanEnd], ...],
    slot_minutes: int,
    timezone: ZoneInfo,
) -> tuple[Slot, ...]:
    def at(clock: SpanEnd) -> datetime:
        if isinstance(clock, EndOfDay):
            return datetime.combine(day, time(0)) + timedelta(days=1)
        return datetime.combine(day, clock)

    end = at(closing)
    if cutoff is not None:
        end = min(end, datetime.combine(day, cutoff))
    breaks = [(at(b0), at(b1)) for b0, b1 in day_breaks]
    step = timedelta(minutes=slot_minutes)
    out: list[Slot] = []
    t = datetime.combine(day, opening)
    while t + step <= end:
        nxt = t + step
        if not any(b0 < nxt and t < b1 for b0, b1 in breaks):
            starts_at = at_local(day, t.time(), timezone).astimezone(UTC)
            out.append(Slot(t.time(), nxt.time(), starts_at, starts_at + step))
            t = nxt
        else:
            # Resume at the end of the break it ran into (slots start on the break's end).
            t = max(b1 for b0, b1 in breaks if b0 < nxt and t < b1)
    return tuple(out)


def day_cap(service: Service, slots: int) -> int:
    """How many bookings a day of `service` may hold: every slot full, but never more than
    the share of the daily quota that is not kept for walk-ins."""
    policy = service.booking
    assert policy is not None
    cap = slots * policy.capacity
    if service.daily_quota is not None:
        cap = min(cap, int(service.daily_quota * (1 - policy.walk_in_share)))
    return cap


def places_left(
    book: BookingBook, service: Service, day: date, start: time, slots: int, own: int = 0
) -> tuple[int, int]:
    """(places left in the slot of `service` starting at `start` on `day`, places left in
    that day of `slots` slots), `own` of the day's being the booking asking (a move within
    its day takes no other). The one rule of a full slot: booking refuses at 0, the slots
    view shows it."""
    return (
        policy_of(service).capacity - book.taken[(service.code, day, start)],
        day_cap(service, slots) - book.per_day[(service.code, day)] + own,
    )


@dataclass(frozen=True, slots=True)
class DayFigures:
    """What the estimate reads of a day's bookings: per service, the slot starts of the
    bookings not checked in yet, and how many of the day's were checked in and missed."""

    coming: dict[str, list[datetime]]
    checked_in: int
    missed: int


@dataclass(slots=True)
class BookingRecord:
    id: str  # a capability (long and random), like a ticket's id
    code: str  # short, typed or scanned at the kiosk
    service: str
    day: date
    slot: time
    made_at: datetime
    state: BookingStatus = BookingStatus.BOOKED
    ticket_id: str | None = None  # issued at check-in
    checked_in_at: datetime | None = None
    late: bool = False  # checked in after its window, issued as a walk-in
    ended_at: datetime | None = None  # cancelled or missed at
    moves: int = 0  # reschedules


def window(site: Site, service: Service, b: BookingRecord) -> tuple[datetime, datetime]:
    """When `b` may be checked in: from `early_minutes` before its slot starts until
    `late_minutes` after (UTC)."""
    policy = policy_of(service)
    start = at_local(b.day, b.slot, site.timezone).astimezone(UTC)
    return (
        start - timedelta(minutes=policy.early_minutes),
        start + timedelta(minutes=policy.late_minutes),
    )


def slot_start(site: Site, b: BookingRecord) -> datetime:
    return at_local(b.day, b.slot, site.timezone).astimezone(UTC)


class BookingBook:
    """A site's bookings from some day on, by id and by code, with each slot's count."""

    def __init__(self) -> None:
        self.bookings: dict[str, BookingRecord] = {}
        self.codes: dict[str, str] = {}  # code -> booking id, of every booking held
        self.taken: Counter[tuple[str, date, time]] = Counter()  # active, per slot
        self.per_day: Counter[tuple[str, date]] = Counter()  # active, per service and day
        # Booked, not checked in (nor cancelled or missed), per service and day: places the
        # day's quota keeps for them.
        self.pending: Counter[tuple[str, date]] = Counter()
        self.version = 0  # bumped by every change (read models cache on it)
        # (version, instant): with the book at that version, nothing is to be missed
        # before that instant (`due_to_miss`).
        self._quiet_until: tuple[int, datetime] | None = None
        # (version, day, figures): `day_figures`, read on every estimate, made once a change.
        self._day: tuple[int, date, DayFigures] | None = None
        # Who booked what, as keyed hashes of phone numbers (the numbers are only in the
        # store's contacts table): the per-phone limit reads it. Not from events: the
        # engine sets it from the contacts a command gives and the store holds.
        self.phone_of: dict[str, str] = {}

    def clone(self) -> BookingBook:
        other = BookingBook()
        other.bookings = {k: replace(b) for k, b in self.bookings.items()}
        other.codes = dict(self.codes)
        other.taken = Counter(self.taken)
        other.per_day = Counter(self.per_day)
        other.pending = Counter(self.pending)
        other.phone_of = dict(self.phone_of)
        other.version = self.version
        return other

    def get(self, booking_id: str) -> BookingRecord | None:
        return self.bookings.get(booking_id)

    def by_code(self, code: str) -> BookingRecord | None:
        booking_id = self.codes.get(code)
        return None if booking_id is None else self.bookings[booking_id]

    def of_day(self, day: date, service: str | None = None) -> Iterator[BookingRecord]:
        for b in self.bookings.values():
            if b.day == day and (service is None or b.service == service):
                yield b

    def day_figures(self, site: Site, day: date) -> DayFigures:
        """The day's `DayFigures`, computed again only after the book changed (each
        estimate of a bookable service reads them; the book changes far less often)."""
        cached = self._day
        if cached is not None and cached[0] == self.version and cached[1] == day:
            return cached[2]
        coming: dict[str, list[datetime]] = {}
        checked = missed = 0
        for b in self.of_day(day):
            if b.state == BookingStatus.BOOKED:
                coming.setdefault(b.service, []).append(slot_start(site, b))
            checked += b.state == BookingStatus.CHECKED_IN
            missed += b.state == BookingStatus.MISSED
        figures = DayFigures(coming, checked, missed)
        self._day = (self.version, day, figures)
        return figures

    def active_for_phone(self, phone_key: str) -> int:
        return sum(
            1
            for b in self.bookings.values()
            if b.state == BookingStatus.BOOKED and self.phone_of.get(b.id) == phone_key
        )

    def due_to_miss(self, site: Site, now: datetime) -> list[BookingRecord]:
        """Booked, never checked in, and the check-in window closed before `now`.

        The day closer asks every second for every site: until the book changes, a look
        before the earliest window still to close (found by the last full look) finds
        nothing and reads no booking."""
        quiet = self._quiet_until
        if quiet is not None and quiet[0] == self.version and now < quiet[1]:
            return []
        out = []
        earliest: datetime | None = None
        for b in self.bookings.values():
            if b.state != BookingStatus.BOOKED:
                continue
            service = site.services.get(b.service)
            closes = None if service is None else window(site, service, b)[1]
            if closes is None or closes <= now:
                out.append(b)
            elif earliest is None or closes < earliest:
                earliest = closes
        if out:
            self._quiet_until = None  # asked again next time: missed once committed
        else:
            self._quiet_until = (self.version, earliest or datetime.max.replace(tzinfo=UTC))
        return out

    def forget_before(self, day: date) -> None:
        """Drop bookings of days before `day` that hold no place any more (the day's
        ended: their events stay in the store for reports)."""
        for b in [b for b in self.bookings.values() if b.day < day and b.state not in ACTIVE]:
            del self.bookings[b.id]
            self.codes.pop(b.code, None)
        # Remote joins' keys were of the day that ended; forgotten bookings' go with them.
        self.phone_of = {k: v for k, v in self.phone_of.items() if k in self.bookings}

    # -- applying events ----------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Apply one booking event. An event of a booking the book does not hold (made
        before the days it was loaded from) changes nothing."""
        data = event.data
        kind = event.type
        self.version += 1
        if kind == EventType.BOOKING_MADE:
            b = BookingRecord(
                event.ticket_id or "",
                data["code"],
                event.service or "",
                date.fromisoformat(data["day"]),
                time.fromisoformat(data["slot"]),
                event.ts,
            )
            self.bookings[b.id] = b
            self.codes[b.code] = b.id
            self._hold(b, +1)
            self.pending[(b.service, b.day)] += 1
            return
        held = self.bookings.get(event.ticket_id or "")
        if held is None:
            return
        b = held
        if kind == EventType.BOOKING_RESCHEDULED:
            self._hold(b, -1)
            self.pending[(b.service, b.day)] -= 1
            b.day = date.fromisoformat(data["day"])
            b.slot = time.fromisoformat(data["slot"])
            b.moves += 1
            self._hold(b, +1)
            self.pending[(b.service, b.day)] += 1
            return
        after = BOOKING_STATE_AFTER[kind]
        if b.state == BookingStatus.BOOKED:
            self.pending[(b.service, b.day)] -= 1
        if after == BookingStatus.CHECKED_IN:
            b.ticket_id = data.get("ticket")
            b.checked_in_at = event.ts
            b.late = bool(data.get("late", False))
        else:  # cancelled or missed
            self._hold(b, -1)
            b.ended_at = event.ts
        b.state = after

    def apply_all(self, events: Iterable[Event]) -> int:
        n = 0
        for e in events:
            self.apply(e)
            n += 1
        return n

    def _hold(self, b: BookingRecord, delta: int) -> None:
        self.taken[(b.service, b.day, b.slot)] += delta
        self.per_day[(b.service, b.day)] += delta


def policy_of(service: Service) -> Booking:
    """The booking policy of a service. A service whose bookings were switched off in the
    configuration since keeps the default policy for the bookings it still holds (their
    check-in windows, their views); it takes no new ones (`online.bookable_service`)."""
    return service.booking if service.booking is not None else _DEFAULT_POLICY


_DEFAULT_POLICY = Booking()
