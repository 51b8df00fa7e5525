"""The estimated wait: the predictors on hand-computed states, and its accountability (the
estimate a ticket was given is kept, also across a restart, and its error is recorded at
the call, replayed, exported on /metrics and shown in the ticket_visits view)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from queue_service import read_models
from queue_service.config import AppConfig
from queue_service.domain import commands, estimate
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.site import WEEKDAYS, Site
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.domain.vocab import EventType, Role, Source
from queue_service.engine import Engine
from queue_service.settings import Settings
from queue_service.simulate.offline import run_day
from queue_service.simulate.profiles import profile, sample_hall
from tests.conftest import KIOSK, MANAGER, SITE, counter_auth
from tests.halls import Bearer, Hall, every_day, numbered_counters, service
from tests.live_site import LiveSite
from tests.state_summary import summary
from tests.test_engine import store_holding
from tests.test_metrics import pick, scrape
from tests.test_perf_replay import applied_and_replayed, day_of

# Monday 23 November 2026 in WITA (UTC+8).
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 WITA
M = 300.0  # default_service_minutes 5: the capacity prior's handle time
P = estimate.DEFAULT
REACTION = P.reaction_seconds
WALKED = M + P.walk_seconds  # the handling-time prior: configured handle time and a walk


def calls_per_second(busy_per_counter: float, handled_per_call: float, counters: float) -> float:
    """The call rate `shipped` uses: busy and handling-time rates blended, less the margin."""
    w = P.handling_weight
    per_counter = (1 - w) * busy_per_counter + w / handled_per_call
    return per_counter * counters / (1 + P.margin)


def wita(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 23, hh - 8, mm, ss, tzinfo=UTC)


LUNCH = {"days": ["mon"], "start": "12:00", "end": "13:00", "label": "Istirahat"}


def hall(counters: int, breaks: bool = False) -> Site:
    """One service Q (5 minutes default handle time), `counters` counters serving only Q."""
    return hall_config(counters, breaks).sites["hall"]


def hall_config(counters: int, breaks: bool = False) -> AppConfig:
    return Hall(
        hours=every_day(days=WEEKDAYS[:5]),
        breaks=[LUNCH] if breaks else [],
        services=(service("Q", default_service_minutes=5),),
        counters=numbered_counters(counters),
        tokens=(Bearer("x", Role.ADMIN),),
    ).config()


class Day(LiveSite):
    """A site's live state on a manual clock from `start`, with its totals."""

    def __init__(self, site: Site, start: datetime = T0) -> None:
        bounds = wait_bounds(s.target_wait_seconds for s in site.services.values())
        super().__init__(site, ManualClock(start), SiteTotals(site.services, site.counters, bounds))

    def at(self, instant: datetime) -> Day:
        self.clock.set(instant)
        return self

    def issue(self, ticket_id: str) -> Event:
        (e,) = self.do(commands.issue, ticket_id=ticket_id, service="Q")
        return e

    def shipped(self, ahead: int) -> float | None:
        return estimate.shipped(self.state, "Q", ahead, self.clock.now())


# -- the predictors, hand-computed -----------------------------------------------------


def test_baseline_is_position_times_average_handle_time_over_open_counters() -> None:
    d = Day(hall(2))
    for cid in ("c00", "c01"):
        d.do(commands.open_counter, counter_id=cid)
    for tid in ("t1", "t2", "t3"):
        d.issue(tid)
    d.do(commands.call_next, counter_id="c00")
    d.do(commands.start, counter_id="c00")
    d.do(commands.call_next, counter_id="c01")
    d.do(commands.start, counter_id="c01")
    d.at(T0 + timedelta(seconds=300)).do(commands.finish, counter_id="c00")
    d.at(T0 + timedelta(seconds=500)).do(commands.finish, counter_id="c01")
    # Average handle time (300 + 500) / 2 = 400 s; 3 ahead: position 4; 2 open counters.
    assert estimate.baseline(d.state, "Q", 3, d.clock.now()) == 4 * 400 / 2
    d.do(commands.close_counter, counter_id="c00")
    d.do(commands.close_counter, counter_id="c01")
    assert estimate.baseline(d.state, "Q", 3, d.clock.now()) is None


