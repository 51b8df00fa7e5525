"""Read models: JSON-ready views of a site's state for the API, pages and stream.

Public views (display, ticket status) carry ticket numbers only: a ticket id is the
citizen's capability to follow or cancel a ticket and never appears on a public screen.

Published precision (the OpenAPI document states it once, in `web/openapi.py`): every
duration in seconds is rounded to 0.1 s (`_round`), every share and ratio to 4 decimals
(`_share`), once, here, from exact values; counts are exact. A figure is computed from the
exact values, never from another figure's rounded one.

Waiting tickets are always listed, counted and positioned in their queue's one call order
(`ServiceQueue.call_order`: the order repeated call-next hands them out), and every
figure against the service standard comes from `domain/standard.py`.

When the hall is closed, the snapshot, the site directory and the display say when it next
opens (`next_opening`, `Site.next_opening`: site-local ISO 8601 with the site's offset; null
while it is open, a break included: a break is shown as a break, with its end).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from queue_service.domain import bookings, online, reminders, standard
from queue_service.domain import estimate as est
from queue_service.domain.bookings import BookingRecord
from queue_service.domain.site import WEEKDAYS, Site
from queue_service.domain.state import ServiceQueue, SiteState, Ticket
from queue_service.domain.vocab import HELD, BookingStatus, Source, TicketStatus

SECONDS_DIGITS = 1  # durations: 0.1 s
SHARE_DIGITS = 4  # shares and ratios: 0.0001
NOW_CALLING = 3  # a ticket status's `now_calling`: the newest calls of its service
RECENT_CALLS = 8  # the display's `recent`: its last calls
# What the site directory (the kiosk's menu) tells of each service: these of the snapshot's.
DIRECTORY_SERVICE_FIELDS = (
    "code",
    "agency",
    "name",
    "prefix",
    "target_wait_seconds",
    "waiting",
    "estimated_wait_seconds",
    "accepting",
    "not_accepting_reason",
    "daily_quota",
    "issued_today",
    "cutoff",
    "open_counters",
)
# And of each counter: these of the snapshot's (no state, nothing it holds).
DIRECTORY_COUNTER_FIELDS = ("id", "name", "zone")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: float | None) -> float | None:
    """A duration in seconds as published: rounded to 0.1 s."""
    return None if value is None else round(value, SECONDS_DIGITS)


def _share(value: float | None) -> float | None:
    """A share (0..1) or ratio as published: rounded to 4 decimals."""
    return None if value is None else round(value, SHARE_DIGITS)


def _hall(site: Site, now: datetime) -> dict[str, Any]:
    """The head of the snapshot, the display and the site directory: which hall, its time,
    and whether (and until when) it is open."""
    brk = site.current_break(now)
    return {
        "site": site.id,
        "name": site.name,
        "timezone": str(site.timezone),
        "now": now.isoformat(),
        "open": site.is_open(now),
        "next_opening": _iso(site.next_opening(now)),
        "break": None if brk is None else {"label": brk.label, "until": f"{brk.end:%H:%M}"},
    }


def _issue_order(t: Ticket) -> tuple[datetime, int]:
    return (t.issued_at, t.seq)


def ticket_status(
    state: SiteState, ticket: Ticket, now: datetime, *, just_issued: bool = False
) -> dict[str, Any]:
    """What the citizen's phone (and the kiosk's confirmation) shows.

    `just_issued`: the answer to the issue itself, which shows the estimate the ticket was
    given (stored in its `ticket_issued` event, and held to account when it is called), not
    a second computation of it."""
    service = state.site.services[ticket.service]
    # Its index in the queue's call order, for the answer to the issue too: the ticket is
    # already in the queue, and under `interleave` priority tickets may come after it.
    ahead = state.people_ahead(ticket, now)
    if ticket.state != TicketStatus.WAITING:
        estimate = None
    elif just_issued:
        estimate = ticket.estimate
    else:
        estimate = state.estimated_wait_seconds(ticket.service, ahead, now, ticket)
    near = (
        ticket.state == TicketStatus.WAITING
        and service.booking is not None
        and reminders.is_near(service.booking, ahead, estimate)
    )
    # The range about it (docs/estimate.md): the same for the answer to the issue, whose
    # point was told then, and for a later look.
    span = None if estimate is None else est.interval(estimate, ahead)
    if estimate is not None and ticket.due_at is not None and ticket.due_at > now:
        # A booking's ticket not due yet: its queue time (estimated) starts at its due time.
        until = (ticket.due_at - now).total_seconds()
        estimate += until
        if span is not None:
            span = (span[0] + until, span[1] + until)
    counter_name = state.site.counters[ticket.counter].name if ticket.counter is not None else None
    # The tickets being called or served are the ones counters hold (at most one each):
    # look at the counters, not at every ticket of the day. Issue order, then the newest
    # call first (a stable sort keeps issue order among equal call times).
    held = [
        t
        for c in state.counters.values()
        if c.ticket_id is not None
        and (t := state.tickets[c.ticket_id]).service == ticket.service
        and t.state in HELD
    ]
    held.sort(key=_issue_order)
    held.sort(key=lambda t: t.last_called_at or now, reverse=True)
    now_calling = held
    return {
        "id": ticket.id,
        "site": state.site.id,
        "site_name": state.site.name,
        "timezone": str(state.site.timezone),
        "number": ticket.number,
        "service": ticket.service,
        "service_name": {"id": service.name_id, "en": service.name_en},
        "priority": ticket.priority,
        "state": ticket.state,
        "issued_at": _iso(ticket.issued_at),
        "position": ahead + 1 if ticket.state == TicketStatus.WAITING else None,
        "people_ahead": ahead if ticket.state == TicketStatus.WAITING else 0,
        "estimated_wait_seconds": _round(estimate),
        "estimated_wait_range_seconds": None
        if span is None
        else [_round(span[0]), _round(span[1])],
        "waited_seconds": _round((now - ticket.enqueued_at).total_seconds())
        if ticket.state == TicketStatus.WAITING
        else None,
        "counter": ticket.counter,
        "counter_name": counter_name,
        "calls": ticket.calls,
        "called_at": _iso(ticket.last_called_at),
        "finished_at": _iso(ticket.finished_at),
        "outcome": ticket.outcome,
        "now_calling": [t.number for t in now_calling[:NOW_CALLING]],
        "source": ticket.source,
        "booking": ticket.booking,
        "due_at": _iso(ticket.due_at),
        "confirmed": ticket.confirmed,
        "near": near,
    }


def counter_view(state: SiteState, cid: str, now: datetime) -> dict[str, Any]:
    """One counter with its live state: an entry of the snapshot's `counters`, and the
    `counter` of a counter action's answer (built alone: no whole-site snapshot)."""
    c = state.counters[cid]
    cfg = state.site.counters[cid]
    held = state.tickets[c.ticket_id] if c.ticket_id else None
    waiting_for_me = sum(len(state.queues[s]) for s in cfg.services)
    return {
        "id": cid,
        "name": cfg.name,
        "zone": cfg.zone,
        "services": list(cfg.services),
        "uses_start": cfg.uses_start,
        "state": c.state,
        "reason": c.reason,
        "since": _iso(c.since),
        "ticket": None
        if held is None
        else {
            "id": held.id,
            "number": held.number,
            "service": held.service,
            "state": held.state,
            "priority": held.priority,
            "calls": held.calls,
            "called_at": _iso(held.last_called_at),
            "started_at": _iso(held.started_at),
        },
        "served_today": c.served,
        "busy_seconds_today": _round(c.busy_seconds),
        "idle_since": _iso(c.idle_since),
        "idle_while_queue_waits": c.idle_since is not None and waiting_for_me > 0,
    }


