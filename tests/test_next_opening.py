"""A closed hall says when it opens (issue 15, item 7).

`Site.next_opening(now)`: the next opening, site-local, or None while open (a break is not a
closing); `Site.next_day_opening(now, cutoff)`: when a service refused for the rest of the
day (cutoff, quota) issues again. Then the API: the 409 refusals carry `details.opens_at`,
and the snapshot, the site directory and the display carry `next_opening`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig, load_config
from queue_service.domain.clock import ManualClock
from queue_service.domain.site import Site
from queue_service.settings import Settings
from queue_service.web import openapi
from queue_service.web.app import create_app
from tests.conftest import EXAMPLE, KIOSK, MANAGER, SITE
from tests.halls import DEMO_KIOSK, DEMO_MANAGER, Hall, counter, service

WITA = ZoneInfo("Asia/Makassar")  # UTC+8
HALL = load_config(EXAMPLE).sites[SITE]  # Mon-Thu 08-15, Fri 08-15:30, Sat 08-12, Sun closed


def wita(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A local WITA time in November 2026 (Monday the 23rd, Sunday the 29th)."""
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=WITA)


def hall_config(
    hours: dict[str, list[str]],
    timezone: str = "Asia/Makassar",
    **service_fields: Any,
) -> AppConfig:
    """One site "hall" with one service Q and one counter; the demo kiosk and manager tokens."""
    return Hall(
        hours=hours,
        timezone=timezone,
        services=(service("Q", **service_fields),),
        counters=(counter("c1", name="Loket 1"),),
        tokens=(DEMO_KIOSK, DEMO_MANAGER),
    ).config()


def hall(hours: dict[str, list[str]], timezone: str = "Asia/Makassar") -> Site:
    return hall_config(hours, timezone).sites["hall"]


# -- the pure function ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(wita(28, 13), wita(30, 8), id="saturday-afternoon-to-monday"),
        pytest.param(wita(29, 10), wita(30, 8), id="closed-sunday-to-monday"),
        pytest.param(wita(28, 23, 59, 59), wita(30, 8), id="saturday-night"),
        pytest.param(wita(29, 0), wita(30, 8), id="sunday-midnight"),
        pytest.param(wita(23, 7, 59, 59), wita(23, 8), id="before-opening-same-day"),
        pytest.param(wita(23, 0), wita(23, 8), id="monday-midnight"),
        pytest.param(wita(23, 15), wita(24, 8), id="at-closing-to-next-day"),
        pytest.param(wita(23, 21, 30), wita(24, 8), id="after-closing"),
        pytest.param(wita(27, 15, 30), wita(28, 8), id="friday-late-closing-to-saturday"),
        pytest.param(wita(27, 15, 29, 59), None, id="open-until-the-last-second"),
        pytest.param(wita(23, 8), None, id="open-at-opening"),
        pytest.param(wita(23, 12, 30), None, id="a-break-is-not-a-closing"),
        pytest.param(wita(27, 12), None, id="friday-prayer-break"),
    ],
)
def test_next_opening_of_the_example_hall(now: datetime, expected: datetime | None) -> None:
    opening = HALL.next_opening(now.astimezone(UTC))
    assert opening == expected
    assert (opening is None) == HALL.is_open(now.astimezone(UTC))
    if opening is not None:
        # Site-local: the hall's zone and its offset, as the pages show it.
        assert opening.tzinfo == WITA
        assert opening.isoformat() == expected.isoformat()  # type: ignore[union-attr]


def test_the_example_halls_sunday_night_opening_is_written_with_its_offset() -> None:
    opening = HALL.next_opening(wita(29, 21).astimezone(UTC))
    assert opening is not None
    assert opening.isoformat() == "2026-11-30T08:00:00+08:00"


def test_a_day_opening_at_00_00_after_one_closing_at_24_00_continues_it() -> None:
    # Friday evening through the weekend to Sunday noon, without a break at midnight.
    site = hall({"fri": ["18:00", "24:00"], "sat": ["00:00", "24:00"], "sun": ["00:00", "12:00"]})
    # Open through both midnights: there is no next opening.
    for now in (wita(27, 23, 59, 59), wita(28, 0), wita(28, 13), wita(29, 0), wita(29, 11, 59)):
        assert site.next_opening(now.astimezone(UTC)) is None, now
    # Before the stretch, it opens Friday 18:00, not at Saturday's or Sunday's 00:00.
    assert site.next_opening(wita(27, 9)) == wita(27, 18)
    assert site.next_opening(wita(23, 9)) == wita(27, 18)
    # After it, the next Friday, 18:00.
    assert site.next_opening(wita(29, 12)) == datetime(2026, 12, 4, 18, tzinfo=WITA)


