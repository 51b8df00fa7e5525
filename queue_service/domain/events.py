"""Ticket and counter events: the only thing ever stored, and the only way state changes.

Each event type's data (`Event.data`, stored as a JSON object) is declared once, in
`EVENTS`: its fields with their Python types and defaults, and which of them the state's
handler reads. Everything else is derived from that table: the data commands put in an
event (`EventSpec.data`), the columns start-up replay extracts in SQL (the store's range
query), and the row a handler is applied to (`replay_row`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from queue_service.domain.vocab import (
    BookingStatus,
    EventType,
    FinishOutcome,
    Priority,
    Source,
    TicketStatus,
)


@dataclass(frozen=True, slots=True)
class PayloadField:
    """One field of an event type's data."""

    key: str  # the JSON key in the stored data, and the command's keyword for it
    type: type  # the value's type (a vocabulary word's enum, str, int or float)
    replayed: bool = False  # the state's handler reads it (start-up replay extracts it)
    default: Any = None  # the value when the stored data leaves it out
    optional: bool = False  # may be left out of the data (None values are not stored)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event type's data and what its state handler reads of the event."""

    type: EventType
    fields: tuple[PayloadField, ...] = ()
    reads_counter: bool = False  # the handler reads `Event.counter_id`
    reads_service: bool = False  # the handler reads `Event.service` (others: the ticket's)

    @property
    def replayed(self) -> tuple[PayloadField, ...]:
        """The fields the handler reads, in the order of their replay row columns."""
        return tuple(f for f in self.fields if f.replayed)

    def column(self, key: str) -> int:
        """Where the handler finds field `key` in a replay row (see `replay_row`)."""
        for i, f in enumerate(self.replayed):
            if f.key == key:
                return PAYLOAD_AT + i
        raise KeyError(f"{self.type} replays no field {key!r}")

    def data(self, **values: Any) -> dict[str, Any]:
        """The data of an event of this type: the given fields, None values left out.
        Every field not optional must be given; no other may be."""
        keys = {f.key for f in self.fields}
        unknown = values.keys() - keys
        if unknown:
            raise TypeError(f"{self.type} has no field {', '.join(sorted(unknown))}")
        out = {k: v for k, v in values.items() if v is not None}
        missing = [f.key for f in self.fields if not f.optional and f.key not in out]
        if missing:
            raise TypeError(f"{self.type} needs {', '.join(missing)}")
        return out


# Every ticket event names the ticket's number: the stream's clients show it.
_NUMBER = PayloadField("number", str)

EVENTS: Mapping[EventType, EventSpec] = {
    spec.type: spec
    for spec in (
        EventSpec(
            EventType.TICKET_ISSUED,
            (
                PayloadField("number", str, replayed=True),
                PayloadField("seq", int, replayed=True),  # the number's place in its service
                PayloadField("priority", Priority, replayed=True, optional=True),
                PayloadField("source", Source, replayed=True, default=Source.KIOSK),
                # The wait the citizen was told at issue, seconds (none: no estimate then).
                PayloadField("estimated_wait_seconds", float, replayed=True, optional=True),
                # A checked-in booking's ticket: the booking's id, and from when it is called
                # ahead of walk-ins (ISO instant; its queue time starts then, not earlier).
                PayloadField("booking", str, replayed=True, optional=True),
                PayloadField("due_at", str, replayed=True, optional=True),
                # A remote join that must be confirmed at the kiosk: the code to confirm it.
                PayloadField("code", str, replayed=True, optional=True),
            ),
            reads_service=True,
        ),
        EventSpec(EventType.TICKET_CONFIRMED, (_NUMBER,)),
        EventSpec(EventType.TICKET_CALLED, (_NUMBER,), reads_counter=True),
        EventSpec(EventType.TICKET_RECALLED, (_NUMBER, PayloadField("calls", int))),
        EventSpec(EventType.TICKET_STARTED, (_NUMBER,)),
        EventSpec(
            EventType.TICKET_FINISHED,
            (_NUMBER, PayloadField("outcome", FinishOutcome, replayed=True)),
            reads_counter=True,
        ),
        EventSpec(EventType.TICKET_NO_SHOW, (_NUMBER,), reads_counter=True),
        EventSpec(
            EventType.TICKET_TRANSFERRED,
            (_NUMBER, PayloadField("to_service", str, replayed=True)),
            reads_counter=True,
        ),
        EventSpec(EventType.TICKET_CANCELLED, (_NUMBER, PayloadField("reason", str))),
        # `state`: where the ticket was when its day ended (waiting, called or serving).
        EventSpec(
            EventType.TICKET_EXPIRED,
            (_NUMBER, PayloadField("state", TicketStatus)),
        ),
        EventSpec(EventType.COUNTER_OPENED, reads_counter=True),
        EventSpec(
            EventType.COUNTER_PAUSED,
            (PayloadField("reason", str, replayed=True, optional=True),),
            reads_counter=True,
        ),
        EventSpec(EventType.COUNTER_CLOSED, reads_counter=True),
        # Bookings: read by the site's booking book (domain/bookings.py) from `Event.data`,
        # never from replay rows (start-up loads them with a query of their own: a booking
        # outlives the day it was made on).
        EventSpec(
            EventType.BOOKING_MADE,
            (
                PayloadField("code", str),  # what the citizen types or scans at the kiosk
                PayloadField("day", str),  # the slot's service day, ISO
                PayloadField("slot", str),  # the slot's start, "HH:MM" site-local
            ),
        ),
        EventSpec(
            EventType.BOOKING_RESCHEDULED,
            (PayloadField("day", str), PayloadField("slot", str)),
        ),
        EventSpec(EventType.BOOKING_CANCELLED, (PayloadField("reason", str, optional=True),)),
        EventSpec(
            EventType.BOOKING_CHECKED_IN,
            (
                PayloadField("ticket", str),  # the ticket issued with it
                # Checked in after its window and issued as a walk-in's ticket.
                PayloadField("late", bool, optional=True),
            ),
        ),
        EventSpec(EventType.BOOKING_MISSED),
    )
}

