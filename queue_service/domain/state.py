"""A site's live state for one service day, changed only by applying events.

Applying is deliberately lean (dict look-ups, no validation beyond consistency) because
start-up replays a whole day of every site through it: one handler per event type, for
live events (`apply`) and start-up replay (`replay_rows`) alike.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from typing import Any

from queue_service.domain import estimate as est
from queue_service.domain.bookings import BookingBook
from queue_service.domain.events import (
    BOOKING_EVENTS,
    EVENTS,
    ROW_COUNTER,
    ROW_SEQ,
    ROW_SERVICE,
    ROW_TICKET,
    ROW_TS,
    ROW_TYPE,
    Event,
    replay_row,
)
from queue_service.domain.site import Service, Site
from queue_service.domain.standard import over_target
from queue_service.domain.totals import SiteTotals
from queue_service.domain.vocab import (
    CLOSED,
    CounterStatus,
    EventType,
    FinishOutcome,
    Outcome,
    Priority,
    PriorityPolicy,
    Source,
    TicketStatus,
)
from queue_service.errors import AntrianError

# An event as a handler reads it (`events.replay_row`): a tuple, or the asyncpg Record the
# store's range query returns, indexed by position.
Row = Any

# Where the handlers find the data fields they read in a row (from the one declaration of
# each event type's data, `events.EVENTS`).
_NUMBER, _NUMBER_SEQ, _PRIORITY, _SOURCE, _ESTIMATE, _BOOKING, _DUE_AT, _CODE = (
    EVENTS[EventType.TICKET_ISSUED].column(key)
    for key in (
        "number",
        "seq",
        "priority",
        "source",
        "estimated_wait_seconds",
        "booking",
        "due_at",
        "code",
    )
)
_OUTCOME = EVENTS[EventType.TICKET_FINISHED].column("outcome")
_TO_SERVICE = EVENTS[EventType.TICKET_TRANSFERRED].column("to_service")
_REASON = EVENTS[EventType.COUNTER_PAUSED].column("reason")

# The words the handlers store, from the strings a row holds: each ticket holds the one
# enum member, not a string of its own. (The handlers read members from these constants
# too: an attribute of an Enum class costs ~100 ns in Python 3.11, a global ~5 ns.)
_PRIORITIES: dict[str, Priority] = {p: p for p in Priority}
_SOURCES: dict[str, Source] = {s: s for s in Source}
_OUTCOMES: dict[str, Outcome] = {o: Outcome(o) for o in FinishOutcome}
_WAITING, _CALLED, _SERVING = TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.SERVING
_DONE, _NO_SHOW, _CANCELLED = TicketStatus.DONE, TicketStatus.NO_SHOW, TicketStatus.CANCELLED
_EXPIRED, _OPEN = TicketStatus.EXPIRED, CounterStatus.OPEN
_PAUSED = CounterStatus.PAUSED
_BOOKED, _ONLINE = Source.BOOKING, Source.ONLINE


class ReplayError(AntrianError, code="replay_failed"):
    """A stored event does not fit the state it is applied to (corrupt or foreign log)."""


@dataclass(slots=True)
class Ticket:
    id: str
    service: str
    number: str
    seq: int
    priority: Priority | None
    source: Source
    issued_at: datetime  # original issue time, kept across transfers
    queue_key: datetime  # position in the queue of its current service
    enqueued_at: datetime  # start of the current segment's wait
    state: TicketStatus = TicketStatus.WAITING
    segment: int = 0
    counter: str | None = None  # the counter holding it now
    last_counter: str | None = None  # the counter that called it last (kept after release)
    calls: int = 0
    first_called_at: datetime | None = None
    last_called_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Outcome | None = None
    last_ts: datetime | None = None
    # The estimated wait it was given at issue (`estimated_wait_seconds` of its
    # ticket_issued event), held to account when its first visit is called.
    estimate: float | None = None
    # When the ticket was last called (or recalled) to a counter, kept across a transfer
    # (unlike `last_called_at`, which belongs to the current visit): the TV display keeps
    # showing where a number was called after it was sent on to another service.
    announced_at: datetime | None = None
    # Antrian online. A checked-in booking's ticket: the booking's id, and from when it is
    # called ahead of walk-ins (`due_at`; its queue time starts then: `enqueued_at`). Not
    # callable by call-next before. A remote join to be confirmed at the kiosk: its code,
    # and whether it was (None: nothing to confirm).
    booking: str | None = None
    due_at: datetime | None = None
    code: str | None = None
    confirmed: bool | None = None

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        return _sort_key(self)


@dataclass(slots=True)
class ServiceQueue:
    service: Service
    priority: dict[str, Ticket] = field(default_factory=dict)
    regular: dict[str, Ticket] = field(default_factory=dict)
    issued: int = 0  # tickets issued to this service today (quota, numbering)
    priority_streak: int = 0  # priority calls in a row (policy "interleave")
    called: int = 0  # first calls of a segment in this service today
    called_within: int = 0  # ... of which within the service's target wait
    finished: int = 0  # segments closed after service (served, incomplete, referred, transferred)
    service_seconds: float = 0.0  # sum over `finished`
    no_shows: int = 0
    cancelled: int = 0
    booked: int = 0  # waiting tickets of checked-in bookings (`Ticket.due_at` set)
    # What the estimate reads (queue_service/domain/estimate.py), kept in O(1) per event:
    open_now: int = 0  # open counters serving this service
    open_share: float = 0.0  # sum over them of 1 / the number of services each serves
    busy_area: float = 0.0  # counter-seconds open while tickets waited, up to `area_at`
    wait_area: float = 0.0  # ticket-seconds waited, up to `area_at`
    area_at: datetime | None = None
    handled: int = 0  # calls released (finished, transferred or no-show) today
    handled_seconds: float = 0.0  # sum over `handled` of release - first call
    # (time, busy_area then) of the last first calls of a visit in this service
    recent: deque[tuple[datetime, float]] = field(
        default_factory=lambda: deque(maxlen=est.RECENT_CALLS)
    )

    def __len__(self) -> int:
        return len(self.priority) + len(self.regular)

    def waiting(self) -> Iterator[Ticket]:
        yield from self.priority.values()
        yield from self.regular.values()

    def uses_priority(self) -> bool:
        return self.service.priority_policy != PriorityPolicy.FIFO

    def booked_now(self, now: datetime) -> tuple[list[Ticket], list[Ticket], list[Ticket]]:
        """The regular class split at `now`: booked tickets due (by due time), the
        walk-ins' tickets (by queue key), and booked tickets not due yet (by due time)."""
        due: list[Ticket] = []
        plain: list[Ticket] = []
        later: list[Ticket] = []
        for t in self.regular.values():
            d = t.due_at
            if d is None:
                plain.append(t)
            elif d <= now:
                due.append(t)
            else:
                later.append(t)
        due.sort(key=_due_key)
        plain.sort(key=_sort_key)
        later.sort(key=_due_key)
        return due, plain, later

    def _regular_order(self, now: datetime | None) -> list[Ticket]:
        """The regular class in its call order: booked tickets due at `now` first, then
        the rest by queue key (booked tickets not due yet are left out: not callable)."""
        if not self.booked or now is None:
            return sorted(self.regular.values(), key=_sort_key)
        due, plain, _ = self.booked_now(now)
        return due + plain

    def call_order(self, now: datetime | None = None) -> list[Ticket]:
        """The waiting tickets in the order repeated call-next hands them out.

        The one order of a queue, for every priority policy: call-next (`head`), positions
        and people ahead (`ahead_of`), the estimate, the snapshot, board and display all
        read it. `strict`: every priority ticket first; `interleave`: at most
        `priority_interleave` priority calls in a row while regular tickets wait, counting
        the calls already made (`priority_streak`); `fifo`: by place in the queue alone.
        Within a class, by queue key (issue time, kept across transfers), then number.
        Checked-in bookings (antrian online) due at `now` come first in the regular class
        (under `fifo`, first of all); those not due yet are not in the order."""
        regular = self._regular_order(now)
        if not self.uses_priority():
            if self.booked and now is not None:
                due, plain, _ = self.booked_now(now)
                return due + sorted([*self.priority.values(), *plain], key=_sort_key)
            return sorted([*self.priority.values(), *regular], key=_sort_key)
        priority = sorted(self.priority.values(), key=_sort_key)
        if self.service.priority_policy != PriorityPolicy.INTERLEAVE or not regular:
            return priority + regular
        limit, streak = self.service.priority_interleave, self.priority_streak
        out: list[Ticket] = []
        i = j = 0
        while i < len(priority) or j < len(regular):
            if i < len(priority) and (j >= len(regular) or streak < limit):
                out.append(priority[i])
                i += 1
                streak += 1
            else:
                out.append(regular[j])
                j += 1
                streak = 0
        return out

    def head(self, now: datetime | None = None) -> Ticket | None:
        """The ticket this service would hand out next at `now`: the first of
        `call_order`."""
        if self.booked and now is not None:
            order = self.call_order(now)
            return order[0] if order else None
        if not self.uses_priority():
            tickets = list(self.waiting())
            return min(tickets, key=_sort_key) if tickets else None
        first_priority = min(self.priority.values(), key=_sort_key) if self.priority else None
        first_regular = min(self.regular.values(), key=_sort_key) if self.regular else None
        if first_priority is None:
            return first_regular
        if first_regular is not None and self._regular_turn(self.priority_streak):
            return first_regular
        return first_priority

    def _regular_turn(self, streak: int) -> bool:
        """With both classes waiting, whether a regular ticket is called after `streak`
        priority calls in a row (the rule `call_order` applies at every step)."""
        return (
            self.service.priority_policy == PriorityPolicy.INTERLEAVE
            and streak >= self.service.priority_interleave
        )

    def ahead_of(self, ticket: Ticket, now: datetime | None = None) -> int:
        """How many waiting tickets of this service would be called before `ticket`: its
        index in `call_order`, counted without sorting the queue. A booked ticket not due
        yet counts those that will be ahead of it at its due time."""
        if self.booked and now is not None and ticket.priority is None:
            due, plain, later = self.booked_now(now)
            if ticket.due_at is None:
                rank = len(due) + _before(plain, ticket)
            elif ticket.due_at <= now:
                rank = _before_due(due, ticket)
            else:
                rank = len(due) + _before_due(later, ticket)
            if not self.uses_priority():
                return rank + (
                    0 if ticket.due_at is not None else _before(self.priority.values(), ticket)
                )
            return self._position(False, rank)
        if not self.uses_priority():
            return _before(self.priority.values(), ticket) + _before(self.regular.values(), ticket)
        if ticket.priority is not None:
            return self._position(True, _before(self.priority.values(), ticket))
        return self._position(False, _before(self.regular.values(), ticket))

    def booked_ahead_at(self, at: datetime) -> int:
        """How many tickets a booking's ticket due at `at` (joining now) would have before
        it then: the priority class as the policy orders it, and the bookings due by `at`."""
        rank = sum(1 for t in self.regular.values() if t.due_at is not None and t.due_at <= at)
        if not self.uses_priority():
            return rank
        return self._position(False, rank)

    def ahead_of_new(self, priority: Priority | None, now: datetime | None = None) -> int:
        """How many waiting tickets a ticket joining now (last of its class) would have
        before it (booked tickets not due yet at `now` are not ahead of it)."""
        if self.booked and now is not None:
            not_due = sum(
                1 for t in self.regular.values() if t.due_at is not None and t.due_at > now
            )
            if not self.uses_priority():
                return len(self) - not_due
            if priority is not None:
                return self._position(True, len(self.priority), joining=True)
            return self._position(False, len(self.regular) - not_due, joining=True)
        if not self.uses_priority():
            return len(self)
        if priority is not None:
            return self._position(True, len(self.priority), joining=True)
        return self._position(False, len(self.regular), joining=True)

    def _position(self, is_priority: bool, rank: int, *, joining: bool = False) -> int:
        """Index in the call order of the class's ticket with `rank` tickets of its class
        before it (`joining`: one more ticket in that class than waits now)."""
        n_priority = len(self.priority) + (joining and is_priority)
        n_regular = len(self.regular) + (joining and not is_priority)
        if self.service.priority_policy != PriorityPolicy.INTERLEAVE:  # strict
            return rank if is_priority else n_priority + rank
        limit, streak = self.service.priority_interleave, self.priority_streak
        i = j = 0
        while True:
            if i < n_priority and (j >= n_regular or streak < limit):
                if is_priority and i == rank:
                    return i + j
                i += 1
                streak += 1
            else:
                if not is_priority and j == rank:
                    return i + j
                j += 1
                streak = 0

    def oldest_enqueued_at(self) -> datetime | None:
        """When the longest-waiting ticket started waiting (None when none waits)."""
        return min((t.enqueued_at for t in self.waiting()), default=None)

    def waiting_over_target(self, now: datetime) -> int:
        """Waiting tickets that have already waited longer than the service's target at
        `now`: breaches of the standard that the call-time count only sees later."""
        target = self.service.target_wait_seconds
        return sum(
            1 for t in self.waiting() if over_target((now - t.enqueued_at).total_seconds(), target)
        )

    def add(self, ticket: Ticket) -> None:
        if ticket.priority is not None:
            self.priority[ticket.id] = ticket
        else:
            self.regular[ticket.id] = ticket
            if ticket.due_at is not None:
                self.booked += 1

    def remove(self, ticket: Ticket) -> None:
        self.priority.pop(ticket.id, None)
        if self.regular.pop(ticket.id, None) is not None and ticket.due_at is not None:
            self.booked -= 1


