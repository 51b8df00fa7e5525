"""Estimated wait: the predictors, pure functions of a site's live state and the time.

Two predictors, both measured by `bench/ewt.py` over simulated days (docs/estimate.md):

- `baseline`: what queue systems ship: position x average handle time / open counters.
- `shipped`: what citizens are shown (`SiteState.estimated_wait_seconds`), on the kiosk,
  the ticket, the status page, the board and `qms_queue_predicted_wait_seconds`. A
  queue-length predictor (Ibrahim & Whitt) with abandonment: the tickets ahead are called
  at the service's *observed* call rate (the blend of the rate per open counter while
  tickets waited and the rate its handling time per call allows), scaled to the counters
  open now and to those expected (paused ones after their expected remaining pause, ones
  not opened yet after the hall's usual opening delay, both learned from the day);
  meanwhile tickets ahead leave at the service's *observed* abandonment rate
  (cancellations and no-shows per ticket-second of waiting); idle counters call the first
  tickets at once; a configured break stops the calls (but not the leaving) for its length.

The live state keeps what `shipped` reads, maintained in O(1) per event by `state.py`:
per service the open counters (and their share of each counter), the busy area (counter-
seconds open while tickets waited), the waiting area (ticket-seconds waited), the handling
time of its calls (first call to release) and the last `RECENT_CALLS` first calls with the
busy area at each; per site today's finished pauses per reason and the counters' first
opens (`SiteState.pause_lengths`, `first_opens`, `first_open_delay`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from queue_service.domain.site import WEEKDAYS, EndOfDay, Site
from queue_service.domain.vocab import BookingEntry

if TYPE_CHECKING:
    from queue_service.domain.state import ServiceQueue, SiteState, Ticket

_OPEN, _PAUSED, _CLOSED = "open", "paused", "closed"  # state.COUNTER_* (state imports us)
RECENT_CALLS = 40  # first calls kept per service (a deque; the window below cuts it)


@dataclass(frozen=True, slots=True)
class Params:
    """Tuning of `shipped`, calibrated on simulated days with seeds never used to evaluate
    (`python -m bench ewt --calibrate --days 30`, seeds 1001-1030; docs/estimate.md)."""

    window_seconds: float = 7200.0  # calls older than this do not inform the busy rate
    prior_calls: float = 20.0  # weight of the capacity prior of the busy rate, in calls
    # Share of the handling-time rate in the call rate (the rest: the busy rate). The busy
    # rate reads too fast after quiet spells (an idle officer calls a lone ticket at once);
    # the handling-time rate ignores the time between a release and the next call.
    handling_weight: float = 0.7
    handling_prior_calls: float = 50.0  # weight of the configured handle time, in calls
    walk_seconds: float = 20.0  # a walk to the counter, added to the configured handle time
    # A counter paused outside a configured break is away for the expected length of a
    # pause of its reason, learned from today's finished pauses (`expected_pause`): the
    # reason's mean with the hall's as its prior, the hall's with `pause_prior_seconds` as
    # its prior, each weighing `pause_prior_weight` pauses. It comes back when that length
    # is over, at least `return_floor_seconds` from now (also an officer late back from a
    # configured break).
    pause_prior_seconds: float = 1200.0
    pause_prior_weight: float = 3.0
    return_floor_seconds: float = 120.0
    # A counter of the service not opened yet today comes at the hall's usual delay after
    # the opening hour, learned from today's first opens (`expected_opening_delay`, with
    # `opening_prior_seconds` weighing `opening_prior_weight` opens), counted as this
    # share of an open one, until `unopened_give_up` usual delays have passed (then it is
    # taken as not staffed today, unless no other counter of the service is open or
    # coming: then it is expected a usual delay from now).
    unopened_weight: float = 0.5
    opening_prior_seconds: float = 1800.0
    opening_prior_weight: float = 3.0
    unopened_give_up: float = 3.0
    abandonment: bool = True  # tickets ahead leave at the observed abandonment rate
    # A no-show counts as this share of a leaver (most no-shows left the
    # hall, but each still takes a short call cycle at a counter).
    no_show_weight: float = 0.5
    abandon_prior_seconds: float = 5 * 3600.0  # ticket-seconds of waiting, none left
    margin: float = 0.04  # relative safety margin on the call rate
    # Share of the head-of-line floor ("never below what the tickets ahead have waited
    # beyond this one"). Evaluated and rejected: it raises the MAE on every profile (it
    # carries the lunch break and one slow head into every new ticket); see docs/estimate.md.
    floor: float = 0.0
    idle: bool = True  # open counters holding nothing call the first tickets at once
    # The first call, when every open counter is busy, comes when the first of them is
    # done: average handle time of its ticket's service less the time it has held it
    # (plus a walk while not started), at least this share of the average.
    first_call: bool = True
    first_call_floor: float = 0.2
    # Added to every estimate: an officer's reaction to a new ticket and what the model
    # leaves out on average (calibrated with the margin so that no profile's bias is < 0).
    reaction_seconds: float = 75.0
    # The range (`shipped_range`): the wait as gamma distributed about the point, with a
    # relative variance of `range_dispersion` / calls to come (the service times of the
    # tickets ahead) plus `range_rate_cv` squared (how far the hall's rate strays from the
    # observed one); its `range_z` normal quantiles (1.2816: 10% and 90%, 80% coverage).
    # Calibrated on seeds 1001-1005 (82-83% inside on quiet, typical and overloaded days).
    range_dispersion: float = 0.7
    range_rate_cv: float = 0.15
    range_z: float = 1.2816


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


def waiting_area(q: ServiceQueue, now: datetime) -> float:
    """Ticket-seconds the service's tickets have waited today, to `now`."""
    area = q.wait_area
    if q.area_at is not None and now > q.area_at:
        area += (len(q.priority) + len(q.regular)) * (now - q.area_at).total_seconds()
    return area