# The booking events (kept apart from the day's replay; see above).
BOOKING_EVENTS = frozenset(t for t in EVENTS if t.is_booking_event)
# Where each booking event leaves its booking.
BOOKING_STATE_AFTER: Mapping[EventType, BookingStatus] = {
    EventType.BOOKING_MADE: BookingStatus.BOOKED,
    EventType.BOOKING_RESCHEDULED: BookingStatus.BOOKED,
    EventType.BOOKING_CANCELLED: BookingStatus.CANCELLED,
    EventType.BOOKING_CHECKED_IN: BookingStatus.CHECKED_IN,
    EventType.BOOKING_MISSED: BookingStatus.MISSED,
}

# A replay row: what a state handler is applied to. The envelope by position, then the
# fields the type's handler reads (`EventSpec.replayed`), from `PAYLOAD_AT` on; columns a
# type does not use are None (or absent at the end). The store's range query selects
# exactly this; `replay_row` makes it of an `Event`.
ROW_SEQ, ROW_SITE, ROW_TYPE, ROW_TS, ROW_TICKET, ROW_COUNTER, ROW_SERVICE = range(7)
PAYLOAD_AT = 7
ROW_WIDTH = PAYLOAD_AT + max(len(spec.replayed) for spec in EVENTS.values())


@dataclass(slots=True)
class Event:
    """One fact about a site's day. Treat it as immutable once made.

    Not `frozen`: a frozen dataclass initialises every field through
    `object.__setattr__`, about 6x the cost of a plain slots class, and start-up builds a
    million of them. Nothing mutates an Event; use `dataclasses.replace` to derive one.

    `service` and `segment` locate a ticket event in its visit: a ticket transferred to
    another service starts a new segment, and the transfer event closes the old one.
    `seq` is the store's global, gap-free-per-process order, assigned at commit.
    `data` is the type's fields as declared in `EVENTS` (the stored JSON object).
    """

    type: EventType
    site: str
    ts: datetime
    day: date
    ticket_id: str | None = None
    counter_id: str | None = None
    service: str | None = None
    segment: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0

    def public(self) -> dict[str, Any]:
        """The form sent to clients; ticket ids are capabilities and are added by the caller."""
        out: dict[str, Any] = dict(self.data)
        out.pop("seq", None)  # a ticket's number sequence; the event's own seq wins
        out.update(seq=self.seq, type=self.type, site=self.site, ts=self.ts.isoformat())
        if self.counter_id is not None:
            out["counter"] = self.counter_id
        if self.service is not None:
            out["service"] = self.service
        return out


# What `replay_row` takes of each type's events: whether the counter and the service, and
# the (key, default) of each field the handler reads (looked up once, not per event).
_ROW_PARTS = {
    t: (spec.reads_counter, spec.reads_service, tuple((f.key, f.default) for f in spec.replayed))
    for t, spec in EVENTS.items()
}


def replay_row(e: Event) -> tuple[Any, ...]:
    """The replay row of an event: what the store's range query reads of it once stored."""
    counter, service, fields = _ROW_PARTS[e.type]
    d = e.data
    return (
        e.seq,
        e.site,
        e.type,
        e.ts,
        e.ticket_id,
        e.counter_id if counter else None,
        e.service if service else None,
        *[d.get(key, default) for key, default in fields],
    )