def test_shipped_uses_the_call_rate_per_counter_observed_while_tickets_waited() -> None:
    d = Day(hall(2))
    d.do(commands.open_counter, counter_id="c00")
    d.do(commands.open_counter, counter_id="c01")
    for tid in ("t1", "t2", "t3", "t4"):
        d.issue(tid)
    d.at(T0 + timedelta(seconds=60)).do(commands.call_next, counter_id="c00")
    d.at(T0 + timedelta(seconds=120)).do(commands.call_next, counter_id="c01")
    d.at(T0 + timedelta(seconds=180))
    q = d.state.queues["Q"]
    # Two open counters while tickets waited: 2 x 60 s to each call, 2 x 60 s since.
    assert (q.open_now, q.busy_area) == (2, 240.0)
    assert list(q.recent) == [
        (T0 + timedelta(seconds=60), 120.0),
        (T0 + timedelta(seconds=120), 240.0),
    ]
    assert estimate.busy_area(q, d.clock.now()) == 360.0
    # Tickets waiting: 4 x 60 s, 3 x 60 s, then 2 x 60 s to now.
    assert estimate.waiting_area(q, d.clock.now()) == 540.0
    # One call after the oldest kept, in 360 - 120 = 240 counter-seconds, with a prior of
    # 20 calls at one per 300 s: (1 + 20) / (240 + 20 x 300) calls per second per counter.
    busy = 21 / 6240
    assert estimate.call_rate_per_counter(d.state, "Q", d.clock.now()) == pytest.approx(busy)
    # Nothing released yet: the handling time per call is the prior, 300 s and a walk.
    assert estimate.handling_rate_per_counter(d.state, "Q") == pytest.approx(1 / WALKED)
    rate = calls_per_second(busy, WALKED, 2)
    # A ticket issued now has 2 ahead (position 3); both counters are busy (none idle).
    # The first of them to be done (c00: 300 s and a walk less the 120 s since its call)
    # is later than the mean time between calls, so the calls come at the rate: 3 calls.
    assert 1 / rate < WALKED - 120
    expected = 3 / rate + REACTION
    assert d.shipped(2) == pytest.approx(expected)
    assert d.state.estimated_wait_seconds("Q", 2, d.clock.now()) == pytest.approx(expected)


def test_the_first_call_comes_when_the_first_busy_counter_is_done() -> None:
    d = Day(hall(1))
    d.do(commands.open_counter, counter_id="c00")
    d.issue("t1")
    d.do(commands.call_next, counter_id="c00")
    d.do(commands.start, counter_id="c00")
    # 200 s into a visit of 300 s on average: 100 s left, then the ticket issued now.
    d.at(T0 + timedelta(seconds=200))
    assert d.shipped(0) == pytest.approx(100 + REACTION)
    # Past the average: at least the floor's share of it (0.2 x 300 s) is still to come.
    d.at(T0 + timedelta(seconds=400))
    assert d.shipped(0) == pytest.approx(P.first_call_floor * M + REACTION)
    # The next positions follow at the call rate (no call in the window since the only
    # one; busy area 0: the prior alone).
    rate = calls_per_second(1 / M, WALKED, 1)
    assert d.shipped(1) == pytest.approx(P.first_call_floor * M + 1 / rate + REACTION)


def test_idle_open_counters_call_the_first_tickets_at_once() -> None:
    d = Day(hall(3))
    for cid in ("c00", "c01", "c02"):
        d.do(commands.open_counter, counter_id=cid)
    d.issue("t1")
    # Position 2, three idle counters: called as soon as an officer reacts.
    assert d.shipped(1) == REACTION
    assert estimate.baseline(d.state, "Q", 1, d.clock.now()) == 2 * M / 3


