"""Every page at its real resolution on a busy morning, saved under artifacts/screenshots/.

The screenshots are reviewed by a person; the test checks that each page renders its live
data without a console error.
"""

from __future__ import annotations

from typing import Any

import pytest

from queue_service.domain.clock import ManualClock
from tests.browser.conftest import (
    Api,
    ConsoleWatch,
    LiveServer,
    open_page,
    screenshot,
    wait_ready,
)
from tests.browser.scenes import busy_morning
from tests.conftest import SITE

pytestmark = pytest.mark.browser


async def test_every_page_renders_a_busy_morning_without_console_errors(
    server: LiveServer, hall_api: Api, clock: ManualClock, browser: Any, console: ConsoleWatch
) -> None:
    await busy_morning(hall_api, clock)
    shots = []

    page = await open_page(browser, console, "index", server.url("/"), width=1280, height=800)
    await wait_ready(page)
    shots.append(await screenshot(page, "index"))

    for orientation, (w, h) in {"portrait": (1080, 1920), "landscape": (1920, 1080)}.items():
        kiosk = await open_page(
            browser,
            console,
            f"kiosk-{orientation}",
            server.url(f"/ui/kiosk.html?site={SITE}&token=demo-kiosk"),
            width=w,
            height=h,
        )
        await wait_ready(kiosk)
        shots.append(await screenshot(kiosk, f"kiosk-{orientation}-1-agencies"))
        await kiosk.click("[data-agency=disdukcapil]")
        shots.append(await screenshot(kiosk, f"kiosk-{orientation}-2-services"))
        await kiosk.click("[data-service=KTP-EL]")
        shots.append(await screenshot(kiosk, f"kiosk-{orientation}-3-priority"))
        await kiosk.click("[data-priority=none]")
        await kiosk.wait_for_selector("#ticket-number")
        await kiosk.locator(".ticket-qr img").wait_for()
        assert await kiosk.evaluate(
            "document.querySelector('.ticket-qr img').decode().then(() => true)"
        )
        shots.append(await screenshot(kiosk, f"kiosk-{orientation}-4-ticket"))
    ticket_id = await kiosk.get_attribute("#ticket-number", "data-ticket-id")

    counter = await open_page(
        browser,
        console,
        "counter",
        server.url(f"/ui/counter.html?site={SITE}&counter=loket-03&token=demo-loket-03"),
        width=1440,
        height=900,
    )
    await wait_ready(counter)
    shots.append(await screenshot(counter, "counter"))

    board = await open_page(
        browser,
        console,
        "board",
        server.url(f"/ui/board.html?site={SITE}&token=demo-manager"),
        width=1920,
        height=1080,
    )
    await wait_ready(board)
    shots.append(await screenshot(board, "board"))

    display = await open_page(
        browser,
        console,
        "display",
        server.url(f"/ui/display.html?site={SITE}"),
        width=1920,
        height=1080,
    )
    await wait_ready(display)
    shots.append(await screenshot(display, "display"))

    status = await open_page(
        browser,
        console,
        "status",
        server.url(f"/ui/status.html#{ticket_id}"),
        width=390,
        height=844,
        scale=2,
        mobile=True,
    )
    await wait_ready(status)
    shots.append(await screenshot(status, "status-phone"))
    await status.click("#lang")  # Bahasa Indonesia first, English on request
    assert (await status.text_content("#state") or "").strip() == "Waiting"
    assert await status.get_attribute("html", "lang") == "en"

    assert all(path.stat().st_size > 10_000 for path in shots)
    assert console.unexpected() == []
