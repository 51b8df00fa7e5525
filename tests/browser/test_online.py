"""Antrian online in headless Chromium, against the real app and a real PostgreSQL: a
booking made on a phone (360 by 740), its QR code, the check-in at the kiosk with a scanner,
the call at a counter and the status page's notification; a booking whose answer was lost
(one booking, by its Idempotency-Key), a slot taken while the citizen was choosing it, a
move and a cancellation; and a remote join from the phone, confirmed at the kiosk with its
code.

The hall (open 08:00 to 16:00) is one service A with bookings (30-minute slots, one place
each, check-in from an hour before the slot, remote joins confirmed on arrival) and one
counter, on Monday 23 November 2026 at 09:00 WITA (the tests' clock). It sends reminders
to a webhook receiver on localhost (its WhatsApp or SMS gateway), so the phone page asks
for a number.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import segno

from bench.pages import PORTRAIT, Screen
from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.vocab import Role
from queue_service.settings import Settings
from tests.browser.conftest import (
    CONFLICT_LOGGED,
    NETWORK_LOGGED,
    ConsoleWatch,
    LiveServer,
    Screens,
    screenshot,
    text,
    wait_js,
    wait_ready,
    wait_text,
)
from tests.conftest import MONDAY_9AM
from tests.halls import DEMO_KIOSK, Bearer, Hall, counter, every_day, service
from tests.test_webhook import Receiver, quick, until

pytestmark = pytest.mark.browser

SITE = "mpp-online"
TODAY, TOMORROW = "2026-11-23", "2026-11-24"
DASH = "\N{EN DASH}"  # between a slot's start and end, as the page writes it
PHONE = Screen(360, 740, scale=2, mobile=True)  # a small Android phone
COUNTER = Bearer("demo-c1", Role.COUNTER, sites=(SITE,), counters=("c1",))
REQUIREMENTS = "KK asli dan fotokopi"
BOOKING = {
    "slot_minutes": 30,
    "capacity": 1,
    "days_ahead": 3,
    "cutoff_minutes": 15,
    "early_minutes": 60,
    "late_minutes": 15,
    "requirements_id": REQUIREMENTS,
    "requirements_en": "Original family card and a copy",
    "remote_join": True,
    "confirm_on_arrival": True,
}


def hall(**booking: Any) -> Hall:
    return Hall(
        id=SITE,
        name="MPP Online",
        hours=every_day("08:00", "16:00"),
        services=(
            service(
                "A",
                name_id="Perekaman KTP-el",
                name_en="e-KTP recording",
                booking={**BOOKING, **booking},
            ),
        ),
        counters=(counter("c1", "A", name="Loket 1"),),
        tokens=(DEMO_KIOSK, COUNTER),
    )


@pytest.fixture
def config() -> AppConfig:
    return hall().config()


@pytest.fixture
async def gateway() -> AsyncIterator[Receiver]:
    """The hall's WhatsApp or SMS gateway: a webhook receiver on localhost."""
    receiver = Receiver()
    await receiver.listen()
    yield receiver
    await receiver.close()


@pytest.fixture
def settings(settings: Settings, gateway: Receiver) -> Settings:
    """The hall sends reminders (so the phone page asks for a number)."""
    return replace(settings, webhook=quick(gateway.url))


def told(gateway: Receiver, subject: str) -> list[tuple[str, str]]:
    """(kind, phone) of each notice the gateway received about `subject`, in order."""
    payloads = [json.loads(body) for _, body in gateway.requests]
    return [(n["kind"], n["phone"]) for n in payloads if n["subject"] == subject]


async def heard(gateway: Receiver, subject: str, notice: tuple[str, str]) -> None:
    """Until the gateway has received `notice` (kind, phone) about `subject`."""

    async def received() -> bool:
        return notice in told(gateway, subject)

    await until(received, f"{notice} about {subject}")


