"""Reports on a scripted day through the real API and PostgreSQL: every figure equals the
value computed by hand from DESIGN's definitions (percentiles interpolate linearly, as
PostgreSQL's percentile_cont), on the live day and once the day is rolled up; the CSV,
JSON and HTML forms; the command line."""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.vocab import Role
from queue_service.reports import cli
from tests.conftest import auth
from tests.halls import Bearer, Hall, counter, every_day, service

HALL = "hall"
BASE = f"/api/v1/sites/{HALL}"
# Monday 23 November 2026, 08:00 WITA (UTC+8).
DAY = date(2026, 11, 23)
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


# Two agencies, S1 (target 10 min) at counters c1 and c2, S2 (target 5 min) at c2; c2 does
# not use "start".
REPORT_HALL = Hall(
    id=HALL,
    name="Mal Pelayanan Publik Uji",
    hours=every_day("00:00", "23:59"),
    agencies=({"id": "a1", "name": "Instansi Satu"}, {"id": "a2", "name": "Instansi Dua"}),
    services=(
        service(
            "S1",
            agency="a1",
            name_id="Layanan Satu",
            name_en="Service One",
            prefix="A",
            target_wait_minutes=10,
        ),
        service(
            "S2",
            agency="a2",
            name_id="Layanan Dua",
            name_en="Service Two",
            prefix="B",
            target_wait_minutes=5,
        ),
    ),
    counters=(
        counter("c1", "S1", name="Loket 1"),
        counter("c2", "S1", "S2", name="Loket 2", uses_start=False),
    ),
)
# A site the report hall's manager may not see.
OTHER_HALL = Hall(
    id="other",
    name="Other hall",
    timezone="Asia/Jakarta",
    hours={"mon": ("08:00", "15:00")},
    agencies=({"id": "x", "name": "X"},),
    services=(service("X", agency="x", name_id="X", name_en="X", target_wait_minutes=10),),
    counters=(counter("x1", "X", name="X1"),),
)
REPORT_TOKENS = (
    Bearer("report-admin", Role.ADMIN, name="admin"),
    Bearer("report-manager", Role.MANAGER, name="manager", sites=(HALL,)),
    Bearer("other-manager", Role.MANAGER, name="other-manager", sites=("other",)),
    Bearer("report-c2", Role.COUNTER, name="counter-c2", sites=(HALL,), counters=("c2",)),
    Bearer("survey-c2", Role.SURVEY, name="survey-tablet-c2", sites=(HALL,), counters=("c2",)),
)
ADMIN, MANAGER, OTHER_MANAGER = (t.headers for t in REPORT_TOKENS[:3])


def report_hall(**fields: Any) -> AppConfig:
    """The report hall (its `fields` changed as given), the other site, and their tokens."""
    return replace(REPORT_HALL, **fields, other_sites=(OTHER_HALL,), tokens=REPORT_TOKENS).config()


@pytest.fixture
def config() -> AppConfig:
    """The report hall, for the `client` fixture."""
    return report_hall()


class Day:
    """Drives the scripted day through the API with the test's clock."""

    def __init__(self, client: TestClient, clock: ManualClock, start: datetime = T0) -> None:
        self.client, self.clock, self.start = client, clock, start
        self.tickets: dict[str, str] = {}

    def at(self, seconds: float) -> None:
        self.clock.set(self.start + timedelta(seconds=seconds))

    async def issue(self, name: str, service: str) -> None:
        resp = await self.client.post(f"{BASE}/tickets", json={"service": service}, headers=ADMIN)
        assert resp.status == 201, await resp.text()
        self.tickets[name] = (await resp.json())["id"]

    async def act(self, counter: str, action: str, body: dict[str, Any] | None = None) -> None:
        resp = await self.client.post(
            f"{BASE}/counters/{counter}/{action}", json=body or {}, headers=ADMIN
        )
        assert resp.status == 200, await resp.text()

    async def call(self, counter: str, name: str) -> None:
        await self.act(counter, "call", {"ticket_id": self.tickets[name]})


