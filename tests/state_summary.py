"""One canonical, comparable picture of a `SiteState`, for the tests that hold two ways of
building a state to the same result (replay against live apply, a clone against its
original, a log replayed from scratch against the state that wrote it)."""

from __future__ import annotations

import operator
from typing import Any

from queue_service.domain.state import CounterState, ServiceQueue, SiteState, Ticket

_ticket_fields = operator.attrgetter(*Ticket.__slots__)
_counter_fields = operator.attrgetter(*CounterState.__slots__)
# Every figure of a queue but its service (configuration) and its tickets (compared by id,
# in queue order, class by class).
_queue_figures = operator.attrgetter(
    *(name for name in ServiceQueue.__slots__ if name not in ("service", "priority", "regular"))
)


def summary(state: SiteState, *, totals: bool = True) -> dict[str, Any]:
    """The state's day, last event, tickets, queues (order and figures, the estimator's
    inputs included) and counters; with `totals`, its cumulative totals too (None when it
    keeps none). A clone keeps no totals: compare it with `totals=False`."""
    out: dict[str, Any] = {
        "day": state.day,
        "last_seq": state.last_seq,
        "last_ts": state.last_ts,
        "tickets": {tid: _ticket_fields(t) for tid, t in state.tickets.items()},
        "queues": {
            code: (tuple(q.priority), tuple(q.regular), _queue_figures(q))
            for code, q in state.queues.items()
        },
        "counters": {cid: _counter_fields(c) for cid, c in state.counters.items()},
    }
    if totals:
        # Histograms compare by bounds, counts, sum and count.
        out["totals"] = None if state.totals is None else dict(vars(state.totals))
    return out
