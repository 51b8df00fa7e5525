"""A site's live state for one service day, changed only by applying events.

Applying is deliberately lean (dict look-ups, no validation beyond consistency) because
start-up replays a whole day of every site through it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from sys import intern
from typing import Any

from queue_service.domain import estimate as est
from queue_service.domain import events as ev
from queue_service.domain.events import Event
from queue_service.domain.site import Service, Site
from queue_service.domain.standard import over_target
from queue_service.domain.totals import SiteTotals

WAITING, CALLED, SERVING, DONE, NO_SHOW, CANCELLED, EXPIRED = (
    "waiting",
    "called",
    "serving",
    "done",
    "no_show",
    "cancelled",
    "expired",
)
# A stored event as start-up replay reads it: an asyncpg Record (or any tuple) laid out as
# `event_store.REPLAY_ROW` says, indexed by position.
ReplayRow = Any

HELD_STATES = frozenset({CALLED, SERVING})
CLOSED_STATES = frozenset({DONE, NO_SHOW, CANCELLED, EXPIRED})

COUNTER_CLOSED, COUNTER_OPEN, COUNTER_PAUSED = "closed", "open", "paused"

# The event types whose handler below reads `Event.data`. Start-up replay decodes the
# stored JSON of these types only; the others are applied with empty data. Keep this in
# step with the handlers (tests/test_perf_replay.py checks it over a generated day).
DATA_READ_BY = frozenset(
    {ev.TICKET_ISSUED, ev.TICKET_FINISHED, ev.TICKET_TRANSFERRED, ev.COUNTER_PAUSED}
)


class ReplayError(Exception):
    """A stored event does not fit the state it is applied to (corrupt or foreign log)."""


@dataclass(slots=True)
class Ticket:
    id: str
    service: str
    number: str
    seq: int
    priority: str | None
    source: str
    issued_at: datetime  # original issue time, kept across transfers
    queue_key: datetime  # position in the queue of its current service
    enqueued_at: datetime  # start of the current segment's wait
    state: str = WAITING
    segment: int = 0
    counter: str | None = None  # the counter holding it now
    last_counter: str | None = None  # the counter that called it last (kept after release)
    calls: int = 0
    first_called_at: datetime | None = None
    last_called_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    last_ts: datetime | None = None
    # The estimated wait it was given at issue (`estimated_wait_seconds` of its
    # ticket_issued event), held to account when its first visit is called.
    estimate: float | None = None
    # When the ticket was last called (or recalled) to a counter, kept across a transfer
    # (unlike `last_called_at`, which belongs to the current visit): the TV display keeps
    # showing where a number was called after it was sent on to another service.
    announced_at: datetime | None = None

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
        return self.service.priority_policy != "fifo"

    def call_order(self) -> list[Ticket]:
        """The waiting tickets in the order repeated call-next hands them out.

        The one order of a queue, for every priority policy: call-next (`head`), positions
        and people ahead (`ahead_of`), the estimate, the snapshot, board and display all
        read it. `strict`: every priority ticket first; `interleave`: at most
        `priority_interleave` priority calls in a row while regular tickets wait, counting
        the calls already made (`priority_streak`); `fifo`: by place in the queue alone.
        Within a class, by queue key (issue time, kept across transfers), then number."""
        regular = sorted(self.regular.values(), key=_sort_key)
        if not self.uses_priority():
            return sorted([*self.priority.values(), *regular], key=_sort_key)
        priority = sorted(self.priority.values(), key=_sort_key)
        if self.service.priority_policy != "interleave" or not regular:
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

    def head(self) -> Ticket | None:
        """The ticket this service would hand out next: the first of `call_order`."""
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
            self.service.priority_policy == "interleave"
            and streak >= self.service.priority_interleave
        )

    def ahead_of(self, ticket: Ticket) -> int:
        """How many waiting tickets of this service would be called before `ticket`: its
        index in `call_order`, counted without sorting the queue."""
        if not self.uses_priority():
            return _before(self.priority.values(), ticket) + _before(self.regular.values(), ticket)
        if ticket.priority is not None:
            return self._position(True, _before(self.priority.values(), ticket))
        return self._position(False, _before(self.regular.values(), ticket))

    def ahead_of_new(self, priority: str | None) -> int:
        """How many waiting tickets a ticket joining now (last of its class) would have
        before it."""
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
        if self.service.priority_policy != "interleave":  # strict
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

    def remove(self, ticket: Ticket) -> None:
        self.priority.pop(ticket.id, None)
        self.regular.pop(ticket.id, None)


def _sort_key(t: Ticket) -> tuple[datetime, int, str]:
    """A ticket's place within its class of a queue: queue key (issue time, kept across
    transfers), then its number, then its id. The id only breaks the tie of two tickets
    transferred in from different services, issued at the same instant with the same
    number: without it their order, and so their positions, would be undefined."""
    return (t.queue_key, t.seq, t.id)


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
    state: str = COUNTER_CLOSED
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
        self, site: Site, day: date | None = None, totals: SiteTotals | None = None
    ) -> None:
        self.site = site
        self.day = day
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
        self.last_seq = 0
        self.last_ts: datetime | None = None  # time of the last event applied today
        # Called with the day and totals just before the state rolls to a later day (the
        # engine stores the totals through that day; set on committed states only).
        self.on_roll: Callable[[date, SiteTotals], None] | None = None
        self._apply: dict[str, Callable[[Event], None]] = {
            ev.TICKET_ISSUED: self._issued,
            ev.TICKET_CALLED: self._called,
            ev.TICKET_RECALLED: self._recalled,
            ev.TICKET_STARTED: self._started,
            ev.TICKET_FINISHED: self._finished,
            ev.TICKET_NO_SHOW: self._no_show,
            ev.TICKET_TRANSFERRED: self._transferred,
            ev.TICKET_CANCELLED: self._cancelled,
            ev.TICKET_EXPIRED: self._expired,
            ev.COUNTER_OPENED: self._counter_opened,
            ev.COUNTER_PAUSED: self._counter_paused,
            ev.COUNTER_CLOSED: self._counter_closed,
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
        self.__init__(self.site, day, self.totals)  # type: ignore[misc]
        self.on_roll = on_roll

    def apply(self, event: Event) -> None:
        if event.day != self.day:
            if self.day is not None and event.day < self.day:
                # A late commit from a day already rolled over: stored, but no longer live.
                return
            self.roll_to(event.day)
        try:
            handler = self._apply[event.type]
        except KeyError:
            raise ReplayError(f"unknown event type {event.type!r}") from None
        handler(event)
        self.last_ts = event.ts
        if event.seq:
            self.last_seq = event.seq

    def open_tickets(self) -> list[Ticket]:
        """Tickets of the day not closed yet: waiting, called or being served."""
        return [t for t in self.tickets.values() if t.state not in CLOSED_STATES]

    def idle_queue_check(self, counter_id: str, ts: datetime) -> None:
        """Start or end the counter's interval of idleness while a queue waits, after an
        event at `ts` changed its state or emptied or filled one of its services' queues:
        open, holding nothing, and one of its services has tickets waiting."""
        c = self.counters[counter_id]
        idle = (
            c.state == COUNTER_OPEN
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
        other = SiteState(self.site, self.day)
        other.last_seq = self.last_seq
        other.last_ts = self.last_ts
        for t in self.tickets.values():
            copy = Ticket(*_ticket_fields(t))
            other.tickets[copy.id] = copy
            if copy.state == WAITING:
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

    # -- start-up replay fast path -------------------------------------------------------

    def replay_rows(self, rows: Iterable[ReplayRow]) -> int:
        """Apply stored events of this state's day given as rows (start-up replay only).

        A row is `(seq, site, type, ts, ticket_id, counter_id, service, text, number_seq,
        priority, source[, estimate])` (see `REPLAY_ROW` in the store): `text` is the one
        data field the type's handler reads (the ticket number of an issue, the outcome of a
        finish, the target service of a transfer, the reason of a pause); the last four are
        read by issues only (`estimate`, the issued event's `estimated_wait_seconds`, may be
        left out of the row: the ticket then keeps none); `counter_id` and `service` may be
        None where the handler does not read them. Rows must be of `self.day`, in seq order.
        The result is exactly the state `apply` builds from the same events
        (tests/test_perf_replay.py holds it to that), reached without building an `Event` or
        decoding JSON: the handlers are closures over this state's dicts, with the totals'
        histograms observed inline.
        Returns the number of rows applied.
        """
        tickets, queues, counters = self.tickets, self.queues, self.counters
        totals = self.totals
        targets = {code: q.service.target_wait_seconds for code, q in queues.items()}
        if totals is not None:
            t_issued, t_called, t_within = totals.issued, totals.called, totals.called_within
            t_recalled, t_closed = totals.recalled, totals.closed
            t_wait, t_walk, t_service = totals.wait, totals.walk, totals.service
            t_counter_served, t_counter_busy = totals.counter_served, totals.counter_busy
            t_est_error, t_under, t_over = (
                totals.estimate_error,
                totals.estimate_under,
                totals.estimate_over,
            )
        counter_services = {cid: cfg.services for cid, cfg in self.site.counters.items()}
        # Rare (a queue emptied or filled, a counter's state changed): the methods `apply`
        # calls, which bump totals.version themselves.
        idle_check = self.idle_queue_check
        filled_or_emptied = self._queue_filled_or_emptied
        version = 0  # added to totals.version at the end (the same sum `apply` reaches)

        # The look-ups of `_ticket` and `_counter` are written out in each handler below
        # (a call per event less); these make their errors.
        def unknown_ticket(r: ReplayRow) -> ReplayError:
            return ReplayError(f"event {r[0]} names unknown ticket")

        def unknown_counter(r: ReplayRow) -> ReplayError:
            return ReplayError(f"event {r[0]} names unknown counter")

        def issued(r: ReplayRow) -> None:
            nonlocal version
            ts, tid, svc, prio = r[3], r[4], r[6], r[9]
            q = queues[svc]
            n = r[8]
            if prio is not None:
                prio = intern(prio)
            t = Ticket(
                tid, q.service.code, r[7], n, prio, intern(r[10]), ts, ts, ts,
                WAITING, 0, None, None, 0, None, None, None, None, None, ts,
                r[11] if len(r) > 11 else None,
            )  # fmt: skip
            tickets[tid] = t
            at = q.area_at  # _advance, written out
            waiting = len(q.priority) + len(q.regular)
            if waiting and at is not None and ts > at:
                seconds = (ts - at).total_seconds()
                q.wait_area += waiting * seconds
                if q.open_now:
                    q.busy_area += q.open_now * seconds
            q.area_at = ts
            if prio is not None:
                q.priority[tid] = t
            else:
                q.regular[tid] = t
            if n > q.issued:
                q.issued = n
            if not waiting:  # the queue was empty
                filled_or_emptied(svc, ts)
            if totals is not None:
                version += 1
                t_issued[svc] += 1

        def called(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            try:
                c = counters[r[5]]
            except KeyError:
                raise unknown_counter(r) from None
            ts, svc, tid = r[3], t.service, t.id
            q = queues[svc]
            at = q.area_at  # _advance, written out (the queue holds this ticket: not empty)
            if at is not None and ts > at:
                seconds = (ts - at).total_seconds()
                q.wait_area += (len(q.priority) + len(q.regular)) * seconds
                if q.open_now:
                    q.busy_area += q.open_now * seconds
            q.area_at = ts
            q.priority.pop(tid, None)
            q.regular.pop(tid, None)
            q.recent.append((ts, q.busy_area))
            t.state, t.counter, t.last_counter, t.calls = CALLED, c.id, c.id, 1
            t.first_called_at = t.last_called_at = t.announced_at = ts
            q.called += 1
            wait = (ts - t.enqueued_at).total_seconds()
            within = wait <= targets[svc]
            if within:
                q.called_within += 1
            if totals is not None:
                version += 1
                t_called[svc] += 1
                t_within[svc] += within
                h = t_wait[svc]
                h.counts[bisect_left(h.bounds, wait)] += 1
                h.sum += wait
                h.count += 1
                told = t.estimate
                if told is not None and t.segment == 0:
                    error = wait - told
                    if error > 0:
                        t_under[svc] += error
                    else:
                        t_over[svc] -= error
                        error = -error
                    h = t_est_error[svc]
                    h.counts[bisect_left(h.bounds, error)] += 1
                    h.sum += error
                    h.count += 1
            q.priority_streak = q.priority_streak + 1 if t.priority is not None else 0
            c.ticket_id = tid
            c.idle_since = None
            if not (q.priority or q.regular):
                filled_or_emptied(svc, ts)
            elif c.idle_queue_since is not None:  # taking a ticket can only end it
                idle_check(c.id, ts)

        def recalled(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            t.calls += 1
            t.last_called_at = t.announced_at = r[3]
            if totals is not None:
                version += 1
                t_recalled[t.service] += 1

        def started(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            ts = r[3]
            t.state = SERVING
            t.started_at = ts
            if totals is not None and t.last_called_at is not None:
                version += 1
                walk = (ts - t.last_called_at).total_seconds()
                h = t_walk[t.service]
                h.counts[bisect_left(h.bounds, walk)] += 1
                h.sum += walk
                h.count += 1

        def release(t: Ticket, r: ReplayRow, served: bool) -> None:
            nonlocal version
            try:
                c = counters[r[5]]
            except KeyError:
                raise unknown_counter(r) from None
            ts = r[3]
            q = queues[t.service]
            first = t.first_called_at
            if first is not None:
                q.handled += 1
                q.handled_seconds += (ts - first).total_seconds()
            if served:
                begin = t.started_at or t.last_called_at
                assert begin is not None
                seconds = (ts - begin).total_seconds()
                svc = t.service
                q.finished += 1
                q.service_seconds += seconds
                c.served += 1
                c.busy_seconds += seconds
                if totals is not None:
                    version += 1
                    h = t_service[svc]
                    h.counts[bisect_left(h.bounds, seconds)] += 1
                    h.sum += seconds
                    h.count += 1
                    if t.started_at is None:  # the counter did not use "start": no walk
                        h = t_walk[svc]
                        h.counts[bisect_left(h.bounds, 0.0)] += 1
                        h.sum += 0.0
                        h.count += 1
                    t_counter_served[c.id] += 1
                    t_counter_busy[c.id] += seconds
            c.ticket_id = None
            if c.state == COUNTER_OPEN:
                c.idle_since = ts
                # idle_queue_check, written out for the common case: a counter set free
                # only starts an interval (none is open while it holds a ticket).
                for code in counter_services[c.id]:
                    w = queues[code]
                    if w.priority or w.regular:
                        c.idle_queue_since = ts
                        break
            else:
                c.idle_since = None

        def finished(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            release(t, r, True)
            outcome = intern(r[7])
            if totals is not None:
                version += 1
                t_closed[(t.service, outcome or "served")] += 1
            t.state, t.outcome, t.finished_at, t.counter = DONE, outcome, r[3], None

        def no_show(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            release(t, r, False)
            queues[t.service].no_shows += 1
            if totals is not None:
                version += 1
                t_closed[(t.service, "no_show")] += 1
            t.state, t.outcome, t.finished_at, t.counter = NO_SHOW, "no_show", r[3], None

        def transferred(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            release(t, r, True)
            if totals is not None:
                version += 1
                t_closed[(t.service, "transferred")] += 1
            to = queues[r[7]].service.code
            t.service, t.segment = to, t.segment + 1
            t.state, t.counter, t.calls = WAITING, None, 0
            t.first_called_at = t.last_called_at = t.started_at = None
            t.enqueued_at = r[3]
            t.queue_key = t.issued_at  # keeps its place by original issue time
            _advance(queues[to], r[3])
            queues[to].add(t)
            if len(queues[to]) == 1:
                filled_or_emptied(to, r[3])

        def cancelled(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = r[3]
            q = queues[t.service]
            _advance(q, r[3])
            q.priority.pop(t.id, None)
            q.regular.pop(t.id, None)
            q.cancelled += 1
            if totals is not None:
                version += 1
                t_closed[(t.service, "cancelled")] += 1
            t.state, t.outcome, t.finished_at = CANCELLED, "cancelled", r[3]
            if not (q.priority or q.regular):
                filled_or_emptied(t.service, r[3])

        def expired(r: ReplayRow) -> None:
            nonlocal version
            try:
                t = tickets[r[4]]
            except KeyError:
                raise unknown_ticket(r) from None
            t.last_ts = ts = r[3]
            q = queues[t.service]
            if t.state == WAITING:
                _advance(q, ts)
                q.priority.pop(t.id, None)
                q.regular.pop(t.id, None)
                if not (q.priority or q.regular):
                    filled_or_emptied(t.service, ts)
            elif t.counter is not None:
                c = counters[t.counter]
                c.ticket_id = None
                c.idle_since = ts if c.state == COUNTER_OPEN else None
                idle_check(c.id, ts)
            if totals is not None:
                version += 1
                t_closed[(t.service, "expired")] += 1
            t.state, t.outcome, t.finished_at, t.counter = EXPIRED, "expired", ts, None

        def staffing(c: CounterState, ts: datetime, now_open: bool) -> None:
            if (c.state == COUNTER_OPEN) == now_open:
                return
            services = counter_services[c.id]
            step = 1 if now_open else -1
            share = step / len(services)
            for code in services:
                q = queues[code]
                _advance(q, ts)
                q.open_now += step
                q.open_share += share

        def counter_opened(r: ReplayRow) -> None:
            try:
                c = counters[r[5]]
            except KeyError:
                raise unknown_counter(r) from None
            ts = r[3]
            staffing(c, ts, True)
            c.state, c.reason, c.since = COUNTER_OPEN, None, ts
            c.idle_since = ts if c.ticket_id is None else None
            idle_check(c.id, ts)

        def counter_paused(r: ReplayRow) -> None:
            try:
                c = counters[r[5]]
            except KeyError:
                raise unknown_counter(r) from None
            staffing(c, r[3], False)
            c.state, c.reason, c.since, c.idle_since = COUNTER_PAUSED, r[7], r[3], None
            idle_check(c.id, r[3])

        def counter_closed(r: ReplayRow) -> None:
            try:
                c = counters[r[5]]
            except KeyError:
                raise unknown_counter(r) from None
            staffing(c, r[3], False)
            c.state, c.reason, c.since, c.idle_since = COUNTER_CLOSED, None, r[3], None
            idle_check(c.id, r[3])

        handlers: dict[str, Callable[[ReplayRow], None]] = {
            ev.TICKET_ISSUED: issued,
            ev.TICKET_CALLED: called,
            ev.TICKET_RECALLED: recalled,
            ev.TICKET_STARTED: started,
            ev.TICKET_FINISHED: finished,
            ev.TICKET_NO_SHOW: no_show,
            ev.TICKET_TRANSFERRED: transferred,
            ev.TICKET_CANCELLED: cancelled,
            ev.TICKET_EXPIRED: expired,
            ev.COUNTER_OPENED: counter_opened,
            ev.COUNTER_PAUSED: counter_paused,
            ev.COUNTER_CLOSED: counter_closed,
        }
        n = 0
        last: ReplayRow | None = None
        try:
            for last in rows:
                try:
                    handler = handlers[last[2]]
                except KeyError:
                    raise ReplayError(f"unknown event type {last[2]!r}") from None
                handler(last)
                n += 1
        finally:
            if totals is not None:
                totals.version += version
        if last is not None:
            self.last_ts = last[3]
            if last[0]:
                self.last_seq = last[0]
        return n

    # -- queries -----------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> Ticket | None:
        return self.tickets.get(ticket_id)

    def people_ahead(self, ticket: Ticket) -> int:
        if ticket.state != WAITING:
            return 0
        return self.queues[ticket.service].ahead_of(ticket)

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
        if svc.daily_quota is not None and q.issued >= svc.daily_quota:
            return "quota"
        return None

    def open_counters(self, service: str) -> list[CounterState]:
        return [
            c
            for c in self.counters.values()
            if c.state == COUNTER_OPEN and service in self.site.counters[c.id].services
        ]

    def average_service_seconds(self, service: str) -> float:
        q = self.queues[service]
        if q.finished:
            return q.service_seconds / q.finished
        return q.service.default_service_minutes * 60

    def ahead_of_new(self, service: str, priority: str | None) -> int:
        """How many waiting tickets a ticket issued now would have before it."""
        return self.queues[service].ahead_of_new(priority)

    def estimated_wait_seconds(
        self,
        service: str,
        ahead: int,
        now: datetime | None = None,
        ticket: Ticket | None = None,
    ) -> float | None:
        """The estimate shown to citizens (`estimate.shipped`): seconds until `ticket`, or
        a ticket issued at `now` with `ahead` tickets before it, is called.

        None when no counter serving the service is open or coming back from a break (no
        honest estimate exists). `now` defaults to the time of the last event applied.
        """
        at = now if now is not None else self.last_ts
        if at is None:  # nothing happened today: no counter is open
            return None
        return est.shipped(self, service, ahead, at, ticket)

    # -- event handlers ----------------------------------------------------------------

    def _ticket(self, event: Event) -> Ticket:
        assert event.ticket_id is not None
        try:
            ticket = self.tickets[event.ticket_id]
        except KeyError:
            raise ReplayError(f"event {event.seq} names unknown ticket") from None
        ticket.last_ts = event.ts
        return ticket

    def _counter(self, event: Event) -> CounterState:
        assert event.counter_id is not None
        try:
            return self.counters[event.counter_id]
        except KeyError:
            raise ReplayError(f"event {event.seq} names unknown counter") from None

    def _closed(self, service: str, outcome: str) -> None:
        if self.totals is not None:
            self.totals.version += 1
            self.totals.closed[(service, outcome)] += 1

    def _issued(self, e: Event) -> None:
        assert e.ticket_id is not None
        assert e.service is not None
        d = e.data
        q = self.queues[e.service]
        priority = d.get("priority")
        # Strings shared by many tickets are stored once (the configured code, interned
        # names), not once per ticket as they came out of the database row.
        ticket = Ticket(
            e.ticket_id,
            q.service.code,
            d["number"],
            d["seq"],
            None if priority is None else intern(priority),
            intern(d.get("source", "kiosk")),
            e.ts,
            e.ts,
            e.ts,
            last_ts=e.ts,
            estimate=d.get("estimated_wait_seconds"),
        )
        self.tickets[ticket.id] = ticket
        _advance(q, e.ts)
        q.add(ticket)
        q.issued = max(q.issued, ticket.seq)
        if len(q) == 1:
            self._queue_filled_or_emptied(q.service.code, e.ts)
        if self.totals is not None:
            self.totals.version += 1
            self.totals.issued[e.service] += 1

    def _called(self, e: Event) -> None:
        t = self._ticket(e)
        c = self._counter(e)
        q = self.queues[t.service]
        _advance(q, e.ts)
        q.remove(t)
        q.recent.append((e.ts, q.busy_area))
        t.state, t.counter, t.last_counter, t.calls = CALLED, c.id, c.id, 1
        t.first_called_at = t.last_called_at = t.announced_at = e.ts
        q.called += 1
        wait = (e.ts - t.enqueued_at).total_seconds()
        within = wait <= q.service.target_wait_seconds
        if within:
            q.called_within += 1
        if self.totals is not None:
            totals = self.totals
            totals.version += 1
            totals.called[t.service] += 1
            totals.called_within[t.service] += within
            totals.wait[t.service].observe(wait)
            if t.estimate is not None and t.segment == 0:
                error = wait - t.estimate
                totals.estimate_error[t.service].observe(abs(error))
                if error > 0:
                    totals.estimate_under[t.service] += error
                else:
                    totals.estimate_over[t.service] -= error
        q.priority_streak = q.priority_streak + 1 if t.priority is not None else 0
        c.ticket_id = t.id
        c.idle_since = None
        if len(q):
            self.idle_queue_check(c.id, e.ts)
        else:
            self._queue_filled_or_emptied(t.service, e.ts)

    def _recalled(self, e: Event) -> None:
        t = self._ticket(e)
        t.calls += 1
        t.last_called_at = t.announced_at = e.ts
        if self.totals is not None:
            self.totals.version += 1
            self.totals.recalled[t.service] += 1

    def _started(self, e: Event) -> None:
        t = self._ticket(e)
        t.state = SERVING
        t.started_at = e.ts
        if self.totals is not None and t.last_called_at is not None:
            self.totals.version += 1
            self.totals.walk[t.service].observe((e.ts - t.last_called_at).total_seconds())

    def _release(self, t: Ticket, e: Event, *, served: bool) -> None:
        c = self._counter(e)
        q = self.queues[t.service]
        if t.first_called_at is not None:
            q.handled += 1
            q.handled_seconds += (e.ts - t.first_called_at).total_seconds()
        if served:
            begin = t.started_at or t.last_called_at
            assert begin is not None
            seconds = (e.ts - begin).total_seconds()
            q.finished += 1
            q.service_seconds += seconds
            c.served += 1
            c.busy_seconds += seconds
            totals = self.totals
            if totals is not None:
                totals.version += 1
                totals.service[t.service].observe(seconds)
                if t.started_at is None:  # the counter did not use "start": no walk
                    totals.walk[t.service].observe(0.0)
                totals.counter_served[c.id] += 1
                totals.counter_busy[c.id] += seconds
        c.ticket_id = None
        c.idle_since = e.ts if c.state == COUNTER_OPEN else None
        self.idle_queue_check(c.id, e.ts)

    def _finished(self, e: Event) -> None:
        t = self._ticket(e)
        self._release(t, e, served=True)
        t.state, t.outcome, t.finished_at, t.counter = DONE, intern(e.data["outcome"]), e.ts, None
        self._closed(t.service, t.outcome or "served")

    def _no_show(self, e: Event) -> None:
        t = self._ticket(e)
        self._release(t, e, served=False)
        self.queues[t.service].no_shows += 1
        self._closed(t.service, "no_show")
        t.state, t.outcome, t.finished_at, t.counter = NO_SHOW, "no_show", e.ts, None

    def _transferred(self, e: Event) -> None:
        t = self._ticket(e)
        self._release(t, e, served=True)
        self._closed(t.service, "transferred")
        to = self.queues[e.data["to_service"]].service.code
        t.service, t.segment = to, t.segment + 1
        t.state, t.counter, t.calls = WAITING, None, 0
        t.first_called_at = t.last_called_at = t.started_at = None
        t.enqueued_at = e.ts
        t.queue_key = t.issued_at  # keeps its place by original issue time
        _advance(self.queues[to], e.ts)
        self.queues[to].add(t)
        if len(self.queues[to]) == 1:
            self._queue_filled_or_emptied(to, e.ts)

    def _cancelled(self, e: Event) -> None:
        t = self._ticket(e)
        q = self.queues[t.service]
        _advance(q, e.ts)
        q.remove(t)
        q.cancelled += 1
        self._closed(t.service, "cancelled")
        t.state, t.outcome, t.finished_at = CANCELLED, "cancelled", e.ts
        if not len(q):
            self._queue_filled_or_emptied(t.service, e.ts)

    def _expired(self, e: Event) -> None:
        t = self._ticket(e)
        q = self.queues[t.service]
        if t.state == WAITING:
            _advance(q, e.ts)
            q.remove(t)
            if not len(q):
                self._queue_filled_or_emptied(t.service, e.ts)
        elif t.counter is not None:
            c = self.counters[t.counter]
            c.ticket_id = None
            c.idle_since = e.ts if c.state == COUNTER_OPEN else None
            self.idle_queue_check(c.id, e.ts)
        self._closed(t.service, "expired")
        t.state, t.outcome, t.finished_at, t.counter = EXPIRED, "expired", e.ts, None

    def _staffing(self, c: CounterState, ts: datetime, now_open: bool) -> None:
        """Keep each of the counter's services' open count (the estimate's input) in step."""
        if (c.state == COUNTER_OPEN) == now_open:
            return
        services = self.site.counters[c.id].services
        step = 1 if now_open else -1
        share = step / len(services)
        for code in services:
            q = self.queues[code]
            _advance(q, ts)
            q.open_now += step
            q.open_share += share

    def _counter_opened(self, e: Event) -> None:
        c = self._counter(e)
        self._staffing(c, e.ts, True)
        c.state, c.reason, c.since = COUNTER_OPEN, None, e.ts
        c.idle_since = e.ts if c.ticket_id is None else None
        self.idle_queue_check(c.id, e.ts)

    def _counter_paused(self, e: Event) -> None:
        c = self._counter(e)
        self._staffing(c, e.ts, False)
        c.state, c.reason, c.since, c.idle_since = COUNTER_PAUSED, e.data.get("reason"), e.ts, None
        self.idle_queue_check(c.id, e.ts)

    def _counter_closed(self, e: Event) -> None:
        c = self._counter(e)
        self._staffing(c, e.ts, False)
        c.state, c.reason, c.since, c.idle_since = COUNTER_CLOSED, None, e.ts, None
        self.idle_queue_check(c.id, e.ts)
