"""Families of hall behaviour (`simulate/families.py`) and how `bench ewt --families` counts:
each family is its own model drawn from its own generator, and every ticket is scored."""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bench import ewt
from queue_service.domain import estimate
from queue_service.domain.events import Event
from queue_service.domain.state import SiteState, Ticket
from queue_service.domain.vocab import EventType
from queue_service.simulate.cli import run
from queue_service.simulate.day import HallDay
from queue_service.simulate.families import FAMILIES, family
from queue_service.simulate.offline import OfflineDay, OfflineDriver, Prediction, run_day
from queue_service.simulate.profiles import profile, sample_hall

SITE = next(iter(sample_hall(20).sites.values()))
TUESDAY = date(2026, 11, 24)  # no Friday prayer
SEED = 3001


def local(ts: datetime) -> datetime:
    return ts.astimezone(SITE.timezone)


def issues(events: list[Event]) -> list[tuple[datetime, str | None]]:
    return [(e.ts, e.service) for e in events if e.type == EventType.TICKET_ISSUED]


async def day_of(name: str | None) -> OfflineDay:
    fam = None if name is None else family(name)
    return await run_day(SITE, profile("typical"), SEED, TUESDAY, family=fam)


def test_an_unknown_family_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown family 'rainy'"):
        family("rainy")


@pytest.mark.parametrize("name", ["heavy-tail", "late-start", "pauses", "speed"])
async def test_a_family_of_officers_or_service_times_keeps_the_day_s_arrivals(name: str) -> None:
    """A family draws from its own generator: where it does not change arrivals, the
    citizens come when and for what they came on the calibrated model's day."""
    plain, other = await day_of(None), await day_of(name)
    assert issues(plain.events) == issues(other.events)
    assert plain.events != other.events


async def test_late_starts_open_each_counter_on_time_or_10_to_40_minutes_late() -> None:
    hall = HallDay(SITE, profile("typical"), SEED, TUESDAY, family("late-start"))
    hall._plan_officers()
    opening = datetime(2026, 11, 24, 7, 30, tzinfo=SITE.timezone)
    delays = [(o.opens_at - opening).total_seconds() / 60 for o in hall.officers.values()]
    on_time = [d for d in delays if 0 <= d <= 5]
    late = [d for d in delays if 10 <= d <= 40]
    assert len(on_time) + len(late) == len(delays) == 20
    assert on_time and late
    assert all(5 <= o.break_late <= 20 for o in hall.officers.values())


async def test_officers_take_their_own_lunch_and_meetings_with_reasons() -> None:
    day = await day_of("pauses")
    paused: dict[str, tuple[datetime, str]] = {}
    lunches: list[float] = []
    reasons: set[str] = set()
    took_break: set[str] = set()
    for e in day.events:
        assert e.counter_id is not None or e.type not in (
            EventType.COUNTER_PAUSED,
            EventType.COUNTER_OPENED,
        )
        if e.type == EventType.COUNTER_PAUSED:
            assert e.counter_id is not None
            paused[e.counter_id] = (e.ts, e.data["reason"])
            reasons.add(e.data["reason"])
            if e.data["reason"] == "Istirahat":
                took_break.add(e.counter_id)
        elif e.type == EventType.COUNTER_OPENED and e.counter_id in paused:
            began, reason = paused.pop(e.counter_id)
            if reason == "Makan siang":
                lunches.append((e.ts - began).total_seconds() / 60)
    assert {"Makan siang", "Rapat", "Istirahat"} <= reasons
    assert lunches and all(0 < m <= 60 for m in lunches)
    # Those who lunch on their own work through the configured break.
    hall = HallDay(SITE, profile("typical"), SEED, TUESDAY, family("pauses"))
    hall._plan_officers()
    skipping = {o.id for o in hall.officers.values() if o.skips_breaks}
    assert skipping and not skipping & took_break