def test_a_counter_not_opened_yet_comes_at_the_halls_learned_opening_delay() -> None:
    # The test hall opens at 00:00; 00:20 WITA is 16:20 UTC the day before.
    d = Day(hall(3), datetime(2026, 11, 22, 16, 20, tzinfo=UTC))
    d.do(commands.open_counter, counter_id="c00")  # 1200 s after the opening hour
    d.at(datetime(2026, 11, 22, 16, 40, tzinfo=UTC)).do(commands.open_counter, counter_id="c01")
    for tid in ("t1", "t2", "t3"):
        d.issue(tid)
    # Today's first opens, 1200 s and 2400 s late, with the prior of 1800 s weighing 3:
    # the usual delay is (3600 + 3 x 1800) / 5 = 1800 s. 2400 s after the opening c02 is
    # overdue: expected after the floor, as half a counter.
    assert estimate.expected_opening_delay(d.state) == pytest.approx(1800.0)
    floor = P.return_floor_seconds
    # Position 3 less two idle counters: one call, at the rate of two counters for the
    # first `floor` seconds, then of two and a half (no call today: the priors alone).
    rate2 = calls_per_second(1 / M, WALKED, 2)
    rate25 = calls_per_second(1 / M, WALKED, 2 + P.unopened_weight)
    assert 1 / rate2 > floor
    assert d.shipped(2) == pytest.approx(floor + (1 - floor * rate2) / rate25 + REACTION)
    # Three usual delays (5400 s) after the opening it is taken as not staffed today: the
    # two open counters alone (still no call today: the priors).
    d.at(datetime(2026, 11, 22, 18, 0, tzinfo=UTC))  # 02:00 WITA: 7200 s after the opening
    assert estimate.opening_left(d.state, d.clock.now()) is None
    assert d.shipped(2) == pytest.approx(1 / rate2 + REACTION)


def test_when_no_counter_has_opened_yet_they_are_expected_at_the_usual_delay() -> None:
    d = Day(hall(2), datetime(2026, 11, 22, 16, 10, tzinfo=UTC))  # 00:10 WITA
    d.issue("t1")
    # No first open today: the prior's 1800 s, 600 s of it gone. Then two counters, each
    # half: one counter's rate for the only call.
    rate = calls_per_second(1 / M, WALKED, 2 * P.unopened_weight)
    assert d.shipped(0) == pytest.approx(1200 + 1 / rate + REACTION)
    # Long past three usual delays, nothing else open or coming: a usual delay from now.
    d.at(T0)  # 09:00 WITA; t1 has waited (counts for nothing: no counter was open)
    assert d.shipped(0) == pytest.approx(1800 + 1 / rate + REACTION)


def test_tickets_ahead_leave_at_the_observed_abandonment_rate() -> None:
    d = Day(hall(1))
    d.do(commands.open_counter, counter_id="c00")
    for tid in ("t1", "t2", "t3"):
        d.issue(tid)
    d.at(T0 + timedelta(seconds=600))
    d.do(commands.cancel, ticket_id="t2")
    d.do(commands.cancel, ticket_id="t3")
    d.do(commands.call_next, counter_id="c00")
    for tid in ("t4", "t5"):
        d.issue(tid)
    q = d.state.queues["Q"]
    # 2 left in 3 x 600 ticket-seconds of waiting, with the prior of 5 hours without any.
    theta = 2 / (1800 + P.abandon_prior_seconds)
    assert estimate.abandonment_rate(q, d.clock.now()) == pytest.approx(theta)
    # No counter-seconds since the only call: the rate is the priors'. Position 3: the
    # first call when t1 is done (300 s and a walk: not started), at most one call's mean
    # time; the other two while tickets ahead leave: dn/dt = -(rate + theta n), 2 to 0.
    rate = calls_per_second(1 / M, WALKED, 1)
    first = min(WALKED, 1 / rate)
    expected = first + math.log1p(2 * theta / rate) / theta + REACTION
    got = d.shipped(2)
    assert got == pytest.approx(expected)
    assert got is not None and got < 3 / rate + REACTION  # less than without leaving


