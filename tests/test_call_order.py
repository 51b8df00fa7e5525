"""One order per queue: what the citizen and the staff are shown is what call-next does.

A property test on the pure domain. Random queues (regular and priority tickets, tickets
transferred in with their original issue time, calls already made, some out of order) under
each priority policy (`strict`, `interleave` with a random N, `fifo`); then the order in
which repeated call-next hands the tickets out (on a copy of the state, each answer applied)
must be the order every read model shows: the ticket status' `position` and
`people_ahead`, the answer to the issue itself (`just_issued`) and the snapshot's ticket
list of each service.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_service import read_models
from queue_service.domain import commands, errors
from queue_service.domain.clock import ManualClock
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import Priority, TicketStatus
from tests.conftest import MONDAY_9AM
from tests.halls import Hall, counter, every_day, service
from tests.live_site import LiveSite

POLICIES = ("strict", "interleave", "fifo")
QUEUES = ("Q1", "Q2")  # served by counter "all"; "T" by counter "t", which transfers on
DRAINS = {"all": QUEUES, "t": ("T",)}


def hall(policies: dict[str, tuple[str, int]]) -> Site:
    """One site: services Q1, Q2 and T with the given (policy, interleave N)."""
    return Hall(
        hours=every_day("00:00", "23:59"),
        services=tuple(
            service(code, prefix=prefix, priority_policy=policy, priority_interleave=n)
            for (code, (policy, n)), prefix in zip(policies.items(), ("A", "B", "T"), strict=True)
        ),
        counters=(counter("all", *QUEUES, name="Loket 1"), counter("t", "T", name="Loket 2")),
    ).site()


def hall_of(q1: tuple[str, int], q2: tuple[str, int], t: tuple[str, int]) -> Site:
    return hall({"Q1": q1, "Q2": q2, "T": t})


class Floor(LiveSite):
    """The hall's live state from Monday 9:00, with new ticket ids."""

    def __init__(self, site: Site) -> None:
        super().__init__(site, ManualClock(MONDAY_9AM))
        self.ids = 0

    def new_id(self) -> str:
        self.ids += 1
        return f"t{self.ids}"


def drained(floor: LiveSite) -> dict[str, list[str]]:
    """Per service, the ticket ids in the order repeated call-next hands them out (on a
    copy of the state; each call's ticket finished before the next call)."""
    copy = floor.clone()
    order: dict[str, list[str]] = {code: [] for code in floor.site.services}
    for counter_id in DRAINS:
        while True:
            try:
                events = copy.do(commands.call_next, counter_id=counter_id)
            except errors.QueueEmpty:
                break
            ticket = copy.state.tickets[events[0].ticket_id or ""]
            order[ticket.service].append(ticket.id)
            copy.do(commands.finish, counter_id=counter_id)
    return order


def check_one_order(hall: LiveSite, just_issued: str | None = None) -> None:
    state, now = hall.state, hall.clock.now()
    order = drained(hall)
    waiting = {
        code: {
            t.id
            for t in state.tickets.values()
            if t.state == TicketStatus.WAITING and t.service == code
        }
        for code in hall.site.services
    }
    for code, ids in order.items():
        assert set(ids) == waiting[code], "call-next did not hand out exactly the waiting tickets"
    snap = read_models.snapshot(state, now)
    for listed in snap["services"]:
        shown = [t["id"] for t in listed["tickets"]]
        assert shown == order[listed["code"]], f"snapshot order of {listed['code']}"
    for code, ids in order.items():
        for index, ticket_id in enumerate(ids):
            status = read_models.ticket_status(state, state.tickets[ticket_id], now)
            assert (status["position"], status["people_ahead"]) == (index + 1, index), (
                f"{status['number']} of {code} is shown at {status['position']}, called "
                f"{index + 1}th"
            )
    if just_issued is not None:
        ticket = state.tickets[just_issued]
        answer = read_models.ticket_status(state, ticket, now, just_issued=True)
        index = order[ticket.service].index(just_issued)
        assert (answer["position"], answer["people_ahead"]) == (index + 1, index), (
            f"the issue answer places {answer['number']} at {answer['position']}, called "
            f"{index + 1}th"
        )


priorities = st.sampled_from((None, None, *Priority))
policy = st.tuples(st.sampled_from(POLICIES), st.integers(1, 4))
issue_to_queue = st.tuples(st.just("issue"), st.sampled_from(QUEUES), priorities)
# A morning's first tickets, then anything: the orders differ once several tickets of both
# classes wait.
first_issues = st.lists(issue_to_queue, min_size=2, max_size=12)
steps = st.lists(
    st.one_of(
        issue_to_queue,
        issue_to_queue,
        st.tuples(st.just("issue"), st.just("T"), priorities),
        st.tuples(st.just("transfer"), st.integers(0, 50), st.sampled_from(QUEUES)),
        st.tuples(st.just("call_next"), st.sampled_from(tuple(DRAINS)), st.none()),
        st.tuples(st.just("call_ticket"), st.integers(0, 50), st.none()),
        st.tuples(st.just("advance"), st.integers(0, 300), st.none()),
    ),
    max_size=40,
)