def test_slow_and_fast_officers_are_40_percent_either_way() -> None:
    plain = HallDay(SITE, profile("typical"), SEED, TUESDAY)
    fast_slow = HallDay(SITE, profile("typical"), SEED, TUESDAY, family("speed"))
    plain._plan_officers()
    fast_slow._plan_officers()
    ratios = {round(fast_slow.officers[c].speed / o.speed, 6) for c, o in plain.officers.items()}
    assert ratios == {0.6, 1.0, 1.4}


def test_heavy_tailed_service_times_keep_the_mean_with_a_longer_tail() -> None:
    plain = HallDay(SITE, profile("typical"), SEED, TUESDAY)
    heavy = HallDay(SITE, profile("typical"), SEED, TUESDAY, family("heavy-tail"))
    a = sorted(plain._work(480.0) for _ in range(20000))
    b = sorted(heavy._work(480.0) for _ in range(20000))
    assert statistics.fmean(b) == pytest.approx(480.0, rel=0.05)
    assert statistics.fmean(a) == pytest.approx(480.0, rel=0.05)
    assert b[int(0.99 * len(b))] > 1.5 * a[int(0.99 * len(a))]
    assert statistics.median(b) < 0.8 * statistics.median(a)


async def test_bursts_bring_groups_at_the_same_load() -> None:
    plain, bursts = await day_of(None), await day_of("bursts")

    def close(events: list[Event]) -> float:
        """The share of a service's tickets issued within a minute of its previous one."""
        by_service: dict[str | None, list[datetime]] = {}
        for ts, service in issues(events):
            by_service.setdefault(service, []).append(ts)
        gaps = [
            (b - a).total_seconds()
            for times in by_service.values()
            for a, b in itertools.pairwise(sorted(times))
        ]
        return sum(g <= 60 for g in gaps) / len(gaps)

    assert len(issues(bursts.events)) == pytest.approx(len(issues(plain.events)), rel=0.15)
    assert close(bursts.events) > 1.5 * close(plain.events)


async def test_a_surge_brings_one_service_more_than_its_counters_serve_in_an_hour() -> None:
    hall = HallDay(SITE, profile("typical"), SEED, TUESDAY, family("surge"))
    driver = OfflineDriver(SITE, hall.day)
    await driver.run(hall)
    assert hall.surge is not None
    surged, begin, end = hall.surge
    assert end - begin == timedelta(hours=1)
    assert 9 <= local(begin).hour <= 11
    counters = sum(1 / len(c.services) for c in SITE.counters.values() if surged in c.services)
    serves = counters * 60 / SITE.services[surged].default_service_minutes  # an hour

    def in_the_hour(events: list[Event]) -> int:
        return sum(s == surged and begin <= ts < end for ts, s in issues(events))

    plain = await day_of(None)
    assert in_the_hour(driver.events) > serves
    assert in_the_hour(driver.events) > in_the_hour(plain.events) + serves
    others = [(ts, s) for ts, s in issues(driver.events) if s != surged]
    assert others == [(ts, s) for ts, s in issues(plain.events) if s != surged]


async def test_another_daily_shape_peaks_after_lunch() -> None:
    plain, shaped = await day_of(None), await day_of("shape")

    def share_after_one(events: list[Event]) -> float:
        times = [local(ts) for ts, _ in issues(events)]
        return sum(t.hour >= 13 for t in times) / len(times)

    assert share_after_one(shaped.events) > 1.5 * share_after_one(plain.events)


def test_mixed_is_every_family_at_once() -> None:
    mixed = FAMILIES["mixed"]
    for name, f in FAMILIES.items():
        for part in ("bursts", "surge", "shape", "long_tail", "late_start", "speeds"):
            if getattr(f, part) is not None:
                assert getattr(mixed, part) == getattr(f, part), (name, part)


# -- bench ewt --families: every ticket counted ---------------------------------------------

TZ = ZoneInfo("Asia/Makassar")


