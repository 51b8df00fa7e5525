"""Reports follow the definitions of issue 14: tickets left open at the end of their service
day are counted as `expired` (JSON, CSV, HTML), and the share within target is the board
headline's, i.e. called within target / (called + never called but waited past the
target): expired visits that waited past their target, and on the live day tickets still
waiting whose wait so far is over it. Every figure is computed by hand below."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.web.keys import ENGINE
from tests.test_reports import (
    BASE,
    DAY,
    HALL,
    MANAGER,
    T0,
    figures_of,
    get_report,
    play_day,
    report_hall,
)

# The end of the scripted day's service day: midnight WITA, 16:00 UTC.
MIDNIGHT = 16 * 3600
ONE_DAY = {"from": DAY.isoformat(), "to": DAY.isoformat()}


@pytest.fixture
def config() -> AppConfig:
    """The report hall, for the `client` fixture."""
    return report_hall()


async def fetch_csv(client: TestClient, **query: str) -> list[list[str]]:
    resp = await client.get(f"{BASE}/report", params={**query, "format": "csv"}, headers=MANAGER)
    assert resp.status == 200, await resp.text()
    return list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig")), delimiter=";"))


def csv_record(rows: list[list[str]], header_first: str, row_first: str) -> dict[str, str]:
    """The row starting with `row_first` of the table whose header starts `header_first`,
    by column name."""
    start = next(i for i, r in enumerate(rows) if r and r[0] == header_first)
    header = rows[start]
    for row in rows[start + 1 :]:
        if not row:
            break
        if row[0] == row_first:
            return dict(zip(header, row, strict=True))
    raise AssertionError(f"no row {row_first!r} under {header_first!r}")


async def fetch_html(client: TestClient, **query: str) -> str:
    resp = await client.get(f"{BASE}/report", params={**query, "format": "html"}, headers=MANAGER)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def snapshot_headline(client: TestClient) -> dict[str, Any]:
    resp = await client.get(f"{BASE}/snapshot", headers=MANAGER)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["headline"]  # type: ignore[no-any-return]


async def evening(client: TestClient, clock: ManualClock) -> dict[str, str]:
    """The scripted day (tests/test_reports.py), then, in seconds after 08:00 WITA:

    T7  S1    issued 3600, never called                 -> expires, waited 54000 > 600
    T9  S1 c1 issued 3700, called 4400, never started   -> expires held, wait 700 (called)
    T10 S2    issued 3800, cancelled 4800               -> waited 1000 > 300, cancelled
    T8  S2    issued 57420 (23:57 WITA), never called   -> expires, waited 180 <= 300
    """
    day = await play_day(client, clock)
    day.at(3600)
    await day.issue("T7", "S1")
    day.at(3700)
    await day.issue("T9", "S1")
    day.at(3800)
    await day.issue("T10", "S2")
    await day.act("c1", "open")  # resumes after the pause at 1900
    day.at(4400)
    await day.call("c1", "T9")
    day.at(4800)
    resp = await client.post(f"/api/v1/tickets/{day.tickets['T10']}/cancel", json={})
    assert resp.status == 200, await resp.text()
    day.at(MIDNIGHT - 180)
    await day.issue("T8", "S2")
    return day.tickets


def check_evening(report: dict[str, Any], *, expired: bool) -> None:
    """The figures of the evening, before midnight (T7, T8, T9 open) or after it (expired).
    The same shares either way: a ticket past its target while waiting stays a breach
    once it expires, and one that was not past it (T8) does not become one."""
    t = report["totals"]
    closed_or_open = (3, 0) if expired else (0, 3)
    assert (t["visits"], t["issued"], t["served"], t["cancelled"]) == (11, 10, 3, 2)
    assert (t["expired"], t["open"]) == closed_or_open
    # Called: the six of the scripted day and T9 (700 s). Within: T1, T4 in S2, T6.
    # Never called past the target: T7 only (T8 under it, T10 cancelled).
    assert t["wait"]["count"] == 7 and t["wait"]["max"] == 920.0
    assert t["within_target"] == {"count": 3, "waiting_past_target": 1, "share": 0.375}

    # S1: waits 50, 300, 700, 900, 920; within T1, T6; past T7 -> 2 / (5 + 1).
    s1 = figures_of(report["services"], "code", "S1")
    assert (s1["visits"], s1["expired"], s1["open"]) == (6, *((2, 0) if expired else (0, 2)))
    assert s1["within_target"] == {"count": 2, "waiting_past_target": 1, "share": 0.3333}
    # S2: waits 100, 480; within T4; T8 expired under its target, T10 cancelled -> 1 / 2.
    s2 = figures_of(report["services"], "code", "S2")
    assert (s2["visits"], s2["expired"], s2["cancelled"]) == (5, 1 if expired else 0, 2)
    assert s2["within_target"] == {"count": 1, "waiting_past_target": 0, "share": 0.5}
    assert figures_of(report["agencies"], "id", "a1")["within_target"] == s1["within_target"]
    assert figures_of(report["agencies"], "id", "a2")["within_target"] == s2["within_target"]
    assert figures_of(report["agencies"], "id", "a1")["expired"] == s1["expired"]

    # Counters see called visits only. c1: T1 300, T2 900, T6 50, T9 700 (held at
    # midnight: expired at c1) -> 2 / 4. c2: T3 480, T4 920 in S1, T4 100 in S2 -> 1 / 3.
    c1 = figures_of(report["counters"], "id", "c1")
    assert c1["expired"] == (1 if expired else 0)
    assert c1["within_target"] == {"count": 2, "waiting_past_target": 0, "share": 0.5}
    c2 = figures_of(report["counters"], "id", "c2")
    assert c2["within_target"] == {"count": 1, "waiting_past_target": 0, "share": 0.3333}

    assert report["daily"] == [
        {
            "day": DAY.isoformat(),
            "issued": 10,
            "served": 3,
            "expired": 3 if expired else 0,
            "waits": 7,
            "within_target_count": 3,
            "waiting_past_target": 1,
            "within_target_share": 0.375,
            # waits 50, 100, 300, 480, 700, 900, 920: p90 at rank 5.4
            "wait_p90": 900 + 0.4 * 20,
        }
    ]


async def test_expired_visits_that_waited_past_target_lower_the_share(
    client: TestClient, clock: ManualClock
) -> None:
    await evening(client, clock)
    # 23:59 WITA: the live day, T7 waiting for 53940 s, T8 for 120 s.
    clock.set(T0 + timedelta(seconds=MIDNIGHT - 60))
    live = await get_report(client, **ONE_DAY)
    assert live["partial_today"] is True
    check_evening(live, expired=False)

    # Midnight: the day closes; T7 and T8 (waiting) and T9 (called) expire at 16:00 UTC.
    clock.set(T0 + timedelta(seconds=MIDNIGHT + 60))
    assert await client.app[ENGINE].close_day(HALL) == 3
    closed = await get_report(client, **ONE_DAY)
    assert closed["partial_today"] is False
    check_evening(closed, expired=True)
    # The expired visits waited until the day's end, not until the report's time: three
    # days later T8 (180 s) is still not past its 300 s target, and nothing moved.
    clock.set(T0 + timedelta(days=3))
    later = await get_report(client, **{"from": DAY.isoformat()})
    assert later["totals"] == closed["totals"]
    assert later["daily"] == closed["daily"]


async def test_the_expired_outcome_and_the_share_parts_are_in_csv_and_html(
    client: TestClient, clock: ManualClock
) -> None:
    await evening(client, clock)
    clock.set(T0 + timedelta(seconds=MIDNIGHT + 60))
    assert await client.app[ENGINE].close_day(HALL) == 3

    rows = await fetch_csv(client, **ONE_DAY)
    site = csv_record(rows, "tingkat/level", "site")
    assert site["kedaluwarsa saat hari berakhir/expired at day end"] == "3"
    assert site["belum selesai/open"] == "0"
    assert site["jumlah tunggu/waits"] == "7"
    assert site["dalam standar/within target"] == "3"
    assert site["belum dipanggil melewati standar/not called, past target"] == "1"
    assert site["% dalam standar/% within target"] == "0,375"
    s1 = csv_record(rows, "tingkat/level", "service")  # the first service row: S1
    assert s1["id"] == "S1"
    assert s1["kedaluwarsa saat hari berakhir/expired at day end"] == "2"
    assert s1["% dalam standar/% within target"] == "0,3333"
    daily = csv_record(rows, "hari/day", DAY.isoformat())
    assert daily["kedaluwarsa saat hari berakhir/expired at day end"] == "3"
    assert daily["jumlah tunggu/waits"] == "7"
    assert daily["dalam standar/within target"] == "3"
    assert daily["belum dipanggil melewati standar/not called, past target"] == "1"
    assert daily["% dalam standar/% within target"] == "0,375"

    html = await fetch_html(client, **ONE_DAY)
    assert 'Kedaluwarsa <span class="en">Expired</span>' in html
    # The total row: issued 10, served 3, no-show 1, cancelled 2, transferred 1,
    # expired 3, 3 / 8 within target.
    assert (
        '<tr class="total"><td><b>Total</b></td><td>10</td><td>3</td><td>1</td><td>2</td>'
        "<td>1</td><td>3</td><td>37,5%</td>"
    ) in html
    assert "<b>37,5%</b>" in html  # the headline figure


async def test_tickets_still_waiting_past_target_lower_the_live_share(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)  # within 3 of 6 called, nothing waits
    day.at(3600)
    await day.issue("T7", "S2")  # target 300 s
    day.at(3650)
    await day.issue("T8", "S1")  # target 600 s

    # Exactly at the target T7 is not past it (a wait of the target is within).
    day.at(3900)
    at_target = await get_report(client, **ONE_DAY)
    assert at_target["totals"]["open"] == 2
    assert at_target["totals"]["within_target"] == {
        "count": 3,
        "waiting_past_target": 0,
        "share": 0.5,
    }

    # One second later it is: 3 / (6 + 1). T8 (251 s of 600) is not counted either way.
    day.at(3901)
    report = await get_report(client, **ONE_DAY)
    assert report["totals"]["within_target"] == {
        "count": 3,
        "waiting_past_target": 1,
        "share": 0.4286,
    }
    s2 = figures_of(report["services"], "code", "S2")
    assert s2["within_target"] == {"count": 1, "waiting_past_target": 1, "share": 0.3333}
    s1 = figures_of(report["services"], "code", "S1")
    assert s1["within_target"] == {"count": 2, "waiting_past_target": 0, "share": 0.5}
    assert report["daily"][0]["waiting_past_target"] == 1
    assert report["daily"][0]["within_target_share"] == 0.4286
    # The board's headline says the same at the same instant.
    headline = await snapshot_headline(client)
    assert headline["called_today"] == report["totals"]["wait"]["count"]
    assert headline["called_within_target_today"] == report["totals"]["within_target"]["count"]
    assert headline["waiting_over_target"] == 1
    assert headline["within_standard_share"] == report["totals"]["within_target"]["share"]
    site = csv_record(await fetch_csv(client, **ONE_DAY), "tingkat/level", "site")
    assert site["belum dipanggil melewati standar/not called, past target"] == "1"
    assert site["% dalam standar/% within target"] == "0,4286"
    assert "<b>42,9%</b>" in await fetch_html(client, **ONE_DAY)

    # T7 called at 400 s: a breach while waiting is now a breach at its call; same share.
    day.at(4000)
    await day.act("c2", "open")
    await day.call("c2", "T7")
    called = await get_report(client, **ONE_DAY)
    assert called["totals"]["wait"]["count"] == 7
    assert called["totals"]["within_target"] == {
        "count": 3,
        "waiting_past_target": 0,
        "share": 0.4286,
    }