def _share(q: ServiceQueue) -> float:
    """The service's share of its average open counter (1 / the services it serves)."""
    return q.open_share / q.open_now if q.open_now else 1.0


def call_rate_per_counter(
    state: SiteState, service: str, now: datetime, params: Params = DEFAULT
) -> float:
    """Calls per second per open counter while tickets wait: observed, with a prior.

    The prior is the capacity the configuration implies: each open counter gives the
    service its share (1 / the services it serves) of one ticket per average handle time.
    """
    q = state.queues[service]
    # (a day of instant finishes has an average of 0 s: a second is the least a visit takes)
    prior = _share(q) / max(1.0, state.average_service_seconds(service))
    calls, area = _window(q, now, params)
    w = params.prior_calls
    return (calls + w) / (area + w / prior)


def handling_rate_per_counter(state: SiteState, service: str, params: Params = DEFAULT) -> float:
    """Calls per second per open counter that the handling time allows: the counter's
    share over the mean time from a call to its release (walking, recalls, service and
    no-shows included), with the configured handle time plus a walk as the prior."""
    q = state.queues[service]
    w = params.handling_prior_calls
    prior = q.service.default_service_minutes * 60 + params.walk_seconds
    per_call = (q.handled_seconds + w * prior) / (q.handled + w)
    return _share(q) / max(1.0, per_call)


def rate_per_counter(
    state: SiteState, service: str, now: datetime, params: Params = DEFAULT
) -> float:
    """The call rate per counter `shipped` uses: the busy and handling-time rates blended."""
    h = params.handling_weight
    busy = call_rate_per_counter(state, service, now, params) if h < 1.0 else 0.0
    handling = handling_rate_per_counter(state, service, params) if h > 0.0 else 0.0
    return (1.0 - h) * busy + h * handling


def abandonment_rate(q: ServiceQueue, now: datetime, params: Params = DEFAULT) -> float:
    """Leavers per second per waiting ticket: cancellations and (weighted) no-shows over
    the ticket-seconds waited today, with a prior of `abandon_prior_seconds` without any."""
    left = q.cancelled + params.no_show_weight * q.no_shows
    return left / (waiting_area(q, now) + params.abandon_prior_seconds)


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


def time_to_call(n: float, rate: float, theta: float) -> float:
    """Seconds until `n` more calls, at `rate` calls per second, while each ticket ahead
    leaves at `theta` per second: dn/dt = -(rate + theta n) gives ln(1 + n theta/rate)/theta
    (n / rate without leaving)."""
    if n <= 0.0:
        return 0.0
    if theta <= 0.0:
        return n / rate
    return math.log1p(n * theta / rate) / theta


def _left_after(n: float, rate: float, theta: float, seconds: float) -> float:
    """Calls still to come (of `n`) after `seconds` of calling at `rate` with leaving."""
    if theta <= 0.0:
        return n - rate * seconds
    return (n + rate / theta) * math.exp(-theta * seconds) - rate / theta


