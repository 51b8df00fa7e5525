"""Antrian online as staff see it, in headless Chromium against the real app and a real
PostgreSQL: the floor board counts today's bookings per service, and the counter page marks
a booked ticket (with its due time while not due) and a remote join not yet confirmed at the
kiosk. Nothing personal is shown: no phone number, no booking code.

The hall: service B takes bookings (30-minute slots from 08:00, called ahead of walk-ins
from their slot, remote joins confirmed at the kiosk), service F too (a checked-in booking
joins the queue at check-in), service W takes none; lokets l1 and l2 serve all three (l2
stays closed). Pages are never reloaded: what they show after the first load comes by the
live stream.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.vocab import Role
from tests.browser.conftest import Api, ConsoleWatch, Screens, screenshot, text, wait_text
from tests.halls import DEMO_KIOSK, DEMO_MANAGER, Bearer, Hall, counter, every_day, service

pytestmark = pytest.mark.browser

SITE = "mpp-online"
BASE = f"/api/v1/sites/{SITE}"
# Monday 2026-12-07, 08:40 in Asia/Makassar (UTC+8): the hall opened at 08:00.
MONDAY_0840 = datetime(2026, 12, 7, 0, 40, tzinfo=UTC)
DAY = "2026-12-07"
PHONE = "+6281234567890"
COUNTER = Bearer("demo-l1", Role.COUNTER, sites=(SITE,), counters=("l1",))


@pytest.fixture
def config() -> AppConfig:
    booking = {
        "slot_minutes": 30,
        "capacity": 2,
        "days_ahead": 7,
        "cutoff_minutes": 30,
        "entry": "at_slot",
        "early_minutes": 30,
        "late_minutes": 15,
        "remote_join": True,
        "confirm_on_arrival": True,
    }
    return Hall(
        id=SITE,
        name="MPP Online",
        hours=every_day("08:00", "12:00"),
        services=(
            service("B", default_service_minutes=5, booking=booking),
            service("F", default_service_minutes=5, booking={**booking, "entry": "fifo"}),
            service("W"),
        ),
        counters=(counter("l1", "B", "F", "W"), counter("l2", "B", "F", "W")),
        tokens=(DEMO_MANAGER, DEMO_KIOSK, COUNTER),
    ).config()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_0840)


async def public(hall_api: Api, path: str, body: dict[str, Any], status: int) -> Any:
    """A request of the citizen's phone (no token)."""
    async with hall_api.session.post(hall_api.server.url(path), json=body) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


async def staff(hall_api: Api, path: str, token: Bearer, status: int, body: Any = None) -> Any:
    code, data = await hall_api.request("POST", path, token.secret, body or {})
    assert code == status, data
    return data


async def book(hall_api: Api, slot: str, service: str = "B", **extra: Any) -> Any:
    body = {"service": service, "day": DAY, "slot": slot, **extra}
    return await public(hall_api, f"{BASE}/bookings", body, 201)


async def open_pages(screens: Screens) -> tuple[Any, Any]:
    """The floor board and loket l1's page, signed in and live."""
    board = await screens.open("board", f"?site={SITE}&token={DEMO_MANAGER.secret}", live=True)
    counter_page = await screens.open(
        "counter", f"?site={SITE}&counter=l1&token={COUNTER.secret}", live=True
    )
    return board, counter_page


async def figures(board: Any, service: str) -> dict[str, int]:
    """The board's counts of today's bookings of `service`, by figure."""
    found: dict[str, int] = {}
    for name in ("due", "checked-in", "waiting", "missed", "cancelled"):
        found[name] = int(await text(board, f"#bookings tr[data-service={service}] .bk-{name}"))
    return found


def item(ticket: dict[str, Any]) -> str:
    """The counter page's queue entry of `ticket`."""
    return f"#queue li[data-number='{ticket['number']}']"