def prediction(hour: int, estimate: float | None, wait: float) -> Prediction:
    at = datetime(2026, 11, 24, hour, 10, tzinfo=TZ)
    p = Prediction("KTP", at, {"shipped": estimate, "baseline": 60.0}, wait)
    p.ranges["range"] = None if estimate is None else (estimate - 120, estimate, estimate + 120)
    return p


def test_a_ticket_given_no_estimate_errs_by_its_whole_wait() -> None:
    three = [prediction(9, 600, 900), prediction(9, None, 1200), prediction(9, 300, 0)]
    s = ewt.score_all(three, "shipped", TZ)
    assert s.n == 3
    assert s.no_estimate == pytest.approx(1 / 3)
    assert s.mae == pytest.approx((300 + 1200 + 300) / 3)
    assert s.bias == pytest.approx((-300 - 1200 + 300) / 3)
    assert s.within_5min == pytest.approx(2 / 3)
    assert s.worst_hour is None  # no hour has 30 tickets


def test_the_worst_hour_is_the_one_with_the_largest_mae_among_those_with_30_tickets() -> None:
    nine = [prediction(9, 600, 900), prediction(9, None, 1200), prediction(9, 300, 0)] * 10
    ten = [prediction(10, 600, 600)] * 30
    eleven = [prediction(11, 0, 7200)] * 5  # worse, but too few to be an hour's figure
    s = ewt.score_all(nine + ten + eleven, "shipped", TZ)
    assert s.worst_hour is not None
    hour, mae, n = s.worst_hour
    assert (hour, n) == (9, 30)
    assert mae == pytest.approx(600.0)
    assert s.mae == pytest.approx((10 * 1800 + 5 * 7200) / 65)


def test_range_coverage_counts_a_ticket_without_a_range_as_outside() -> None:
    tickets = [prediction(9, 600, 700), prediction(9, 600, 900), prediction(9, None, 60)]
    assert ewt.range_coverage(tickets, "range") == pytest.approx(1 / 3)


def test_a_family_row_says_n_a_without_a_range_and_names_the_targets_missed() -> None:
    tickets = [prediction(9, 600, 900), prediction(9, None, 1200), prediction(9, 300, 0)]
    row = ewt.family_row("pauses", "typical", tickets, TZ, ranged=False)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["pauses", "typical", "3", "33.33%"]
    assert cells[9] == "n/a"
    assert "bias < 0" in cells[11] and "tickets without estimate" in cells[11]


def test_families_refuse_seeds_used_to_calibrate() -> None:
    args = argparse.Namespace(
        families=[], seed=1005, days=3, profiles=None, counters=20, calibrate=False
    )
    with pytest.raises(SystemExit, match="overlap the calibration seeds"):
        ewt.families(args)


def test_the_families_table_measures_a_range_s_coverage_when_the_estimate_has_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`estimate.shipped_range` (issue 21, step 2) is read when it exists: its coverage
    is measured on the same tickets (here a stand-in, from half to twice the estimate)."""

    def shipped_range(
        state: SiteState, service: str, ahead: int, now: datetime, ticket: Ticket | None
    ) -> tuple[float, float, float] | None:
        point = estimate.shipped(state, service, ahead, now, ticket)
        return None if point is None else (0.5 * point, point, 2.0 * point)

    monkeypatch.setattr(estimate, "shipped_range", shipped_range, raising=False)
    args = argparse.Namespace(
        families=["speed"], seed=None, days=1, profiles=["typical"], counters=20
    )
    ewt.families(args)
    out = capsys.readouterr().out
    assert "range: estimate.shipped_range" in out
    rows = [line for line in out.splitlines() if line.startswith(("| (calibrated", "| speed"))]
    assert len(rows) == 2
    for row in rows:
        coverage = row.strip("|").split("|")[9].strip()
        assert re.fullmatch(r"\d+\.\d%", coverage), row
        assert 0 < float(coverage[:-1]) < 100


def test_simulate_offline_plays_a_family(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["offline", "--family", "pauses", "--days", "1", "--seed", "3001", "--quiet"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "typical day" in out and "seed 3001" in out
