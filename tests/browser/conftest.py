"""Fixtures and helpers of the browser tests: the real app on a real port, headless Chromium
driven by Playwright, the hall's pages each on its own device (`screens`), a watch on every
page's console, a small API client for test set-up, and waits on what the pages show.

Chromium is Debian's (`/usr/bin/chromium`, never a downloaded build). Where it or Playwright
is missing the tests skip, except with ANTRIAN_REQUIRE_TOOLS set (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from bench.pages import CHROMIUM_ARGS, SCREENS, Screen
from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.web.app import create_app
from tests.conftest import ROOT, SITE
from tests.tools import require_tool, tools_required

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
# Browsers log every non-2xx answer and every refused connection as a console error; the
# tests that provoke one on purpose allow exactly that, and never a script error.
CONFLICT_LOGGED = r"console: Failed to load resource: the server responded with a status of 409"
NETWORK_LOGGED = r"console: .*net::ERR_"


def require_playwright() -> Any:
    try:
        from playwright import async_api
    except ImportError:
        if tools_required():
            pytest.fail("the Python package playwright is required (ANTRIAN_REQUIRE_TOOLS)")
        pytest.skip("playwright is not installed")
    return async_api


class LiveServer:
    """The real app on 127.0.0.1, stoppable and restartable on the same port and database."""

    def __init__(self, settings: Settings, config: AppConfig, clock: ManualClock) -> None:
        self.settings, self.config, self.clock = settings, config, clock
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = create_app(self.settings, self.config, self.clock)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> LiveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@pytest.fixture
async def server(
    settings: Settings, config: AppConfig, clock: ManualClock
) -> AsyncIterator[LiveServer]:
    async with LiveServer(settings, config, clock) as live:
        yield live


class Api:
    """Just enough of the API to set a scene (tokens are the example hall's demo tokens)."""

    def __init__(self, session: aiohttp.ClientSession, server: LiveServer) -> None:
        self.session, self.server = session, server

    async def request(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.server.url(path),
            json=body if method == "POST" else None,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            return resp.status, await resp.json()

    async def issue(self, service: str, priority: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"service": service}
        if priority:
            body["priority"] = priority
        status, data = await self.request(
            "POST", f"/api/v1/sites/{SITE}/tickets", "demo-kiosk", body
        )
        assert status == 201, data
        return data  # type: ignore[no-any-return]

    async def act(
        self, counter: str, action: str, body: dict[str, Any] | None = None, *, ok: bool = True
    ) -> tuple[int, Any]:
        status, data = await self.request(
            "POST",
            f"/api/v1/sites/{SITE}/counters/{counter}/{action}",
            f"demo-{counter}",
            body or {},
        )
        if ok:
            assert status == 200, data
        return status, data

    async def snapshot(self) -> dict[str, Any]:
        status, data = await self.request("GET", f"/api/v1/sites/{SITE}/snapshot", "demo-manager")
        assert status == 200, data
        return data  # type: ignore[no-any-return]


@pytest.fixture
async def hall_api(server: LiveServer) -> AsyncIterator[Api]:
    # No keep-alive: a test may restart the server between two requests.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Api(session, server)


@dataclass
class ConsoleWatch:
    """Errors logged by pages: console errors and uncaught exceptions, by page name."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """An expected error (e.g. the browser logging a 409 or a refused connection)."""
        self.allowed.append(re.compile(pattern))

    def attach(self, page: Any, name: str) -> None:
        def on_console(message: Any) -> None:
            if message.type == "error":
                self.errors.append(f"{name}: console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{name}: pageerror: {exc}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = require_tool("chromium")
    async_api = require_playwright()
    async with async_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


class Screens:
    """The hall's pages, each opened in its own browser context (own storage, as on its own
    device) on the screen it is made for (`bench.pages.SCREENS`) unless a test gives another.

    The device's timezone is the example hall's unless a test gives another (a visitor's
    phone set to Jakarta time, a screen left on UTC)."""

    def __init__(self, browser: Any, console: ConsoleWatch, server: LiveServer) -> None:
        self.browser, self.console, self.server = browser, console, server

    async def open(
        self,
        page: str,
        query: str = "",
        *,
        name: str | None = None,
        screen: Screen | None = None,
        timezone_id: str = "Asia/Makassar",
        requests: list[str] | None = None,
        ready: bool = True,
        live: bool = False,
    ) -> Any:
        """`/ui/{page}.html{query}` ("index" is `/ui/`), its console watched as `name` (the
        page by default). With `ready` it is returned once it shows live data, with `live`
        once its live stream is connected too. With `requests`, the path and query of every
        request the page makes, from its first, is appended to that list."""
        context = await self.browser.new_context(
            **(screen or SCREENS[page]).context_options(), locale="id-ID", timezone_id=timezone_id
        )
        context.set_default_timeout(10_000)
        tab = await context.new_page()
        self.console.attach(tab, name or page)
        if requests is not None:
            tab.on("request", lambda request: requests.append(_path_and_query(request.url)))
        path = "/ui/" if page == "index" else f"/ui/{page}.html"
        await tab.goto(self.server.url(path + query))
        if ready or live:
            await wait_ready(tab)
        if live:
            await tab.wait_for_selector("#conn[data-state=live]")
        return tab


@pytest.fixture
def screens(browser: Any, console: ConsoleWatch, server: LiveServer) -> Screens:
    return Screens(browser, console, server)


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def wait_ready(page: Any) -> None:
    """Until the page shows live data (it sets `body[data-ready]`)."""
    await page.wait_for_selector("body[data-ready='1']", state="attached")


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


async def text(page: Any, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def wait_js(page: Any, expression: str, arg: Any = None, timeout: float = 10.0) -> None:
    """Poll a JS function until it returns true. (Playwright's wait_for_function evaluates a
    string in the page, which the pages' Content-Security-Policy rightly refuses.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression, arg):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {expression} ({arg!r})")
        await asyncio.sleep(0.05)


async def wait_text(page: Any, selector: str, expected: str, timeout: float = 10.0) -> None:
    """Wait until the element's text contains `expected` (pages update live, not at once)."""
    try:
        await wait_js(
            page,
            "([sel, want]) => { const el = document.querySelector(sel);"
            " return !!el && el.textContent.includes(want); }",
            [selector, expected],
            timeout,
        )
    except AssertionError:
        found = await page.evaluate(
            "(sel) => { const el = document.querySelector(sel); return el && el.textContent; }",
            selector,
        )
        raise AssertionError(f"{selector}: {found!r} never contained {expected!r}") from None
