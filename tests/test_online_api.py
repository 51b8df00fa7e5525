"""Antrian online through the HTTP API on a real PostgreSQL: book, move, cancel, check in
(too early, on time), the booked ticket called ahead of walk-ins from its slot, a remote
join confirmed at the kiosk, a missed booking, and walk-ins served when every slot is taken."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.vocab import Role
from queue_service.settings import Settings
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE
from tests.conftest import KIOSK, counter_auth, fetch
from tests.halls import DEMO_ADMIN, DEMO_KIOSK, Bearer, Hall, counter, every_day, service
from tests.test_webhook import Receiver, holds, quick, receiver, until

__all__ = ["receiver"]  # the fixture, used by name

SITE = "mpp-test"
BASE = f"/api/v1/sites/{SITE}"
# Monday 2026-12-07, 07:00 in Asia/Makassar (UTC+8): before the 08:00 opening.
MONDAY_7AM = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
DAY = "2026-12-07"


def hall(**site_fields: Any) -> AppConfig:
    booking = {
        "slot_minutes": 30,
        "capacity": 2,
        "walk_in_share": 0.5,
        "days_ahead": 7,
        "cutoff_minutes": 30,
        "entry": "at_slot",
        "early_minutes": 30,
        "late_minutes": 15,
        "remote_join": True,
        "requirements_id": "KTP asli dan fotokopi",
        "requirements_en": "Original ID card and a copy",
    }
    return Hall(
        id=SITE,
        hours=every_day("08:00", "12:00"),
        services=(
            service("B", default_service_minutes=5, booking=booking),
            service("W"),
        ),
        counters=(counter("l1", "B", "W"), counter("l2", "B", "W")),
        tokens=(
            DEMO_ADMIN,
            DEMO_KIOSK,
            Bearer("demo-l1", Role.COUNTER, sites=(SITE,), counters=("l1",)),
            Bearer("demo-l2", Role.COUNTER, sites=(SITE,), counters=("l2",)),
        ),
        site_fields=site_fields,
    ).config()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_7AM)


@pytest.fixture
async def online_client(settings: Settings, clock: ManualClock, aiohttp_client: Any) -> TestClient:
    client: TestClient = await aiohttp_client(create_app(settings, hall(), clock))
    return client


async def _json(resp: Any, status: int) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def book(client: TestClient, slot: str, *, status: int = 201, **extra: Any) -> Any:
    resp = await client.post(
        f"{BASE}/bookings", json={"service": "B", "day": DAY, "slot": slot, **extra}
    )
    return await _json(resp, status)


async def test_a_booking_from_slot_to_counter(
    online_client: TestClient, clock: ManualClock
) -> None:
    c = online_client
    directory = await _json(await c.get(f"{BASE}/online"), 200)
    assert [s["code"] for s in directory["services"]] == ["B"]
    assert directory["services"][0]["requirements_id"] == "KTP asli dan fotokopi"
    slots = await _json(await c.get(f"{BASE}/online/slots?service=B&day={DAY}"), 200)
    assert [s["start"] for s in slots["slots"]][:3] == ["08:00", "08:30", "09:00"]
    assert slots["slots"][0] == {
        "start": "08:00",
        "end": "08:30",
        "starts_at": "2026-12-07T00:00:00+00:00",
        "capacity": 2,
        "booked": 0,
        "available": 2,
        "bookable": True,
    }

    first = await book(c, "08:30")
    await book(c, "08:30")
    full = await book(c, "08:30", status=409)
    assert full["code"] == "slot_full"
    assert len(first["code"]) == 6 and first["state"] == "booked"
    assert first["check_in_from"] == "2026-12-07T08:00:00+08:00"
    qr = await c.get(first["qr_url"])
    assert qr.status == 200 and qr.content_type == "image/svg+xml"

    moved = await _json(
        await c.post(
            f"/api/v1/bookings/{first['id']}/reschedule", json={"day": DAY, "slot": "09:00"}
        ),
        200,
    )
    assert moved["slot"] == "09:00" and moved["moves"] == 1
    slots = await _json(await c.get(f"{BASE}/online/slots?service=B&day={DAY}"), 200)
    taken = {s["start"]: s["booked"] for s in slots["slots"]}
    assert taken["08:30"] == 1 and taken["09:00"] == 1

    early = await c.post(f"{BASE}/check-in", json={"code": first["code"]}, headers=KIOSK)
    assert (await _json(early, 409))["code"] == "too_early"

    # 08:40: the hall is open; a walk-in takes a ticket first, then the booking checks in.
    clock.set(MONDAY_7AM + timedelta(hours=1, minutes=40))
    walk_in = await _json(
        await c.post(f"{BASE}/tickets", json={"service": "B"}, headers=KIOSK), 201
    )
    checked = await _json(
        await c.post(f"{BASE}/check-in", json={"code": first["code"].lower()}, headers=KIOSK), 201
    )
    ticket = checked["ticket"]
    assert checked["booking"]["state"] == "checked_in" and ticket["source"] == "booking"
    assert ticket["due_at"] == "2026-12-07T01:00:00+00:00"
    again = await c.post(f"{BASE}/check-in", json={"code": first["code"]}, headers=KIOSK)
    assert (await _json(again, 409))["code"] == "already_checked_in"
    unknown = await c.post(f"{BASE}/check-in", json={"code": "ZZZZZZ"}, headers=KIOSK)
    assert (await _json(unknown, 404))["code"] == "booking_not_found"

    # Before 09:00 the booked ticket is not callable: the walk-in is called first.
    await _json(await c.post(f"{BASE}/counters/l1/open", json={}, headers=counter_auth("l1")), 200)
    await _json(await c.post(f"{BASE}/counters/l2/open", json={}, headers=counter_auth("l2")), 200)
    later_walk_in = await _json(
        await c.post(f"{BASE}/tickets", json={"service": "B"}, headers=KIOSK), 201
    )
    called = await _json(
        await c.post(f"{BASE}/counters/l1/call-next", json={}, headers=counter_auth("l1")), 200
    )
    assert called["ticket"]["id"] == walk_in["id"]
    # From 09:00 it is called ahead of the walk-in who came before it.
    clock.set(MONDAY_7AM + timedelta(hours=2, minutes=1))
    called = await _json(
        await c.post(f"{BASE}/counters/l2/call-next", json={}, headers=counter_auth("l2")), 200
    )
    assert called["ticket"]["id"] == ticket["id"], later_walk_in["number"]


async def test_remote_join_is_confirmed_at_the_kiosk(
    online_client: TestClient, clock: ManualClock
) -> None:
    c = online_client
    clock.set(MONDAY_7AM + timedelta(hours=1, minutes=5))
    joined = await _json(await c.post(f"{BASE}/join", json={"service": "B"}), 201)
    assert joined["source"] == "online" and joined["confirmed"] is False and joined["code"]
    status = await _json(await c.get(f"/api/v1/tickets/{joined['id']}"), 200)
    assert status["confirmed"] is False and "code" not in status
    confirmed = await _json(
        await c.post(f"{BASE}/check-in", json={"code": joined["code"]}, headers=KIOSK), 200
    )
    assert confirmed["booking"] is None and confirmed["ticket"]["confirmed"] is True
    off = await c.post(f"{BASE}/join", json={"service": "W"})
    assert (await _json(off, 409))["code"] == "remote_join_off"


async def test_reminders_reach_the_halls_webhook_once_each(
    settings: Settings,
    clock: ManualClock,
    aiohttp_client: Any,
    receiver: Receiver,
    database_url: str,
) -> None:
    """A booking with a phone number: its "booked" notice waits in the outbox while the
    receiver is down and arrives once it is up; checked in and called, the citizen hears
    "near" and "called", each key once; the visit ended, the number is gone."""
    app = create_app(replace(settings, webhook=quick(receiver.url)), hall(), clock)
    c: TestClient = await aiohttp_client(app)
    booked = await book(c, "09:00", phone="0812-3456-7890")
    directory = await _json(await c.get(f"{BASE}/online"), 200)
    assert directory["reminders"] is True
    rows = await fetch(database_url, "SELECT phone, state FROM outbox")
    assert [(r["phone"], r["state"]) for r in rows] == [("+6281234567890", "pending")]
    await receiver.listen()
    await until(lambda: holds(len(receiver.accepted) == 1), "the booked notice delivered")

    clock.set(MONDAY_7AM + timedelta(hours=1, minutes=45))
    checked = await _json(
        await c.post(f"{BASE}/check-in", json={"code": booked["code"]}, headers=KIOSK), 201
    )
    await _json(await c.post(f"{BASE}/counters/l1/open", json={}, headers=counter_auth("l1")), 200)
    clock.set(MONDAY_7AM + timedelta(hours=2, minutes=1))
    called = await _json(
        await c.post(f"{BASE}/counters/l1/call-next", json={}, headers=counter_auth("l1")), 200
    )
    assert called["ticket"]["id"] == checked["ticket"]["id"]
    await _json(
        await c.post(f"{BASE}/counters/l1/finish", json={}, headers=counter_auth("l1")), 200
    )
    await until(lambda: holds(len(receiver.accepted) == 3), "near and called delivered")
    kinds = [json.loads(body)["kind"] for _, body in receiver.requests if body]
    assert kinds[-3:] == ["booked", "near", "called"]
    assert set(receiver.delivered().values()) == {1}
    called_notice = json.loads(receiver.requests[-1][1])
    assert called_notice["data"]["number"] == checked["ticket"]["number"]
    assert called_notice["phone"] == "+6281234567890"
    assert await fetch(database_url, "SELECT 1 FROM contacts") == []
    await until(
        lambda: _async_rows(database_url, "SELECT 1 FROM outbox WHERE phone IS NOT NULL"),
        "every delivered row's number erased",
    )


async def _async_rows(url: str, sql: str) -> bool:
    return not await fetch(url, sql)


async def test_cancelled_and_missed_bookings_at_the_kiosk(
    online_client: TestClient, clock: ManualClock
) -> None:
    c = online_client
    kept = await book(c, "08:00")
    dropped = await book(c, "08:00")
    cancelled = await _json(await c.post(f"/api/v1/bookings/{dropped['id']}/cancel", json={}), 200)
    assert cancelled["state"] == "cancelled"
    again = await c.post(f"/api/v1/bookings/{dropped['id']}/cancel", json={})
    assert (await _json(again, 409))["code"] == "invalid_transition"
    slots = await _json(await c.get(f"{BASE}/online/slots?service=B&day={DAY}"), 200)
    assert slots["slots"][0]["booked"] == 1
    refused = await c.post(f"{BASE}/check-in", json={"code": dropped["code"]}, headers=KIOSK)
    assert (await _json(refused, 409))["code"] == "booking_cancelled"

    # 08:16: the 08:00 slot's window (until 08:15) closed without a check-in.
    clock.set(MONDAY_7AM + timedelta(hours=1, minutes=16))
    engine = c.app[ENGINE]
    assert await engine.miss_bookings(SITE) == 1
    assert await engine.miss_bookings(SITE) == 0
    missed = await _json(await c.get(f"/api/v1/bookings/{kept['id']}"), 200)
    assert missed["state"] == "missed"
    late = await c.post(f"{BASE}/check-in", json={"code": kept["code"]}, headers=KIOSK)
    assert (await _json(late, 409))["code"] == "too_late"


async def test_anti_hoarding_per_phone_number_and_per_address(
    settings: Settings, clock: ManualClock, aiohttp_client: Any, receiver: Receiver
) -> None:
    limited = hall(online={"max_active_per_phone": 1, "max_per_address_per_day": 3})
    app = create_app(replace(settings, webhook=quick(receiver.url)), limited, clock)
    c: TestClient = await aiohttp_client(app)
    first = await book(c, "09:00", phone="081234567890")
    same_phone = await book(c, "09:30", status=409, phone="+62 812-3456-7890")
    assert same_phone["code"] == "booking_limit"
    await _json(await c.post(f"/api/v1/bookings/{first['id']}/cancel", json={}), 200)
    await book(c, "09:30", phone="0812 3456 7890")  # the cancelled one no longer counts
    landline = await book(c, "10:00", status=400, phone="0511-3360000")
    assert landline["code"] == "invalid_phone" and "0511" not in landline["message"]
    await book(c, "10:00")  # the address's third booking today
    fourth = await book(c, "10:30", status=409)
    assert fourth["code"] == "booking_limit"


async def test_the_estimate_comes_with_its_range(
    online_client: TestClient, clock: ManualClock
) -> None:
    """Issued and looked at later, a ticket's estimate has a range about it (the same
    function, `estimate.interval`), which a booked ticket not due yet shifts with its point."""
    c = online_client
    clock.set(MONDAY_7AM + timedelta(hours=1, minutes=10))
    await _json(await c.post(f"{BASE}/counters/l1/open", json={}, headers=counter_auth("l1")), 200)
    for _ in range(4):
        await _json(await c.post(f"{BASE}/tickets", json={"service": "W"}, headers=KIOSK), 201)
    issued = await _json(await c.post(f"{BASE}/tickets", json={"service": "W"}, headers=KIOSK), 201)
    low, high = issued["estimated_wait_range_seconds"]
    assert low <= issued["estimated_wait_seconds"] <= high and low < high
    status = await _json(await c.get(f"/api/v1/tickets/{issued['id']}"), 200)
    # Looked at at the same instant: the estimate computed again, its range about it (the
    # answer to the issue shows the point as stored, to 0.1 s).
    assert status["estimated_wait_range_seconds"] == pytest.approx([low, high], abs=0.5)

    booked = await book(c, "10:00")
    clock.set(MONDAY_7AM + timedelta(hours=2, minutes=40))
    checked = await _json(
        await c.post(f"{BASE}/check-in", json={"code": booked["code"]}, headers=KIOSK), 201
    )
    ticket = await _json(await c.get(f"/api/v1/tickets/{checked['ticket']['id']}"), 200)
    low, high = ticket["estimated_wait_range_seconds"]
    assert 20 * 60 <= low <= ticket["estimated_wait_seconds"] <= high  # due at 10:00