def _figures(q: ServiceQueue, now: datetime) -> standard.QueueFigures:
    """What the standard's figures read of a queue at `now` (exact, not rounded)."""
    oldest = q.oldest_enqueued_at()
    return standard.QueueFigures(
        service=q.service.code,
        target_seconds=q.service.target_wait_seconds,
        waiting=len(q),
        oldest_wait_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        called=q.called,
        called_within=q.called_within,
        waiting_over_target=q.waiting_over_target(now),
    )


def _service_view(
    state: SiteState,
    code: str,
    now: datetime,
    figures: standard.QueueFigures,
    *,
    with_tickets: bool,
) -> dict[str, Any]:
    q = state.queues[code]
    svc = q.service
    oldest = q.oldest_enqueued_at()
    open_counters = len(state.open_counters(code))
    reason = state.not_accepting(code, now)
    accepting = reason is None
    view: dict[str, Any] = {
        "code": code,
        "agency": svc.agency,
        "name": {"id": svc.name_id, "en": svc.name_en},
        "prefix": svc.prefix,
        "target_wait_seconds": svc.target_wait_seconds,
        "priority_policy": svc.priority_policy,
        "waiting": len(q),
        "priority_waiting": len(q.priority),
        "oldest_enqueued_at": _iso(oldest),
        "oldest_wait_seconds": _round(figures.oldest_wait_seconds),
        "open_counters": open_counters,
        # For a (regular) ticket issued now: what its issue would be told.
        "estimated_wait_seconds": _round(
            state.estimated_wait_seconds(code, state.ahead_of_new(code, None, now), now)
        ),
        "issued_today": q.issued,
        "daily_quota": svc.daily_quota,
        "cutoff": f"{svc.cutoff:%H:%M}" if svc.cutoff else None,
        "accepting": accepting,
        "not_accepting_reason": reason,
        "called_today": q.called,
        "called_within_target_today": q.called_within,
        "waiting_over_target": figures.waiting_over_target,
        "within_standard_share": _share(figures.share),
        "finished_today": q.finished,
        "no_shows_today": q.no_shows,
        "cancelled_today": q.cancelled,
        "average_service_seconds": _round(state.average_service_seconds(code)),
    }
    if with_tickets:
        view["tickets"] = [
            {
                "id": t.id,
                "number": t.number,
                "priority": t.priority,
                "issued_at": _iso(t.issued_at),
                "enqueued_at": _iso(t.enqueued_at),
                "wait_seconds": _round(max(0.0, (now - t.enqueued_at).total_seconds())),
                "booked": t.due_at is not None,
                "source": t.source,
                "due_at": _iso(t.due_at),
                "confirmed": t.confirmed,
            }
            # In call order; checked-in bookings not due yet (not callable) after it.
            for t in q.call_order(now) + (q.booked_now(now)[2] if q.booked else [])
        ]
    return view