def waiting_in(state: SiteState, services: tuple[str, ...]) -> list[str]:
    return sorted(
        (
            t.id
            for t in state.tickets.values()
            if t.state == TicketStatus.WAITING and t.service in services
        ),
        key=lambda tid: (state.tickets[tid].issued_at, tid),
    )


@settings(max_examples=400, deadline=None)
@given(q1=policy, q2=policy, t=policy, first=first_issues, steps=steps)
def test_positions_and_snapshot_order_are_the_order_call_next_hands_tickets_out(
    q1: tuple[str, int],
    q2: tuple[str, int],
    t: tuple[str, int],
    first: list[Any],
    steps: list[Any],
) -> None:
    hall = Floor(hall_of(q1, q2, t))
    hall.do(commands.open_counter, counter_id="all")
    hall.do(commands.open_counter, counter_id="t")
    for action, arg, extra in [*first, *steps]:
        issued: str | None = None
        if action == "issue":
            issued = hall.new_id()
            hall.do(commands.issue, ticket_id=issued, service=arg, priority=extra)
        elif action == "transfer":
            # A ticket of T is called at "t" and transferred on: it keeps its original
            # issue time, so it joins its new queue among the tickets issued before it.
            candidates = waiting_in(hall.state, ("T",))
            if not candidates:
                continue
            ticket_id = candidates[arg % len(candidates)]
            hall.do(commands.call_ticket, counter_id="t", ticket_id=ticket_id)
            hall.do(commands.transfer, counter_id="t", to_service=extra)
        elif action == "call_next":
            try:
                hall.do(commands.call_next, counter_id=arg)
            except errors.QueueEmpty:
                continue
            hall.do(commands.finish, counter_id=arg)
        elif action == "call_ticket":
            # Out of order (e.g. an appointment): the priority streak moves too.
            candidates = waiting_in(hall.state, QUEUES)
            if not candidates:
                continue
            hall.do(
                commands.call_ticket, counter_id="all", ticket_id=candidates[arg % len(candidates)]
            )
            hall.do(commands.finish, counter_id="all")
        else:
            hall.clock.advance(arg)
        check_one_order(hall, issued)


def test_interleave_example_regular_ticket_is_told_it_comes_after_n_priority_calls() -> None:
    """The issue's own example: interleave N=2, three priority tickets and a regular one
    waiting; the regular one is called third and is told so."""
    hall = Floor(hall_of(("interleave", 2), ("strict", 3), ("strict", 3)))
    hall.do(commands.open_counter, counter_id="all")
    hall.do(commands.open_counter, counter_id="t")
    for n in range(3):
        hall.do(commands.issue, ticket_id=f"p{n}", service="Q1", priority="lansia")
        hall.clock.advance(10)
    hall.do(commands.issue, ticket_id="r", service="Q1")
    now = hall.clock.now()
    answer = read_models.ticket_status(hall.state, hall.state.tickets["r"], now, just_issued=True)
    assert (answer["position"], answer["people_ahead"]) == (3, 2)
    later = read_models.ticket_status(hall.state, hall.state.tickets["r"], now)
    assert later["position"] == 3
    snap = read_models.snapshot(hall.state, now)
    q1 = next(s for s in snap["services"] if s["code"] == "Q1")
    assert [t["id"] for t in q1["tickets"]] == ["p0", "p1", "r", "p2"]
    assert drained(hall)["Q1"] == ["p0", "p1", "r", "p2"]


def test_a_tie_across_services_after_a_transfer() -> None:
    """Two tickets issued at the same instant with the same number in two services tie in
    (issue time, number) once one is transferred to the other's service: the order is still
    one (the queue key is made total by the ticket id), not both shown first."""
    hall = Floor(hall_of(("strict", 3), ("strict", 3), ("strict", 3)))
    hall.do(commands.open_counter, counter_id="all")
    hall.do(commands.open_counter, counter_id="t")
    hall.do(commands.issue, ticket_id="a", service="Q1")  # A001 ...
    hall.do(commands.issue, ticket_id="b", service="T")  # ... and T001, at the same instant
    hall.do(commands.call_ticket, counter_id="t", ticket_id="b")
    hall.do(commands.transfer, counter_id="t", to_service="Q1")
    check_one_order(hall)