class Client:
    """The API as the test's other actors use it: another citizen, the counter."""

    def __init__(self, session: aiohttp.ClientSession, server: LiveServer) -> None:
        self.session, self.server = session, server

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = ""
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, self.server.url(path), json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def book(self, day: str, slot: str) -> dict[str, Any]:
        status, data = await self.call(
            "POST", f"/api/v1/sites/{SITE}/bookings", {"service": "A", "day": day, "slot": slot}
        )
        assert status == 201, data
        return data  # type: ignore[no-any-return]

    async def booking(self, booking_id: str) -> dict[str, Any]:
        status, data = await self.call("GET", f"/api/v1/bookings/{booking_id}")
        assert status == 200, data
        return data  # type: ignore[no-any-return]

    async def slots(self, day: str) -> dict[str, dict[str, Any]]:
        path = f"/api/v1/sites/{SITE}/online/slots?service=A&day={day}"
        status, data = await self.call("GET", path)
        assert status == 200, data
        return {s["start"]: s for s in data["slots"]}

    async def counter(self, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        path = f"/api/v1/sites/{SITE}/counters/c1/{action}"
        status, data = await self.call("POST", path, body or {}, COUNTER.secret)
        assert status == 200, data
        return data  # type: ignore[no-any-return]


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, server)


# Records every notification the page makes, and still makes it (the page-side hook).
NOTIFICATION_HOOK = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.shownNotifications = [];
  class Hooked extends Real {
    constructor(title, options) {
      window.shownNotifications.push({ title, body: (options || {}).body || "" });
      super(title, options);
    }
  }
  window.Notification = Hooked;
})();
"""

# The QR code as the page shows it, read back module by module: the image is drawn on a
# large square canvas (the SVG scales to it); the dark modules' bounding box is the symbol,
# the top-left finder pattern (7 dark modules wide) gives the module size, and each
# module's centre is sampled. 1 = dark.
READ_QR = """
(img) => {
  const side = 1000;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = side;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, side, side);
  ctx.drawImage(img, 0, 0, side, side);
  const data = ctx.getImageData(0, 0, side, side).data;
  const dark = (x, y) => data[(y * side + x) * 4] < 128;
  let top = side, left = side, right = -1, bottom = -1;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      if (!dark(x, y)) continue;
      top = Math.min(top, y); bottom = Math.max(bottom, y);
      left = Math.min(left, x); right = Math.max(right, x);
    }
  }
  const module = (right - left + 1) / Math.round((right - left + 1) / ((() => {
    let run = 0;
    while (dark(left + run, top + 3)) run++;
    return run / 7;
  })()));
  const size = Math.round((right - left + 1) / module);
  const rows = [];
  for (let r = 0; r < size; r++) {
    const row = [];
    for (let c = 0; c < size; c++) {
      const x = Math.floor(left + (c + 0.5) * module);
      row.push(dark(x, Math.floor(top + (r + 0.5) * module)) ? 1 : 0);
    }
    rows.push(row);
  }
  return rows;
}
"""


def qr_matrices(content: str) -> list[list[list[int]]]:
    """Every symbol segno makes of `content`: QR or Micro QR, each error level it has,
    boosted or not."""
    out = []
    for micro, levels in ((False, "lmqh"), (True, "lmq")):
        for error in levels:
            for boost in (True, False):
                try:
                    qr = segno.make(content, error=error, boost_error=boost, micro=micro)
                except segno.DataOverflowError:
                    continue  # no Micro QR of that level holds it
                out.append([[1 if m else 0 for m in row] for row in qr.matrix])
    return out


async def phone(screens: Screens, query: str = f"?site={SITE}") -> Any:
    page = await screens.open("online", query, screen=PHONE)
    await page.context.add_init_script(NOTIFICATION_HOOK)
    return page


async def book_on_phone(page: Any, day: str, slot: str, phone_number: str = "") -> str:
    """Service A, `day`, `slot`, the phone number if given; the booking's code."""
    await page.click("[data-service=A] [data-action=book]")
    await page.click(f"[data-day='{day}']")
    await page.click(f"[data-slot='{slot}']:not([disabled])")
    if phone_number:
        await page.fill("#phone", phone_number)
    await page.click("#book-submit")
    await page.wait_for_selector("#booking-state[data-state=booked]")
    return await text(page, "#booking-code")


