"""Commands: decide, from a site's state and the time, which events a request produces.

Each function validates against the state and returns events without changing anything;
the caller applies them. The clock is the caller's: functions take `now`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from queue_service.domain import errors
from queue_service.domain.events import EVENTS, Event
from queue_service.domain.state import CounterState, SiteState, Ticket, day_end
from queue_service.domain.vocab import (
    HELD,
    MAX_NUMBER,
    MAX_REASON,
    CounterStatus,
    EventType,
    FinishOutcome,
    Priority,
    Source,
    TicketStatus,
)

W = TypeVar("W", bound=StrEnum)


def _ts(now: datetime, ticket: Ticket | None = None) -> datetime:
    # A wall clock stepped backwards must never make a ticket's history run backwards.
    if ticket is not None and ticket.last_ts is not None and now < ticket.last_ts:
        return ticket.last_ts
    return now


def _event(
    state: SiteState,
    type_: EventType,
    now: datetime,
    ticket_id: str | None = None,
    counter_id: str | None = None,
    service: str | None = None,
    segment: int = 0,
    **data: Any,
) -> Event:
    """An event of the site at `now`, its data made by the type's declaration."""
    return Event(
        type_,
        state.site.id,
        now,
        state.site.service_day(now),
        ticket_id,
        counter_id,
        service,
        segment,
        EVENTS[type_].data(**data),
    )


def _ticket_event(
    state: SiteState,
    type_: EventType,
    now: datetime,
    ticket: Ticket,
    counter_id: str | None = None,
    **data: Any,
) -> list[Event]:
    """The one event a ticket command produces, placed in the ticket's current visit."""
    return [
        _event(
            state,
            type_,
            _ts(now, ticket),
            ticket.id,
            counter_id,
            ticket.service,
            ticket.segment,
            number=ticket.number,
            **data,
        )
    ]


def _word(vocabulary: type[W], value: str, field: str) -> W:
    """`value` as a word of `vocabulary`, or Invalid naming the words it may be."""
    try:
        return vocabulary(value)
    except ValueError:
        raise errors.Invalid(
            f"{field} must be one of {', '.join(vocabulary)}", field=field
        ) from None


def _counter(state: SiteState, counter_id: str) -> CounterState:
    try:
        return state.counters[counter_id]
    except KeyError:
        raise errors.UnknownCounter(
            f"counter {counter_id!r} does not exist at site {state.site.id!r}", counter=counter_id
        ) from None


def _held(state: SiteState, counter: CounterState) -> Ticket:
    if counter.ticket_id is None:
        raise errors.InvalidTransition(
            f"counter {counter.id!r} holds no ticket", counter=counter.id
        )
    return state.tickets[counter.ticket_id]


def issue(
    state: SiteState,
    now: datetime,
    *,
    ticket_id: str,
    service: str,
    priority: str | None = None,
    source: str = "kiosk",
    number: str | None = None,
    code: str | None = None,
) -> list[Event]:
    """Issue a ticket. `number` is given only by a dispenser that printed its own; `code`
    only to a remote join that must be confirmed at the kiosk (domain/online.py)."""
    site = state.site
    svc = site.services.get(service)
    if svc is None:
        raise errors.UnknownService(
            f"service {service!r} does not exist at site {site.id!r}", service=service
        )
    kind = None if priority is None else _word(Priority, priority, "priority")
    origin = _word(Source, source, "source")
    refused = state.not_accepting(service, now)
    if refused == "closed":
        raise errors.SiteClosed(
            f"{site.name} is closed now", site=site.id, opens_at=site.next_opening(now)
        )
    if refused == "cutoff":
        raise errors.CutoffPassed(
            f"tickets for {svc.name_id} are issued until {svc.cutoff:%H:%M}",
            service=service,
            cutoff=f"{svc.cutoff:%H:%M}",
            opens_at=site.next_day_opening(now, svc.cutoff),
        )
    if refused == "quota":
        raise errors.QuotaReached(
            f"today's quota of {svc.daily_quota} tickets for {svc.name_id} is reached",
            service=service,
            quota=svc.daily_quota,
            opens_at=site.next_day_opening(now, svc.cutoff),
        )
    return [
        issued_event(
            state, now, ticket_id, service, origin, priority=kind, number=number, code=code
        )
    ]