def test_a_day_opening_at_00_00_after_one_closing_before_midnight_opens_at_00_00() -> None:
    site = hall({"mon": ["20:00", "23:00"], "tue": ["00:00", "06:00"]})
    assert site.next_opening(wita(23, 23, 30)) == wita(24, 0)
    assert site.next_opening(wita(23, 22, 59)) is None
    assert site.next_opening(wita(23, 10)) == wita(23, 20)
    assert site.next_opening(wita(24, 6)) == wita(30, 20)


def test_a_hall_open_one_day_a_week_opens_again_seven_days_later() -> None:
    site = hall({"mon": ["08:00", "15:00"]})
    assert site.next_opening(wita(23, 15)) == wita(30, 8)
    assert site.next_opening(wita(30, 7)) == wita(30, 8)


def test_a_hall_open_all_week_never_has_a_next_opening() -> None:
    site = hall({d: ["00:00", "24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    for hour in range(0, 24 * 7, 5):
        assert site.next_opening(wita(23, 0).astimezone(UTC) + timedelta(hours=hour)) is None


def test_next_opening_in_western_indonesia_is_in_wib() -> None:
    wib = ZoneInfo("Asia/Jakarta")  # UTC+7
    site = hall(
        {d: ["07:30", "16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, "Asia/Jakarta"
    )
    # Friday 16:00 WIB: closing time, so Monday 07:30 WIB.
    opening = site.next_opening(datetime(2026, 11, 27, 16, tzinfo=wib))
    assert opening is not None
    assert opening.isoformat() == "2026-11-30T07:30:00+07:00"
    # 07:00 WITA on Monday is still 06:00 WIB: before opening, the same day.
    monday = site.next_opening(wita(30, 7))
    assert monday is not None and monday.isoformat() == "2026-11-30T07:30:00+07:00"


def test_next_opening_across_a_daylight_saving_change_has_the_openings_offset() -> None:
    ams = ZoneInfo("Europe/Amsterdam")  # CET +01:00, CEST +02:00 from Sunday 29 March 2026
    site = hall({d: ["09:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, str(ams))
    friday_evening = datetime(2026, 3, 27, 18, tzinfo=ams)
    assert friday_evening.isoformat().endswith("+01:00")
    opening = site.next_opening(friday_evening)
    assert opening is not None
    assert opening.isoformat() == "2026-03-30T09:00:00+02:00"
    assert opening.astimezone(UTC) == datetime(2026, 3, 30, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day_before", "expected"),
    [
        # 29 March 2026: 02:00 CET jumps to 03:00 CEST; the skipped 02:30 opens at the jump.
        pytest.param(datetime(2026, 3, 28, 12), "2026-03-29T03:00:00+02:00", id="forward"),
        # 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 shown twice is the first.
        pytest.param(datetime(2026, 10, 24, 12), "2026-10-25T02:30:00+02:00", id="back"),
    ],
)
def test_an_opening_on_a_day_the_clocks_change(day_before: datetime, expected: str) -> None:
    site = hall({"sun": ["02:30", "10:00"]}, "Europe/Berlin")
    opening = site.next_opening(day_before.replace(tzinfo=ZoneInfo("Europe/Berlin")))
    assert opening is not None
    assert opening.isoformat() == expected
    at = opening.astimezone(UTC)
    assert site.is_open(at) and not site.is_open(at - timedelta(seconds=1))


def test_in_the_hour_shown_twice_the_hall_opens_at_the_second_showing() -> None:
    # 25 October 2026 in Berlin: open from 02:30 in the first 02:00-03:00 (CEST), then the
    # clocks go back to 02:00 (CET): closed again until 02:30 comes round a second time.
    site = hall({"sun": ["02:30", "10:00"]}, "Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:45 CEST
    assert site.is_open(first)
    again = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET
    assert not site.is_open(again)
    opening = site.next_opening(again)
    assert opening is not None
    assert opening.isoformat() == "2026-10-25T02:30:00+01:00"
    assert opening.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def first_open_minute(site: Site, now: datetime) -> datetime | None:
    """The reference: step a minute at a time (every configured time is on a minute) from
    the next whole minute until the hall is open; within 8 days."""
    at = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(8 * 24 * 60):
        if site.is_open(at):
            return at
        at += timedelta(minutes=1)
    return None


@pytest.mark.parametrize(
    ("site", "start"),
    [
        pytest.param(HALL, datetime(2026, 11, 21, tzinfo=UTC), id="example-hall"),
        pytest.param(
            hall({"fri": ["18:00", "24:00"], "sat": ["00:00", "24:00"], "sun": ["00:00", "12:00"]}),
            datetime(2026, 11, 21, tzinfo=UTC),
            id="weekend-through-midnights",
        ),
        pytest.param(
            hall(
                {d: ["09:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                "America/Sao_Paulo",
            ),
            datetime(2026, 11, 21, tzinfo=UTC),
            id="utc-minus-3",
        ),
        pytest.param(
            hall({"sat": ["01:00", "24:00"], "sun": ["00:00", "02:30"]}, "Europe/Berlin"),
            datetime(2026, 3, 26, tzinfo=UTC),
            id="berlin-spring-forward",
        ),
        pytest.param(
            hall({"sat": ["20:00", "24:00"], "sun": ["02:30", "10:00"]}, "Europe/Berlin"),
            datetime(2026, 10, 22, tzinfo=UTC),
            id="berlin-fall-back",
        ),
    ],
)
def test_next_opening_is_the_first_instant_the_hall_is_open(site: Site, start: datetime) -> None:
    # Instants over ten days, 97 minutes apart (every time of day comes round): the next
    # opening is None exactly when open, else the first open minute after now.
    for step in range(0, 10 * 24 * 60, 97):
        now = start + timedelta(minutes=step, seconds=17)
        opening = site.next_opening(now)
        if site.is_open(now):
            assert opening is None, now
            continue
        assert opening is not None, now
        assert opening.tzinfo == site.timezone
        assert opening.astimezone(UTC) == first_open_minute(site, now), now


def test_when_a_service_issues_again_after_its_cutoff_or_quota() -> None:
    monday_afternoon = wita(23, 14, 30).astimezone(UTC)
    assert HALL.next_day_opening(monday_afternoon, time(14)) == wita(24, 8)
    # Saturday's hours (08-12) begin before a 14:00 cutoff: Saturday counts.
    assert HALL.next_day_opening(wita(27, 15).astimezone(UTC), time(14)) == wita(28, 8)
    # A cutoff at or before every opening: never within the week.
    assert HALL.next_day_opening(monday_afternoon, time(8)) is None
    # Saturday afternoon, quota used up (no cutoff): Monday.
    assert HALL.next_day_opening(wita(28, 11).astimezone(UTC)) == wita(30, 8)
    # A hall open through midnight: the new service day's 00:00.
    site = hall({d: ["00:00", "24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
    assert site.next_day_opening(wita(23, 16), time(14)) == wita(24, 0)
    assert site.next_day_opening(wita(28, 16), time(14)) == wita(30, 0)


# -- the API -------------------------------------------------------------------------------


async def get(client: TestClient, path: str, headers: dict[str, str] | None = None) -> Any:
    resp = await client.get(path, headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def views(client: TestClient, site: str) -> dict[str, dict[str, Any]]:
    base = f"/api/v1/sites/{site}"
    return {
        "snapshot": await get(client, f"{base}/snapshot", MANAGER),
        "directory": await get(client, base),
        "display": await get(client, f"{base}/display"),
    }


async def issue(client: TestClient, site: str, service: str) -> tuple[int, Any]:
    resp = await client.post(
        f"/api/v1/sites/{site}/tickets", json={"service": service}, headers=KIOSK
    )
    return resp.status, await resp.json()


async def test_a_closed_hall_says_when_it_opens_in_the_refusal_and_every_view(
    client: TestClient, clock: ManualClock
) -> None:
    # Sunday 29 November 2026, 21:00 WITA: closed on Sundays.
    clock.set(wita(29, 21))
    status, refused = await issue(client, SITE, "KTP-EL")
    assert status == 409, refused
    assert refused["code"] == "site_closed"
    assert refused["details"] == {"site": SITE, "opens_at": "2026-11-30T08:00:00+08:00"}
    for name, view in (await views(client, SITE)).items():
        assert view["open"] is False, name
        assert view["next_opening"] == "2026-11-30T08:00:00+08:00", name

    # Saturday 28 November, 13:00: closed since noon, so Monday too (Sunday is closed).
    clock.set(wita(28, 13))
    status, refused = await issue(client, SITE, "KK")
    assert status == 409 and refused["details"]["opens_at"] == "2026-11-30T08:00:00+08:00"
    # Monday 30 November, 06:15: the same morning.
    clock.set(wita(30, 6, 15))
    status, refused = await issue(client, SITE, "KK")
    assert status == 409 and refused["details"]["opens_at"] == "2026-11-30T08:00:00+08:00"
    for name, view in (await views(client, SITE)).items():
        assert view["next_opening"] == "2026-11-30T08:00:00+08:00", name

    # Open, and during a break (tickets are issued through it): no next opening.
    for now in (wita(30, 8), wita(30, 12, 30)):
        clock.set(now)
        for name, view in (await views(client, SITE)).items():
            assert view["open"] is True, name
            assert view["next_opening"] is None, name
    assert (await views(client, SITE))["display"]["break"] == {
        "label": "Istirahat",
        "until": "13:00",
    }
    status, ticket = await issue(client, SITE, "KK")
    assert status == 201, ticket


async def test_a_cutoff_refusal_says_when_the_service_issues_again(
    client: TestClient, clock: ManualClock
) -> None:
    clock.set(wita(23, 14, 30))  # Monday, after KTP-EL's 14:00 cutoff
    status, refused = await issue(client, SITE, "KTP-EL")
    assert status == 409, refused
    assert refused["code"] == "cutoff_passed"
    assert refused["details"]["cutoff"] == "14:00"
    assert refused["details"]["opens_at"] == "2026-11-24T08:00:00+08:00"
    # The hall itself is open: the views have no next opening.
    for name, view in (await views(client, SITE)).items():
        assert view["next_opening"] is None, name


async def test_a_quota_refusal_in_a_hall_open_round_the_clock_says_the_next_midnight(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    config = hall_config({d: ["00:00", "24:00"] for d in days}, daily_quota=1)
    client = await aiohttp_client(create_app(settings, config, clock))
    clock.set(wita(23, 22))
    assert (await issue(client, "hall", "Q"))[0] == 201
    status, refused = await issue(client, "hall", "Q")
    assert status == 409, refused
    assert refused["code"] == "quota_reached"
    assert refused["details"] == {
        "service": "Q",
        "quota": 1,
        "opens_at": "2026-11-24T00:00:00+08:00",
    }
    for name, view in (await views(client, "hall")).items():
        assert view["open"] is True and view["next_opening"] is None, name


async def test_a_hall_in_another_zone_writes_its_own_offset(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    config = hall_config({"mon": ["09:00", "17:00"]}, "America/Sao_Paulo")  # UTC-3
    client = await aiohttp_client(create_app(settings, config, clock))
    clock.set(datetime(2026, 11, 23, 20, 30, tzinfo=UTC))  # Monday 17:30 there
    status, refused = await issue(client, "hall", "Q")
    assert status == 409 and refused["code"] == "site_closed", refused
    assert refused["details"]["opens_at"] == "2026-11-30T09:00:00-03:00"
    for name, view in (await views(client, "hall")).items():
        assert view["next_opening"] == "2026-11-30T09:00:00-03:00", name


def test_the_openapi_document_describes_next_opening_and_opens_at() -> None:
    doc = openapi.openapi_document()
    schemas = doc["components"]["schemas"]
    for name in ("Snapshot", "SiteDirectory", "Display"):
        schema = schemas[name]
        assert "next_opening" in schema["required"], name
        field = schema["properties"]["next_opening"]
        assert field["type"] == ["string", "null"] and field["format"] == "date-time", name
        assert "site-local" in field["description"], name
    assert "open" in schemas["Display"]["required"]
    meanings = {code: meaning for code, _, meaning in openapi.ERROR_CODES}
    for code in ("site_closed", "cutoff_passed", "quota_reached"):
        assert "`details.opens_at`" in meanings[code], code
    assert "`details.opens_at`" in schemas["Error"]["description"]
    issue_op = doc["paths"]["/api/v1/sites/{site}/tickets"]["post"]
    assert "details.opens_at" in issue_op["description"]