async def play_day(client: TestClient, clock: ManualClock, start: datetime = T0) -> Day:
    """The scripted day (seconds after 08:00 WITA). Visits, by hand:

    T1 S1 c1: issued 0, called 300, started 360, served 900  -> wait 300, walk 60, service 540
    T2 S1 c1: issued 60, called 960, recalled 1020, no-show 1080 -> wait 900
    T3 S2 c2: issued 120, called 600, served 960 (no start)    -> wait 480, walk 0, service 360
    T4 S1 c2: issued 180, called 1100, transferred 1200         -> wait 920, walk 0, service 100
    T4 S2 c2: enqueued 1200, called 1300, served 1500           -> wait 100, walk 0, service 200
    T5 S2   : issued 1260, cancelled 1320                        -> no wait
    T6 S1 c1: issued 1400, called 1450, started 1500, incomplete 1800
                                                                 -> wait 50, walk 50, service 300
    c1 open 0 .. paused 1900; c2 open 0 .. closed 2000.
    """
    d = Day(client, clock, start)
    d.at(0)
    await d.act("c1", "open")
    await d.act("c2", "open")
    await d.issue("T1", "S1")
    d.at(60)
    await d.issue("T2", "S1")
    d.at(120)
    await d.issue("T3", "S2")
    d.at(180)
    await d.issue("T4", "S1")
    d.at(300)
    await d.call("c1", "T1")
    d.at(360)
    await d.act("c1", "start")
    d.at(600)
    await d.call("c2", "T3")
    d.at(900)
    await d.act("c1", "finish", {"outcome": "served"})
    d.at(960)
    await d.call("c1", "T2")
    await d.act("c2", "finish", {"outcome": "served"})
    d.at(1020)
    await d.act("c1", "recall")
    d.at(1080)
    await d.act("c1", "no-show")
    d.at(1100)
    await d.call("c2", "T4")
    d.at(1200)
    await d.act("c2", "transfer", {"service": "S2"})
    d.at(1260)
    await d.issue("T5", "S2")
    d.at(1300)
    await d.call("c2", "T4")
    d.at(1320)
    resp = await client.post(f"/api/v1/tickets/{d.tickets['T5']}/cancel", json={})
    assert resp.status == 200, await resp.text()
    d.at(1400)
    await d.issue("T6", "S1")
    d.at(1450)
    await d.call("c1", "T6")
    d.at(1500)
    await d.act("c1", "start")
    await d.act("c2", "finish", {"outcome": "served"})
    d.at(1800)
    await d.act("c1", "finish", {"outcome": "incomplete"})
    d.at(1900)
    await d.act("c1", "pause", {"reason": "Istirahat"})
    d.at(2000)
    await d.act("c2", "close")
    d.at(3600)
    return d


