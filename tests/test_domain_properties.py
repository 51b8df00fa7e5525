"""Property tests of the pure domain: random command sequences over the example hall.

A hypothesis state machine plays officers, kiosks and a wall clock against one site's live
state, the way the engine does (roll to today, decide, number, apply). Whatever it does,
a ticket is in one place only, no two counters hold one ticket, numbers never repeat,
a ticket's history never runs backwards and replaying the log rebuilds the live state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from queue_service.config import load_config
from queue_service.domain import commands, errors
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.domain.vocab import (
    CLOSED,
    HELD,
    MAX_REASON,
    CounterStatus,
    EventType,
    FinishOutcome,
    Priority,
    TicketStatus,
)
from tests.conftest import EXAMPLE, MONDAY_9AM, SITE
from tests.live_site import LiveSite
from tests.state_summary import summary

HALL = load_config(EXAMPLE).sites[SITE]
WAIT_BOUNDS = wait_bounds(svc.target_wait_seconds for svc in HALL.services.values())


def new_totals() -> SiteTotals:
    return SiteTotals(HALL.services, HALL.counters, WAIT_BOUNDS)


# Counters that share services, so that calls compete for the same queues.
ZONE_A = ("loket-01", "loket-03", "loket-04", "loket-06")  # Disdukcapil
ZONES_B_C = ("loket-16", "loket-24")  # Bank Kalsel, PDAM
COUNTERS = ZONE_A + ZONES_B_C
# Services of those counters, and one served by none of them (PASPOR).
SERVICES = (
    "KTP-EL",
    "KK",
    "AKTA",
    "PINDAH",
    "BANK-CS",
    "BANK-TELLER",
    "PDAM-BAYAR",
    "PDAM-SAMBUNG",
    "PASPOR",
)

CLOCK_ACTIONS = ("advance",) * 6 + ("step_back",) * 2 + ("next_day",)
SHIFT_ACTIONS = ("open_counter",) * 3 + ("pause_counter", "close_counter")
# What an officer does next, by what the counter holds; MISTAKES are drawn now and then.
IDLE_ACTIONS = ("call_next", "call_next", "call_next", "call_ticket")
CALLED_ACTIONS = ("recall", "recall", "start", "start", "finish", "no_show", "no_show", "transfer")
SERVING_ACTIONS = ("finish", "finish", "finish", "transfer")
MISTAKES = ("call_next", "call_ticket", "recall", "start", "finish", "no_show", "transfer")


def mostly(good: tuple[Any, ...], *bad: Any, weight: int = 4) -> st.SearchStrategy[Any]:
    """Valid values, now and then an invalid one (each `weight` times less likely)."""
    return st.sampled_from(good * weight + bad)


counters = mostly(COUNTERS, "loket-99")
services = mostly(SERVICES, "NOPE")
priorities = mostly((None, None, None, None, *Priority), "vip")
sources = mostly(("kiosk", "kiosk", "reception", "dispenser"), "telepathy")
outcomes = mostly(tuple(FinishOutcome), "no_show")
reasons = mostly(("istirahat", "  salat jumat "), "", "   ", "x" * (MAX_REASON + 1), weight=3)

# One officer step: (roll for the action, ticket pick, outcome, transfer target, pause after).
OfficerStep = tuple[int, int, str, str, int]
officer_steps = st.lists(
    st.tuples(st.integers(0, 99), st.integers(0, 1000), outcomes, services, st.integers(0, 300)),
    min_size=1,
    max_size=6,
)

Command = Callable[..., list[Event]]


class HallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.live = LiveSite(HALL, ManualClock(MONDAY_9AM), new_totals())
        self.clock, self.state = self.live.clock, self.live.state
        # Every event emitted so far, in order (the live site's log), and a fresh SiteState
        # that was given exactly these events (applied as they came: the same as replaying
        # the log from scratch after every step, without the quadratic cost).
        self.log = self.live.log
        self.replay = SiteState(HALL, None, new_totals())
        self._summary: dict[str, Any] | None = None  # of self.state, until it changes
        self.ticket_ids: list[str] = []
        self.numbers: dict[tuple[Any, str], set[str]] = {}  # (day, service at issue)
        self.stamps: dict[str, list[datetime]] = {}  # ticket id -> its events' timestamps
        self.issued_to: dict[str, str] = {}  # ticket id -> the service that numbered it

    # -- driving -----------------------------------------------------------------------

    def run(self, command: Command, **kwargs: Any) -> None:
        now = self.clock.now()
        today = HALL.service_day(now)
        if self.state.day != today:
            # The day ended: what it left open expires first (as the engine's day closer
            # or the first command of the new day does), then the state rolls on.
            self.apply(commands.expire_day(self.state))
            self.state.roll_to(today)
            self._summary = None
        before = self.live_summary()
        try:
            events = command(self.state, now, **kwargs)
        except errors.DomainError:
            assert summary(self.state) == before, "a rejected command changed the state"
            return
        assert summary(self.state) == before, "deciding changed the state"
        self.apply(events)

    def apply(self, events: list[Event]) -> None:
        for event in self.live.apply(events):
            self._summary = None
            self.replay.apply(event)
            self.record(event)

    def live_summary(self) -> dict[str, Any]:
        if self._summary is None:
            self._summary = summary(self.state)
        return self._summary

    def record(self, event: Event) -> None:
        assert event.day == self.state.day, "an event of another day than the live one"
        if event.type == EventType.TICKET_ISSUED:
            assert event.service is not None and event.ticket_id is not None
            seen = self.numbers.setdefault((event.day, event.service), set())
            number = event.data["number"]
            assert number not in seen, f"{number} issued twice on {event.day}"
            seen.add(number)
            self.issued_to[event.ticket_id] = event.service
        if event.ticket_id is not None:
            stamps = self.stamps.setdefault(event.ticket_id, [])
            assert not stamps or stamps[-1] <= event.ts, (
                f"{event.type} of {event.ticket_id} at {event.ts} after {stamps[-1]}"
            )
            stamps.append(event.ts)

    def pick(self, index: int) -> str:
        """Mostly a ticket of today (often a waiting one); now and then an unknown one."""
        today = sorted(self.state.tickets)
        waiting = [tid for tid in today if self.state.tickets[tid].state == TicketStatus.WAITING]
        choice = index % 10
        if choice == 0 or not self.ticket_ids:
            return "no-such-ticket"
        if choice == 1 or not today:
            return self.ticket_ids[index % len(self.ticket_ids)]  # maybe of an earlier day
        if choice < 7 and waiting:
            return waiting[index % len(waiting)]
        return today[index % len(today)]

    def new_id(self) -> str:
        ticket_id = f"t{len(self.ticket_ids)}"
        self.ticket_ids.append(ticket_id)
        return ticket_id

    # -- rules -------------------------------------------------------------------------
    # One rule per kind of actor, each drawing the same arguments whatever the state (that
    # keeps failing runs shrinkable), with weighted actions rather than one rule per
    # command: a uniform choice among a dozen rules rarely calls, starts and finishes in a
    # row. Two officer rules (by hall zone) because hypothesis' swarm testing switches
    # whole rules off for a run, and a run without officers exercises little.

    @initialize(opened=st.sets(st.sampled_from(COUNTERS), min_size=3))
    def counters_open_in_the_morning(self, opened: set[str]) -> None:
        for counter_id in sorted(opened):
            self.run(commands.open_counter, counter_id=counter_id)

    @rule(
        action=st.sampled_from(CLOCK_ACTIONS),
        seconds=st.integers(1, 900),
        hour=st.sampled_from([9, 0, 7, 8, 10, 13, 14]),
        opened=st.sets(st.sampled_from(COUNTERS), min_size=2),
    )
    def clock_moves(self, action: str, seconds: int, hour: int, opened: set[str]) -> None:
        now = self.clock.now()
        if action == "advance":
            self.clock.advance(seconds)
        elif action == "step_back":
            # An NTP step backwards, within the same service day.
            earlier = now - timedelta(seconds=seconds)
            if HALL.service_day(earlier) == HALL.service_day(now):
                self.clock.set(earlier)
        else:
            # Past local midnight into the next service day, where counters open anew.
            tomorrow = HALL.local(now).date() + timedelta(days=1)
            self.clock.set(
                datetime.combine(tomorrow, time(hour, seconds % 60), tzinfo=HALL.timezone)
            )
            for counter_id in sorted(opened):
                self.run(commands.open_counter, counter_id=counter_id)

    @rule(
        cancel=mostly((False,), True),
        service=services,
        priority=priorities,
        source=sources,
        ticket=st.integers(0, 1000),
        reason=st.sampled_from(["", "pulang", "x" * 300]),
    )
    def kiosk(
        self,
        cancel: bool,
        service: str,
        priority: str | None,
        source: str,
        ticket: int,
        reason: str,
    ) -> None:
        """A visitor takes a ticket or, less often, reception cancels one (visitor left)."""
        if cancel:
            self.run(commands.cancel, ticket_id=self.pick(ticket), reason=reason)
        else:
            self.run(
                commands.issue,
                ticket_id=self.new_id(),
                service=service,
                priority=priority,
                source=source,
            )

    @rule(
        batch=st.lists(
            st.tuples(st.sampled_from(SERVICES), priorities, st.integers(0, 120)),
            min_size=1,
            max_size=6,
        )
    )
    def rush_of_arrivals(self, batch: list[tuple[str, str | None, int]]) -> None:
        for service, priority, gap in batch:
            self.clock.advance(gap)
            self.run(commands.issue, ticket_id=self.new_id(), service=service, priority=priority)

    @rule(counter=mostly(ZONE_A), steps=officer_steps)
    def officer_in_zone_a(self, counter: str, steps: list[OfficerStep]) -> None:
        self.officer(counter, steps)

    @rule(counter=mostly(ZONES_B_C, "loket-99"), steps=officer_steps)
    def officer_in_zones_b_c(self, counter: str, steps: list[OfficerStep]) -> None:
        self.officer(counter, steps)

    def officer(self, counter: str, steps: list[OfficerStep]) -> None:
        """An officer does a few things in a row at one counter: mostly what fits the
        counter's situation, sometimes a mistake (which must be refused harmlessly)."""
        for roll, ticket, outcome, to_service, then_seconds in steps:
            held = self.state.counters.get(counter)
            holding = self.state.tickets.get(held.ticket_id) if held and held.ticket_id else None
            fitting: tuple[str, ...]
            if holding is None:
                fitting = IDLE_ACTIONS
            elif holding.state == TicketStatus.SERVING:
                fitting = SERVING_ACTIONS
            else:
                fitting = CALLED_ACTIONS
            pool = fitting if roll < 80 else MISTAKES  # one roll in five is a mistake
            action = pool[roll % len(pool)]
            kwargs: dict[str, Any] = {"counter_id": counter}
            if action == "call_ticket":
                kwargs["ticket_id"] = self.pick(ticket)
            elif action == "finish":
                kwargs["outcome"] = outcome
            elif action == "transfer":
                kwargs["to_service"] = to_service
            self.run(getattr(commands, action), **kwargs)
            self.clock.advance(then_seconds)

    @rule(counter=counters, action=st.sampled_from(SHIFT_ACTIONS), reason=reasons)
    def shift(self, counter: str, action: str, reason: str) -> None:
        if action == "pause_counter":
            self.run(commands.pause_counter, counter_id=counter, reason=reason)
        else:
            self.run(getattr(commands, action), counter_id=counter)

    # -- invariants --------------------------------------------------------------------
    # One hypothesis invariant running every check: a failing run's printed trace stays
    # readable (hypothesis prints each invariant after each step) and the checks cheap.

    @invariant()
    def after_every_step(self) -> None:
        self.check_every_ticket_is_in_exactly_one_place()
        self.check_counters_are_consistent()
        self.check_queue_figures_add_up()
        self.check_numbers_are_unique_today()
        self.check_ticket_histories_never_run_backwards()
        self.check_replaying_the_log_rebuilds_the_live_state()
        self.check_a_clone_equals_the_original()
        self.check_issued_reconciles_with_closed_waiting_and_held()
        self.check_idle_while_a_queue_waits()
        self.check_the_call_order_is_the_one_order()

    def check_issued_reconciles_with_closed_waiting_and_held(self) -> None:
        """issued = closed (every outcome but transferred: the visit goes on) + waiting +
        held, over the whole history, at every step and across midnights."""
        totals = self.state.totals
        assert totals is not None
        issued = sum(totals.issued.values())
        closed = sum(n for (_, outcome), n in totals.closed.items() if outcome != "transferred")
        waiting = sum(len(q) for q in self.state.queues.values())
        held = sum(1 for c in self.state.counters.values() if c.ticket_id is not None)
        assert issued == closed + waiting + held, (issued, closed, waiting, held)

    def check_idle_while_a_queue_waits(self) -> None:
        s = self.state
        assert s.totals is not None
        for cid, c in s.counters.items():
            queue_waits = any(len(s.queues[code]) for code in HALL.counters[cid].services)
            idle = c.state == CounterStatus.OPEN and c.ticket_id is None and queue_waits
            assert (c.idle_queue_since is not None) == idle, (cid, c.idle_queue_since)
            assert s.totals.counter_idle[cid] >= 0

    def check_the_call_order_is_the_one_order(self) -> None:
        for q in self.state.queues.values():
            order = q.call_order()
            assert q.head() is (order[0] if order else None)
            assert [q.ahead_of(t) for t in order] == list(range(len(order)))

    def check_every_ticket_is_in_exactly_one_place(self) -> None:
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
                    f"{c.ticket_id} held by {holders[c.ticket_id]} and {cid}"
                )
                holders[c.ticket_id] = cid
        assert set(queued) <= set(s.tickets)
        assert set(holders) <= set(s.tickets)
        for tid, t in s.tickets.items():
            if t.state == TicketStatus.WAITING:
                assert queued.get(tid) == t.service, f"waiting {t.number} not in its queue"
                assert tid not in holders
                assert t.counter is None
            elif t.state in HELD:
                assert t.counter is not None, f"{t.number} {t.state} at no counter"
                assert holders.get(tid) == t.counter, (
                    f"{t.number} {t.state} at {t.counter}, held by {holders.get(tid)}"
                )
                assert tid not in queued
            else:
                assert t.state in CLOSED
                assert tid not in queued
                assert tid not in holders
                assert t.counter is None

    def check_counters_are_consistent(self) -> None:
        for c in self.state.counters.values():
            if c.ticket_id is not None:
                assert c.state == CounterStatus.OPEN, f"{c.id} is {c.state} but holds a ticket"
            idle = c.state == CounterStatus.OPEN and c.ticket_id is None
            assert (c.idle_since is not None) == idle, f"{c.id} idle_since {c.idle_since}"
            assert c.busy_seconds >= 0

    def check_queue_figures_add_up(self) -> None:
        waiting = [t for t in self.state.tickets.values() if t.state == TicketStatus.WAITING]
        for code, q in self.state.queues.items():
            assert len(q) == sum(1 for t in waiting if t.service == code)
            assert 0 <= q.called_within <= q.called
            assert q.service_seconds >= 0
            if q.service.daily_quota is not None:
                assert q.issued <= q.service.daily_quota

    def check_numbers_are_unique_today(self) -> None:
        numbers = [t.number for t in self.state.tickets.values()]
        assert len(numbers) == len(set(numbers))
        for t in self.state.tickets.values():
            prefix = HALL.services[self.issued_to[t.id]].prefix
            assert t.number == f"{prefix}{t.seq:03d}"

    def check_ticket_histories_never_run_backwards(self) -> None:
        # Each new timestamp is checked against the ticket's previous one in `record`.
        for t in self.state.tickets.values():
            assert t.issued_at <= t.enqueued_at
            assert t.last_ts == self.stamps[t.id][-1]

    def check_replaying_the_log_rebuilds_the_live_state(self) -> None:
        if self.replay.day != self.state.day:
            assert self.state.day is not None
            self.replay.roll_to(self.state.day)  # the live state rolled on before any event
        assert summary(self.replay) == self.live_summary()  # totals included
        assert self.replay.totals is not None and self.state.totals is not None
        assert self.replay.totals.to_json() == self.state.totals.to_json()

    def check_a_clone_equals_the_original(self) -> None:
        assert summary(self.state.clone(), totals=False) == summary(self.state, totals=False)

    def teardown(self) -> None:
        # Once per run, the literal version: a fresh state, the whole log replayed.
        fresh = SiteState(HALL)
        for event in self.log:
            fresh.apply(event)
        if fresh.day != self.state.day:
            assert self.state.day is not None
            fresh.roll_to(self.state.day)
        assert summary(fresh, totals=False) == summary(self.state, totals=False)