async def test_the_board_counts_bookings_and_the_counter_marks_a_booked_ticket(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    # 08:40: three bookings of today (one cancelled again), a walk-in of two services and
    # a remote join from a phone.
    booked = await book(hall_api, "09:30", phone=PHONE)
    later = await book(hall_api, "10:00")
    dropped = await book(hall_api, "10:00")
    await public(hall_api, f"/api/v1/bookings/{dropped['id']}/cancel", {}, 200)
    await staff(hall_api, f"{BASE}/counters/l1/open", COUNTER, 200)
    walk_in = await staff(hall_api, f"{BASE}/tickets", DEMO_KIOSK, 201, {"service": "B"})
    clock.advance(60)
    other = await staff(hall_api, f"{BASE}/tickets", DEMO_KIOSK, 201, {"service": "W"})
    clock.advance(60)
    joined = await public(hall_api, f"{BASE}/join", {"service": "B", "phone": PHONE}, 201)

    # 09:05: the 09:30 booking checks in at the kiosk: its ticket waits, called from 09:30.
    clock.set(MONDAY_0840 + timedelta(minutes=25))
    checked = await staff(hall_api, f"{BASE}/check-in", DEMO_KIOSK, 201, {"code": booked["code"]})
    ticket = checked["ticket"]
    assert ticket["source"] == "booking" and ticket["due_at"] == "2026-12-07T01:30:00+00:00"

    board, counter_page = await open_pages(screens)

    # The board: today's bookings of B and F (none of F yet); W takes none.
    row = "#bookings tr[data-service=B]"
    await wait_text(board, f"{row} .bk-due", "1")
    assert await figures(board, "B") == {
        "due": 1,
        "checked-in": 1,
        "waiting": 1,
        "missed": 0,
        "cancelled": 1,
    }
    assert await figures(board, "F") == {
        "due": 0,
        "checked-in": 0,
        "waiting": 0,
        "missed": 0,
        "cancelled": 0,
    }
    assert await board.locator("#bookings tr[data-service=W]").count() == 0
    assert await text(board, "#bookings-title") == "Booking hari ini"
    assert await text(board, "#bookings-due") == "1 lagi akan datang"

    # The counter: walk-ins and the remote join in call order, the booking not due yet
    # after them with its due time.
    queue = "#queue li[data-ticket]"
    await wait_text(counter_page, "#queue-count", "4 menunggu")
    order = await counter_page.eval_on_selector_all(queue, "els => els.map(e => e.dataset.number)")
    assert order == [walk_in["number"], other["number"], joined["number"], ticket["number"]]
    assert await text(counter_page, f"{item(ticket)} .q-booking") == "Booking 09:30"
    assert await text(counter_page, "#queue-later") == "Booking belum waktunya"
    assert await counter_page.locator(f"{item(walk_in)} .q-mark").count() == 0
    await screenshot(board, "online-board")
    await screenshot(counter_page, "online-counter")

    # Nothing personal on either screen.
    for page in (board, counter_page):
        shown = await page.text_content("body") or ""
        for secret in (PHONE, "81234567890", booked["code"], later["code"], joined["code"]):
            assert secret not in shown

    # 09:29:58: a walk-in's ticket (an event: the page re-reads). No event comes after it,
    # yet at 09:30 the page re-reads by itself: the booking is due, at the head of the list,
    # marked "Booking" alone; call-next calls it ahead of the walk-ins who came before it.
    clock.set(MONDAY_0840 + timedelta(minutes=49, seconds=58))
    await staff(hall_api, f"{BASE}/tickets", DEMO_KIOSK, 201, {"service": "W"})
    await wait_text(counter_page, "#queue-count", "5 menunggu")
    assert await text(counter_page, f"{item(ticket)} .q-booking") == "Booking 09:30"
    clock.set(MONDAY_0840 + timedelta(minutes=51))
    await wait_text(counter_page, "#queue li[data-ticket]:first-child .q-booking", "Booking")
    assert await text(counter_page, f"{item(ticket)} .q-booking") == "Booking"
    assert await counter_page.locator("#queue-later").count() == 0
    await counter_page.keyboard.press("n")
    await wait_text(counter_page, "#serving-number", ticket["number"])
    await wait_text(board, f"{row} .bk-waiting", "0")
    assert await text(board, f"{row} .bk-checked-in") == "1"

    # English on request.
    await board.click("#lang")
    await wait_text(board, "#bookings-title", "Today's bookings")
    assert "To come" in await text(board, "#bookings thead")
    await counter_page.click("#lang")
    await wait_text(counter_page, "#queue-count", "waiting")

    assert console.unexpected() == []


async def test_the_counter_marks_a_remote_join_not_confirmed_and_a_booking_joining_at_check_in(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    # 08:40: a remote join from a phone, to be confirmed at the kiosk; a booking of F's
    # 09:30 slot, which joins the queue when it checks in (at 09:05), with no due time.
    fifo = await book(hall_api, "09:30", service="F")
    await staff(hall_api, f"{BASE}/counters/l1/open", COUNTER, 200)
    joined = await public(hall_api, f"{BASE}/join", {"service": "B", "phone": PHONE}, 201)
    assert joined["confirmed"] is False
    clock.advance(25 * 60)
    checked = await staff(hall_api, f"{BASE}/check-in", DEMO_KIOSK, 201, {"code": fifo["code"]})
    assert checked["ticket"]["source"] == "booking" and checked["ticket"]["due_at"] is None
    board, counter_page = await open_pages(screens)

    await wait_text(counter_page, "#queue-count", "2 menunggu")
    await wait_text(counter_page, f"{item(joined)} .q-unconfirmed", "Belum konfirmasi di kiosk")
    assert await counter_page.locator(f"{item(joined)} .q-booking").count() == 0
    assert await text(counter_page, f"{item(checked['ticket'])} .q-booking") == "Booking"
    assert await counter_page.locator("#queue-later").count() == 0
    assert (await figures(board, "F"))["checked-in"] == 1
    for shown in (await board.text_content("body"), await counter_page.text_content("body")):
        assert joined["code"] not in (shown or "") and fifo["code"] not in (shown or "")

    # Confirmed at the kiosk: the mark goes, live.
    await staff(hall_api, f"{BASE}/check-in", DEMO_KIOSK, 200, {"code": joined["code"]})
    await counter_page.wait_for_selector(f"{item(joined)}:not(:has(.q-unconfirmed))")
    assert console.unexpected() == []