async def get_report(client: TestClient, **query: str) -> dict[str, Any]:
    resp = await client.get(f"{BASE}/report", params=query, headers=MANAGER)
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def figures_of(items: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    return next(i for i in items if i[key] == value)


def check_day(report: dict[str, Any]) -> None:
    t = report["totals"]
    assert (t["visits"], t["issued"], t["served"], t["incomplete"]) == (7, 6, 3, 1)
    assert (t["no_show"], t["cancelled"], t["transferred"], t["open"]) == (1, 1, 1, 0)
    assert t["expired"] == 0
    # waits 50, 100, 300, 480, 900, 920: p50 at rank 2.5, p90 at rank 4.5
    assert t["wait"] == {
        "count": 6,
        "p50": (300 + 480) / 2,
        "p90": 900 + 0.5 * 20,
        "max": 920.0,
        "mean": round(2750 / 6, 3),
    }
    # within target: T1 (300 <= 600), T4 in S2 (100 <= 300), T6 (50 <= 600); T5 waited
    # only 60 s and was cancelled: never a breach.
    assert t["within_target"] == {"count": 3, "waiting_past_target": 0, "share": 0.5}
    # walks 0, 0, 0, 50, 60; p90 at rank 3.6
    assert t["walk"] == {"count": 5, "p50": 0.0, "p90": 50 + 0.6 * 10, "mean": 22.0}
    # services 100, 200, 300, 360, 540; p90 at rank 3.6
    assert t["service"] == {"count": 5, "p50": 300.0, "p90": 360 + 0.6 * 180, "mean": 300.0}

    s1 = figures_of(report["services"], "code", "S1")
    assert (s1["visits"], s1["issued"], s1["served"], s1["transferred"]) == (4, 4, 1, 1)
    # waits 50, 300, 900, 920: p50 at rank 1.5, p90 at rank 2.7
    assert s1["wait"]["p50"] == 600.0 and s1["wait"]["p90"] == pytest.approx(914.0)
    assert s1["within_target"] == {"count": 2, "waiting_past_target": 0, "share": 0.5}
    s2 = figures_of(report["services"], "code", "S2")
    assert (s2["visits"], s2["issued"], s2["served"], s2["cancelled"]) == (3, 2, 2, 1)
    # waits 100, 480
    assert s2["wait"]["p50"] == 290.0 and s2["wait"]["p90"] == pytest.approx(442.0)
    assert s2["within_target"] == {"count": 1, "waiting_past_target": 0, "share": 0.5}
    assert figures_of(report["agencies"], "id", "a1")["wait"] == s1["wait"]
    assert figures_of(report["agencies"], "id", "a2")["served"] == 2

    c1 = figures_of(report["counters"], "id", "c1")
    assert (c1["served"], c1["no_show"], c1["incomplete"]) == (1, 1, 1)
    # c1: open 0..1900; busy 300..900, 960..1080, 1450..1800; S1 waits 0..1100, 1400..1450
    # idle while queue: 0..300, 900..960, 1080..1100, 1400..1450
    assert c1["open_seconds"] == 1900.0 and c1["busy_seconds"] == 1070.0
    assert c1["idle_while_queue_seconds"] == 430.0
    c2 = figures_of(report["counters"], "id", "c2")
    assert (c2["served"], c2["transferred"]) == (2, 1)
    # c2: open 0..2000; busy 600..960, 1100..1200, 1300..1500; S1 or S2 waiting
    # 0..1100, 1200..1320, 1400..1450 -> idle while queue 0..600, 960..1100, 1200..1300
    assert c2["open_seconds"] == 2000.0 and c2["busy_seconds"] == 660.0
    assert c2["idle_while_queue_seconds"] == 840.0

    # All arrivals in the 08 hour, WITA (00 UTC).
    assert report["hours"] == [
        {
            "hour": 8,
            "arrivals": 6,
            "waits": 6,
            "wait_mean": round(2750 / 6, 3),
            "wait_p90": 910.0,
        }
    ]
    assert report["daily"] == [
        {
            "day": "2026-11-23",
            "issued": 6,
            "served": 3,
            "expired": 0,
            "waits": 6,
            "within_target_count": 3,
            "waiting_past_target": 0,
            "within_target_share": 0.5,
            "wait_p90": 910.0,
        }
    ]


async def test_report_figures_equal_the_hand_computed_scripted_day(
    client: TestClient, clock: ManualClock
) -> None:
    await play_day(client, clock)
    report = await get_report(client, **{"from": DAY.isoformat(), "to": DAY.isoformat()})
    assert report["partial_today"] is True
    check_day(report)


async def test_a_rolled_up_past_day_gives_the_same_figures_as_the_live_day(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    await play_day(client, clock)
    clock.set(T0 + timedelta(days=2))
    report = await get_report(client, **{"from": "2026-11-20", "to": "2026-11-25"})
    assert report["partial_today"] is True and report["days"] == 6
    check_day(report)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM report_visits") == 7
        assert await conn.fetchval("SELECT count(*) FROM report_days") == 1
        # A later event of that day (a correction) makes the rolled-up day stale.
        seq = await conn.fetchval("SELECT max(seq) FROM ticket_events")
        await conn.execute(
            "INSERT INTO ticket_events (seq, site_id, service_day, type, ts, counter_id)"
            " VALUES ($1, $2, $3, 'counter_opened', $4, 'c1')",
            seq + 1,
            HALL,
            DAY,
            T0 + timedelta(seconds=3000),
        )
    finally:
        await conn.close()
    again = await get_report(client, **{"from": "2026-11-23", "to": "2026-11-23"})
    # c1 reopened at 3000 and never closed: open until the day's last event (3000), +0.
    assert figures_of(again["counters"], "id", "c1")["open_seconds"] == 1900.0
    assert again["totals"] == report["totals"]


async def test_estimate_accuracy_compares_the_wait_told_at_issue_with_the_actual_wait(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    day = await play_day(client, clock)
    conn = await asyncpg.connect(database_url)
    try:
        told = {
            r["ticket_id"]: r["estimate"]
            for r in await conn.fetch(
                "SELECT ticket_id, (data ->> 'estimated_wait_seconds')::float8 AS estimate"
                " FROM ticket_events WHERE type = 'ticket_issued'"
            )
        }
    finally:
        await conn.close()
    # The actual waits of the first visits, by hand (T5 was never called).
    waited = {"T1": 300, "T2": 900, "T3": 480, "T4": 920, "T6": 50}
    errors = [
        waited[name] - told[day.tickets[name]]
        for name in waited
        if told[day.tickets[name]] is not None
    ]
    assert errors, "the scripted day's tickets were given estimates"
    report = await get_report(client, **{"from": DAY.isoformat()})
    assert report["totals"]["estimate"] == {
        "count": len(errors),
        "mae": round(sum(abs(e) for e in errors) / len(errors), 3),
        "bias": round(sum(errors) / len(errors), 3),
    }
    clock.set(T0 + timedelta(days=1))  # the same from the rolled-up day
    rolled = await get_report(client, **{"from": DAY.isoformat()})
    assert rolled["totals"]["estimate"] == report["totals"]["estimate"]


async def test_visits_of_agrees_with_the_ticket_visits_view(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    await play_day(client, clock)
    columns = (
        "site_id, service_day, ticket_id, segment, service, priority, source, counter_id,"
        " ticket_issued_at, enqueued_at, first_called_at, last_called_at, started_at,"
        " finished_at, outcome, calls, wait_seconds, walk_seconds, service_seconds,"
        " estimated_wait_seconds"
    )
    conn = await asyncpg.connect(database_url)
    try:
        view = await conn.fetch(
            f"SELECT {columns} FROM ticket_visits WHERE site_id = $1"  # noqa: S608
            " ORDER BY ticket_id, segment",
            HALL,
        )
        fn = await conn.fetch(
            f"SELECT {columns} FROM visits_of($1, $2, $2)"  # noqa: S608
            " ORDER BY ticket_id, segment",
            HALL,
            DAY,
        )
    finally:
        await conn.close()
    assert len(view) == 7
    assert [tuple(r) for r in fn] == [tuple(r) for r in view]


async def test_csv_is_excel_ready_with_bom_semicolons_and_decimal_commas(
    client: TestClient, clock: ManualClock
) -> None:
    await play_day(client, clock)
    resp = await client.get(
        f"{BASE}/report", params={"format": "csv", "from": "2026-11-23"}, headers=MANAGER
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    header = next(r for r in rows if r and r[0] == "tingkat/level")
    site_row = next(r for r in rows if r and r[0] == "site")
    record = dict(zip(header, site_row, strict=True))
    assert record["tiket diambil/issued"] == "6"
    assert record["tunggu p50 (detik)/wait p50 (s)"] == "390"
    assert record["tunggu rata-rata (detik)/wait mean (s)"] == "458,333"
    assert record["% dalam standar/% within target"] == "0,5"
    english = await client.get(
        f"{BASE}/report",
        params={"format": "csv", "from": "2026-11-23", "locale": "en"},
        headers=MANAGER,
    )
    text = (await english.read()).decode("utf-8-sig")
    assert "458.333" in text and "tingkat/level,id," in text


async def test_html_report_is_self_contained_and_escapes_names(
    client: TestClient, clock: ManualClock
) -> None:
    await play_day(client, clock)
    resp = await client.get(
        f"{BASE}/report", params={"format": "html", "from": "2026-11-23"}, headers=MANAGER
    )
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert "<svg" in html and "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "Laporan Pelayanan" in html and "Layanan Satu" in html


async def test_report_access_is_for_managers_of_the_site(
    client: TestClient, clock: ManualClock
) -> None:
    resp = await client.get(f"{BASE}/report")
    assert resp.status == 401 and (await resp.json())["code"] == "token_required"
    resp = await client.get(f"{BASE}/report", headers=OTHER_MANAGER)
    assert resp.status == 403 and (await resp.json())["code"] == "site_not_allowed"
    resp = await client.get(f"{BASE}/report", headers=auth("report-c2"))
    assert resp.status == 403 and (await resp.json())["code"] == "role_not_allowed"
    resp = await client.get("/api/v1/sites/nope/report", headers=ADMIN)
    assert resp.status == 404 and (await resp.json())["code"] == "unknown_site"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "yesterday"}, "invalid_date"),
        ({"from": "2026-11-23", "to": "2026-11-01"}, "invalid_range"),
        ({"from": "2025-01-01", "to": "2026-11-23"}, "invalid_range"),
        ({"format": "xlsx"}, "invalid_format"),
    ],
)
async def test_bad_report_requests_get_a_stable_code(
    client: TestClient, query: dict[str, str], code: str
) -> None:
    resp = await client.get(f"{BASE}/report", params=query, headers=MANAGER)
    assert resp.status == 400
    assert (await resp.json())["code"] == code


async def test_cli_writes_the_report_from_the_database(
    client: TestClient,
    clock: ManualClock,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await play_day(client, clock)
    config_file = replace(REPORT_HALL, hours={"mon": ("00:00", "23:59")}).write(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    out = tmp_path / "report.json"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            *("--site", HALL, "--from", "2026-11-16", "--to", "2026-11-23"),
            *("--format", "json", "--output", str(out), "--config", str(config_file)),
        ]
    )
    # Run the CLI's own event loop outside the test's loop.
    import asyncio

    code = await asyncio.to_thread(cli.main, args, ManualClock(T0 + timedelta(days=1)))
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["partial_today"] is False
    check_day(report)
    bad = parser.parse_args(
        [
            "--site",
            "nope",
            "--from",
            "2026-11-16",
            "--to",
            "2026-11-23",
            "--config",
            str(config_file),
        ]
    )
    assert await asyncio.to_thread(cli.main, bad) == 1
    assert "unknown site 'nope'" in capsys.readouterr().err


async def test_ikm_gauges_are_on_metrics_per_site_and_service(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)
    resp = await client.post(
        f"/api/v1/tickets/{day.tickets['T1']}/survey", json={"scores": [4, 4, 3, 4, 3, 4, 4, 3, 3]}
    )
    assert resp.status == 201
    from queue_service.web.reports_api import REPORTS

    await client.app[REPORTS].refresh()
    text = await (await client.get("/metrics")).text()
    # (4+4+3+4+3+4+4+3+3) / 9 * 25 = 32 / 9 * 25 = 88.888... -> 88.89
    assert 'qms_ikm_score{site="hall",service="S1"} 88.89' in text
    assert 'qms_ikm_respondents{site="hall",service="S1"} 1' in text
    assert 'qms_site_ikm_score{site="hall"} 88.89' in text
