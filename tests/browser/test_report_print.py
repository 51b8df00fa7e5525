"""Reports and surveys in headless Chromium, against the real app and PostgreSQL: the HTML
report rendered and printed to PDF (screenshots in artifacts/), the survey on the citizen's
phone after a served visit, the counter's survey tablet, and the board's report download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from tests.browser.conftest import SCREENSHOTS, ConsoleWatch, LiveServer, Screens, text
from tests.conftest import ROOT
from tests.test_reports import T0, Day, play_day, report_hall

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts"
SCORES = [4, 3, 3, 4, 3, 4, 4, 3, 3]
FRIDAY = T0 - timedelta(days=3)


class UrlClient:
    """The few TestClient calls the scripted day makes, over a real socket."""

    def __init__(self, session: aiohttp.ClientSession, server: LiveServer) -> None:
        self.session, self.server = session, server

    async def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        resp = await self.session.post(self.server.url(path), json=json, headers=headers)
        await resp.read()  # released at once; .json() and .text() read the kept body
        return resp

    async def get(
        self, path: str, params: Any = None, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        resp = await self.session.get(self.server.url(path), params=params, headers=headers)
        await resp.read()
        return resp


@pytest.fixture
async def server(settings: Settings, clock: ManualClock) -> AsyncIterator[LiveServer]:
    """The reports' hall. The service starts on the Friday of the first scripted day: its
    live day only moves forward with the clock."""
    clock.set(FRIDAY)
    async with LiveServer(settings, report_hall(), clock) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[UrlClient]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield UrlClient(s, server)


async def two_days(http: UrlClient, clock: ManualClock) -> tuple[Day, Day]:
    """The scripted day on Friday and on Monday, with surveys (one comment tries markup)."""
    friday = await play_day(http, clock, FRIDAY)  # type: ignore[arg-type]
    monday = await play_day(http, clock, T0)  # type: ignore[arg-type]
    for day, name, scores, comment in (
        (friday, "T1", SCORES, "Petugas ramah dan cepat."),
        (friday, "T3", [3, 3, 2, 4, 3, 3, 4, 3, 2], "<script>alert(1)</script> antre lama"),
        (monday, "T1", [4] * 9, None),
        (monday, "T4", [2, 3, 2, 4, 3, 3, 3, 2, 2], "Menunggu terlalu lama."),
    ):
        body: dict[str, Any] = {"scores": scores}
        if comment:
            body["comment"] = comment
        resp = await http.post(f"/api/v1/tickets/{day.tickets[name]}/survey", json=body)
        assert resp.status == 201, await resp.text()
    return friday, monday


async def choose(page: Any, scores: list[int]) -> None:
    """Answer the page's survey: one score for each of its questions, in order."""
    items = await page.query_selector_all(".survey-item")
    for item, score in zip(items, scores, strict=True):
        await (await item.query_selector(f".survey-choice[data-value='{score}']")).click()