def issued_event(
    state: SiteState,
    now: datetime,
    ticket_id: str,
    service: str,
    source: Source,
    *,
    priority: Priority | None = None,
    number: str | None = None,
    booking: str | None = None,
    due_at: datetime | None = None,
    code: str | None = None,
) -> Event:
    """The `ticket_issued` event of a ticket of `service` issued at `now`: its number (the
    next of the service's day unless a dispenser printed its own) and the estimate the
    citizen is given, kept with it so that its error is measured when it is called
    (state.py, totals, the ticket_visits view). A booking's ticket (antrian online) names
    its booking and, entering ahead of walk-ins, from when (`due_at`): its estimate, like
    its wait, runs from then. Whether tickets are issued now is the caller's to check."""
    svc = state.site.services[service]
    seq = state.queues[service].issued + 1
    if seq > MAX_NUMBER:
        raise errors.QuotaReached(
            "ticket numbers for today are exhausted",
            service=service,
            opens_at=state.site.next_day_opening(now, svc.cutoff),
        )
    if due_at is None:
        ahead = state.ahead_of_new(service, priority, now)
    else:
        # Its queue time starts at its due time: the estimate is of that, the same span
        # its wait is measured over (the status page adds the time until then).
        ahead = state.queues[service].booked_ahead_at(max(now, due_at))
    estimate = state.estimated_wait_seconds(service, ahead, now)
    return _event(
        state,
        EventType.TICKET_ISSUED,
        now,
        ticket_id,
        service=service,
        number=number or f"{svc.prefix}{seq:03d}",
        seq=seq,
        source=source,
        priority=priority,
        estimated_wait_seconds=None if estimate is None else round(estimate, 1),
        booking=booking,
        due_at=None if due_at is None else due_at.isoformat(),
        code=code,
    )


def _check_can_call(state: SiteState, counter: CounterState) -> None:
    if counter.state != CounterStatus.OPEN:
        raise errors.CounterNotOpen(
            f"counter {counter.id!r} is {counter.state}; open it first",
            counter=counter.id,
            state=counter.state,
        )
    if counter.ticket_id is not None:
        held = state.tickets[counter.ticket_id]
        raise errors.CounterBusy(
            f"counter {counter.id!r} still holds {held.number}; finish, transfer or no-show it",
            counter=counter.id,
            ticket=held.number,
        )


def _call(state: SiteState, now: datetime, counter: CounterState, ticket: Ticket) -> list[Event]:
    return _ticket_event(state, EventType.TICKET_CALLED, now, ticket, counter.id)


