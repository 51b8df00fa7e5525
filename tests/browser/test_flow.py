"""End to end in headless Chromium: kiosk, counter page, floor board, TV display and the
citizen's status page, against the real app and a real PostgreSQL.

Pages run in their own browser contexts (own storage, as on their own devices) and are
never reloaded by the tests: what they show after the first load comes by the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest

from bench.pages import WALL
from queue_service.domain.clock import ManualClock
from tests.browser.conftest import (
    CONFLICT_LOGGED,
    NETWORK_LOGGED,
    Api,
    ConsoleWatch,
    LiveServer,
    Screens,
    screenshot,
    text,
    wait_js,
    wait_ready,
    wait_text,
)
from tests.conftest import MONDAY_9AM, SITE

pytestmark = pytest.mark.browser

# The example hall's small second site: a no-show there needs three calls, not two.
SMALL_SITE = "mpp-banjarbaru"
SMALL_COUNTERS = "demo-banjarbaru-counters"


async def calls(page: Any) -> list[dict[str, Any]]:
    return await page.evaluate("window.antrianCalls")  # type: ignore[no-any-return]


async def test_a_ticket_from_the_kiosk_is_called_served_and_followed_everywhere(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    await hall_api.act("loket-01", "open")
    board = await screens.open("board", f"?site={SITE}&token=demo-manager", ready=False)
    counter = await screens.open("counter", f"?site={SITE}&counter=loket-01", ready=False)
    await counter.fill("#token", "demo-loket-01")
    await counter.click("button[type=submit]")
    display = await screens.open("display", f"?site={SITE}&zone=A", ready=False)
    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", ready=False)
    for page in (board, counter, display, kiosk):
        await wait_ready(page)
    assert "token" not in kiosk.url  # provisioned into localStorage, not left in the address
    await board.wait_for_selector("#conn[data-state=live]")
    await counter.wait_for_selector("#conn[data-state=live]")
    await display.wait_for_selector("#conn[data-state=live]")

    # The citizen takes a ticket: agency, service, priority choice (one touch issues).
    await kiosk.click("[data-agency=disdukcapil]")
    await kiosk.click("[data-service=KTP-EL]")
    await kiosk.click("[data-priority=none]")
    await wait_text(kiosk, "#ticket-number", "A001")
    ticket_id = await kiosk.get_attribute("#ticket-number", "data-ticket-id")
    assert await text(kiosk, "#people-ahead") == "0"
    assert await kiosk.evaluate("document.querySelector('.ticket-qr img').naturalWidth") > 0
    # The kiosk says what its printer did (here: the example hall's printer is not there).
    assert await kiosk.get_attribute("#print-status", "data-print") in (
        "printed",
        "failed",
        "no_printer",
        "none",
    )

    # It appears, live, on the board and in the counter's queue.
    await wait_text(board, "tr[data-service=KTP-EL] .js-waiting", "1")
    await counter.wait_for_selector("#queue li[data-number=A001]")

    status = await screens.open("status", f"#{ticket_id}")
    assert await status.get_attribute("body", "data-state") == "waiting"
    assert await text(status, "#number") == "A001"

    # The officer calls it with the keyboard shortcut.
    assert await counter.is_disabled("#act-noshow")  # one call is not enough for a no-show
    await counter.keyboard.press("n")
    await wait_text(counter, "#serving-number", "A001")
    await wait_text(counter, "#call-count", "1")

    # The TV display shows it and calls it (a voice where an id-ID voice exists, else a chime).
    await wait_text(display, "#callout-number", "A001")
    await wait_text(display, "#callout-counter", "Loket 1")
    await wait_js(display, "() => window.antrianCalls.length >= 1")
    first = (await calls(display))[0]
    assert first["number"] == "A001" and first["kind"] == "call"
    assert first["mode"] in ("speech", "chime")
    assert "A, nol, nol, satu" in first["text"] and "loket satu" in first["text"]
    await status.wait_for_selector("body[data-state=called]")
    assert "Loket 1" in await text(status, ".call-alert")

    # A recall is announced again; after it the no-show becomes possible (2 calls).
    await counter.click("#act-recall")
    await wait_text(counter, "#call-count", "2")
    await wait_js(display, "() => window.antrianCalls.length >= 2")
    assert (await calls(display))[1]["kind"] == "recall"
    await counter.wait_for_selector("#act-noshow:not([disabled])")

    # Start, then finish with an outcome.
    await counter.keyboard.press("s")
    await status.wait_for_selector("body[data-state=serving]")
    await counter.keyboard.press("f")
    await counter.click("#finish-dialog button[value=served]")
    await wait_text(counter, "#serving-number", "—")
    await status.wait_for_selector("body[data-state=done]")

    # The board's figures follow: called within standard, served at the counter.
    await wait_text(board, "#kpi-finished b", "1")
    await wait_text(board, "tr[data-service=KTP-EL] .js-within", "100%")
    await wait_text(board, "[data-counter=loket-01] .ctr-meta", "1 selesai")
    await wait_text(board, "tr[data-service=KTP-EL] .js-waiting", "0")
    # Device health: every configured device of the site, or "none configured".
    devices = (await hall_api.snapshot()).get("devices") or []
    if devices:
        for device in devices:
            await board.wait_for_selector(f"#devices tr[data-device='{device['id']}']")
    else:
        await wait_text(board, "#devices", "Tidak ada perangkat")

    assert console.unexpected() == []


async def test_a_conflict_at_the_counter_is_shown_with_its_message(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(CONFLICT_LOGGED)
    for counter_id in ("loket-01", "loket-03"):
        await hall_api.act(counter_id, "open")
    ticket = await hall_api.issue("KTP-EL")
    counter = await screens.open(
        "counter", f"?site={SITE}&counter=loket-01&token=demo-loket-01", live=True
    )
    assert "token" not in counter.url
    await counter.wait_for_selector("#queue li[data-number=A001] button:not([disabled])")

    # Hold the page's re-reads so it still offers A001 after loket-03 has taken it, as when
    # two officers press at the same moment.
    release = asyncio.Event()

    async def hold(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await counter.route("**/snapshot", hold)
    status, _ = await hall_api.act("loket-03", "call", {"ticket_id": ticket["id"]})
    assert status == 200
    await counter.click("#queue li[data-number=A001] button")
    alert = counter.locator("#action-error")
    await alert.wait_for()
    assert await alert.get_attribute("data-code") == "ticket_taken"
    shown = await alert.text_content() or ""
    assert "loket lain" in shown  # our words for the code
    assert "already at counter loket-03" in shown  # and the server's own message
    release.set()  # the held re-reads go through now, and later ones pass straight on
    await wait_text(counter, "#queue-count", "0")

    # Pause with a reason (P, a preset), then open again (O).
    await counter.keyboard.press("p")
    await counter.click("#pause-presets button >> nth=0")
    await wait_text(counter, "#counter-state", "Jeda: Istirahat")
    await counter.keyboard.press("o")
    await wait_text(counter, "#counter-state", "Buka")

    assert console.unexpected() == []


async def test_a_retried_kiosk_request_gives_one_ticket(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(NETWORK_LOGGED)
    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", screen=WALL)
    keys: list[str] = []

    async def lose_first_answer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            response = await route.fetch()  # the server handles it and issues the ticket ...
            assert response.status == 201
            await route.abort("connectionreset")  # ... but the kiosk never hears back
        else:
            await route.continue_()

    await kiosk.route("**/api/v1/sites/*/tickets", lose_first_answer)
    await kiosk.click("[data-agency=imigrasi]")
    await kiosk.click("[data-service=PASPOR-AMBIL]")
    await kiosk.click("[data-priority=lansia]")
    await wait_text(kiosk, "#ticket-number", "Q001")

    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    snap = await hall_api.snapshot()
    service = next(s for s in snap["services"] if s["code"] == "PASPOR-AMBIL")
    assert service["issued_today"] == 1 and service["waiting"] == 1
    assert service["tickets"][0]["priority"] == "lansia"

    # The next touch is a new request: a new key and a second ticket.
    await kiosk.click("text=Selesai")
    await kiosk.click("[data-agency=imigrasi]")
    await kiosk.click("[data-service=PASPOR-AMBIL]")
    await kiosk.click("[data-priority=none]")
    await wait_text(kiosk, "#ticket-number", "Q002")
    assert len(keys) == 3 and keys[2] != keys[0]

    assert console.unexpected() == []


async def test_a_slow_kiosk_answer_is_waited_for_not_retried_while_it_prints(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", screen=WALL)
    keys: list[str] = []

    async def slow_printer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        response = await route.fetch()
        await asyncio.sleep(9)  # a printer slow to answer: longer than an ordinary request
        with contextlib.suppress(Exception):  # an abandoned request cannot be fulfilled
            await route.fulfill(response=response)

    await kiosk.route("**/api/v1/sites/*/tickets", slow_printer)
    await kiosk.click("[data-agency=imigrasi]")
    await kiosk.click("[data-service=PASPOR-AMBIL]")
    await kiosk.click("[data-priority=none]")
    await wait_text(kiosk, "#ticket-number", "Q001", timeout=20)
    assert len(keys) == 1  # waited for, not abandoned and sent again mid-print

    assert console.unexpected() == []


async def test_the_display_recovers_by_itself_after_the_service_restarts(
    server: LiveServer, hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(NETWORK_LOGGED)
    await hall_api.act("loket-02", "open")
    await hall_api.issue("KTP-EL")
    display = await screens.open("display", f"?site={SITE}", live=True)
    await hall_api.act("loket-02", "call-next")
    await wait_text(display, "#callout-number", "A001")
    await wait_js(display, "() => window.antrianCalls.length === 1")

    await server.stop()
    await display.wait_for_selector("#conn[data-state=reconnecting]")
    await server.start()  # same port, same database: the state is replayed

    await hall_api.act("loket-02", "finish")
    await hall_api.issue("KTP-EL")
    await hall_api.act("loket-02", "call-next")
    await wait_text(display, "#callout-number", "A002", timeout=20)
    await wait_js(display, "() => window.antrianCalls.some((c) => c.number === 'A002')", timeout=20)
    await display.wait_for_selector("#conn[data-state=live]")
    await wait_text(display, "#history", "A001")

    assert console.unexpected() == []


async def test_display_and_kiosk_show_the_servers_time_and_break_from_their_own_reads(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    # 12:10 in Banjarmasin (WITA) on the server, whatever the screens' own clocks say: the
    # Monday break (12:00 to 13:00). The screens are left on UTC.
    clock.set(MONDAY_9AM + timedelta(hours=3, minutes=10))
    requests: list[str] = []
    display = await screens.open(
        "display", f"?site={SITE}", timezone_id="UTC", requests=requests, live=True
    )
    kiosk = await screens.open("kiosk", f"?site={SITE}&token=demo-kiosk", timezone_id="UTC")

    await wait_text(display, "#break-banner", "Istirahat · 13:00")
    assert await display.is_visible("#break-banner")
    assert await text(display, "#clock") == "12:10"
    await wait_text(kiosk, ".kiosk-banner", "Istirahat sampai pukul 13:00")
    assert await text(kiosk, "#clock") == "12:10"
    await screenshot(display, "display-break")

    # The break ends on the server; the next event brings both screens up to date.
    clock.set(MONDAY_9AM + timedelta(hours=4, minutes=1))
    await hall_api.act("loket-01", "open")
    await wait_js(display, "() => document.querySelector('#break-banner').hidden")
    await wait_text(display, "#clock", "13:01")
    await wait_text(kiosk, "#clock", "13:01")
    await wait_js(kiosk, "() => !document.body.textContent.includes('Istirahat')")

    # /display is the display's only read: no second request for the site directory.
    api_reads = [r for r in requests if r.startswith("/api/")]
    assert api_reads, requests
    assert all(
        r.startswith((f"/api/v1/sites/{SITE}/display", f"/api/v1/sites/{SITE}/stream"))
        for r in api_reads
    ), api_reads
    assert console.unexpected() == []


async def test_the_status_page_shows_the_sites_time_on_a_phone_in_another_zone(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    ticket = await hall_api.issue("KTP-EL")  # 09:00 in Banjarmasin (WITA, UTC+8)
    # A visitor's phone still on WIB (UTC+7).
    status = await screens.open("status", f"#{ticket['id']}", timezone_id="Asia/Jakarta")
    assert await text(status, "#issued") == "Diambil pukul 09:00"
    assert console.unexpected() == []


async def small_site_counter(hall_api: Api, screens: Screens) -> Any:
    """Banjarbaru's loket 1 open with one waiting ticket, its counter page signed in."""
    base = f"/api/v1/sites/{SMALL_SITE}"
    status, data = await hall_api.request(
        "POST", f"{base}/counters/bjb-loket-01/open", SMALL_COUNTERS, {}
    )
    assert status == 200, data
    status, data = await hall_api.request(
        "POST", f"{base}/tickets", "demo-kiosk", {"service": "KTP-EL"}
    )
    assert status == 201, data
    counter = await screens.open(
        "counter", f"?site={SMALL_SITE}&counter=bjb-loket-01&token={SMALL_COUNTERS}", live=True
    )
    await counter.wait_for_selector("#queue li[data-number=A001]")
    return counter


