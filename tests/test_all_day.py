"""A hall open all day ("00:00"-"24:00") through the real engine and API on PostgreSQL:
tickets are issued up to the last instant of the local day, the service day rolls over at
midnight with fresh numbers, and a closed day after an all-day one is closed from 00:00.
Also the estimate at such a midnight and the simulator with a break ending at 24:00 (pure
domain)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain import commands, estimate
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.site import END_OF_DAY, WEEKDAYS, Break
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import EventType
from queue_service.settings import Settings
from queue_service.simulate.day import HallDay
from queue_service.simulate.offline import run_day
from queue_service.simulate.profiles import profile, sample_hall
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE
from tests.conftest import KIOSK, MANAGER, fetch
from tests.halls import DEMO_KIOSK, DEMO_MANAGER, Hall, Table, every_day, numbered_counters

WITA = ZoneInfo("Asia/Makassar")  # UTC+8
BASE = "/api/v1/sites/hall"
MONDAY, TUESDAY = date(2026, 11, 23), date(2026, 11, 24)


def wita(day: date, hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    """A local WITA time on `day`."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, us, tzinfo=WITA)


def all_day_hall(
    days: tuple[str, ...] = WEEKDAYS, counters: int = 1, breaks: Sequence[Table] = ()
) -> AppConfig:
    """One service Q, open "00:00"-"24:00" on `days`; the demo kiosk and manager tokens."""
    return Hall(
        name="Hall open all day",
        hours=every_day(days=days),
        breaks=breaks,
        counters=numbered_counters(counters),
        tokens=(DEMO_KIOSK, DEMO_MANAGER),
    ).config()


async def post_ticket(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"{BASE}/tickets", json={"service": "Q"}, headers=KIOSK)
    return resp.status, await resp.json()


async def is_open(client: TestClient) -> bool:
    snap = await (await client.get(f"{BASE}/snapshot", headers=MANAGER)).json()
    return bool(snap["open"])


async def test_a_ticket_at_23_59_30_is_issued_and_the_day_rolls_at_midnight(
    settings: Settings, clock: ManualClock, aiohttp_client: Any, database_url: str
) -> None:
    client = await aiohttp_client(create_app(settings, all_day_hall(), clock))
    engine = client.app[ENGINE]

    # Monday 23 November 2026, 23:59:30 WITA: the last minute of the day is open.
    clock.set(wita(MONDAY, 23, 59, 30))
    assert await is_open(client)
    status, first = await post_ticket(client)
    assert status == 201, first
    assert first["number"] == "Q001"
    # And so is the last tenth of a second.
    clock.set(wita(MONDAY, 23, 59, 59, 900000))
    status, second = await post_ticket(client)
    assert status == 201, second
    assert second["number"] == "Q002"

    # Tuesday 00:00:30: still open (the next day is open all day too), a new service day.
    clock.set(wita(TUESDAY, 0, 0, 30))
    assert await is_open(client)
    status, third = await post_ticket(client)
    assert status == 201, third
    assert third["number"] == "Q001"  # numbered afresh
    assert engine.site_state("hall").day == TUESDAY

    # As stored: the three issues, each on its own local service day.
    rows = await fetch(
        database_url,
        "SELECT ticket_id, service_day, ts, data->>'number' AS number FROM ticket_events"
        " WHERE type = 'ticket_issued' ORDER BY seq",
    )
    assert [(r["ticket_id"], r["service_day"], r["number"]) for r in rows] == [
        (first["id"], MONDAY, "Q001"),
        (second["id"], MONDAY, "Q002"),
        (third["id"], TUESDAY, "Q001"),
    ]
    assert rows[1]["ts"] == datetime(2026, 11, 23, 15, 59, 59, 900000, tzinfo=UTC)


