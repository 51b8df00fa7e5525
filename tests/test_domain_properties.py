"""Property tests of the pure domain: random command sequences over the example hall.

A hypothesis state machine plays officers, kiosks and a wall clock against one site's live
state, the way the engine does (roll to today, decide, number, apply). Whatever it does,
a ticket is in one place only, no two counters hold one ticket, numbers never repeat,
a ticket's history never runs backwards and replaying the log rebuilds the live state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from queue_service.config import OUTCOMES, PRIORITY_KINDS, load_config
from queue_service.domain import commands, errors
from queue_service.domain import events as ev
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.state import (
    CLOSED_STATES,
    COUNTER_OPEN,
    HELD_STATES,
    WAITING,
    CounterState,
    SiteState,
    Ticket,
)
from tests.conftest import EXAMPLE, MONDAY_9AM, SITE

HALL = load_config(EXAMPLE).sites[SITE]

# Counters that share services, so that calls compete for the same queues; one unknown.
COUNTERS = ("loket-01", "loket-03", "loket-04", "loket-06", "loket-16", "loket-24", "loket-99")
# Services of those counters, one served by none of them (PASPOR) and one unknown.
SERVICES = ("KTP-EL", "KK", "AKTA", "PINDAH", "BANK-CS", "BANK-TELLER", "PDAM-BAYAR",
            "PDAM-SAMBUNG", "PASPOR", "NOPE")
PRIORITIES = (None, None, None, *PRIORITY_KINDS, "vip")
SOURCES = ("kiosk", "kiosk", "reception", "dispenser", "telepathy")
REASONS = ("istirahat", "  salat jumat ", "", "   ", "x" * (commands.MAX_REASON + 1))

Command = Callable[..., list[Event]]


def summary(state: SiteState) -> tuple[Any, ...]:
    """A canonical, comparable picture of a state: tickets, queue order, counters, stats."""
    tickets = {
        tid: tuple(getattr(t, f.name) for f in dataclasses.fields(Ticket))
        for tid, t in state.tickets.items()
    }
    queues = {
        code: (tuple(q.priority), tuple(q.regular), q.issued, q.priority_streak, q.called,
               q.called_within, q.finished, q.service_seconds, q.no_shows, q.cancelled)
        for code, q in state.queues.items()
    }
    counters = {
        cid: tuple(getattr(c, f.name) for f in dataclasses.fields(CounterState))
        for cid, c in state.counters.items()
    }
    return state.day, state.last_seq, tickets, queues, counters


class HallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(MONDAY_9AM)
        self.state = SiteState(HALL, HALL.service_day(MONDAY_9AM))
        self.log: list[Event] = []
        self.ticket_ids: list[str] = []
        self.numbers: dict[tuple[Any, str], set[str]] = {}  # (day, service at issue)
        self.stamps: dict[str, list[datetime]] = {}  # ticket id -> its events' timestamps
        self.issued_to: dict[str, str] = {}  # ticket id -> the service that numbered it

    # -- driving -----------------------------------------------------------------------

    def run(self, command: Command, **kwargs: Any) -> None:
        now = self.clock.now()
        today = HALL.service_day(now)
        if self.state.day != today:
            self.state.roll_to(today)
        before = summary(self.state)
        try:
            events = command(self.state, now, **kwargs)
        except errors.DomainError:
            assert summary(self.state) == before, "a rejected command changed the state"
            return
        assert summary(self.state) == before, "deciding changed the state"
        for event in events:
            event = dataclasses.replace(event, seq=len(self.log) + 1)
            self.state.apply(event)
            self.log.append(event)
            self.record(event)

    def record(self, event: Event) -> None:
        assert event.day == self.state.day, "an event of another day than the live one"
        if event.type == ev.TICKET_ISSUED:
            assert event.service is not None
            seen = self.numbers.setdefault((event.day, event.service), set())
            number = event.data["number"]
            assert number not in seen, f"{number} issued twice on {event.day}"
            seen.add(number)
            self.issued_to[event.ticket_id] = event.service
        if event.ticket_id is not None:
            stamps = self.stamps.setdefault(event.ticket_id, [])
            assert not stamps or stamps[-1] <= event.ts, (
                f"{event.type} of {event.ticket_id} at {event.ts} after {stamps[-1]}")
            stamps.append(event.ts)

    def pick(self, index: int) -> str:
        """A ticket id issued at some point (maybe on an earlier day), or an unknown one."""
        if not self.ticket_ids or index % 10 == 0:
            return "no-such-ticket"
        return self.ticket_ids[index % len(self.ticket_ids)]

    def new_id(self) -> str:
        ticket_id = f"t{len(self.ticket_ids)}"
        self.ticket_ids.append(ticket_id)
        return ticket_id

    # -- the clock ---------------------------------------------------------------------

    @initialize(opened=st.sets(st.sampled_from(COUNTERS[:-1]), max_size=4))
    def open_some_counters(self, opened: set[str]) -> None:
        for counter_id in sorted(opened):
            self.run(commands.open_counter, counter_id=counter_id)

    @rule(seconds=st.integers(0, 900))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.integers(1, 900))
    def clock_steps_back(self, seconds: int) -> None:
        # An NTP step backwards, within the same service day.
        now = self.clock.now()
        earlier = now - timedelta(seconds=seconds)
        if HALL.service_day(earlier) == HALL.service_day(now):
            self.clock.set(earlier)

    @rule(hour=st.sampled_from([0, 7, 8, 9, 10, 13, 14]), minute=st.integers(0, 59))
    def next_day(self, hour: int, minute: int) -> None:
        tomorrow = HALL.local(self.clock.now()).date() + timedelta(days=1)
        self.clock.set(datetime.combine(tomorrow, time(hour, minute), tzinfo=HALL.timezone))

    # -- kiosks ------------------------------------------------------------------------

    @rule(service=st.sampled_from(SERVICES), priority=st.sampled_from(PRIORITIES),
          source=st.sampled_from(SOURCES))
    def issue(self, service: str, priority: str | None, source: str) -> None:
        self.run(commands.issue, ticket_id=self.new_id(), service=service, priority=priority,
                 source=source)

    @rule(batch=st.lists(st.tuples(st.sampled_from(SERVICES[:-1]),
                                   st.sampled_from(PRIORITIES[:-1]),
                                   st.integers(0, 120)), min_size=1, max_size=6))
    def rush_of_arrivals(self, batch: list[tuple[str, str | None, int]]) -> None:
        for service, priority, gap in batch:
            self.clock.advance(gap)
            self.run(commands.issue, ticket_id=self.new_id(), service=service, priority=priority)

    @rule(index=st.integers(0, 1000), reason=st.sampled_from(["", "pulang", "x" * 300]))
    def cancel(self, index: int, reason: str) -> None:
        self.run(commands.cancel, ticket_id=self.pick(index), reason=reason)

    # -- officers ----------------------------------------------------------------------

    @rule(counter=st.sampled_from(COUNTERS))
    def call_next(self, counter: str) -> None:
        self.run(commands.call_next, counter_id=counter)

    @rule(counter=st.sampled_from(COUNTERS), index=st.integers(0, 1000))
    def call_ticket(self, counter: str, index: int) -> None:
        self.run(commands.call_ticket, counter_id=counter, ticket_id=self.pick(index))

    @rule(counter=st.sampled_from(COUNTERS))
    def recall(self, counter: str) -> None:
        self.run(commands.recall, counter_id=counter)

    @rule(counter=st.sampled_from(COUNTERS))
    def start(self, counter: str) -> None:
        self.run(commands.start, counter_id=counter)

    @rule(counter=st.sampled_from(COUNTERS),
          outcome=st.sampled_from([*OUTCOMES, "served", "no_show", "bogus"]))
    def finish(self, counter: str, outcome: str) -> None:
        self.run(commands.finish, counter_id=counter, outcome=outcome)

    @rule(counter=st.sampled_from(COUNTERS))
    def no_show(self, counter: str) -> None:
        self.run(commands.no_show, counter_id=counter)

    @rule(counter=st.sampled_from(COUNTERS), to_service=st.sampled_from(SERVICES))
    def transfer(self, counter: str, to_service: str) -> None:
        self.run(commands.transfer, counter_id=counter, to_service=to_service)

    @rule(counter=st.sampled_from(COUNTERS))
    def open_counter(self, counter: str) -> None:
        self.run(commands.open_counter, counter_id=counter)

    @rule(counter=st.sampled_from(COUNTERS), reason=st.sampled_from(REASONS))
    def pause_counter(self, counter: str, reason: str) -> None:
        self.run(commands.pause_counter, counter_id=counter, reason=reason)

    @rule(counter=st.sampled_from(COUNTERS))
    def close_counter(self, counter: str) -> None:
        self.run(commands.close_counter, counter_id=counter)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def every_ticket_is_in_exactly_one_place(self) -> None:
        s = self.state
        queued: dict[str, str] = {}
        for code, q in s.queues.items():
            for tid, t in q.priority.items():
                assert t.priority is not None, f"regular {t.number} in the priority queue"
                assert tid not in queued, f"{t.number} queued twice"
                queued[tid] = code
            for tid, t in q.regular.items():
                assert t.priority is None, f"priority {t.number} in the regular queue"
                assert tid not in queued, f"{t.number} queued twice"
                queued[tid] = code
            for tid, t in (*q.priority.items(), *q.regular.items()):
                assert s.tickets.get(tid) is t, f"queue {code} holds a stray ticket object"
        holders: dict[str, str] = {}
        for cid, c in s.counters.items():
            if c.ticket_id is not None:
                assert c.ticket_id not in holders, (
                    f"{c.ticket_id} held by {holders[c.ticket_id]} and {cid}")
                holders[c.ticket_id] = cid
        assert set(queued) <= set(s.tickets)
        assert set(holders) <= set(s.tickets)
        for tid, t in s.tickets.items():
            if t.state == WAITING:
                assert queued.get(tid) == t.service, f"waiting {t.number} not in its queue"
                assert tid not in holders
                assert t.counter is None
            elif t.state in HELD_STATES:
                assert t.counter is not None, f"{t.number} {t.state} at no counter"
                assert holders.get(tid) == t.counter, (
                    f"{t.number} {t.state} at {t.counter}, held by {holders.get(tid)}")
                assert tid not in queued
            else:
                assert t.state in CLOSED_STATES
                assert tid not in queued
                assert tid not in holders
                assert t.counter is None

    @invariant()
    def counters_are_consistent(self) -> None:
        for c in self.state.counters.values():
            if c.ticket_id is not None:
                assert c.state == COUNTER_OPEN, f"{c.id} is {c.state} but holds a ticket"
            idle = c.state == COUNTER_OPEN and c.ticket_id is None
            assert (c.idle_since is not None) == idle, f"{c.id} idle_since {c.idle_since}"
            assert c.busy_seconds >= 0

    @invariant()
    def queue_figures_add_up(self) -> None:
        waiting = [t for t in self.state.tickets.values() if t.state == WAITING]
        for code, q in self.state.queues.items():
            assert len(q) == sum(1 for t in waiting if t.service == code)
            assert 0 <= q.called_within <= q.called
            assert q.service_seconds >= 0
            if q.service.daily_quota is not None:
                assert q.issued <= q.service.daily_quota

    @invariant()
    def numbers_are_unique_today(self) -> None:
        numbers = [t.number for t in self.state.tickets.values()]
        assert len(numbers) == len(set(numbers))
        for t in self.state.tickets.values():
            prefix = HALL.services[self.issued_to[t.id]].prefix
            assert t.number == f"{prefix}{t.seq:03d}"

    @invariant()
    def ticket_histories_never_run_backwards(self) -> None:
        for stamps in self.stamps.values():
            assert stamps == sorted(stamps)
        for t in self.state.tickets.values():
            assert t.issued_at <= t.enqueued_at
            assert t.last_ts == self.stamps[t.id][-1]

    @invariant()
    def replaying_the_log_rebuilds_the_live_state(self) -> None:
        fresh = SiteState(HALL)
        for event in self.log:
            fresh.apply(event)
        if fresh.day != self.state.day:
            assert self.state.day is not None
            fresh.roll_to(self.state.day)  # the live state rolled on before any event
        assert summary(fresh) == summary(self.state)

    @invariant()
    def a_clone_equals_the_original(self) -> None:
        assert summary(self.state.clone()) == summary(self.state)


HallMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60,
                                         deadline=None)
TestHallMachine = HallMachine.TestCase


# --- priority policies against a model ----------------------------------------------------

POLICY_CASES = (
    ("KTP-EL", "loket-01"),  # strict
    ("PDAM-BAYAR", "loket-23"),  # fifo
    ("KK", "loket-04"),  # interleave 3
    ("AKTA", "loket-04"),  # interleave 2
)


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from(POLICY_CASES),
       ops=st.lists(st.sampled_from(["regular", "priority", "call", "call"]), max_size=40))
def test_calls_follow_the_services_priority_policy(case: tuple[str, str], ops: list[str]) -> None:
    service, counter = case
    svc = HALL.services[service]
    clock = ManualClock(MONDAY_9AM)
    state = SiteState(HALL, HALL.service_day(MONDAY_9AM))
    seq = 0

    def do(command: Command, **kwargs: Any) -> list[Event]:
        nonlocal seq
        out = []
        for event in command(state, clock.now(), **kwargs):
            seq += 1
            event = dataclasses.replace(event, seq=seq)
            state.apply(event)
            out.append(event)
        return out

    # The model: issue order per class, and priority calls in a row.
    priority: list[str] = []
    regular: list[str] = []
    order: list[str] = []
    streak = 0
    do(commands.open_counter, counter_id=counter)
    for i, op in enumerate(ops):
        clock.advance(30)
        if op != "call":
            tid = f"t{i}"
            do(commands.issue, ticket_id=tid, service=service,
               priority="lansia" if op == "priority" else None)
            (priority if op == "priority" else regular).append(tid)
            order.append(tid)
            continue
        expected: str | None
        if svc.priority_policy == "fifo":
            expected = order[0] if order else None
        elif priority and not (svc.priority_policy == "interleave"
                               and streak >= svc.priority_interleave and regular):
            expected = priority[0]
            streak += 1
        elif regular:
            expected = regular[0]
            streak = 0
        else:
            expected = None
        try:
            (called,) = do(commands.call_next, counter_id=counter)
        except errors.QueueEmpty:
            assert expected is None
            continue
        assert called.ticket_id == expected
        for queue in (priority, regular, order):
            if expected in queue:
                queue.remove(expected)
        do(commands.finish, counter_id=counter)
