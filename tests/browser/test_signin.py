"""Signing screens in, in headless Chromium: the floor board's sign-in (a refused token is
said and forgotten, a good one shows the board) and the kiosk's first set-up."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ConsoleWatch, Screens, text, wait_text
from tests.conftest import SITE

pytestmark = pytest.mark.browser

REFUSED_LOGGED = r"console: Failed to load resource: the server responded with a status of 401"


async def test_the_board_says_a_refused_token_and_signs_in_with_a_good_one(
    screens: Screens, console: ConsoleWatch
) -> None:
    console.allow(REFUSED_LOGGED)
    board = await screens.open("board", f"?site={SITE}&token=not-a-token", ready=False)
    assert "token" not in board.url
    await board.wait_for_selector("form.signin [role=alert]")
    assert await text(board, "form.signin h1") == "Masuk ke papan pantau"
    assert await text(board, "form.signin [role=alert]") == "Token tidak berlaku."
    assert await board.evaluate(f"localStorage.getItem('antrian.board.token.{SITE}')") is None

    await board.fill("#token", "demo-manager")
    await board.click("form.signin button[type=submit]")
    await board.wait_for_selector("body[data-ready='1']", state="attached")
    await board.wait_for_selector("#conn[data-state=live]")
    await board.wait_for_selector("#services")
    assert await board.query_selector("form.signin") is None
    stored = await board.evaluate(f"localStorage.getItem('antrian.board.token.{SITE}')")
    assert stored == "demo-manager"
    assert console.unexpected() == []


async def test_a_new_kiosk_is_set_up_with_its_site_and_token(
    screens: Screens, console: ConsoleWatch
) -> None:
    kiosk = await screens.open("kiosk", ready=False)
    await wait_text(kiosk, "form.signin h1", "Anjungan belum disiapkan")
    await kiosk.wait_for_selector(f"#setup-site option[value='{SITE}']", state="attached")
    await kiosk.select_option("#setup-site", SITE)
    await kiosk.fill("#setup-token", "demo-kiosk")
    await kiosk.click("form.signin button[type=submit]")
    await kiosk.wait_for_selector("body[data-ready='1']", state="attached")
    await kiosk.wait_for_selector("[data-agency=disdukcapil]")
    assert await kiosk.evaluate("localStorage.getItem('antrian.kiosk.token')") == "demo-kiosk"
    assert await kiosk.evaluate("localStorage.getItem('antrian.kiosk.site')") == SITE
    assert console.unexpected() == []