async def test_an_all_day_hall_is_closed_from_midnight_on_a_closed_day(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    # Open all day Monday to Saturday; closed on Sunday.
    config = all_day_hall(days=WEEKDAYS[:6])
    client = await aiohttp_client(create_app(settings, config, clock))

    # Saturday 28 November 2026, 23:59:59.9 WITA: open to the end.
    clock.set(wita(date(2026, 11, 28), 23, 59, 59, 900000))
    status, saturday = await post_ticket(client)
    assert status == 201, saturday
    # Sunday 00:00:00: closed.
    clock.set(wita(date(2026, 11, 29), 0, 0, 0))
    assert not await is_open(client)
    status, refused = await post_ticket(client)
    assert status == 409, refused
    assert refused["code"] == "site_closed"
    # Monday 00:00:30: open again, a new day.
    clock.set(wita(date(2026, 11, 30), 0, 0, 30))
    status, monday = await post_ticket(client)
    assert status == 201, monday
    assert monday["number"] == "Q001"


async def test_the_display_shows_a_break_ending_with_the_day_until_24_00(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    night = {"days": list(WEEKDAYS), "start": "23:00", "end": "24:00", "label": "Malam"}
    client = await aiohttp_client(create_app(settings, all_day_hall(breaks=[night]), clock))

    async def display() -> dict[str, Any]:
        resp = await client.get(f"{BASE}/display")
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]

    clock.set(wita(MONDAY, 23, 59, 59, 900000))
    assert (await display())["break"] == {"label": "Malam", "until": "24:00"}
    clock.set(wita(TUESDAY, 0, 0, 0))
    assert (await display())["break"] is None


# -- the estimate at a midnight the hall stays open through ----------------------------------


def shipped_at_half_past_midnight(day: date, days: tuple[str, ...]) -> tuple[float, float]:
    """The estimate for a second ticket at 00:30 on `day`, c00 open and busy with the first,
    c01 not opened yet: as shipped, and with no allowance for counters not opened yet."""
    site = all_day_hall(days, counters=2).sites["hall"]
    now = wita(day, 0, 30).astimezone(UTC)
    state = SiteState(site, site.service_day(now))
    steps: list[tuple[Callable[..., list[Event]], dict[str, str]]] = [
        (commands.open_counter, {"counter_id": "c00"}),
        (commands.issue, {"ticket_id": "t1", "service": "Q"}),
        (commands.issue, {"ticket_id": "t2", "service": "Q"}),
        (commands.call_next, {"counter_id": "c00"}),
    ]
    for command, kw in steps:
        for e in command(state, now, **kw):
            state.apply(e)
    shipped = estimate.shipped(state, "Q", 1, now)
    without = estimate.shipped(
        state, "Q", 1, now, params=dataclasses.replace(estimate.DEFAULT, unopened_weight=0.0)
    )
    assert shipped is not None and without is not None
    return shipped, without


def test_no_late_officers_are_expected_at_a_midnight_the_hall_stays_open_through() -> None:
    # Tuesday 24 November 2026 follows a Monday open to 24:00: the hall did not open at
    # 00:00, so a counter not opened since the day rolled over is not an officer arriving.
    shipped, without = shipped_at_half_past_midnight(TUESDAY, WEEKDAYS[:6])
    assert shipped == without
    # Monday 23 November follows a closed Sunday: the hall opened at 00:00, and in the
    # first 90 minutes the counter not opened yet counts as half of one (a sooner call).
    shipped, without = shipped_at_half_past_midnight(MONDAY, WEEKDAYS[:6])
    assert shipped < without


# -- the simulator: a break that ends with the day ----------------------------------------


async def test_a_simulated_day_keeps_a_break_ending_at_24_00_to_the_end_of_the_day() -> None:
    sample = next(iter(sample_hall(6).sites.values()))
    hours = {d: (time(0), END_OF_DAY) for d in WEEKDAYS}
    evening = Break(("mon",), time(14, 0), END_OF_DAY, "Malam")
    site = dataclasses.replace(sample, hours=hours, breaks=(evening,))
    hall = HallDay(site, profile("typical"), 1, MONDAY)
    assert hall._breaks_today() == [("Malam14:00:00", wita(MONDAY, 14, 0), wita(TUESDAY, 0, 0))]

    def calls_from_five_past_two(day: Any) -> int:
        return sum(
            1
            for e in day.events
            if e.type == EventType.TICKET_CALLED and e.ts.astimezone(WITA).time() >= time(14, 5)
        )

    with_break = await run_day(site, profile("typical"), 1, MONDAY)
    without = await run_day(dataclasses.replace(site, breaks=()), profile("typical"), 1, MONDAY)
    assert calls_from_five_past_two(without) > 0
    assert calls_from_five_past_two(with_break) == 0  # every counter paused to the day's end