# Bookings (antrian online) checked in by the end of their window, of those whose fate is
# known, and the weight of that prior in bookings, until the day has its own share.
SHOW_UP_PRIOR = (0.8, 5.0)


def show_up(state: SiteState) -> float:
    """The share of today's bookings that were checked in, of those checked in or missed
    (SHOW_UP_PRIOR while the day has few of its own)."""
    if state.day is None:
        checked = missed = 0
    else:
        day = state.bookings.day_figures(state.site, state.day)
        checked, missed = day.checked_in, day.missed
    share, weight = SHOW_UP_PRIOR
    return (checked + share * weight) / (checked + missed + weight)


def shipped(
    state: SiteState,
    service: str,
    ahead: int,
    now: datetime,
    ticket: Ticket | None = None,
    params: Params = DEFAULT,
) -> float | None:
    """The estimate shown to citizens: seconds until `ticket` (or a ticket issued now with
    `ahead` tickets before it) is called. None only when no counter of the service is open,
    paused or still to open today (`queue_estimate`).

    Where a service calls its bookings ahead of walk-ins (`at_slot`, `priority`), the
    bookings that fall due before a walk-in's call are ahead of it too: those checked in
    and waiting for their due time, and those not checked in yet whose slot starts by then
    (times the day's show-up share). The call time depends on them, so it is looked at
    twice: with the first answer's horizon, then the second's. A booked ticket's own
    `ahead` counts the bookings due by its due time already (bench/EWT.md, section d)."""
    told = queue_estimate(state, service, ahead, now, ticket, params)
    policy = state.site.services[service].booking
    if (
        told is None
        or policy is None
        or policy.entry == BookingEntry.FIFO
        or state.day is None
        or (ticket is not None and ticket.due_at is not None)
    ):
        return told
    waiting = [t.due_at for t in state.queues[service].regular.values() if t.due_at is not None]
    coming = state.bookings.day_figures(state.site, state.day).coming.get(service, [])
    if not waiting and not coming:
        return told
    rate = show_up(state)
    for _ in range(2):
        horizon = now + timedelta(seconds=told)
        due = sum(now < at <= horizon for at in waiting) + rate * sum(
            now < at <= horizon for at in coming
        )
        again = queue_estimate(state, service, ahead + round(due), now, ticket, params)
        if again is None:
            break
        told = again
    return told


def shipped_range(
    state: SiteState,
    service: str,
    ahead: int,
    now: datetime,
    ticket: Ticket | None = None,
    params: Params = DEFAULT,
) -> tuple[float, float, float] | None:
    """(low, point, high) seconds: the point is `shipped`'s estimate, the range about it
    aims to hold 80% of actual waits. The wait is taken as gamma distributed with the
    point as its mean and a relative variance of `range_dispersion / (ahead + 1)` (the
    service times of the calls to come) plus `range_rate_cv` squared (the rate to come
    against the one observed); low and high are its quantiles at `-range_z` and `range_z`
    (Wilson-Hilferty). None when `shipped` gives none."""
    point = shipped(state, service, ahead, now, ticket, params)
    if point is None:
        return None
    low, high = interval(point, ahead, params)
    return low, point, high


def interval(point: float, ahead: int, params: Params = DEFAULT) -> tuple[float, float]:
    """The range about an estimate `point` of a ticket with `ahead` tickets before it
    (`shipped_range`'s): what the status page and the printed ticket show with the point,
    for a point told at issue too."""
    variance = params.range_dispersion / (ahead + 1.0) + params.range_rate_cv**2
    return point * gamma_ratio(variance, -params.range_z), point * gamma_ratio(
        variance, params.range_z
    )


def gamma_ratio(variance: float, z: float) -> float:
    """The quantile at the normal quantile `z` of a gamma variable of mean 1 and the given
    variance, over its mean (Wilson-Hilferty: a gamma of shape k is about k times the cube
    of a normal of mean 1 - 1/(9k) and variance 1/(9k)); never below 0."""
    if variance <= 0.0:
        return 1.0
    spread = variance / 9.0  # 1 / (9 k), the shape k = 1 / variance
    return max(0.0, 1.0 - spread + z * math.sqrt(spread)) ** 3


