"""Estimated wait: the predictors, pure functions of a site's live state and the time.

Two predictors, both measured by `bench/ewt.py` over simulated days (docs/estimate.md):

- `baseline`: what queue systems ship: position x average handle time / open counters.
- `shipped`: what citizens are shown (`SiteState.estimated_wait_seconds`), on the kiosk,
  the ticket, the status page, the board and `qms_queue_predicted_wait_seconds`. A
  queue-length predictor driven by the service's *recently observed call rate per open
  counter while tickets waited* (it already reflects counters shared with other services,
  slow or fast officers, walking, recalls and no-shows), blended with a capacity prior
  while today has few calls, scaled to the counters open (or paused) now, with an
  abandonment (cancellation) term, idle counters calling the first tickets at once, and a
  configured break that the wait runs into added.

The live state keeps what `shipped` reads, maintained in O(1) per event by `state.py`:
per service the open counters (and their share of each counter), the busy area (counter-
seconds open while tickets waited) and the last `RECENT_CALLS` first calls with the busy
area at each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queue_service.domain.state import ServiceQueue, SiteState, Ticket

_OPEN, _PAUSED = "open", "paused"  # state.COUNTER_* (state imports this module)
RECENT_CALLS = 40  # first calls kept per service (a deque; the window below cuts it)


@dataclass(frozen=True, slots=True)
class Params:
    """Tuning of `shipped`, calibrated on simulated days with seeds never used to evaluate
    (`python -m bench ewt --calibrate`; docs/estimate.md)."""

    window_seconds: float = 7200.0  # calls older than this do not inform the rate
    prior_calls: float = 20.0  # weight of the capacity prior, in calls
    paused_weight: float = 1.0  # a paused counter counts as this share of an open one
    margin: float = 0.0  # relative safety margin on the queue term
    # Share of the head-of-line floor ("never below what the tickets ahead have waited
    # beyond this one"). Evaluated and rejected: it raises the MAE on every profile (it
    # carries the lunch break and one slow head into every new ticket); see docs/estimate.md.
    floor: float = 0.0
    idle: bool = True  # open counters holding nothing call the first tickets at once
    reaction_seconds: float = 60.0  # added: an idle officer notices a new ticket


DEFAULT = Params()


def baseline(
    state: SiteState, service: str, ahead: int, now: datetime, ticket: Ticket | None = None
) -> float | None:
    """Position x average handle time / open counters; None without an open counter."""
    q = state.queues[service]
    if q.open_now == 0:
        return None
    return (ahead + 1) * state.average_service_seconds(service) / q.open_now


def busy_area(q: ServiceQueue, now: datetime) -> float:
    """Counter-seconds the service's counters were open while its tickets waited, to `now`."""
    area = q.busy_area
    if q.area_at is not None and q.open_now and (q.priority or q.regular) and now > q.area_at:
        area += q.open_now * (now - q.area_at).total_seconds()
    return area


def call_rate_per_counter(
    state: SiteState, service: str, now: datetime, params: Params = DEFAULT
) -> float:
    """Calls per second per open counter while tickets wait: observed, with a prior.

    The prior is the capacity the configuration implies: each open counter gives the
    service its share (1 / the services it serves) of one ticket per average handle time.
    """
    q = state.queues[service]
    share = q.open_share / q.open_now if q.open_now else 1.0
    # (a day of instant finishes has an average of 0 s: a second is the least a visit takes)
    prior = share / max(1.0, state.average_service_seconds(service))
    calls, area = _window(q, now, params)
    w = params.prior_calls
    return (calls + w) / (area + w / prior)


def _window(q: ServiceQueue, now: datetime, params: Params) -> tuple[int, float]:
    """(calls, busy area) of the service within the rate window."""
    recent = q.recent
    if not recent:
        return 0, 0.0
    since = now - timedelta(seconds=params.window_seconds)
    # The reference point: the last call before the window, else the oldest kept.
    ref = 0
    for i, entry in enumerate(recent):
        if entry[0] >= since:
            break
        ref = i
    return len(recent) - 1 - ref, busy_area(q, now) - recent[ref][1]


def shipped(
    state: SiteState,
    service: str,
    ahead: int,
    now: datetime,
    ticket: Ticket | None = None,
    params: Params = DEFAULT,
) -> float | None:
    """The estimate shown to citizens: seconds until `ticket` (or a ticket issued now with
    `ahead` tickets before it) is called. None when no counter is open or coming back from
    a configured break."""
    q = state.queues[service]
    counters: float = q.open_now
    extra = 0.0
    brk = None
    if counters and params.paused_weight:
        counters += params.paused_weight * _paused(state, service)
    if counters == 0:
        # A break: counters paused for it come back when it ends.
        brk = state.site.current_break(now)
        if brk is None:
            return None
        counters = _paused(state, service)
        if counters == 0:
            return None
        end = _local_at(state, now, brk.end)
        extra = max(0.0, (end - now).total_seconds())
    rate = call_rate_per_counter(state, service, now, params) * counters
    # Abandonment: tickets ahead that will be cancelled are never called.
    gone = q.cancelled / (q.called + q.cancelled + 20)
    position = ahead * (1.0 - gone) + 1.0
    if params.idle and brk is None:
        position = max(0.0, position - _idle(state, service))
    queue_term = position / rate * (1.0 + params.margin)
    estimate = extra + queue_term + params.reaction_seconds
    if brk is None:
        estimate += _breaks_ahead(state, now, estimate)
    if params.floor:
        estimate = max(estimate, _head_of_line(q, ticket, now) * params.floor)
    return estimate


def _idle(state: SiteState, service: str) -> int:
    """Open counters serving `service` that hold no ticket: they call the next at once."""
    counters = state.counters
    return sum(
        1
        for cid in state.counters_of[service]
        if (c := counters[cid]).state == _OPEN and c.ticket_id is None
    )


def _paused(state: SiteState, service: str) -> int:
    """Paused counters serving `service` (a pause ends; they are coming back)."""
    counters = state.counters
    return sum(1 for cid in state.counters_of[service] if counters[cid].state == _PAUSED)


def _head_of_line(q: ServiceQueue, ticket: Ticket | None, now: datetime) -> float:
    """How much longer than `ticket` (or a ticket issued now) the oldest ticket called
    before it has waited: a queue that served them in order will not call it sooner."""
    joined = now if ticket is None else ticket.enqueued_at
    oldest = joined
    pools: tuple[dict[str, Ticket], ...] = (q.priority, q.regular)
    if ticket is not None and ticket.priority is not None and q.uses_priority():
        pools = (q.priority,)
    for pool in pools:
        for t in pool.values():
            if t.enqueued_at < oldest:
                oldest = t.enqueued_at
    return (joined - oldest).total_seconds()


def _local_at(state: SiteState, now: datetime, at: time) -> datetime:
    return state.site.local(now).replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)


def _breaks_ahead(state: SiteState, now: datetime, wait: float) -> float:
    """Seconds of today's configured breaks that begin within `wait` from now (the counters
    pause for them), extending the wait by each break that starts before the call."""
    site = state.site
    if not site.breaks:
        return 0.0
    local = site.local(now)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    added = 0.0
    for brk in site.breaks:
        if day not in brk.days:
            continue
        start = _local_at(state, now, brk.start)
        end = _local_at(state, now, brk.end)
        if local < start and (start - local).total_seconds() < wait + added:
            added += (end - start).total_seconds()
    return added


Predictor = Callable[["SiteState", str, int, datetime, "Ticket | None"], "float | None"]
PREDICTORS: dict[str, Predictor] = {"baseline": baseline, "shipped": shipped}