def test_a_break_the_wait_runs_into_is_added() -> None:
    d = Day(hall(1, breaks=True), wita(11, 40))
    d.do(commands.open_counter, counter_id="c00")
    d.issue("t1")
    d.issue("t2")
    d.at(wita(11, 45)).do(commands.call_next, counter_id="c00")
    d.at(wita(11, 50))
    # 300 counter-seconds since the only call, no call since: (0 + 20) / (300 + 20 x 300).
    rate = calls_per_second(20 / 6300, WALKED, 1)
    # t1 (called 5 minutes ago, not started) is done at the floor, 60 s from now.
    first = P.first_call_floor * M
    assert d.shipped(1) == pytest.approx(first + 1 / rate + REACTION)  # before 12:00
    # Two more calls take past 12:00: the hour of the break is added (nobody left today).
    assert first + 2 / rate > 600
    assert d.shipped(2) == pytest.approx(first + 2 / rate + 3600 + REACTION)


def test_during_a_break_paused_counters_come_back_at_its_end() -> None:
    d = Day(hall(1, breaks=True), wita(11, 40))
    d.do(commands.open_counter, counter_id="c00")
    d.at(wita(12, 0)).do(commands.pause_counter, counter_id="c00", reason="Istirahat")
    d.at(wita(12, 5)).issue("t1")
    d.at(wita(12, 10))
    # 50 minutes of break left, then position 2 at the priors' rate (no call today).
    rate = calls_per_second(1 / M, WALKED, 1)
    assert d.shipped(1) == pytest.approx(3000 + 2 / rate + REACTION)
    assert estimate.baseline(d.state, "Q", 1, d.clock.now()) is None
    d.at(wita(13, 1)).do(commands.open_counter, counter_id="c00")
    d.do(commands.close_counter, counter_id="c00")
    d.at(wita(13, 5))
    assert d.shipped(1) is None  # no counter open, none coming back


def test_an_officer_late_back_from_a_break_is_expected_after_the_floor() -> None:
    d = Day(hall(1, breaks=True), wita(11, 40))
    d.do(commands.open_counter, counter_id="c00")
    d.at(wita(12, 0)).do(commands.pause_counter, counter_id="c00", reason="Istirahat")
    d.at(wita(13, 2)).issue("t1")
    # The break is over, c00 still paused: back after the floor, then one call at the
    # priors' rate (no call today).
    rate = calls_per_second(1 / M, WALKED, 1)
    assert d.shipped(0) == pytest.approx(P.return_floor_seconds + 1 / rate + REACTION)
    # A pause begun in a configured break teaches nothing about the hall's pauses.
    d.at(wita(13, 4)).do(commands.open_counter, counter_id="c00")
    assert d.state.pause_lengths == {}


def test_the_handling_time_counts_from_the_first_call_to_the_release() -> None:
    d = Day(hall(1))
    d.do(commands.open_counter, counter_id="c00")
    d.issue("t1")
    d.issue("t2")
    d.do(commands.call_next, counter_id="c00")
    d.at(T0 + timedelta(seconds=30)).do(commands.start, counter_id="c00")
    d.at(T0 + timedelta(seconds=330)).do(commands.finish, counter_id="c00")
    d.do(commands.call_next, counter_id="c00")
    d.at(T0 + timedelta(seconds=390)).do(commands.recall, counter_id="c00")
    d.at(T0 + timedelta(seconds=450)).do(commands.no_show, counter_id="c00")  # 120 s held
    q = d.state.queues["Q"]
    assert (q.handled, q.handled_seconds) == (2, 330.0 + 120.0)
    # (330 + 120 + 50 x (300 + walk)) / (2 + 50) s per call (the prior weighs 50 calls).
    assert P.handling_prior_calls == 50
    per_call = (450 + 50 * WALKED) / 52
    assert estimate.handling_rate_per_counter(d.state, "Q") == pytest.approx(1 / per_call)


# -- accountability ------------------------------------------------------------------


