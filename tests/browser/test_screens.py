"""Every page at its real resolution on a busy morning, saved under artifacts/screenshots/.

The screenshots are reviewed by a person; the test checks that each page renders its live
data without a console error.
"""

from __future__ import annotations

import pytest

from bench.pages import PORTRAIT, WALL
from queue_service.domain.clock import ManualClock
from tests.browser.conftest import Api, ConsoleWatch, Screens, screenshot, text
from tests.browser.scenes import busy_morning
from tests.conftest import SITE

pytestmark = pytest.mark.browser


async def test_every_page_renders_a_busy_morning_without_console_errors(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    await busy_morning(hall_api, clock)
    shots = []

    page = await screens.open("index")
    shots.append(await screenshot(page, "index"))

    for orientation, screen in {"portrait": PORTRAIT, "landscape": WALL}.items():
        kiosk = await screens.open(
            "kiosk", f"?site={SITE}&token=demo-kiosk", name=f"kiosk-{orientation}", screen=screen
        )
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

    counter = await screens.open("counter", f"?site={SITE}&counter=loket-03&token=demo-loket-03")
    shots.append(await screenshot(counter, "counter"))

    board = await screens.open("board", f"?site={SITE}&token=demo-manager")
    shots.append(await screenshot(board, "board"))

    display = await screens.open("display", f"?site={SITE}")
    shots.append(await screenshot(display, "display"))

    status = await screens.open("status", f"#{ticket_id}")
    shots.append(await screenshot(status, "status-phone"))
    await status.click("#lang")  # Bahasa Indonesia first, English on request
    assert await text(status, "#state") == "Waiting"
    assert await status.get_attribute("html", "lang") == "en"

    assert all(path.stat().st_size > 10_000 for path in shots)
    assert console.unexpected() == []