def _sort_key(t: Ticket) -> tuple[datetime, int, str]:
    """A ticket's place within its class of a queue: queue key (issue time, kept across
    transfers), then its number, then its id. The id only breaks the tie of two tickets
    transferred in from different services, issued at the same instant with the same
    number: without it their order, and so their positions, would be undefined."""
    return (t.queue_key, t.seq, t.id)


def _due_key(t: Ticket) -> tuple[datetime, int, str]:
    """A booked ticket's place among booked tickets: its due time, then number, then id."""
    assert t.due_at is not None
    return (t.due_at, t.seq, t.id)


def _before_due(tickets: Iterable[Ticket], ticket: Ticket) -> int:
    """How many of the booked `tickets` sort before booked `ticket` (by `_due_key`)."""
    key = _due_key(ticket)
    return sum(1 for t in tickets if _due_key(t) < key)


def _before(tickets: Iterable[Ticket], ticket: Ticket) -> int:
    """How many of `tickets` sort before `ticket` (by `_sort_key`), tuple-free."""
    key, seq, tid = ticket.queue_key, ticket.seq, ticket.id
    n = 0
    for t in tickets:
        k = t.queue_key
        if k < key or (k == key and (t.seq < seq or (t.seq == seq and t.id < tid))):
            n += 1
    return n