def _headline(state: SiteState, figures: list[standard.QueueFigures]) -> dict[str, Any]:
    """The board's key figures against the standard, from `standard.headline`."""
    head = standard.headline(figures)
    worst = head.worst
    worst_view: dict[str, Any] | None = None
    if worst is not None:
        q = state.queues[worst.service]
        svc = q.service
        worst_view = {
            "service": svc.code,
            "prefix": svc.prefix,
            "name": {"id": svc.name_id, "en": svc.name_en},
            "oldest_enqueued_at": _iso(q.oldest_enqueued_at()),
            "oldest_wait_seconds": _round(worst.oldest_wait_seconds),
            "target_wait_seconds": svc.target_wait_seconds,
            "ratio_to_target": _share(worst.ratio),
            "in_breach": worst.in_breach,
        }
    return {
        "waiting": head.waiting,
        "called_today": head.called,
        "called_within_target_today": head.called_within,
        "waiting_over_target": head.waiting_over_target,
        "within_standard_share": _share(head.share),
        "queues_waiting": head.queues_waiting,
        "queues_in_breach": head.queues_in_breach,
        "worst_queue": worst_view,
    }


def snapshot(
    state: SiteState,
    now: datetime,
    *,
    with_tickets: bool = True,
    devices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole site, for the floor board and counter pages (authenticated readers).

    `devices` is the health of the site's dispensers, keypads and printers (empty list
    when it has none), so the board shows a kiosk whose printer is out of paper.
    `headline` is the board's key figures against the standard, computed here once from
    the same per-queue figures as each service's own."""
    site = state.site
    figures = {code: _figures(state.queues[code], now) for code in site.services}
    return {
        **_hall(site, now),
        "no_show_min_calls": site.no_show_min_calls,
        "service_day": state.day.isoformat() if state.day else None,
        "seq": state.last_seq,
        "agencies": [{"id": a.id, "name": a.name} for a in site.agencies.values()],
        "headline": _headline(state, list(figures.values())),
        "services": [
            _service_view(state, code, now, figures[code], with_tickets=with_tickets)
            for code in site.services
        ],
        "counters": [counter_view(state, cid, now) for cid in site.counters],
        "devices": devices if devices is not None else [],
        "bookings": bookings_today(state, now),
    }