def call_next(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    """Call the next ticket among the counter's services: priority heads first, then oldest."""
    counter = _counter(state, counter_id)
    _check_can_call(state, counter)
    heads = []
    for code in state.site.counters[counter_id].services:
        head = state.queues[code].head(now)
        if head is not None:
            heads.append(head)
    if not heads:
        raise errors.QueueEmpty(
            "no ticket is waiting for this counter's services", counter=counter_id
        )

    def across(t: Ticket) -> tuple[bool, bool, datetime, int, str]:
        """Between the heads of the counter's services: priority first (where its service
        uses priority), then checked-in bookings due, then by place in the queue."""
        due = t.due_at is not None and t.due_at <= now
        return (
            t.priority is None or not state.queues[t.service].uses_priority(),
            not due,
            t.due_at if due and t.due_at is not None else t.queue_key,
            t.seq,
            t.id,
        )

    return _call(state, now, counter, min(heads, key=across))


def call_ticket(state: SiteState, now: datetime, *, counter_id: str, ticket_id: str) -> list[Event]:
    """Call one particular waiting ticket (out of order, e.g. an appointment)."""
    counter = _counter(state, counter_id)
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise errors.UnknownTicket("no such ticket today", ticket=ticket_id)
    _check_can_call(state, counter)
    if ticket.state in HELD:
        raise errors.TicketTaken(
            f"{ticket.number} is already at counter {ticket.counter}",
            ticket=ticket.number,
            counter=ticket.counter,
        )
    if ticket.state != TicketStatus.WAITING:
        raise errors.InvalidTransition(
            f"{ticket.number} is {ticket.state}", ticket=ticket.number, state=ticket.state
        )
    if ticket.service not in state.site.counters[counter_id].services:
        raise errors.NotServedHere(
            f"counter {counter_id!r} does not serve {ticket.service}",
            service=ticket.service,
        )
    return _call(state, now, counter, ticket)


def _held_in(state: SiteState, counter_id: str, allowed: frozenset[str], action: str) -> Ticket:
    """The ticket the counter holds, if its state allows `action`."""
    ticket = _held(state, _counter(state, counter_id))
    if ticket.state not in allowed:
        raise errors.InvalidTransition(
            f"{ticket.number} is {ticket.state}; it cannot be {action} now",
            ticket=ticket.number,
            state=ticket.state,
        )
    return ticket


_CALLED = frozenset({TicketStatus.CALLED})


def recall(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    ticket = _held_in(state, counter_id, _CALLED, "recalled")
    return _ticket_event(
        state, EventType.TICKET_RECALLED, now, ticket, counter_id, calls=ticket.calls + 1
    )


def start(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    ticket = _held_in(state, counter_id, _CALLED, "started")
    return _ticket_event(state, EventType.TICKET_STARTED, now, ticket, counter_id)


def finish(
    state: SiteState, now: datetime, *, counter_id: str, outcome: str = FinishOutcome.SERVED
) -> list[Event]:
    word = _word(FinishOutcome, outcome, "outcome")
    ticket = _held_in(state, counter_id, HELD, "finished")
    return _ticket_event(state, EventType.TICKET_FINISHED, now, ticket, counter_id, outcome=word)


def no_show(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    ticket = _held_in(state, counter_id, _CALLED, "marked a no-show")
    needed = state.site.no_show_min_calls
    if ticket.calls < needed:
        raise errors.NoShowTooEarly(
            f"{ticket.number} was called {ticket.calls} time(s); recall it until {needed}",
            calls=ticket.calls,
            required=needed,
        )
    return _ticket_event(state, EventType.TICKET_NO_SHOW, now, ticket, counter_id)


def transfer(state: SiteState, now: datetime, *, counter_id: str, to_service: str) -> list[Event]:
    _counter(state, counter_id)
    if to_service not in state.site.services:
        raise errors.UnknownService(f"service {to_service!r} does not exist", service=to_service)
    ticket = _held_in(state, counter_id, HELD, "transferred")
    if to_service == ticket.service:
        raise errors.Invalid(
            "a ticket cannot be transferred to the service it is in", field="service"
        )
    return _ticket_event(
        state, EventType.TICKET_TRANSFERRED, now, ticket, counter_id, to_service=to_service
    )


def cancel(state: SiteState, now: datetime, *, ticket_id: str, reason: str = "") -> list[Event]:
    ticket = state.tickets.get(ticket_id)
    if ticket is None:
        raise errors.UnknownTicket("no such ticket today", ticket=ticket_id)
    if ticket.state != TicketStatus.WAITING:
        raise errors.InvalidTransition(
            f"{ticket.number} is {ticket.state}; only a waiting ticket can be cancelled",
            ticket=ticket.number,
            state=ticket.state,
        )
    return _ticket_event(state, EventType.TICKET_CANCELLED, now, ticket, reason=reason[:MAX_REASON])


def open_counter(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    counter = _counter(state, counter_id)
    if counter.state == CounterStatus.OPEN:
        raise errors.InvalidTransition(
            f"counter {counter_id!r} is already open", counter=counter_id, state=counter.state
        )
    return [_event(state, EventType.COUNTER_OPENED, now, counter_id=counter_id)]


def pause_counter(state: SiteState, now: datetime, *, counter_id: str, reason: str) -> list[Event]:
    counter = _counter(state, counter_id)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise errors.Invalid(
            f"a pause needs a reason of 1 to {MAX_REASON} characters", field="reason"
        )
    if counter.state != CounterStatus.OPEN:
        raise errors.InvalidTransition(
            f"counter {counter_id!r} is {counter.state}, not open",
            counter=counter_id,
            state=counter.state,
        )
    if counter.ticket_id is not None:
        raise errors.CounterBusy("finish the current ticket before pausing", counter=counter_id)
    return [_event(state, EventType.COUNTER_PAUSED, now, counter_id=counter_id, reason=reason)]


def close_counter(state: SiteState, now: datetime, *, counter_id: str) -> list[Event]:
    counter = _counter(state, counter_id)
    if counter.state == CounterStatus.CLOSED:
        raise errors.InvalidTransition(
            f"counter {counter_id!r} is already closed", counter=counter_id, state=counter.state
        )
    if counter.ticket_id is not None:
        raise errors.CounterBusy("finish the current ticket before closing", counter=counter_id)
    assert counter.state in (CounterStatus.OPEN, CounterStatus.PAUSED)
    return [_event(state, EventType.COUNTER_CLOSED, now, counter_id=counter_id)]


def expire_day(state: SiteState) -> list[Event]:
    """Close every ticket of the state's service day still waiting, called or being served
    when that day ended: one `ticket_expired` event each (outcome `expired`), at the day's
    end (the next local midnight) and belonging to that day, in the order the tickets were
    issued. Nothing is left open: issued = closed + waiting holds at every moment. Empty
    when the day is already closed."""
    if state.day is None:
        return []
    end = day_end(state.site, state.day)
    return [
        Event(
            EventType.TICKET_EXPIRED,
            state.site.id,
            max(end, t.last_ts) if t.last_ts is not None else end,
            state.day,
            t.id,
            t.counter,
            t.service,
            t.segment,
            EVENTS[EventType.TICKET_EXPIRED].data(number=t.number, state=t.state),
        )
        for t in state.open_tickets()
    ]