def test_a_ticket_keeps_the_estimate_it_was_shown_and_its_error_is_recorded_at_the_call() -> None:
    d = Day(hall(1))
    d.do(commands.open_counter, counter_id="c00")
    d.issue("t1")
    d.do(commands.call_next, counter_id="c00")
    issued = d.issue("t2")
    told = issued.data["estimated_wait_seconds"]
    shown = read_models.ticket_status(d.state, d.state.tickets["t2"], d.clock.now())
    assert shown["estimated_wait_seconds"] == told
    assert d.state.tickets["t2"].estimate == told
    totals = d.state.totals
    assert totals is not None
    # t1 was measured at its call too (it was told the reaction time, and waited 0 s).
    before, before_sum = totals.estimate_error["Q"].count, totals.estimate_error["Q"].sum
    assert (before, before_sum) == (1, REACTION)
    assert totals.estimate_over["Q"] == REACTION
    d.at(T0 + timedelta(seconds=told + 120))
    d.do(commands.finish, counter_id="c00")
    d.do(commands.call_next, counter_id="c00")
    h = totals.estimate_error["Q"]
    assert h.count == before + 1
    assert totals.estimate_under["Q"] == pytest.approx(120.0)  # waited 2 minutes longer
    assert h.sum == pytest.approx(before_sum + 120.0)


def test_a_ticket_gets_an_estimate_before_any_counter_opens() -> None:
    d = Day(hall(1))
    issued = d.issue("t1")
    # 09:00 WITA, nine hours after the opening hour: long past the usual delay, but the
    # only counter is all the service has, so it is expected a usual delay from now.
    rate = calls_per_second(1 / M, WALKED, P.unopened_weight)
    expected = P.opening_prior_seconds + 1 / rate + REACTION
    assert issued.data["estimated_wait_seconds"] == pytest.approx(expected, abs=1)
    assert d.state.tickets["t1"].estimate == pytest.approx(expected, abs=1)


def test_a_paused_counter_is_away_for_its_expected_remaining_pause() -> None:
    d = Day(hall(2))
    for cid in ("c00", "c01"):
        d.do(commands.open_counter, counter_id=cid)
    d.do(commands.pause_counter, counter_id="c01", reason="Rapat")
    d.at(T0 + timedelta(seconds=1800)).do(commands.open_counter, counter_id="c01")
    d.at(T0 + timedelta(seconds=2400)).do(commands.pause_counter, counter_id="c01", reason="Rapat")
    d.at(T0 + timedelta(seconds=3000))
    for tid in ("t1", "t2", "t3", "t4", "t5"):
        d.issue(tid)
    # One finished pause of 1800 s. The hall's mean with the 1200 s prior weighing 3:
    # (1800 + 3600) / 4 = 1350; the reason's with the hall's weighing 3:
    # (1800 + 3 x 1350) / 4 = 1462.5. Away 600 s: back in 862.5 s.
    assert estimate.expected_pause(d.state, "Rapat") == pytest.approx(1462.5)
    assert estimate.expected_pause(d.state, "Sholat") == pytest.approx(1350.0)
    back = 862.5
    # Position 5 less c00 idle: four calls, at one counter's rate until c01 is back, then
    # at two counters' (no call today: the priors alone; nobody left: no abandonment).
    rate = calls_per_second(1 / M, WALKED, 1)
    assert back * rate < 4
    assert d.shipped(4) == pytest.approx(back + (4 - back * rate) / (2 * rate) + REACTION)
    # Overdue, it is expected back after the floor.
    d.at(T0 + timedelta(seconds=2400 + 1500))
    assert estimate.pause_left(
        d.state, d.state.counters["c01"].since, "Rapat", d.clock.now()
    ) == pytest.approx(P.return_floor_seconds)


def test_when_every_counter_is_paused_they_are_expected_back_after_their_pause() -> None:
    d = Day(hall(2))
    for cid in ("c00", "c01"):
        d.do(commands.open_counter, counter_id=cid)
    d.do(commands.pause_counter, counter_id="c00", reason="Keperluan")
    d.at(T0 + timedelta(seconds=600)).do(commands.open_counter, counter_id="c00")
    d.at(T0 + timedelta(seconds=1200))
    for cid in ("c00", "c01"):
        d.do(commands.pause_counter, counter_id=cid, reason="Keperluan")
    d.at(T0 + timedelta(seconds=1500))
    d.issue("t1")
    d.issue("t2")
    # One finished pause of 600 s: the hall's mean (600 + 3 x 1200) / 4 = 1050, the
    # reason's (600 + 3 x 1050) / 4 = 937.5; 300 s gone, both back in 637.5 s. Position 2
    # at two counters' rate from then (no call today, nobody left).
    rate = calls_per_second(1 / M, WALKED, 2)
    assert d.shipped(1) == pytest.approx(637.5 + 2 / rate + REACTION)
    assert estimate.baseline(d.state, "Q", 1, d.clock.now()) is None
    # Closed, not paused: no counter open or coming, no estimate.
    d.do(commands.close_counter, counter_id="c00")
    d.do(commands.close_counter, counter_id="c01")
    assert d.shipped(1) is None