def display(
    state: SiteState, now: datetime, zone: str | None = None, history: int = RECENT_CALLS
) -> dict[str, Any]:
    """The public TV display: who is called where, newest first. Numbers only."""
    site = state.site
    counters = [cid for cid, c in site.counters.items() if zone is None or c.zone == zone]
    serving = []
    for cid in counters:
        c = state.counters[cid]
        held = state.tickets[c.ticket_id] if c.ticket_id else None
        serving.append(
            {
                "counter": cid,
                "counter_name": site.counters[cid].name,
                "state": c.state,
                "number": held.number if held else None,
                "service": held.service if held else None,
                "called_at": _iso(held.last_called_at) if held else None,
            }
        )
    # The numbers called most recently and where, newest first; a ticket sent on to
    # another service stays where it was called (`announced_at` survives the transfer).
    recent = sorted(
        (
            t
            for t in state.tickets.values()
            if t.announced_at is not None
            and t.last_counter is not None
            and (zone is None or site.counters[t.last_counter].zone == zone)
        ),
        key=lambda t: t.announced_at or now,
        reverse=True,
    )[:history]
    return {
        **_hall(site, now),
        "zone": zone,
        "seq": state.last_seq,
        "serving": serving,
        "recent": [
            {
                "number": t.number,
                "counter": t.last_counter,
                "counter_name": site.counters[t.last_counter].name if t.last_counter else None,
                "called_at": _iso(t.announced_at),
                "state": t.state,
            }
            for t in recent
        ],
        "waiting": {code: len(q) for code, q in state.queues.items()},
    }


def site_directory(state: SiteState, now: datetime) -> dict[str, Any]:
    """What a kiosk needs to draw its menu: agencies, services and whether each accepts."""
    snap = snapshot(state, now, with_tickets=False)
    return {
        **_hall(state.site, now),
        "agencies": snap["agencies"],
        "services": [{key: s[key] for key in DIRECTORY_SERVICE_FIELDS} for s in snap["services"]],
        "counters": [{key: c[key] for key in DIRECTORY_COUNTER_FIELDS} for c in snap["counters"]],
    }


# -- antrian online ----------------------------------------------------------------------


def _local_iso(site: Site, instant: datetime) -> str:
    return site.local(instant).isoformat()


def online_directory(state: SiteState, now: datetime, *, reminders: bool) -> dict[str, Any]:
    """What the phone page offers: the services that take bookings or remote joins, with
    their requirements, and the days that may be booked (a day without slots is closed).
    `reminders`: a phone number left for reminders is used (a webhook delivers them)."""
    site = state.site
    services = []
    days: set[date] = set()
    for svc in site.services.values():
        policy = svc.booking
        if policy is None:
            continue
        bookable = online.bookable_days(state, svc, now)
        days.update(bookable)
        services.append(
            {
                "code": svc.code,
                "agency": svc.agency,
                "name_id": svc.name_id,
                "name_en": svc.name_en,
                "slot_minutes": policy.slot_minutes,
                "days_ahead": policy.days_ahead,
                "entry": policy.entry,
                "remote_join": policy.remote_join,
                "remote_join_open": policy.remote_join
                and state.not_accepting(svc.code, now) is None,
                "confirm_on_arrival": policy.remote_join and policy.confirm_on_arrival,
                "early_minutes": policy.early_minutes,
                "late_minutes": policy.late_minutes,
                "requirements_id": policy.requirements_id,
                "requirements_en": policy.requirements_en,
            }
        )
    return {
        "site": site.id,
        "name": site.name,
        "timezone": str(site.timezone),
        "today": site.service_day(now).isoformat(),
        "services": services,
        "days": [
            {"day": d.isoformat(), "open": WEEKDAYS[d.weekday()] in site.hours}
            for d in sorted(days)
        ],
        "limits": {"max_active_per_phone": site.online.max_active_per_phone},
        "reminders": reminders,
    }