def queue_estimate(
    state: SiteState,
    service: str,
    ahead: int,
    now: datetime,
    ticket: Ticket | None = None,
    params: Params = DEFAULT,
) -> float | None:
    """Seconds until `ticket` (or a ticket issued now with `ahead` tickets before it) is
    called from the queue as it stands. None only when no counter of the service is open,
    paused or still to open today.

    The ticket is called after `ahead + 1` calls less the idle counters'. Calls come at the
    rate per counter times the counters open, joined by the paused ones when their
    expected pause is over (`pause_left`) and by those not opened yet at the hall's usual
    opening delay (`opening_left`); each ticket still ahead leaves at the abandonment
    rate. A configured break stops the calls for its length while tickets ahead keep
    leaving; during one, the counters paused for it come back at its end.
    """
    q = state.queues[service]
    site = state.site
    local = site.local(now)
    weekday = WEEKDAYS[local.weekday()]
    # One pass over the service's counters: paused (since when, why), idle, not opened yet.
    counters = state.counters
    idle = unopened = 0
    paused: list[tuple[datetime | None, str | None]] = []
    for cid in state.counters_of[service]:
        c = counters[cid]
        if c.state == _OPEN:
            if c.ticket_id is None:
                idle += 1
        elif c.state == _PAUSED:
            paused.append((c.since, c.reason))
        elif c.since is None:
            unopened += 1
    # Today's configured breaks: the one under way (its end), those still to come.
    current_end: datetime | None = None
    stops: list[tuple[float, float]] = []  # (seconds from now, length): no calls
    for b in site.breaks:
        if weekday not in b.days:
            continue
        begins, ends = _at(local, b.start), _at(local, b.end)
        if begins <= local < ends:
            current_end = ends
        elif local < begins:
            stops.append(((begins - local).total_seconds(), (ends - begins).total_seconds()))
    in_break = current_end is not None and bool(paused)
    # Counters coming: (seconds from now, counters) joining the open ones.
    coming: list[tuple[float, float]] = []
    if in_break:
        assert current_end is not None
        n_counters = float(q.open_now + len(paused))  # open ones pause after their ticket
        stops.append((0.0, max(0.0, (current_end - local).total_seconds())))
    else:
        n_counters = float(q.open_now)
        coming = [(pause_left(state, since, reason, now, params), 1.0) for since, reason in paused]
        if unopened and params.unopened_weight:
            expected = opening_left(state, now, params, alone=not (q.open_now or coming))
            if expected is not None:
                coming.append((expected, params.unopened_weight * unopened))
        if not q.open_now and not coming:
            return None
    per_counter = rate_per_counter(state, service, now, params) / (1.0 + params.margin)
    theta = abandonment_rate(q, now, params) if params.abandonment else 0.0
    n = ahead + 1.0
    if not in_break and params.idle:
        n = max(0.0, n - idle)
    stops.sort()
    t = 0.0  # seconds from now
    if params.first_call and not in_break and n >= 1.0 and not idle and n_counters:
        first = _first_release(state, service, now, params)
        if first is not None:
            first = min(first, 1.0 / (per_counter * n_counters))
            if not stops or first < stops[0][0]:
                t, n = first, n - 1.0
    estimate = _called_after(n, t, n_counters, coming, stops, per_counter, theta)
    estimate += params.reaction_seconds
    if params.floor:
        estimate = max(estimate, _head_of_line(q, ticket, now) * params.floor)
    return estimate


def _called_after(
    n: float,
    t: float,
    open_now: float,
    coming: list[tuple[float, float]],
    stops: list[tuple[float, float]],
    per_counter: float,
    theta: float,
) -> float:
    """Seconds from now until `n` more calls, from `t` on: `open_now` counters and those
    `coming` (seconds from now, counters) call at `per_counter` each, none during the
    `stops` (seconds from now, length: configured breaks); meanwhile each ticket ahead
    leaves at `theta` per second. Piecewise: the counters and the stops change only at the
    listed times. Some counter must be open or coming."""
    bounds = sorted(
        {at for at, _ in coming if at > t}
        | {at for start, length in stops for at in (start, start + length) if at > t}
    )
    i = 0
    while n > 0.0:
        until = bounds[i] if i < len(bounds) else math.inf
        stopped = any(start <= t < start + length for start, length in stops)
        rate = 0.0 if stopped else per_counter * (open_now + sum(k for at, k in coming if at <= t))
        if rate > 0.0:
            need = time_to_call(n, rate, theta)
            if t + need <= until:
                return t + need
            n = _left_after(n, rate, theta, until - t)
        elif n > 1.0:  # the tickets ahead (not this one) keep leaving
            n = 1.0 + (n - 1.0) * math.exp(-theta * (until - t))
        t = until
        i += 1
    return t