def _inputs(state: SiteState) -> dict[str, Any]:
    learned = (dict(state.pause_lengths), state.first_opens, state.first_open_delay)
    return {"(site)": learned} | {
        code: (
            q.open_now,
            q.open_share,
            q.busy_area,
            q.wait_area,
            q.area_at,
            q.handled,
            q.handled_seconds,
            list(q.recent),
        )
        for code, q in state.queues.items()
    }


def test_replay_restores_each_tickets_estimate_and_the_estimators_inputs() -> None:
    config, events = day_of(3, 200)
    assert sum("estimated_wait_seconds" in e.data for e in events) > 300
    applied, replayed = applied_and_replayed(config, events, 41)
    for s in config.sites:
        assert summary(replayed[s]) == summary(applied[s])  # tickets' estimates, error totals
        assert _inputs(replayed[s]) == _inputs(applied[s])
        assert _inputs(applied[s].clone()) == _inputs(applied[s])
        totals = applied[s].totals
        assert totals is not None
        assert sum(h.count for h in totals.estimate_error.values()) > 100
        now = applied[s].last_ts
        for code in config.sites[s].services:
            assert replayed[s].estimated_wait_seconds(code, 4, now) == applied[
                s
            ].estimated_wait_seconds(code, 4, now)


async def test_a_restart_keeps_each_tickets_estimate_and_the_error_totals(
    database_url: str,
) -> None:
    config = hall_config(2)
    d = Day(config.sites["hall"])
    d.do(commands.open_counter, counter_id="c00")
    d.do(commands.open_counter, counter_id="c01")
    for n in range(6):
        d.at(T0 + timedelta(seconds=30 * n)).issue(f"t{n}")
    d.at(T0 + timedelta(seconds=400)).do(commands.call_next, counter_id="c00")
    d.at(T0 + timedelta(seconds=500)).do(commands.call_next, counter_id="c01")
    told = {
        e.ticket_id: e.data.get("estimated_wait_seconds")
        for e in d.log
        if e.type == EventType.TICKET_ISSUED
    }
    assert sum(v is not None for v in told.values()) == 6

    async with store_holding(database_url, d.log) as store:
        engine = Engine(config, store, ManualClock(T0 + timedelta(seconds=600)))
        await engine.start()
        try:
            state = engine.committed["hall"]
            assert {tid: t.estimate for tid, t in state.tickets.items()} == told
            assert state.totals is not None and d.state.totals is not None
            assert state.totals.estimate_error == d.state.totals.estimate_error
            assert state.totals.estimate_error["Q"].count == 2
            assert state.totals.estimate_under == d.state.totals.estimate_under
            assert _inputs(state) == _inputs(d.state)
            now = d.clock.now()
            assert state.estimated_wait_seconds("Q", 4, now) == d.state.estimated_wait_seconds(
                "Q", 4, now
            )
        finally:
            await engine.stop()


# -- through the service: the visit view and /metrics -----------------------------------