async def test_a_booking_made_on_a_phone_is_checked_in_called_and_notified(
    api: Client,
    clock: ManualClock,
    screens: Screens,
    console: ConsoleWatch,
    server: LiveServer,
    gateway: Receiver,
) -> None:
    console.allow(CONFLICT_LOGGED)  # the kiosk's too-early refusal
    page = await phone(screens)
    assert await text(page, "#site-name") == "MPP Online"
    code = await book_on_phone(page, TODAY, "09:30", phone_number="+62 (0)812-3456-7890")

    # The card: code, service, day, slot, the check-in window (an hour before to 15 minutes
    # after the slot's start), the requirements; never the phone number.
    assert await text(page, "#booking-service") == "Perekaman KTP-el"
    assert await text(page, "#booking-day") == "Senin, 23 November 2026"
    assert await text(page, "#booking-slot") == f"09:30{DASH}10:00"
    assert await text(page, "#booking-window") == f"08:30{DASH}09:45"
    assert await text(page, "#booking-requirements") == REQUIREMENTS
    body = await page.text_content("body") or ""
    assert "3456" not in body and "812" not in body
    booking_id = page.url.split("#booking=")[1]
    assert (await api.booking(booking_id))["code"] == code
    # The number went to the hall's gateway only, with the booking's notice.
    phone_number = "+6281234567890"
    await heard(gateway, booking_id, ("booked", phone_number))

    # The QR code loaded, and it is the code's own symbol: the booking code next to it.
    qr = page.locator("#booking-qr")
    await wait_js(page, "() => document.querySelector('#booking-qr').complete")
    assert await qr.evaluate("(img) => img.naturalWidth") > 0
    assert await qr.evaluate(READ_QR) in qr_matrices(code)
    await screenshot(page, "online-booking")

    # At the kiosk: a booking for tomorrow is refused as too early, with when it may be
    # checked in; then the scanner types today's code and Enter on the start screen.
    later = await api.book(TOMORROW, "10:00")
    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", screen=PORTRAIT)
    await kiosk.wait_for_selector("#checkin-open")
    await kiosk.keyboard.type(later["code"])
    await kiosk.keyboard.press("Enter")
    error = kiosk.locator("#checkin-error")
    await error.wait_for()
    assert await error.get_attribute("data-code") == "too_early"
    assert "besok, pukul 09:00 WITA" in await text(kiosk, "#checkin-opens")
    await screenshot(kiosk, "kiosk-checkin-too-early")
    await kiosk.keyboard.type(code)  # the refused code is selected: the scan replaces it
    await kiosk.keyboard.press("Enter")
    await wait_text(kiosk, "#ticket-number", "A001")
    assert code in await text(kiosk, "#checked-in-booking")
    ticket_id = await kiosk.get_attribute("#ticket-number", "data-ticket-id")

    # Reopened, the phone's page shows the checked-in booking and leads to its ticket.
    await page.reload()
    await page.wait_for_selector("#booking-state[data-state=checked_in]")
    await page.click("#booking-ticket")
    await wait_ready(page)
    assert page.url.endswith(f"/ui/status.html#{ticket_id}")
    assert await text(page, "#slot") == f"Jadwal booking 09:30{DASH}10:00"
    # The estimate's range under it, in whole minutes.
    assert re.fullmatch(rf"kemungkinan \d+{DASH}\d+ menit", await text(page, "#estimate-range"))

    # Notifications are asked for on a touch; the permission is granted as a citizen would.
    cdp = await page.context.new_cdp_session(page)
    target = (await cdp.send("Target.getTargetInfo"))["targetInfo"]
    await cdp.send(
        "Browser.grantPermissions",
        {
            "origin": server.url("").rstrip("/"),
            "permissions": ["notifications"],
            "browserContextId": target["browserContextId"],
        },
    )
    await page.click("#notify-enable")
    await page.wait_for_selector("#notify-note[data-notify=on]")

    # The slot starts; the counter calls the booked ticket; the status page says so.
    clock.set(MONDAY_9AM + timedelta(minutes=30))
    await api.counter("open")
    called = await api.counter("call-next")
    assert called["ticket"]["id"] == ticket_id
    await page.wait_for_selector("body[data-state=called]")
    assert "Loket 1" in await text(page, "#notice-banner")
    await wait_js(page, "() => window.shownNotifications.length >= 1")
    shown = await page.evaluate("window.shownNotifications")
    assert shown == [{"title": "Nomor A001 dipanggil", "body": "Silakan menuju Loket 1."}]
    notices = await page.evaluate("window.antrianNotices")
    assert [(n["kind"], n["notification"]) for n in notices] == [("called", True)]
    await heard(gateway, booking_id, ("called", phone_number))
    assert [kind for kind, _ in told(gateway, booking_id)] == ["booked", "near", "called"]

    assert console.unexpected() == []