async def call_twice(counter: Any) -> None:
    await counter.keyboard.press("n")
    await wait_text(counter, "#call-count", "1")
    await counter.click("#act-recall")
    await wait_text(counter, "#call-count", "2")


async def test_the_counter_takes_the_no_show_threshold_from_the_snapshot(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    counter = await small_site_counter(hall_api, screens)
    await call_twice(counter)
    assert await counter.is_disabled("#act-noshow")  # two calls: enough elsewhere, not here
    assert await text(counter, "#noshow-hint") == "Aktif setelah 3 panggilan"
    await counter.click("#act-recall")
    await wait_text(counter, "#call-count", "3")
    await counter.wait_for_selector("#act-noshow:not([disabled])")
    await counter.keyboard.press("x")
    await wait_text(counter, "#serving-number", "—")
    assert console.unexpected() == []  # no refusal was needed to learn the threshold


async def test_without_the_threshold_in_the_snapshot_the_counter_learns_it_from_a_refusal(
    hall_api: Api, screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(CONFLICT_LOGGED)
    counter = await small_site_counter(hall_api, screens)

    async def without_threshold(route: Any) -> None:  # as from a server before the field
        response = await route.fetch()
        body = await response.json()
        body.pop("no_show_min_calls", None)
        await route.fulfill(response=response, json=body)

    await counter.route("**/snapshot", without_threshold)
    await call_twice(counter)
    await counter.wait_for_selector("#act-noshow:not([disabled])")  # the usual default, 2
    await counter.keyboard.press("x")
    alert = counter.locator("#action-error")
    await alert.wait_for()
    assert await alert.get_attribute("data-code") == "no_show_too_early"
    await wait_text(counter, "#noshow-hint", "Aktif setelah 3 panggilan")  # learnt
    assert await counter.is_disabled("#act-noshow")
    await counter.click("#act-recall")
    await wait_text(counter, "#call-count", "3")
    await counter.wait_for_selector("#act-noshow:not([disabled])")
    await counter.keyboard.press("x")
    await wait_text(counter, "#serving-number", "—")
    assert console.unexpected() == []
