"""A closed hall says when it opens (issue 15, item 7), in headless Chromium.

At night the kiosk's banner and the TV display say "Buka kembali Senin, 08:00 WITA", the
kiosk in English after its toggle, the display in both languages (it has no toggle); the
next evening it is "besok" / "tomorrow"; in the morning the lines are gone. A refusal that
raced the kiosk's menu says it too. The screens are left on UTC: the day and time are the
site's. The wording for other zones (WIB, WIT, a UTC offset elsewhere) is checked in the
page's own module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from queue_service.domain.clock import ManualClock
from tests.browser.conftest import (
    CONFLICT_LOGGED,
    Api,
    ConsoleWatch,
    Screens,
    screenshot,
    text,
    wait_js,
    wait_text,
)
from tests.conftest import SITE

pytestmark = pytest.mark.browser

WITA = ZoneInfo("Asia/Makassar")


def wita(day: int, hh: int, mm: int = 0) -> datetime:
    """November 2026 in Banjarmasin: Saturday the 28th, Sunday the 29th, Monday the 30th."""
    return datetime(2026, 11, day, hh, mm, tzinfo=WITA)


async def open_screens(screens: Screens) -> tuple[Any, Any]:
    """The kiosk and the TV display, both left on UTC."""
    kiosk = await screens.open(
        "kiosk", f"?site={SITE}&token=demo-kiosk&idle=600", timezone_id="UTC"
    )
    display = await screens.open("display", f"?site={SITE}", timezone_id="UTC", live=True)
    return kiosk, display


async def test_at_night_the_kiosk_and_the_display_say_when_the_hall_opens(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    clock.set(wita(28, 20))  # Saturday evening: closed since noon, and Sunday is closed
    kiosk, display = await open_screens(screens)

    await wait_text(kiosk, "#closed-banner", "Buka kembali Senin, 08:00 WITA")
    assert "Pengambilan nomor antrian sedang ditutup." in await text(kiosk, "#closed-banner")
    assert await kiosk.is_visible("#closed-banner .opens-again")
    await wait_text(display, "#closed-id", "Buka kembali Senin, 08:00 WITA")
    assert await text(display, "#closed-en") == "Opens again Monday, 08:00 WITA"
    assert await display.is_visible("#closed-id") and await display.is_visible("#closed-en")
    assert await display.get_attribute("#closed-en", "lang") == "en"
    assert await display.is_hidden("#break-banner")

    await kiosk.click("#lang")
    await wait_text(kiosk, "#closed-banner", "Opens again Monday, 08:00 WITA")
    assert "Ticket issuing is closed now." in await text(kiosk, "#closed-banner")
    assert "Buka kembali" not in await text(kiosk, "#closed-banner")
    await screenshot(kiosk, "kiosk-closed")
    await screenshot(display, "display-closed")

    # Sunday evening: Monday is tomorrow. An event brings both screens up to date.
    clock.set(wita(29, 21))
    await hall_api.act("loket-01", "open")
    await wait_text(kiosk, "#closed-banner", "Opens again tomorrow, 08:00 WITA")
    await wait_text(display, "#closed-id", "Buka kembali besok, 08:00 WITA")
    assert await text(display, "#closed-en") == "Opens again tomorrow, 08:00 WITA"
    await kiosk.click("#lang")
    await wait_text(kiosk, "#closed-banner", "Buka kembali besok, 08:00 WITA")

    # Monday 08:00: open, no line anywhere. (A new service day: the counter starts closed.)
    clock.set(wita(30, 8))
    await hall_api.act("loket-01", "open")
    await wait_js(display, "() => document.querySelector('#closed-banner').hidden")
    await wait_js(kiosk, "() => !document.querySelector('#closed-banner')")
    assert "Buka kembali" not in (await kiosk.text_content("body") or "")
    assert console.unexpected() == []


async def test_a_refusal_at_closing_time_says_when_the_hall_opens(
    clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    clock.set(wita(28, 11, 59))  # Saturday, a minute before closing
    kiosk, _ = await open_screens(screens)
    await kiosk.click("[data-agency='disdukcapil']")
    await kiosk.click("[data-service='KK']")
    await kiosk.wait_for_selector("[data-priority='none']")
    # Noon on the server while the citizen reads the priority question.
    clock.set(wita(28, 12))
    console.allow(CONFLICT_LOGGED)
    await kiosk.click("[data-priority='none']")
    await wait_text(kiosk, "#kiosk-error", "Mal Pelayanan Publik sedang tutup.")
    await wait_text(kiosk, "#kiosk-error", "Buka kembali Senin, 08:00 WITA")
    await kiosk.click("#lang")
    await wait_text(kiosk, "#kiosk-error", "The hall is closed now.")
    await wait_text(kiosk, "#kiosk-error", "Opens again Monday, 08:00 WITA")
    assert console.unexpected() == []


CASES = [
    # (next opening, site zone, server now, sentence, language, expected)
    (
        "2026-11-30T07:30:00+07:00",
        "Asia/Jakarta",
        "2026-11-28T12:00:00Z",
        "open.again",
        "id",
        "Buka kembali Senin, 07:30 WIB",
    ),
    (
        "2026-11-30T07:30:00+07:00",
        "Asia/Pontianak",
        "2026-11-28T12:00:00Z",
        "open.again",
        "en",
        "Opens again Monday, 07:30 WIB",
    ),
    # 16:30 UTC on Sunday is already Monday 01:30 in Jayapura: today, not tomorrow.
    (
        "2026-11-30T08:00:00+09:00",
        "Asia/Jayapura",
        "2026-11-29T16:30:00Z",
        "open.again",
        "id",
        "Buka kembali hari ini, 08:00 WIT",
    ),
    (
        "2026-11-30T08:00:00+09:00",
        "Asia/Jayapura",
        "2026-11-29T14:30:00Z",
        "open.again",
        "en",
        "Opens again tomorrow, 08:00 WIT",
    ),
    (
        "2026-03-30T09:00:00+02:00",
        "Europe/Berlin",
        "2026-03-27T18:00:00Z",
        "open.again",
        "en",
        "Opens again Monday, 09:00 UTC+2",
    ),
    (
        "2026-12-04T09:30:00+05:30",
        "Asia/Kolkata",
        "2026-12-01T10:00:00Z",
        "open.again",
        "id",
        "Buka kembali Jumat, 09:30 UTC+5:30",
    ),
    (
        "2026-11-30T09:00:00-03:00",
        "America/Sao_Paulo",
        "2026-11-23T21:00:00Z",
        "open.again",
        "id",
        "Buka kembali Senin depan, 09:00 UTC-3",
    ),
    (
        "2026-11-30T09:00:00+00:00",
        "UTC",
        "2026-11-23T21:00:00Z",
        "open.again",
        "en",
        "Opens again next Monday, 09:00 UTC",
    ),
    (
        "2026-11-24T08:00:00+08:00",
        "Asia/Makassar",
        "2026-11-23T06:30:00Z",
        "open.issue_again",
        "id",
        "Nomor dapat diambil lagi besok, 08:00 WITA",
    ),
    (
        "2026-11-24T08:00:00+08:00",
        "Asia/Makassar",
        "2026-11-23T06:30:00Z",
        "open.issue_again",
        "en",
        "Tickets are issued again tomorrow, 08:00 WITA",
    ),
]


async def test_the_opening_line_names_the_day_and_the_sites_zone(
    clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    page = await screens.open(
        "kiosk", f"?site={SITE}&token=demo-kiosk", timezone_id="Pacific/Honolulu"
    )
    got = await page.evaluate(
        """async (cases) => {
          const ui = await import("/ui/js/ui.js");
          return cases.map(([at, tz, now, key, lang]) =>
            ui.opensAgain(at, tz, Date.parse(now), key, lang));
        }""",
        CASES,
    )
    assert got == [case[-1] for case in CASES]
    assert (
        await page.evaluate("async () => (await import('/ui/js/ui.js')).opensAgain(null, 'UTC', 0)")
        == ""
    )
    assert console.unexpected() == []