async def test_the_visit_view_and_metrics_hold_the_estimate_and_its_error(
    client: TestClient, clock: ManualClock, settings: Settings
) -> None:
    resp = await client.post(
        f"/api/v1/sites/{SITE}/counters/loket-01/open", headers=counter_auth("loket-01")
    )
    assert resp.status == 200
    resp = await client.post(
        f"/api/v1/sites/{SITE}/tickets", json={"service": "KTP-EL"}, headers=KIOSK
    )
    assert resp.status == 201
    ticket = await resp.json()
    told = ticket["estimated_wait_seconds"]
    assert told is not None
    clock.advance(600)
    resp = await client.post(
        f"/api/v1/sites/{SITE}/counters/loket-01/call-next", headers=counter_auth("loket-01")
    )
    assert resp.status == 200

    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT wait_seconds, estimated_wait_seconds, prediction_error_seconds"
            " FROM ticket_visits WHERE number = $1 AND site_id = $2",
            ticket["number"],
            SITE,
        )
    finally:
        await conn.close()
    assert row is not None
    assert row["wait_seconds"] == 600.0
    assert row["estimated_wait_seconds"] == told
    assert row["prediction_error_seconds"] == pytest.approx(600.0 - told)

    samples = await scrape(client, **MANAGER)
    lbl = {"site": SITE, "service": "KTP-EL"}
    assert pick(samples, "qms_wait_prediction_abs_error_seconds_count", **lbl)[()] == 1
    assert pick(samples, "qms_wait_prediction_abs_error_seconds_sum", **lbl)[()] == pytest.approx(
        abs(600.0 - told)
    )
    under = pick(samples, "qms_wait_prediction_under_seconds_total", **lbl)[()]
    over = pick(samples, "qms_wait_prediction_over_seconds_total", **lbl)[()]
    assert under - over == pytest.approx(600.0 - told)
    assert min(under, over) == 0


# -- the evaluation of bench ewt on a day with bookings ------------------------------------


async def test_the_simulators_error_is_the_one_the_service_records_on_an_online_day() -> None:
    """`bench ewt` scores each ticket's wait against what it was told: a booked ticket's
    over its queue time (from the later of check-in and its due time), as the live state
    measures it at the first call. Service by service, the errors the simulator keeps add
    up to the totals the state recorded (under- and over-estimates), booked tickets and
    remote joins included."""
    site = next(iter(sample_hall(20).sites.values()))
    day = await run_day(site, profile("online"), 3)
    state = day.driver.state
    totals = state.totals
    assert totals is not None
    under = dict.fromkeys(site.services, 0.0)
    over = dict.fromkeys(site.services, 0.0)
    kinds: Counter[str] = Counter()
    for ticket_id, p in day.driver.predictions.items():
        told = p.estimates["shipped"]
        if p.wait is None or told is None:
            continue
        assert told == state.tickets[ticket_id].estimate
        error = p.wait - told
        under[p.service] += max(error, 0.0)
        over[p.service] += max(-error, 0.0)
        kinds[p.source] += 1
    assert kinds[Source.BOOKING] > 20 and kinds[Source.ONLINE] > 0, kinds
    for code in site.services:
        assert totals.estimate_under[code] == pytest.approx(under[code], abs=1e-6), code
        assert totals.estimate_over[code] == pytest.approx(over[code], abs=1e-6), code


def test_the_range_wraps_the_point_in_gamma_quantiles_of_the_calls_to_come() -> None:
    d = Day(hall(1))
    d.do(commands.open_counter, counter_id="c00")
    for tid in ("t1", "t2", "t3", "t4"):
        d.issue(tid)
    point = d.shipped(3)
    assert point is not None
    # Four calls to come: relative variance 0.7 / 4 + 0.15^2 = 0.1975; Wilson-Hilferty
    # with 1 / (9k) = 0.1975 / 9: (1 - 0.021944 -/+ 1.2816 x 0.148137)^3.
    told = estimate.shipped_range(d.state, "Q", 3, d.clock.now())
    assert told is not None
    low, mid, high = told
    assert mid == point
    assert low == pytest.approx(point * (0.978056 - 0.189852) ** 3, rel=1e-5)
    assert high == pytest.approx(point * (0.978056 + 0.189852) ** 3, rel=1e-5)
    # The approximation against a gamma of shape 1 (exponential): the 10% and 90%
    # quantiles are -ln 0.9 = 0.1054 and ln 10 = 2.3026 of the mean.
    assert estimate.gamma_ratio(1.0, -1.2816) == pytest.approx(0.1054, abs=0.01)
    assert estimate.gamma_ratio(1.0, 1.2816) == pytest.approx(2.3026, abs=0.03)
    d.do(commands.close_counter, counter_id="c00")
    assert estimate.shipped_range(d.state, "Q", 3, d.clock.now()) is None