def expected_pause(state: SiteState, reason: str | None, params: Params = DEFAULT) -> float:
    """Seconds a pause for `reason` lasts, learned from today's finished pauses outside
    configured breaks: the reason's mean with the hall's mean as its prior, the hall's with
    `pause_prior_seconds` as its prior (each prior weighing `pause_prior_weight` pauses)."""
    w = params.pause_prior_weight
    lengths = state.pause_lengths
    hall = (sum(s for _, s in lengths.values()) + w * params.pause_prior_seconds) / (
        sum(k for k, _ in lengths.values()) + w
    )
    k, seconds = lengths.get(reason or "", (0, 0.0))
    return (seconds + w * hall) / (k + w)


def pause_left(
    state: SiteState,
    since: datetime | None,
    reason: str | None,
    now: datetime,
    params: Params = DEFAULT,
) -> float:
    """Seconds until a counter paused `since` for `reason` is expected back (not during a
    configured break): the expected pause less the time it has been away, at least
    `return_floor_seconds`; the floor alone for a pause begun in a configured break that
    is over (an officer late back from it)."""
    floor = params.return_floor_seconds
    if since is None or state.site.current_break(since) is not None:
        return floor
    away = (now - since).total_seconds()
    return max(expected_pause(state, reason, params) - away, floor)


def opening_delay(site: Site, ts: datetime) -> float | None:
    """Seconds from the site's opening hour today to `ts` (negative before it); None on a
    day without hours, or one the site stays open into from the day before (nobody opens
    a counter at its midnight: a counter not reopened since is not staffed at night)."""
    local = site.local(ts)
    weekday = WEEKDAYS[local.weekday()]
    hours = site.hours.get(weekday)
    if hours is None or site.continues_day_before(weekday):
        return None
    return (local - _at(local, hours[0])).total_seconds()


def expected_opening_delay(state: SiteState, params: Params = DEFAULT) -> float:
    """Seconds after the opening hour the hall's counters open: today's first opens, with
    `opening_prior_seconds` weighing `opening_prior_weight` opens as the prior."""
    w = params.opening_prior_weight
    return (state.first_open_delay + w * params.opening_prior_seconds) / (state.first_opens + w)


def opening_left(
    state: SiteState, now: datetime, params: Params = DEFAULT, *, alone: bool = False
) -> float | None:
    """Seconds until a counter not opened yet today is expected to open: the usual delay
    less the time since the opening hour, at least `return_floor_seconds`. None once
    `unopened_give_up` usual delays have passed, or on a day without an opening hour (not
    staffed today); but when it is `alone` (no other counter of the service open or
    coming), a usual delay from now."""
    usual = expected_opening_delay(state, params)
    since = opening_delay(state.site, now)
    if since is None or since > params.unopened_give_up * usual:
        return usual if alone else None
    return max(usual - since, params.return_floor_seconds)


def _first_release(state: SiteState, service: str, now: datetime, params: Params) -> float | None:
    """Expected seconds until the first open counter serving `service` releases its ticket
    (None when none holds one)."""
    counters, tickets = state.counters, state.tickets
    first: float | None = None
    for cid in state.counters_of[service]:
        c = counters[cid]
        if c.state != _OPEN or c.ticket_id is None:
            continue
        t = tickets[c.ticket_id]
        handle = state.average_service_seconds(t.service)
        if t.started_at is not None:
            left = handle - (now - t.started_at).total_seconds()
        elif t.last_called_at is not None:
            left = handle + params.walk_seconds - (now - t.last_called_at).total_seconds()
        else:  # (a held ticket was called)
            continue
        left = max(params.first_call_floor * handle, left)
        if first is None or left < first:
            first = left
    return first


def _at(local: datetime, at: time | EndOfDay) -> datetime:
    """`at` on the local day of `local`; 24:00 (a break ending with the day) is the next
    day's 00:00."""
    if isinstance(at, EndOfDay):
        return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)


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


Predictor = Callable[["SiteState", str, int, datetime, "Ticket | None"], "float | None"]
PREDICTORS: dict[str, Predictor] = {"baseline": baseline, "shipped": shipped}
