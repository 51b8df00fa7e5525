"""Commands of antrian online: book a slot, move or cancel it, check in at the kiosk, join
today's queue from the phone, and miss the bookings never checked in.

Like `domain/commands.py`: each decides, from a site's state and the time, the events a
request produces, and changes nothing. Random things are given, not drawn here: the ids
the caller made, and `new_code` for a booking's or remote join's short code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from queue_service.domain import errors
from queue_service.domain.bookings import (
    BookingRecord,
    Slot,
    places_left,
    policy_of,
    slot_start,
    slots_of,
    window,
)
from queue_service.domain.commands import _event, issue, issued_event
from queue_service.domain.events import Event
from queue_service.domain.site import Service
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import (
    MAX_REASON,
    BookingEntry,
    BookingStatus,
    EventType,
    LatePolicy,
    Source,
    TicketStatus,
)

# Booking and confirmation codes: six characters a citizen reads off a phone and types on
# a kiosk, none that is easily mistaken for another (no 0/O, 1/I/L, 2/Z, 5/S, 8/B).
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
_CODE_TRIES = 32


def bookable_service(state: SiteState, service: str) -> Service:
    svc = state.site.services.get(service)
    if svc is None:
        raise errors.UnknownService(
            f"service {service!r} does not exist at site {state.site.id!r}", service=service
        )
    if svc.booking is None:
        raise errors.NotBookable(f"{svc.name_id} takes no bookings", service=service)
    return svc


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise errors.Invalid("day must be a date written YYYY-MM-DD", field="day") from None


def bookable_days(state: SiteState, svc: Service, now: datetime) -> list[date]:
    """The days that may be booked at `now`: today and the next `days_ahead`."""
    today = state.site.service_day(now)
    return [today + timedelta(days=i) for i in range(policy_of(svc).days_ahead + 1)]


def slot_open(svc: Service, slot: Slot, now: datetime) -> bool:
    """Whether `slot` may still be booked at `now` (its cut-off not passed)."""
    return now < slot.starts_at - timedelta(minutes=policy_of(svc).cutoff_minutes)


def _place(
    state: SiteState,
    now: datetime,
    svc: Service,
    day_text: str,
    slot_text: str,
    moving: BookingRecord | None = None,
) -> tuple[date, Slot]:
    """The day and slot asked for, checked bookable at `now` with a place free (for a
    booking `moving` within its day, its own place in the day's count is not another)."""
    day = parse_day(day_text)
    if day not in bookable_days(state, svc, now):
        raise errors.BookingClosed(
            f"{svc.name_id} can be booked from today up to {policy_of(svc).days_ahead} days ahead",
            service=svc.code,
            day=day_text,
        )
    slots = slots_of(state.site, svc, day)
    if not slots:
        raise errors.NotBookable(
            f"{svc.name_id} has no slots on {day_text} (the hall is closed)",
            service=svc.code,
            day=day_text,
        )
    slot = next((s for s in slots if s.label == slot_text), None)
    if slot is None:
        raise errors.Invalid(
            f"{svc.name_id} has no slot starting at {slot_text!r} on {day_text}", field="slot"
        )
    if not slot_open(svc, slot, now):
        raise errors.BookingClosed(
            f"booking the {slot.label} slot closed {policy_of(svc).cutoff_minutes} minutes "
            "before it starts",
            service=svc.code,
            day=day_text,
            slot=slot.label,
        )
    own = 1 if moving is not None and moving.day == day else 0
    in_slot, in_day = places_left(state.bookings, svc, day, slot.start, len(slots), own)
    if in_slot <= 0:
        raise errors.SlotFull(
            f"the {slot.label} slot of {day_text} is full", service=svc.code, slot=slot.label
        )
    if in_day <= 0:
        raise errors.SlotFull(
            f"every bookable place of {day_text} is taken; walk-ins are still served",
            service=svc.code,
            slot=slot.label,
        )
    return day, slot


def _new_code(state: SiteState, new_code: Callable[[], str]) -> str:
    """A code no booking or remote join in use holds."""
    for _ in range(_CODE_TRIES):
        code = new_code()
        if state.bookings.by_code(code) is None and _joined(state, code) is None:
            return code
    raise RuntimeError("no free booking code found")  # 25**6 codes: never in practice


def book(
    state: SiteState,
    now: datetime,
    *,
    booking_id: str,
    service: str,
    day: str,
    slot: str,
    new_code: Callable[[], str],
    phone_key: str | None = None,
) -> list[Event]:
    """Book a place in a slot. Never beyond the slot's capacity (decisions on a site are
    made one at a time), nor beyond the day's share of the quota kept from walk-ins."""
    svc = bookable_service(state, service)
    if phone_key is not None:
        limit = state.site.online.max_active_per_phone
        if state.bookings.active_for_phone(phone_key) >= limit:
            raise errors.BookingLimit(
                f"a phone number may hold {limit} bookings at a time", limit=limit
            )
    booked_day, chosen = _place(state, now, svc, day, slot)
    return [
        _event(
            state,
            EventType.BOOKING_MADE,
            now,
            booking_id,
            service=svc.code,
            code=_new_code(state, new_code),
            day=booked_day.isoformat(),
            slot=chosen.label,
        )
    ]


def _booking(state: SiteState, booking_id: str) -> BookingRecord:
    b = state.bookings.get(booking_id)
    if b is None:
        raise errors.BookingNotFound("no such booking", booking=booking_id[:8] + "...")
    return b


def _still_booked(b: BookingRecord, action: str) -> None:
    if b.state != BookingStatus.BOOKED:
        raise errors.InvalidTransition(
            f"the booking is {b.state}; only a booking not yet checked in can be {action}",
            state=b.state,
        )


def reschedule(
    state: SiteState, now: datetime, *, booking_id: str, day: str, slot: str
) -> list[Event]:
    """Move a booking to another slot (of the same service), if that one has a place."""
    b = _booking(state, booking_id)
    _still_booked(b, "moved")
    svc = bookable_service(state, b.service)
    if day == b.day.isoformat() and slot == f"{b.slot:%H:%M}":
        raise errors.Invalid("the booking is already in that slot", field="slot")
    new_day, chosen = _place(state, now, svc, day, slot, moving=b)
    return [
        _event(
            state,
            EventType.BOOKING_RESCHEDULED,
            now,
            b.id,
            service=b.service,
            day=new_day.isoformat(),
            slot=chosen.label,
        )
    ]


def cancel_booking(
    state: SiteState, now: datetime, *, booking_id: str, reason: str = ""
) -> list[Event]:
    b = _booking(state, booking_id)
    _still_booked(b, "cancelled")
    return [
        _event(
            state,
            EventType.BOOKING_CANCELLED,
            now,
            b.id,
            service=b.service,
            reason=reason[:MAX_REASON] or None,
        )
    ]


def _joined(state: SiteState, code: str) -> str | None:
    """Today's remote join holding confirmation code `code` (its ticket id), if any."""
    for t in state.tickets.values():
        if t.code == code and t.state not in (TicketStatus.CANCELLED, TicketStatus.EXPIRED):
            return t.id
    return None


def _local(state: SiteState, instant: datetime) -> str:
    return state.site.local(instant).isoformat()


def check_in(
    state: SiteState,
    now: datetime,
    *,
    code: str,
    ticket_id: str,
    source: Source = Source.KIOSK,
) -> list[Event]:
    """Check in with a booking's code (at the kiosk, or at a dispenser with a code reader:
    `source`): issue its ticket, entering the queue by the service's policy; or confirm
    today's remote join holding that code. A late check-in let in as a walk-in's ticket
    has `source`, as a walk-in there would."""
    code = code.strip().upper()
    joined = _joined(state, code)
    if joined is not None:
        t = state.tickets[joined]
        if t.confirmed or t.state != TicketStatus.WAITING:
            raise errors.AlreadyCheckedIn(f"{t.number} is confirmed already", ticket=t.number)
        return [
            _event(
                state,
                EventType.TICKET_CONFIRMED,
                now,
                t.id,
                service=t.service,
                segment=t.segment,
                number=t.number,
            )
        ]
    b = state.bookings.by_code(code)
    if b is None:
        raise errors.BookingNotFound("no booking with that code")
    if b.state == BookingStatus.CHECKED_IN:
        raise errors.AlreadyCheckedIn("the booking is checked in already", ticket=b.ticket_id)
    if b.state == BookingStatus.CANCELLED:
        raise errors.BookingCancelled("the booking was cancelled")
    if b.state == BookingStatus.MISSED:
        raise errors.TooLate("the booking was missed: its check-in window closed")
    svc = state.site.services.get(b.service)
    if svc is None:
        raise errors.BookingNotFound("the booking's service is no longer offered here")
    policy = policy_of(svc)
    opens, closes = window(state.site, svc, b)
    if now < opens:
        raise errors.TooEarly(
            f"check-in for the {b.slot:%H:%M} slot opens {policy.early_minutes} minutes before it",
            opens_at=_local(state, opens),
        )
    if not state.site.is_open(now):
        raise errors.SiteClosed(
            f"{state.site.name} is closed now", site=state.site.id,
            opens_at=state.site.next_opening(now),
        )  # fmt: skip
    late = now > closes
    if late and policy.late == LatePolicy.REFUSE:
        raise errors.TooLate(
            f"check-in for the {b.slot:%H:%M} slot closed {policy.late_minutes} minutes after it",
            closed_at=_local(state, closes),
        )
    start = slot_start(state.site, b)
    if late:
        # A walk-in's ticket by policy: no place ahead, and the daily quota applies.
        refused = state.not_accepting(svc.code, now)
        if refused is not None:
            raise errors.TooLate(
                "check-in closed and no walk-in ticket can be issued now", refused=refused
            )
        ticket = issued_event(state, now, ticket_id, svc.code, source, booking=b.id)
    else:
        due = {
            BookingEntry.AT_SLOT: start,
            BookingEntry.PRIORITY: now,
            BookingEntry.FIFO: None,
        }[policy.entry]
        ticket = issued_event(
            state, now, ticket_id, svc.code, Source.BOOKING, booking=b.id, due_at=due
        )
    return [
        _event(
            state,
            EventType.BOOKING_CHECKED_IN,
            now,
            b.id,
            service=b.service,
            ticket=ticket_id,
            late=late or None,
        ),
        ticket,
    ]


def join(
    state: SiteState,
    now: datetime,
    *,
    ticket_id: str,
    service: str,
    new_code: Callable[[], str],
    priority: str | None = None,
) -> list[Event]:
    """Take today's ticket from the phone (remote join), where the service allows it: the
    walk-in's checks (open, cutoff, quota) and place; to be confirmed at the kiosk where
    the service says so (one called while unconfirmed follows the no-show rules)."""
    svc = state.site.services.get(service)
    if svc is not None and (svc.booking is None or not svc.booking.remote_join):
        raise errors.RemoteJoinOff(
            f"{svc.name_id} does not take tickets from the phone", service=service
        )
    confirm = svc is not None and svc.booking is not None and svc.booking.confirm_on_arrival
    return issue(
        state,
        now,
        ticket_id=ticket_id,
        service=service,
        priority=priority,
        source=Source.ONLINE,
        code=_new_code(state, new_code) if confirm else None,
    )


def miss_due(state: SiteState, now: datetime) -> list[Event]:
    """`booking_missed` for every booking whose check-in window closed before `now`
    without a check-in (the engine runs this on the clock)."""
    return [
        _event(state, EventType.BOOKING_MISSED, now, b.id, service=b.service)
        for b in state.bookings.due_to_miss(state.site, now)
    ]