async def test_the_html_report_renders_and_prints_to_pdf(
    server: LiveServer,
    http: UrlClient,
    clock: ManualClock,
    browser: Any,
    console: ConsoleWatch,
) -> None:
    await two_days(http, clock)
    clock.set(T0 + timedelta(days=1))
    context = await browser.new_context(
        viewport={"width": 1000, "height": 1400},
        locale="id-ID",
        timezone_id="Asia/Makassar",
        extra_http_headers={"Authorization": "Bearer report-manager"},
    )
    page = await context.new_page()
    console.attach(page, "report")
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(server.url("/")) else outside.append(r.url),
    )
    url = server.url("/api/v1/sites/hall/report?format=html&from=2026-11-20&to=2026-11-23")
    response = await page.goto(url)
    assert response is not None and response.status == 200
    charts = await page.eval_on_selector_all(
        "svg.chart", "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert len(charts) >= 3 and all(w > 300 for w in charts)
    # The comment's markup is shown as text, never run.
    assert await page.evaluate("document.querySelectorAll('script').length") == 0
    assert "<script>alert(1)</script>" in (await page.text_content("ul.comments") or "")
    assert await page.text_content("h1") and "IKM" in (await page.content())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    pdf = await page.pdf(format="A4", print_background=True, path=str(ARTIFACTS / "report.pdf"))
    # What the PDF looks like: the print stylesheet at the A4 width (210 mm at 96 dpi).
    await page.emulate_media(media="print")
    await page.set_viewport_size({"width": 794, "height": 1123})
    await page.screenshot(path=str(SCREENSHOTS / "report-print.png"), full_page=True)
    assert pdf.startswith(b"%PDF-")
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert 1 <= pages <= 6, pages
    await context.close()
    assert not outside, outside
    assert not console.unexpected(), console.unexpected()


async def test_a_citizen_rates_a_served_visit_on_the_status_page(
    http: UrlClient, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    day = await play_day(http, clock)  # type: ignore[arg-type]
    phone = await screens.open("status", f"#{day.tickets['T1']}")
    await phone.wait_for_selector("#survey")
    assert await phone.get_attribute("#lapor", "href") == "https://www.lapor.go.id"
    assert len(await phone.query_selector_all(".survey-item")) == 9
    await phone.click("#survey-submit")  # nothing answered yet
    assert "9" in (await phone.text_content(".survey-error") or "")
    await choose(phone, SCORES)
    await phone.fill("#survey-comment", "Terima kasih, pelayanan cepat.")
    await phone.screenshot(path=str(SCREENSHOTS / "survey-phone.png"), full_page=True)
    await phone.click("#survey-submit")
    await phone.wait_for_selector("#survey-thanks")
    resp = await http.get(f"/api/v1/tickets/{day.tickets['T1']}/survey")
    assert (await resp.json())["status"] == "submitted"
    # An incomplete visit offers no survey.
    other = await screens.open("status", f"#{day.tickets['T6']}", name="status-incomplete")
    assert await other.query_selector("#survey") is None
    # The next day the ticket is gone from the live state, but its served visit can still
    # be rated for a week: the page offers the survey on its own.
    clock.set(T0 + timedelta(days=1, hours=2))
    console.allow(r"status-late: console: Failed to load resource: .* 404")
    late = await screens.open("status", f"#{day.tickets['T3']}", name="status-late")
    await late.wait_for_selector("#survey")
    assert await text(late, "#number") == "B001"
    await choose(late, SCORES)
    await late.click("#survey-submit")
    await late.wait_for_selector("#survey-thanks")
    assert not console.unexpected(), console.unexpected()


async def test_the_counter_tablet_offers_the_last_served_ticket_and_the_board_downloads(
    http: UrlClient, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    day = await play_day(http, clock)  # type: ignore[arg-type]
    clock.set(T0 + timedelta(seconds=1560))
    tablet = await screens.open(
        "survey", "?site=hall&counter=c2&token=survey-c2", name="survey-tablet"
    )
    await tablet.wait_for_selector("#survey")
    assert await text(tablet, "#survey-number") == "A003"
    await choose(tablet, SCORES)
    await tablet.screenshot(path=str(SCREENSHOTS / "survey-tablet.png"))
    await tablet.click("#survey-submit")
    await tablet.wait_for_selector("#survey-thanks")
    resp = await http.get(f"/api/v1/tickets/{day.tickets['T4']}/survey")
    assert (await resp.json())["status"] == "submitted"

    # The landing page offers the tablet, per counter.
    index = await screens.open("index")
    await index.select_option("#pick-survey-counter", "c2")
    href = await index.get_attribute("#card-survey a", "href")
    assert href == "survey.html?site=hall&counter=c2"

    board = await screens.open("board", "?site=hall&token=report-manager")
    # The default range ends today in the site's timezone, by the server's clock.
    for _ in range(100):
        if await board.input_value("#report-to") == "2026-11-23":
            break
        await asyncio.sleep(0.05)
    assert await board.input_value("#report-to") == "2026-11-23"
    assert await board.input_value("#report-from") == "2026-10-25"
    await board.fill("#report-from", "2026-11-23")
    await board.dispatch_event("#report-from", "change")
    async with board.expect_download() as info:
        await board.click("#report-csv")
    download = await info.value
    path = await download.path()
    assert download.suggested_filename == "laporan-hall-2026-11-23-2026-11-23.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    await board.wait_for_selector("#report-status")
    await board.screenshot(path=str(SCREENSHOTS / "board-reports.png"))
    assert not console.unexpected(), console.unexpected()