def slots_view(state: SiteState, service: str, day: str, now: datetime) -> dict[str, Any]:
    """A service's slots of one day with the places taken and left (full slots, and slots
    past their cut-off, are not bookable)."""
    svc = online.bookable_service(state, service)
    booked_day = online.parse_day(day)
    slots = bookings.slots_of(state.site, svc, booked_day)
    policy = bookings.policy_of(svc)
    book = state.bookings
    in_range = booked_day in online.bookable_days(state, svc, now)
    out = []
    for slot in slots:
        taken = book.taken[(svc.code, booked_day, slot.start)]
        available = max(0, min(bookings.places_left(book, svc, booked_day, slot.start, len(slots))))
        out.append(
            {
                "start": slot.label,
                "end": f"{slot.end:%H:%M}",
                "starts_at": _iso(slot.starts_at),
                "capacity": policy.capacity,
                "booked": taken,
                "available": available,
                "bookable": in_range and available > 0 and online.slot_open(svc, slot, now),
            }
        )
    return {"site": state.site.id, "service": svc.code, "day": booked_day.isoformat(), "slots": out}


def booking_view(state: SiteState, b: BookingRecord, now: datetime) -> dict[str, Any]:
    """A booking as the citizen's phone shows it (its id is the capability: never listed)."""
    site = state.site
    svc = site.services[b.service]
    policy = bookings.policy_of(svc)
    opens, closes = bookings.window(site, svc, b)
    start = bookings.slot_start(site, b)
    ticket = state.tickets.get(b.ticket_id) if b.ticket_id else None
    return {
        "id": b.id,
        "code": b.code,
        "site": site.id,
        "service": svc.code,
        "service_name": {"id": svc.name_id, "en": svc.name_en},
        "day": b.day.isoformat(),
        "slot": f"{b.slot:%H:%M}",
        "slot_end": f"{(site.local(start) + timedelta(minutes=policy.slot_minutes)):%H:%M}",
        "starts_at": _local_iso(site, start),
        "state": b.state,
        "check_in_from": _local_iso(site, opens),
        "check_in_until": _local_iso(site, closes),
        "ticket": b.ticket_id,
        "number": ticket.number if ticket is not None else None,
        "moves": b.moves,
        "entry": policy.entry,
        "requirements": {"id": policy.requirements_id, "en": policy.requirements_en},
        "qr_url": f"/api/v1/bookings/{b.id}/qr.svg",
        "status_url": f"/ui/online.html#booking={b.id}",
    }


def bookings_today(state: SiteState, now: datetime) -> dict[str, dict[str, int]]:
    """Per bookable service, today's bookings as staff see them: still to come (`due`:
    booked, not checked in, not missed yet), `checked_in`, `missed`, `cancelled`, and the
    checked-in bookings' tickets waiting now. Counts only: nothing personal."""
    out: dict[str, dict[str, int]] = {}
    if state.day is None:
        return out
    for code, svc in state.site.services.items():
        if svc.booking is None:
            continue
        counts = dict.fromkeys(("due", "checked_in", "missed", "cancelled", "waiting"), 0)
        for b in state.bookings.of_day(state.day, code):
            counts["due" if b.state == BookingStatus.BOOKED else b.state] += 1
        counts["waiting"] = sum(
            1 for t in state.queues[code].waiting() if t.source is Source.BOOKING
        )
        out[code] = counts
    return out
