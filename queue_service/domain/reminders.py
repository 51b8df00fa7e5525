"""What a citizen of antrian online is told, decided from the events a command produced.

`after` reads the events just applied to a state and returns the notices they call for
(booked, moved, cancelled, missed; "your turn is near"; "you are called") and the visits
that ended (their phone numbers are erased). Every booking's and remote join's notices are
made, phone or not: the store keeps a notice only where its subject left a number
(domain/notices.py), so the domain never sees one.

A notice's key is stable (the same events make the same keys) and once per thing told:
"near" once per queue segment, "called" once per segment (a recall is not a second
notice), so a command decided again after a failed commit makes no second message.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSet
from datetime import datetime

from queue_service.domain.events import Event
from queue_service.domain.notices import Erase, Notice
from queue_service.domain.site import Booking
from queue_service.domain.state import SiteState, Ticket
from queue_service.domain.vocab import EventType, NoticeKind, Source, TicketStatus

# Events that end a ticket's visit (a transfer does not: the citizen is still in the hall).
_ENDS_VISIT = frozenset(
    {
        EventType.TICKET_FINISHED,
        EventType.TICKET_NO_SHOW,
        EventType.TICKET_CANCELLED,
        EventType.TICKET_EXPIRED,
    }
)
_BOOKING_NOTICES = {
    EventType.BOOKING_MADE: NoticeKind.BOOKED,
    EventType.BOOKING_RESCHEDULED: NoticeKind.RESCHEDULED,
    EventType.BOOKING_CANCELLED: NoticeKind.CANCELLED,
    EventType.BOOKING_MISSED: NoticeKind.MISSED,
}
# Booking events that end the booking (no ticket follows).
_ENDS_BOOKING = frozenset({EventType.BOOKING_CANCELLED, EventType.BOOKING_MISSED})


def is_near(policy: Booking, ahead: int, estimate: float | None) -> bool:
    """Whether "your turn is near": this many ahead or fewer, or an estimate (of the queue time
    left) this short. The status page shows it, the webhook tells it, from this one rule."""
    return ahead <= policy.near_ahead or (
        estimate is not None and estimate <= policy.near_minutes * 60
    )


def subject(ticket: Ticket) -> str | None:
    """Whose phone a ticket's notices go to: its booking's, a remote join's own; None for a
    walk-in's (no phone was ever given)."""
    if ticket.booking is not None:
        return ticket.booking
    if ticket.source is Source.ONLINE:
        return ticket.id
    return None


def after(
    state: SiteState, events: Iterable[Event], now: datetime, near_sent: MutableSet[str]
) -> tuple[list[Notice], list[Erase]]:
    """The notices and erasures `events` (applied to `state`) call for. `near_sent` holds
    the keys of the "near" notices made so far today (so each waiting ticket's position is
    not weighed again after it was told); the new ones are added to it."""
    site = state.site.id
    notices: list[Notice] = []
    erase: list[Erase] = []
    touched: set[str] = set()
    for e in events:
        if e.type in _BOOKING_NOTICES and e.ticket_id is not None:
            b = state.bookings.get(e.ticket_id)
            if b is None:
                continue
            kind = _BOOKING_NOTICES[e.type]
            key = f"{b.id}:{kind}" + (f":{b.moves}" if kind is NoticeKind.RESCHEDULED else "")
            notices.append(
                Notice(
                    site,
                    b.id,
                    kind,
                    key,
                    e.ts,
                    {
                        "code": b.code,
                        "service": b.service,
                        "day": b.day.isoformat(),
                        "slot": f"{b.slot:%H:%M}",
                    },
                )
            )
            if e.type in _ENDS_BOOKING:
                erase.append(Erase(site, b.id))
            continue
        if e.service is not None:
            touched.add(e.service)
        if e.ticket_id is None:
            continue
        t = state.tickets.get(e.ticket_id)
        if t is None:
            continue
        to = subject(t)
        if to is None:
            continue
        if e.type == EventType.TICKET_CALLED:
            counter = state.site.counters.get(e.counter_id or "")
            notices.append(
                Notice(
                    site,
                    to,
                    NoticeKind.CALLED,
                    f"{t.id}:called:{e.segment}",
                    e.ts,
                    {
                        "number": t.number,
                        "service": e.service,
                        "counter": e.counter_id,
                        "counter_name": counter.name if counter is not None else None,
                    },
                )
            )
        elif e.type in _ENDS_VISIT:
            erase.append(Erase(site, to))
    for code in touched:
        notices.extend(_near(state, code, now, near_sent))
    return notices, erase


def _near(state: SiteState, code: str, now: datetime, near_sent: MutableSet[str]) -> list[Notice]:
    """ "Your turn is near" for the waiting tickets of service `code` that reached its
    threshold (this many ahead or fewer, or an estimate this short) and were not told."""
    svc = state.site.services.get(code)
    if svc is None or svc.booking is None:
        return []
    policy = svc.booking
    q = state.queues[code]
    out = []
    for t in q.waiting():
        to = subject(t)
        if to is None or t.state is not TicketStatus.WAITING:
            continue
        key = f"{t.id}:near:{t.segment}"
        if key in near_sent:
            continue
        ahead = q.ahead_of(t, now)
        estimate = state.estimated_wait_seconds(code, ahead, now, t)
        if not is_near(policy, ahead, estimate):
            continue
        near_sent.add(key)
        out.append(
            Notice(
                state.site.id,
                to,
                NoticeKind.NEAR,
                key,
                now,
                {
                    "number": t.number,
                    "service": code,
                    "people_ahead": ahead,
                    "estimated_wait_seconds": None if estimate is None else round(estimate, 1),
                },
            )
        )
    return out
