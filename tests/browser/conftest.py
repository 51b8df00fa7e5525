"""Fixtures of the browser tests: the real app on a real port, headless Chromium driven by
Playwright, a watch on every page's console, and a small API client for test set-up.

Chromium is Debian's (`/usr/bin/chromium`, never a downloaded build). Where it or Playwright
is missing the tests skip, except with ANTRIAN_REQUIRE_TOOLS set (CI), where they fail.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.web.app import create_app
from tests.conftest import ROOT, SITE
from tests.tools import require_tool, tools_required

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A hall's TV display runs unattended: nobody is there to touch it before a chime.
    "--autoplay-policy=no-user-gesture-required",
]


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


@pytest.fixture
async def server(
    settings: Settings, config: AppConfig, clock: ManualClock
) -> AsyncIterator[LiveServer]:
    live = LiveServer(settings, config, clock)
    await live.start()
    yield live
    await live.stop()


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


async def open_page(
    browser: Any,
    console: ConsoleWatch,
    name: str,
    url: str,
    *,
    width: int,
    height: int,
    scale: float = 1,
    mobile: bool = False,
    timezone_id: str = "Asia/Makassar",
    requests: list[str] | None = None,
) -> Any:
    """A page in its own context (own storage, as on its own device) at a real resolution.

    The device's timezone is the example hall's unless a test gives another (a visitor's
    phone set to Jakarta time, a screen left on UTC). With `requests`, the path and query
    of every request the page makes, from its first, is appended to that list."""
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=scale,
        is_mobile=mobile,
        has_touch=mobile,
        locale="id-ID",
        timezone_id=timezone_id,
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    console.attach(page, name)
    if requests is not None:
        page.on("request", lambda request: requests.append(_path_and_query(request.url)))
    await page.goto(url)
    return page


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def wait_ready(page: Any) -> None:
    await page.wait_for_selector("body[data-ready='1']", state="attached")


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
