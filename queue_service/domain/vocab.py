"""The domain's words, declared once. Every state, event type, outcome, priority, source
and role Antrian knows is a member of one of these `StrEnum`s; everything else (the store's
columns, the API's schemas, the metrics' label values, the pages) is derived from them.

A `StrEnum` member *is* its string (`TicketStatus.WAITING == "waiting"`), so stored events,
JSON bodies and metric labels keep exactly the words they always had.
"""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    """Where a ticket is in its visit (docs/design.md, "Ticket lifecycle")."""

    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    DONE = "done"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # still waiting or held when its service day ended


HELD = frozenset({TicketStatus.CALLED, TicketStatus.SERVING})
CLOSED = frozenset(
    {TicketStatus.DONE, TicketStatus.NO_SHOW, TicketStatus.CANCELLED, TicketStatus.EXPIRED}
)


class CounterStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"


class EventType(StrEnum):
    """The only facts ever stored; the only way state changes."""

    TICKET_ISSUED = "ticket_issued"
    TICKET_CALLED = "ticket_called"
    TICKET_RECALLED = "ticket_recalled"
    TICKET_STARTED = "ticket_started"
    TICKET_FINISHED = "ticket_finished"
    TICKET_NO_SHOW = "ticket_no_show"
    TICKET_TRANSFERRED = "ticket_transferred"
    TICKET_CANCELLED = "ticket_cancelled"
    # Closes a ticket still waiting or held when its service day ended (at local midnight).
    TICKET_EXPIRED = "ticket_expired"
    COUNTER_OPENED = "counter_opened"
    COUNTER_PAUSED = "counter_paused"
    COUNTER_CLOSED = "counter_closed"
    # A remote join's arrival confirmed at the kiosk (its code typed or scanned).
    TICKET_CONFIRMED = "ticket_confirmed"
    # A booking's life (antrian online): its `ticket_id` column holds the booking's id.
    BOOKING_MADE = "booking_made"
    BOOKING_RESCHEDULED = "booking_rescheduled"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_CHECKED_IN = "booking_checked_in"  # at the kiosk; its ticket is issued with it
    BOOKING_MISSED = "booking_missed"  # not checked in by the end of its window

    @property
    def is_ticket_event(self) -> bool:
        return self.value.startswith("ticket_")

    @property
    def is_booking_event(self) -> bool:
        return self.value.startswith("booking_")


class FinishOutcome(StrEnum):
    """What an officer may record when finishing a visit: the first three words of
    `Outcome`, written again because an enum with members cannot be extended and one built
    from another's members (`StrEnum("FinishOutcome", [...])`) is opaque to mypy."""

    SERVED = "served"
    INCOMPLETE = "incomplete"
    REFERRED = "referred"


class Outcome(StrEnum):
    """How a visit segment closed: a finish outcome, or what else ended it."""

    SERVED = "served"
    INCOMPLETE = "incomplete"
    REFERRED = "referred"
    TRANSFERRED = "transferred"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Priority(StrEnum):
    """Priority groups served ahead of the regular queue (UU 8/2016, PermenPAN-RB 17/2017)."""

    LANSIA = "lansia"
    DISABILITAS = "disabilitas"
    IBU_HAMIL = "ibu_hamil"


class PriorityPolicy(StrEnum):
    STRICT = "strict"
    INTERLEAVE = "interleave"
    FIFO = "fifo"


class Source(StrEnum):
    """Where a ticket was issued."""

    KIOSK = "kiosk"
    RECEPTION = "reception"
    DISPENSER = "dispenser"
    API = "api"
    ONLINE = "online"  # a remote join: issued from the citizen's phone for today
    BOOKING = "booking"  # a booking checked in at the kiosk


class BookingStatus(StrEnum):
    """Where a booking is: held, then checked in (its ticket issued), cancelled or missed."""

    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    CANCELLED = "cancelled"
    MISSED = "missed"


class BookingEntry(StrEnum):
    """How a checked-in booking's ticket enters its service's queue: `at_slot` is called
    ahead of walk-ins from its slot start (not before), `fifo` joins at check-in like a
    walk-in, `priority` is called ahead of walk-ins from check-in."""

    AT_SLOT = "at_slot"
    FIFO = "fifo"
    PRIORITY = "priority"


class LatePolicy(StrEnum):
    """A booking checked in after its window: issued as a walk-in's ticket, or refused."""

    WALK_IN = "walk_in"
    REFUSE = "refuse"


class Role(StrEnum):
    KIOSK = "kiosk"
    COUNTER = "counter"
    SURVEY = "survey"
    MANAGER = "manager"
    ADMIN = "admin"


# Roles bound to counters: "counter" acts at them; "survey" only offers the satisfaction
# survey of their served visits (the tablet citizens touch: it must be able to do nothing
# else).
COUNTER_ROLES = frozenset({Role.COUNTER, Role.SURVEY})


class SurveyMode(StrEnum):
    SKM = "skm"
    QUICK = "quick"


class DeviceKind(StrEnum):
    DISPENSER = "dispenser"
    KEYPAD = "keypad"
    PRINTER = "printer"


class NoticeKind(StrEnum):
    """What a notice tells the citizen."""

    BOOKED = "booked"  # a booking was made (its code, day and slot)
    NEAR = "near"  # the ticket is a few places or minutes from being called
    CALLED = "called"  # the ticket is called to a counter
    CANCELLED = "cancelled"  # the booking was cancelled
    MISSED = "missed"  # the booking's check-in window passed without a check-in
    RESCHEDULED = "rescheduled"  # the booking moved to another slot


class NoticeState(StrEnum):
    """Where an outbox row is: waiting to be delivered (perhaps after failed attempts),
    delivered (the receiver answered 2xx), or given up after the last attempt."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryOutcome(StrEnum):
    """What one delivery attempt came to (the `outcome` label of qms_notices_total)."""

    DELIVERED = "delivered"
    RETRIED = "retried"  # failed, another attempt is scheduled
    FAILED = "failed"  # failed, and it was the last attempt


# The lengths of the words and texts a request may carry, declared once: the commands, the
# counter actions' body fields (domain/actions.py) and the API's schemas read them.
MAX_REASON = 200  # a pause's reason, a cancellation's (cut to this), free text in general
MAX_TICKET_ID = 64  # a ticket id (a capability: long and random)
MAX_WORD = 24  # a service code, a priority, a source, an outcome
MAX_ID = 48  # a site, agency, counter or device id
MAX_NUMBER = 999  # ticket numbers have three digits