async def test_a_booking_survives_a_lost_answer_a_taken_slot_a_move_and_is_cancelled(
    api: Client, screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(CONFLICT_LOGGED)  # slot_full, on purpose
    console.allow(NETWORK_LOGGED)  # the answer lost on purpose
    await api.book(TOMORROW, "10:00")  # another citizen's
    page = await phone(screens)
    await page.click("[data-service=A] [data-action=book]")
    await page.click(f"[data-day='{TOMORROW}']")
    full = page.locator("[data-slot='10:00']")
    await full.wait_for()
    assert await full.is_disabled() and "penuh" in (await full.text_content() or "")
    await screenshot(page, "online-slots")

    # 10:30 is taken by someone else while this citizen looks at it: refused in their words,
    # back to the slots, where 10:30 is now full too.
    await page.click("[data-slot='10:30']")
    await screenshot(page, "online-confirm")
    await api.book(TOMORROW, "10:30")
    await page.click("#book-submit")
    alert = page.locator("#online-error")
    await alert.wait_for()
    assert await alert.get_attribute("data-code") == "slot_full"
    assert "sudah penuh" in (await alert.text_content() or "")
    await page.wait_for_selector("[data-slot='10:30'][disabled]")

    # 11:00, and the answer is lost on the way back: the page sends it again with the same
    # Idempotency-Key, and the server answers from its record: one booking.
    keys: list[str] = []

    async def lose_first_answer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            response = await route.fetch()
            assert response.status == 201
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/api/v1/sites/*/bookings", lose_first_answer)
    await page.click("[data-slot='11:00']")
    await page.click("#book-submit")
    await page.wait_for_selector("#booking-state[data-state=booked]")
    booking_id = page.url.split("#booking=")[1]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert (await api.slots(TOMORROW))["11:00"]["booked"] == 1

    # Move it to 11:30, in English this time.
    await page.click("#lang")
    await page.click("#booking-move")
    await page.click(f"[data-day='{TOMORROW}']")
    await page.click("[data-slot='11:30']")
    await page.click("#move-submit")
    await wait_text(page, "#booking-slot", f"11:30{DASH}12:00")
    assert await text(page, "#booking-day") == "Tuesday, 24 November 2026"
    assert (await api.booking(booking_id))["slot"] == "11:30"
    assert (await api.slots(TOMORROW))["11:00"]["available"] == 1  # released

    # Cancel it, after the confirmation.
    await page.click("#booking-cancel")
    await page.click("#cancel-yes")
    await page.wait_for_selector("#booking-state[data-state=cancelled]")
    assert not await page.is_visible("#booking-qr")
    assert (await api.booking(booking_id))["state"] == "cancelled"
    assert (await api.slots(TOMORROW))["11:30"]["available"] == 1

    # Kept on the phone: the start page lists it.
    await page.click("#booking-new")
    await page.wait_for_selector(f"[data-booking='{booking_id}']")

    assert console.unexpected() == []


async def test_a_remote_join_is_confirmed_at_the_kiosk_with_the_code_the_phone_shows(
    screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(r"console: Failed to load resource: .* status of 400")  # invalid_phone
    page = await phone(screens)
    await screenshot(page, "online-services")
    await page.click("[data-service=A] [data-action=join]")
    await page.fill("#phone", "0511 3300 111")  # a landline: no reminders reach it
    await page.click("#join-submit")
    alert = page.locator("#online-error")
    await alert.wait_for()
    assert await alert.get_attribute("data-code") == "invalid_phone"
    assert "Nomor HP tidak dikenali" in (await alert.text_content() or "")
    await page.fill("#phone", "")
    await page.click("#join-submit")
    code = await text(page, "#join-code")
    assert len(code) == 6
    await page.click("#join-status")
    await wait_ready(page)
    assert await text(page, "#number") == "A001"
    assert await text(page, "#confirm-code") == code  # kept on the phone for the kiosk
    await screenshot(page, "status-remote-join")

    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", screen=PORTRAIT)
    await kiosk.wait_for_selector("#checkin-open")
    await screenshot(kiosk, "kiosk-checkin-start")
    await kiosk.click("#checkin-open")
    for key in code:  # typed on the kiosk's own keypad
        await kiosk.click(f".keypad [data-key='{key}']")
    assert await kiosk.input_value("#checkin-code") == code
    await kiosk.click("#checkin-submit")
    await wait_text(kiosk, "#ticket-number", "A001")
    assert not await kiosk.is_visible("#checked-in-booking")  # a join has no booking

    # Confirmed: the status page (following the stream) drops the code, and forgets it.
    await wait_js(page, "() => !document.querySelector('#confirm-needed')")
    assert (
        await page.evaluate(
            "Object.keys(localStorage).filter((k) => k.startsWith('antrian.join.'))"
        )
        == []
    )

    assert console.unexpected() == []
