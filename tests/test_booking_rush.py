"""The 07:00 rush on antrian online (issue 17): 2,000 phones book the same day's 300 places
at the same instant, against the real service process and PostgreSQL.

Exactly the places there are get booked: 300 answers 201, every other one 409 `slot_full`,
no 5xx; no slot holds more than its capacity, counted again from the service's slots and
from the committed events; every 201 is a committed booking. With every bookable place of
the day taken, walk-ins still get their tickets: the rest of the day's quota is theirs.
(`python -m bench booking` times the same rush; this test asserts no timing.)
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from bench.booking import booking_requests, burst, connector, ticket_requests
from tests.conftest import fetch
from tests.halls import DEMO_KIOSK, Hall, every_day, numbered_counters, service
from tests.service_process import Service

CLIENTS = 2000
SLOTS = 10  # bookable slots today ...
CAPACITY = 30  # ... of 30 places each: 300 places for 2,000 phones
PLACES = SLOTS * CAPACITY
SLOT_MINUTES = 30
WALK_INS = PLACES  # the day's quota is twice the bookable places


def rush_zone(now: datetime) -> ZoneInfo:
    """A zone where today has room for the hall's day (an opening a minute ago, then 11
    half-hour slots): local time from 00:05 to 18:00, WITA, WIB or WIT when one of them is
    there, else a fixed offset that is."""
    zones = ["Asia/Makassar", "Asia/Jakarta", "Asia/Jayapura"]
    zones += [f"Etc/GMT{-h:+d}" for h in range(14, -13, -1)]  # Etc/GMT-14 is UTC+14
    for name in zones:
        local = now.astimezone(ZoneInfo(name))
        if local.replace(hour=0, minute=5) <= local <= local.replace(hour=18, minute=0):
            return ZoneInfo(name)
    raise AssertionError(f"no zone has room for today's slots at {now}")


def rush_hall(now: datetime) -> tuple[Hall, str]:
    """Service B with 10 counters at 5 minutes a citizen, half of their time bookable: 30
    places a 30-minute slot. The hall opened a minute ago, so its first slot has begun and
    is not bookable; the 10 after it are (no cut-off), 300 places. The daily quota of 600
    caps the day's bookings at 300 too, and keeps the other 300 for walk-ins. Every phone
    of the test comes from 127.0.0.1: the per-address limit is raised for it. The hall and
    its timezone's name."""
    zone = rush_zone(now)
    local = now.astimezone(zone).replace(second=0, microsecond=0)
    opens = local - timedelta(minutes=1)
    closes = opens + timedelta(minutes=SLOT_MINUTES * (SLOTS + 1))
    hall = Hall(
        timezone=str(zone),
        hours=every_day(f"{opens:%H:%M}", f"{closes:%H:%M}"),
        services=(
            service(
                "B",
                default_service_minutes=5,
                daily_quota=2 * PLACES,
                booking={
                    "slot_minutes": SLOT_MINUTES,
                    "capacity": CAPACITY,
                    "walk_in_share": 0.5,
                    "cutoff_minutes": 0,
                },
            ),
        ),
        counters=numbered_counters(10, "B"),
        site_fields={"online": {"max_per_address_per_day": 1000}},
        tokens=(DEMO_KIOSK,),
    )
    return hall, str(zone)


async def test_2000_phones_rushing_300_places_book_exactly_300_and_walk_ins_still_get_tickets(
    tmp_path: Path, database_url: str
) -> None:
    hall, zone = rush_hall(datetime.now(UTC))
    today = datetime.now(ZoneInfo(zone)).date()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_url, ANTRIAN_LOG_LEVEL="WARNING")
    svc = Service(hall.write(tmp_path), env)
    slots_url = f"{svc.url}/api/v1/sites/hall/online/slots?service=B&day={today}"
    timeout = aiohttp.ClientTimeout(total=90)
    async with aiohttp.ClientSession(connector=connector(CLIENTS), timeout=timeout) as session:
        try:
            await svc.start(session)
            async with session.get(slots_url) as resp:
                assert resp.status == 200, await resp.text()
                before = (await resp.json())["slots"]
            assert [s["bookable"] for s in before] == [False] + [True] * SLOTS
            assert {(s["capacity"], s["available"]) for s in before[1:]} == {(CAPACITY, CAPACITY)}
            labels = [s["start"] for s in before[1:]]

            rush = await burst(
                session, booking_requests(svc.url, "hall", "B", today, labels, CLIENTS)
            )

            assert rush.statuses() == Counter({"201": PLACES, "409": CLIENTS - PLACES}), (
                rush.statuses(),
                svc.log.read_text(),
            )
            refused = Counter(a.body["code"] for a in rush.answers if a.status == 409)
            assert refused == Counter({"slot_full": CLIENTS - PLACES})
            booked = [a.body for a in rush.answers if a.status == 201]
            assert Counter(b["slot"] for b in booked) == dict.fromkeys(labels, CAPACITY)
            assert len({b["id"] for b in booked}) == len({b["code"] for b in booked}) == PLACES

            # Counted again by the service: every bookable slot full, none over.
            async with session.get(slots_url) as resp:
                after = (await resp.json())["slots"]
            assert [(s["booked"], s["available"], s["bookable"]) for s in after[1:]] == [
                (CAPACITY, 0, False)
            ] * SLOTS
            assert after[0]["booked"] == 0
            # ... and from the committed events: each 201 is a booking_made, and no other.
            rows = await fetch(
                database_url,
                "SELECT ticket_id, data ->> 'slot' AS slot FROM ticket_events"
                " WHERE type = 'booking_made'",
            )
            assert {r["ticket_id"] for r in rows} == {b["id"] for b in booked}
            assert Counter(r["slot"] for r in rows) == dict.fromkeys(labels, CAPACITY)

            # One more phone: still refused. Walk-ins: still served, the whole rest of the
            # day's quota (600 less the 300 places its bookings keep), then no more.
            late = await burst(
                session, booking_requests(svc.url, "hall", "B", today, labels[-1:], 1)
            )
            assert [(a.status, a.body["code"]) for a in late.answers] == [(409, "slot_full")]
            walk_ins = await burst(
                session, ticket_requests(svc.url, "hall", ("B",), DEMO_KIOSK.secret, WALK_INS)
            )
            assert walk_ins.statuses() == {"201": WALK_INS}, walk_ins.answers[0]
            assert {a.body["service"] for a in walk_ins.answers} == {"B"}
            last = await burst(
                session, ticket_requests(svc.url, "hall", ("B",), DEMO_KIOSK.secret, 1)
            )
            assert [(a.status, a.body["code"]) for a in last.answers] == [(409, "quota_reached")]
        finally:
            svc.terminate()