def _advance(q: ServiceQueue, ts: datetime) -> None:
    """Bring the service's busy and waiting areas to `ts`; call before its open counters
    change or a ticket joins or leaves its queue."""
    at = q.area_at
    waiting = len(q.priority) + len(q.regular)
    if waiting and at is not None and ts > at:
        seconds = (ts - at).total_seconds()
        q.wait_area += waiting * seconds
        if q.open_now:
            q.busy_area += q.open_now * seconds
    q.area_at = ts


def day_end(site: Site, day: date) -> datetime:
    """The instant (UTC) a site's service day ends: the next local midnight."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=site.timezone).astimezone(UTC)


# Field values in declaration order: `Ticket(*_ticket_fields(t))` copies a ticket about
# 3x faster than a keyword copy (clone runs once per site for the working state).
_ticket_fields = attrgetter(*Ticket.__slots__)


@dataclass(slots=True)
class CounterState:
    id: str
    state: CounterStatus = CounterStatus.CLOSED
    reason: str | None = None
    since: datetime | None = None  # when `state` was entered
    ticket_id: str | None = None  # the ticket it holds (called or serving)
    served: int = 0  # segments this counter finished or transferred today
    busy_seconds: float = 0.0  # service time summed over `served`
    idle_since: datetime | None = None  # open and holding nothing since
    # Open, holding nothing, while one of its services has tickets waiting, since (the
    # closed intervals are summed in the totals' `counter_idle`).
    idle_queue_since: datetime | None = None


_counter_fields = attrgetter(*CounterState.__slots__)


class SiteState:
    """Tickets, queues and counters of one site for one service day."""

    def __init__(
        self,
        site: Site,
        day: date | None = None,
        totals: SiteTotals | None = None,
        bookings: BookingBook | None = None,
    ) -> None:
        self.site = site
        self.day = day
        # The site's bookings (antrian online): not of one day, kept when the day rolls.
        self.bookings = bookings if bookings is not None else BookingBook()
        # Cumulative since the process started; only the committed state keeps them.
        self.totals = totals
        self.tickets: dict[str, Ticket] = {}
        self.queues: dict[str, ServiceQueue] = {
            code: ServiceQueue(service) for code, service in site.services.items()
        }
        self.counters: dict[str, CounterState] = {cid: CounterState(cid) for cid in site.counters}
        # The counters serving each service (configuration; the estimate reads it per query).
        self.counters_of: dict[str, tuple[str, ...]] = {
            code: tuple(cid for cid, c in site.counters.items() if code in c.services)
            for code in site.services
        }
        # What the estimate learns from the hall's day (`estimate.expected_pause`,
        # `estimate.expected_opening_delay`): per pause reason ("" without one), the pauses
        # finished today that did not begin in a configured break (count, seconds); and the
        # counters' first opens today (count, seconds after the opening hour).
        self.pause_lengths: dict[str, tuple[int, float]] = {}
        self.first_opens = 0
        self.first_open_delay = 0.0
        self.last_seq = 0
        self.last_ts: datetime | None = None  # time of the last event applied today
        # Called with the day and totals just before the state rolls to a later day (the
        # engine stores the totals through that day; set on committed states only).
        self.on_roll: Callable[[date, SiteTotals], None] | None = None
        self._apply: dict[str, Callable[[Row], None]] = {
            EventType.TICKET_ISSUED: self._issued,
            EventType.TICKET_CALLED: self._called,
            EventType.TICKET_RECALLED: self._recalled,
            EventType.TICKET_STARTED: self._started,
            EventType.TICKET_FINISHED: self._finished,
            EventType.TICKET_NO_SHOW: self._no_show,
            EventType.TICKET_TRANSFERRED: self._transferred,
            EventType.TICKET_CANCELLED: self._cancelled,
            EventType.TICKET_EXPIRED: self._expired,
            EventType.COUNTER_OPENED: self._counter_opened,
            EventType.COUNTER_PAUSED: self._counter_paused,
            EventType.COUNTER_CLOSED: self._counter_closed,
            EventType.TICKET_CONFIRMED: self._confirmed,
        }

    def roll_to(self, day: date) -> None:
        """Start a fresh service day: numbering restarts, counters closed, queues empty.

        Only ever forward: a day before the current one (a wall clock stepped back across
        midnight) leaves the state as it is, so today's tickets are never wiped."""
        if self.day is not None and day <= self.day:
            return
        on_roll = self.on_roll
        if on_roll is not None and self.day is not None and self.totals is not None:
            on_roll(self.day, self.totals)
        self.__init__(self.site, day, self.totals, self.bookings)  # type: ignore[misc]
        self.bookings.forget_before(day)
        self.on_roll = on_roll

    def apply(self, event: Event) -> None:
        """Apply one event of this site: live, as committed (or decided on a working copy)."""
        if event.type in BOOKING_EVENTS:
            # A booking is not of the day it was made on: the book takes it whatever the day.
            self.bookings.apply(event)
            if event.seq:
                self.last_seq = event.seq
            return
        if event.day != self.day:
            if self.day is not None and event.day < self.day:
                # A late commit from a day already rolled over: stored, but no longer live.
                return
            self.roll_to(event.day)
        try:
            handler = self._apply[event.type]
        except KeyError:
            raise ReplayError(f"unknown event type {event.type!r}") from None
        row = replay_row(event)
        try:
            handler(row)
        except KeyError as exc:
            raise self._unknown(row, exc) from None
        self.last_ts = event.ts
        if event.seq:
            self.last_seq = event.seq

    def replay_rows(self, rows: Iterable[Row]) -> int:
        """Apply stored events of this state's day given as rows, in seq order (start-up
        replay: the rows of the store's range query, see `events.replay_row`), through the
        handlers `apply` uses. Returns the number of rows applied."""
        handlers = self._apply
        n = 0
        last: Row | None = None
        for last in rows:
            try:
                handlers[last[ROW_TYPE]](last)
            except KeyError as exc:
                raise self._unknown(last, exc) from None
            n += 1
        if last is not None:
            self.last_ts = last[ROW_TS]
            if last[ROW_SEQ]:
                self.last_seq = last[ROW_SEQ]
        return n

    def open_tickets(self) -> list[Ticket]:
        """Tickets of the day not closed yet: waiting, called or being served."""
        return [t for t in self.tickets.values() if t.state not in CLOSED]

    def idle_queue_check(self, counter_id: str, ts: datetime) -> None:
        """Start or end the counter's interval of idleness while a queue waits, after an
        event at `ts` changed its state or emptied or filled one of its services' queues:
        open, holding nothing, and one of its services has tickets waiting."""
        c = self.counters[counter_id]
        idle = (
            c.state == CounterStatus.OPEN
            and c.ticket_id is None
            and any(len(self.queues[s]) for s in self.site.counters[counter_id].services)
        )
        since = c.idle_queue_since
        if idle:
            if since is None:
                c.idle_queue_since = ts
        elif since is not None:
            c.idle_queue_since = None
            totals = self.totals
            if totals is not None:
                totals.version += 1
                # Never negative: a wall clock stepped back can stamp the event that ends
                # the interval before the one that began it.
                totals.counter_idle[counter_id] += max(0.0, (ts - since).total_seconds())

    def _queue_filled_or_emptied(self, service: str, ts: datetime) -> None:
        """Each counter of `service` after its queue went from empty to not, or back."""
        for cid in self.counters_of[service]:
            self.idle_queue_check(cid, ts)

    def idle_queue_seconds(self, counter_id: str, now: datetime) -> float:
        """Seconds the counter was idle while a queue waited, over the whole history (the
        totals) up to `now`, the interval still open counted up to `now` but never past
        the end of this state's day. Committed states only (they hold the totals)."""
        assert self.totals is not None
        total = self.totals.counter_idle[counter_id]
        since = self.counters[counter_id].idle_queue_since
        if since is not None:
            if self.day is not None:
                now = min(now, day_end(self.site, self.day))
            total += max(0.0, (now - since).total_seconds())
        return total

    def clone(self) -> SiteState:
        """An independent copy (the command side decides on a copy of committed state)."""
        other = SiteState(self.site, self.day, None, self.bookings.clone())
        other.last_seq = self.last_seq
        other.last_ts = self.last_ts
        other.pause_lengths = self.pause_lengths.copy()
        other.first_opens, other.first_open_delay = self.first_opens, self.first_open_delay
        for t in self.tickets.values():
            copy = Ticket(*_ticket_fields(t))
            other.tickets[copy.id] = copy
            if copy.state == TicketStatus.WAITING:
                other.queues[copy.service].add(copy)
        for code, q in self.queues.items():
            oq = other.queues[code]
            # Re-insert in the original order: dict order is queue order within a class.
            oq.priority = {tid: other.tickets[tid] for tid in q.priority}
            oq.regular = {tid: other.tickets[tid] for tid in q.regular}
            for name in (
                "issued",
                "priority_streak",
                "called",
                "called_within",
                "finished",
                "service_seconds",
                "no_shows",
                "cancelled",
                "booked",
                "open_now",
                "open_share",
                "busy_area",
                "wait_area",
                "area_at",
                "handled",
                "handled_seconds",
            ):
                setattr(oq, name, getattr(q, name))
            oq.recent = q.recent.copy()
        for cid, c in self.counters.items():
            other.counters[cid] = CounterState(*_counter_fields(c))
        return other

    # -- queries -----------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> Ticket | None:
        return self.tickets.get(ticket_id)

    def people_ahead(self, ticket: Ticket, now: datetime | None = None) -> int:
        if ticket.state != TicketStatus.WAITING:
            return 0
        return self.queues[ticket.service].ahead_of(ticket, now)

    def not_accepting(self, service: str, now: datetime) -> str | None:
        """Why no ticket for `service` can be issued at `now` ("closed", "cutoff",
        "quota"), or None when one can. The kiosk, the metrics and `issue` all ask here."""
        site = self.site
        if not site.is_open(now):
            return "closed"
        q = self.queues[service]
        svc = q.service
        if svc.cutoff is not None and site.local(now).time() >= svc.cutoff:
            return "cutoff"
        if svc.daily_quota is not None:
            # Bookings of today not checked in yet keep their places in the quota (their
            # tickets are issued at check-in, whatever the count): walk-ins have the rest.
            day = self.day
            kept = self.bookings.pending[(service, day)] if svc.booking and day else 0
            if q.issued + kept >= svc.daily_quota:
                return "quota"
        return None

    def open_counters(self, service: str) -> list[CounterState]:
        return [
            c
            for c in self.counters.values()
            if c.state == CounterStatus.OPEN and service in self.site.counters[c.id].services
        ]

    def average_service_seconds(self, service: str) -> float:
        q = self.queues[service]
        if q.finished:
            return q.service_seconds / q.finished
        return q.service.default_service_minutes * 60

    def ahead_of_new(
        self, service: str, priority: Priority | None, now: datetime | None = None
    ) -> int:
        """How many waiting tickets a ticket issued at `now` would have before it."""
        return self.queues[service].ahead_of_new(priority, now)

    def estimated_wait_seconds(
        self,
        service: str,
        ahead: int,
        now: datetime | None = None,
        ticket: Ticket | None = None,
    ) -> float | None:
        """The estimate shown to citizens (`estimate.shipped`): seconds until `ticket`, or
        a ticket issued at `now` with `ahead` tickets before it, is called.

        None when no counter serving the service is open, paused or still to open today
        (no honest estimate exists). `now` defaults to the time of the last event applied.
        """
        at = now if now is not None else self.last_ts
        if at is None:  # nothing happened today: no time to estimate from
            return None
        return est.shipped(self, service, ahead, at, ticket)

    # -- event handlers ----------------------------------------------------------------
    #
    # One per event type, for live `apply` and start-up replay alike. Each takes a replay
    # row (`events.replay_row`): `apply` makes the row of its event, `replay_rows` hands the
    # store's rows on as they come, so replay builds no `Event` and decodes no JSON. They
    # run a million times at start-up, hence the style: look-ups without a guard (a
    # KeyError is explained once, by `_unknown`), the totals' histograms observed inline
    # (calling `Histogram.observe` costs replay 1-4%, measured in-process), small helpers
    # (`_advance`, `_closed`) written out in the issue, call and finish paths, enum members
    # read from module constants.

    def _unknown(self, r: Row, exc: KeyError) -> Exception:
        """What a handler's KeyError means. The handlers look tickets and counters up
        without a guard (a try costs nothing until it catches, and they run a million times
        at start-up): a row that names a type, ticket or counter the state does not have
        comes from a corrupt or foreign log. Any other KeyError is a bug, returned as it is."""
        if r[ROW_TYPE] not in self._apply:
            return ReplayError(f"unknown event type {r[ROW_TYPE]!r}")
        ticket, counter = r[ROW_TICKET], r[ROW_COUNTER]
        if (
            r[ROW_TYPE] != EventType.TICKET_ISSUED
            and ticket is not None
            and ticket not in self.tickets
        ):
            return ReplayError(f"event {r[ROW_SEQ]} names unknown ticket")
        if counter is not None and counter not in self.counters:
            return ReplayError(f"event {r[ROW_SEQ]} names unknown counter")
        return exc

    def _ticket(self, r: Row) -> Ticket:
        """The ticket the event names, stamped with its time."""
        t = self.tickets[r[ROW_TICKET]]
        t.last_ts = r[ROW_TS]
        return t

    def _issued(self, r: Row) -> None:
        ts, tid, svc, number_seq = r[ROW_TS], r[ROW_TICKET], r[ROW_SERVICE], r[_NUMBER_SEQ]
        try:
            q = self.queues[svc]
            priority = r[_PRIORITY]
            if priority is not None:
                priority = _PRIORITIES[priority]
            source = _SOURCES[r[_SOURCE]]
        except KeyError:
            raise ReplayError(
                f"event {r[ROW_SEQ]} names an unknown service, priority or source"
            ) from None
        # The service code is the configured string, shared by every ticket of the service.
        t = Ticket(
            tid, q.service.code, r[_NUMBER], number_seq, priority, source, ts, ts, ts,
            _WAITING, 0, None, None, 0, None, None, None, None, None, ts, r[_ESTIMATE],
        )  # fmt: skip
        if source is _BOOKED or source is _ONLINE:
            self._online_ticket(t, r)
        self.tickets[tid] = t
        waiting = len(q.priority) + len(q.regular)
        at = q.area_at  # _advance, written out
        if waiting and at is not None and ts > at:
            seconds = (ts - at).total_seconds()
            q.wait_area += waiting * seconds
            if q.open_now:
                q.busy_area += q.open_now * seconds
        q.area_at = ts
        if priority is not None:
            q.priority[tid] = t
        else:
            q.regular[tid] = t
            if t.due_at is not None:
                q.booked += 1
        if number_seq > q.issued:
            q.issued = number_seq
        if not waiting:  # the queue was empty
            self._queue_filled_or_emptied(t.service, ts)
        totals = self.totals
        if totals is not None:
            totals.version += 1
            totals.issued[t.service] += 1

    def _online_ticket(self, t: Ticket, r: Row) -> None:
        """A booking's or remote join's ticket: its booking, due time and code. A booking
        due later than its check-in starts its queue time then."""
        t.booking = r[_BOOKING]
        due = r[_DUE_AT]
        if due is not None:
            t.due_at = datetime.fromisoformat(due)
            if t.due_at > t.enqueued_at:
                t.enqueued_at = t.due_at
        t.code = r[_CODE]
        if t.code is not None:
            t.confirmed = False

    def _confirmed(self, r: Row) -> None:
        self._ticket(r).confirmed = True

    def _called(self, r: Row) -> None:
        ts = r[ROW_TS]
        t = self.tickets[r[ROW_TICKET]]
        t.last_ts = ts
        c = self.counters[r[ROW_COUNTER]]
        svc, tid = t.service, t.id
        q = self.queues[svc]
        at = q.area_at  # _advance, written out (the queue holds this ticket: not empty)
        if at is not None and ts > at:
            seconds = (ts - at).total_seconds()
            q.wait_area += (len(q.priority) + len(q.regular)) * seconds
            if q.open_now:
                q.busy_area += q.open_now * seconds
        q.area_at = ts
        q.priority.pop(tid, None)
        if q.regular.pop(tid, None) is not None and t.due_at is not None:
            q.booked -= 1
        q.recent.append((ts, q.busy_area))
        t.state, t.counter, t.last_counter, t.calls = _CALLED, c.id, c.id, 1
        t.first_called_at = t.last_called_at = t.announced_at = ts
        q.called += 1
        # Never negative: an officer may call a booking before its due time.
        wait = max(0.0, (ts - t.enqueued_at).total_seconds())
        within = wait <= q.service.target_wait_seconds
        if within:
            q.called_within += 1
        totals = self.totals
        if totals is not None:
            totals.version += 1
            totals.called[svc] += 1
            totals.called_within[svc] += within
            h = totals.wait[svc]
            h.counts[bisect_left(h.bounds, wait)] += 1
            h.sum += wait
            h.count += 1
            told = t.estimate
            if told is not None and t.segment == 0:
                error = wait - told
                if error > 0:
                    totals.estimate_under[svc] += error
                else:
                    totals.estimate_over[svc] -= error
                    error = -error
                h = totals.estimate_error[svc]
                h.counts[bisect_left(h.bounds, error)] += 1
                h.sum += error
                h.count += 1
        q.priority_streak = q.priority_streak + 1 if t.priority is not None else 0
        c.ticket_id = tid
        c.idle_since = None
        if not (q.priority or q.regular):
            self._queue_filled_or_emptied(svc, ts)
        elif c.idle_queue_since is not None:  # taking a ticket can only end it
            self.idle_queue_check(c.id, ts)

    def _recalled(self, r: Row) -> None:
        t = self._ticket(r)
        t.last_called_at = t.announced_at = r[ROW_TS]
        t.calls += 1
        totals = self.totals
        if totals is not None:
            totals.version += 1
            totals.recalled[t.service] += 1

    def _started(self, r: Row) -> None:
        ts = r[ROW_TS]
        t = self.tickets[r[ROW_TICKET]]
        t.last_ts = t.started_at = ts
        t.state = _SERVING
        totals = self.totals
        if totals is not None and t.last_called_at is not None:
            totals.version += 1
            walk = (ts - t.last_called_at).total_seconds()
            h = totals.walk[t.service]
            h.counts[bisect_left(h.bounds, walk)] += 1
            h.sum += walk
            h.count += 1

    def _release(self, r: Row, *, served: bool) -> Ticket:
        """The ticket a counter lets go of (finished, transferred, no-show), its service
        time counted when `served`; the counter free again."""
        ts = r[ROW_TS]
        t = self.tickets[r[ROW_TICKET]]
        t.last_ts = ts
        c = self.counters[r[ROW_COUNTER]]
        q = self.queues[t.service]
        first = t.first_called_at
        if first is not None:
            q.handled += 1
            q.handled_seconds += (ts - first).total_seconds()
        if served:
            begin = t.started_at or t.last_called_at
            assert begin is not None
            seconds = (ts - begin).total_seconds()
            q.finished += 1
            q.service_seconds += seconds
            c.served += 1
            c.busy_seconds += seconds
            totals = self.totals
            if totals is not None:
                totals.version += 1
                h = totals.service[t.service]
                h.counts[bisect_left(h.bounds, seconds)] += 1
                h.sum += seconds
                h.count += 1
                if t.started_at is None:  # the counter did not use "start": no walk
                    h = totals.walk[t.service]
                    h.counts[bisect_left(h.bounds, 0.0)] += 1
                    h.count += 1
                totals.counter_served[c.id] += 1
                totals.counter_busy[c.id] += seconds
        c.ticket_id = None
        if c.state == _OPEN:
            c.idle_since = ts
            # idle_queue_check, written out for the common case: a counter set free only
            # starts an interval (none is open while it holds a ticket).
            if c.idle_queue_since is None:
                queues = self.queues
                for code in self.site.counters[c.id].services:
                    w = queues[code]
                    if w.priority or w.regular:
                        c.idle_queue_since = ts
                        break
        else:
            c.idle_since = None
        return t

    def _closed(self, service: str, outcome: Outcome) -> None:
        totals = self.totals
        if totals is not None:
            totals.version += 1
            totals.closed[(service, outcome)] += 1

    def _finished(self, r: Row) -> None:
        t = self._release(r, served=True)
        try:
            outcome = _OUTCOMES[r[_OUTCOME]]
        except KeyError:
            raise ReplayError(f"event {r[ROW_SEQ]} has an unknown outcome") from None
        totals = self.totals
        if totals is not None:  # _closed, written out
            totals.version += 1
            totals.closed[(t.service, outcome)] += 1
        t.state, t.outcome, t.finished_at, t.counter = _DONE, outcome, r[ROW_TS], None

    def _no_show(self, r: Row) -> None:
        t = self._release(r, served=False)
        self.queues[t.service].no_shows += 1
        self._closed(t.service, Outcome.NO_SHOW)
        t.state, t.outcome, t.finished_at, t.counter = _NO_SHOW, Outcome.NO_SHOW, r[ROW_TS], None

    def _transferred(self, r: Row) -> None:
        t = self._release(r, served=True)
        self._closed(t.service, Outcome.TRANSFERRED)
        ts = r[ROW_TS]
        try:
            q = self.queues[r[_TO_SERVICE]]
        except KeyError:
            raise ReplayError(f"event {r[ROW_SEQ]} names an unknown service") from None
        to = q.service.code
        t.service, t.segment = to, t.segment + 1
        t.state, t.counter, t.calls = _WAITING, None, 0
        t.first_called_at = t.last_called_at = t.started_at = None
        t.enqueued_at = ts
        t.queue_key = t.issued_at  # keeps its place by original issue time
        t.due_at = None  # a booking's place ahead of walk-ins was in its first service only
        _advance(q, ts)
        q.add(t)
        if len(q) == 1:
            self._queue_filled_or_emptied(to, ts)

    def _cancelled(self, r: Row) -> None:
        ts = r[ROW_TS]
        t = self._ticket(r)
        q = self.queues[t.service]
        _advance(q, ts)
        q.remove(t)
        q.cancelled += 1
        self._closed(t.service, Outcome.CANCELLED)
        t.state, t.outcome, t.finished_at = _CANCELLED, Outcome.CANCELLED, ts
        if not len(q):
            self._queue_filled_or_emptied(t.service, ts)

    def _expired(self, r: Row) -> None:
        ts = r[ROW_TS]
        t = self._ticket(r)
        q = self.queues[t.service]
        if t.state == _WAITING:
            _advance(q, ts)
            q.remove(t)
            if not len(q):
                self._queue_filled_or_emptied(t.service, ts)
        elif t.counter is not None:
            c = self.counters[t.counter]
            c.ticket_id = None
            c.idle_since = ts if c.state == _OPEN else None
            self.idle_queue_check(c.id, ts)
        self._closed(t.service, Outcome.EXPIRED)
        t.state, t.outcome, t.finished_at, t.counter = _EXPIRED, Outcome.EXPIRED, ts, None

    def _counter_to(self, r: Row, state: CounterStatus, reason: str | None = None) -> None:
        """A counter opened, paused or closed: its services' open counts (the estimate's
        input), its idleness and what the estimate learns of pauses and openings kept in
        step."""
        ts = r[ROW_TS]
        c = self.counters[r[ROW_COUNTER]]
        now_open = state == _OPEN
        since = c.since
        if since is None:
            if now_open:  # the counter's first open today
                delay = est.opening_delay(self.site, ts)
                if delay is not None:
                    self.first_opens += 1
                    self.first_open_delay += max(0.0, delay)
        elif c.state == _PAUSED and state != _PAUSED and self.site.current_break(since) is None:
            key = c.reason or ""
            n, seconds = self.pause_lengths.get(key, (0, 0.0))
            self.pause_lengths[key] = (n + 1, seconds + (ts - since).total_seconds())
        if (c.state == _OPEN) != now_open:
            services = self.site.counters[c.id].services
            step = 1 if now_open else -1
            share = step / len(services)
            for code in services:
                q = self.queues[code]
                _advance(q, ts)
                q.open_now += step
                q.open_share += share
        c.state, c.reason, c.since = state, reason, ts
        c.idle_since = ts if now_open and c.ticket_id is None else None
        self.idle_queue_check(c.id, ts)

    def _counter_opened(self, r: Row) -> None:
        self._counter_to(r, _OPEN)

    def _counter_paused(self, r: Row) -> None:
        self._counter_to(r, CounterStatus.PAUSED, r[_REASON])

    def _counter_closed(self, r: Row) -> None:
        self._counter_to(r, CounterStatus.CLOSED)