# Phase.explain is left out: on these long runs it takes minutes (beyond the suite's
# per-test timeout) to annotate which arguments do not matter; shrinking alone is quick.
HallMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestHallMachine = HallMachine.TestCase


# --- priority policies against a model ----------------------------------------------------

POLICY_CASES = (
    ("KTP-EL", "loket-01"),  # strict
    ("PDAM-BAYAR", "loket-23"),  # fifo
    ("KK", "loket-04"),  # interleave 3
    ("AKTA", "loket-04"),  # interleave 2
)


@settings(max_examples=150, deadline=None)
@given(
    case=st.sampled_from(POLICY_CASES),
    ops=st.lists(st.sampled_from(["regular", "priority", "call", "call"]), max_size=40),
)
def test_calls_follow_the_services_priority_policy(case: tuple[str, str], ops: list[str]) -> None:
    service, counter = case
    svc = HALL.services[service]
    live = LiveSite(HALL, ManualClock(MONDAY_9AM))

    # The model: issue order per class, and priority calls in a row.
    priority: list[str] = []
    regular: list[str] = []
    order: list[str] = []
    streak = 0
    live.do(commands.open_counter, counter_id=counter)
    for i, op in enumerate(ops):
        live.clock.advance(30)
        if op != "call":
            tid = f"t{i}"
            live.do(
                commands.issue,
                ticket_id=tid,
                service=service,
                priority="lansia" if op == "priority" else None,
            )
            (priority if op == "priority" else regular).append(tid)
            order.append(tid)
            continue
        expected: str | None
        if svc.priority_policy == "fifo":
            expected = order[0] if order else None
        elif priority and not (
            svc.priority_policy == "interleave" and streak >= svc.priority_interleave and regular
        ):
            expected = priority[0]
            streak += 1
        elif regular:
            expected = regular[0]
            streak = 0
        else:
            expected = None
        try:
            (called,) = live.do(commands.call_next, counter_id=counter)
        except errors.QueueEmpty:
            assert expected is None
            continue
        assert called.ticket_id == expected
        for queue in (priority, regular, order):
            if expected in queue:
                queue.remove(expected)
        live.do(commands.finish, counter_id=counter)
