"""Page weight and speed of the front ends: `python -m bench.pages` (or `python bench/pages.py`).

For each page (landing, kiosk, counter, board, TV display, ticket status) it loads the page
several times in a fresh headless Chromium context (cold cache, as a screen after a
restart) against the real app on loopback, with the example hall on a busy morning, and
reports:

- transfer: the sum of every response's headers and body (the live stream excepted: it
  never ends; its first bytes are a few hundred);
- time to live data: from the start of navigation until the page has drawn its first live
  data (it sets `document.body.dataset.ready = "1"`; the time is `performance.now()`).

Targets (issue 5): under 300 KB and under 1 s. Needs Debian's chromium and the Python
package playwright; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from bench.common import ROOT, banner, fresh_database, run_on_server
from queue_service.config import load_config
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.web.app import create_app

SITE = "mpp-banjarmasin"
MONDAY_9AM = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 WITA: the hall is open
TARGET_BYTES = 300 * 1024
TARGET_SECONDS = 1.0
# Headless Chromium as the benchmarks and the browser tests start it.
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


@dataclass(frozen=True)
class Screen:
    """A device a page is shown on: its viewport in CSS pixels, pixel ratio, touch phone."""

    width: int
    height: int
    scale: float = 1
    mobile: bool = False

    def context_options(self) -> dict[str, Any]:
        """Playwright's `new_context` options for this device."""
        return {
            "viewport": {"width": self.width, "height": self.height},
            "device_scale_factor": self.scale,
            "is_mobile": self.mobile,
            "has_touch": self.mobile,
        }


WALL = Screen(1920, 1080)  # the floor board, the TV display, a landscape kiosk
PORTRAIT = Screen(1080, 1920)  # the kiosk's touch screen
DESK = Screen(1440, 900)  # the officer's PC
LAPTOP = Screen(1280, 800)
TABLET = Screen(1024, 1366)  # the survey tablet at a counter
PHONE = Screen(390, 844, scale=2, mobile=True)  # the citizen's phone

# Each page on the device it is made for (the page's file name without .html).
SCREENS = {
    "index": LAPTOP,
    "kiosk": PORTRAIT,
    "counter": DESK,
    "board": WALL,
    "display": WALL,
    "status": PHONE,
    "survey": TABLET,
    "online": PHONE,
}


async def seed(base: str, clock: ManualClock) -> str:
    """A morning's worth of tickets and calls; returns a waiting ticket's id."""
    clock.set(MONDAY_9AM - timedelta(hours=1))
    services = ["KTP-EL", "KK", "AKTA", "PASPOR", "JKN-ADM", "PKB", "SKCK", "BANK-TELLER"]
    counters = [
        "loket-01",
        "loket-02",
        "loket-03",
        "loket-04",
        "loket-07",
        "loket-10",
        "loket-13",
        "loket-15",
        "loket-17",
    ]
    last = ""
    async with aiohttp.ClientSession(base) as http:

        async def post(path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(
                path, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                return await r.json()  # type: ignore[no-any-return]

        for counter in counters:
            await post(f"/api/v1/sites/{SITE}/counters/{counter}/open", f"demo-{counter}", {})
        for n in range(90):
            ticket = await post(
                f"/api/v1/sites/{SITE}/tickets",
                "demo-kiosk",
                {"service": services[n % len(services)]},
            )
            last = ticket["id"]
            clock.advance(40)
            if n % 3 == 0:
                counter = counters[n // 3 % len(counters)]
                await post(f"/api/v1/sites/{SITE}/counters/{counter}/finish", f"demo-{counter}", {})
                await post(
                    f"/api/v1/sites/{SITE}/counters/{counter}/call-next", f"demo-{counter}", {}
                )
    clock.set(MONDAY_9AM)
    return last


def pages(ticket_id: str) -> dict[str, tuple[str, Screen]]:
    return {
        "landing": ("/ui/", SCREENS["index"]),
        "kiosk": (f"/ui/kiosk.html?site={SITE}&token=demo-kiosk", SCREENS["kiosk"]),
        "counter": (
            f"/ui/counter.html?site={SITE}&counter=loket-03&token=demo-loket-03",
            SCREENS["counter"],
        ),
        "board": (f"/ui/board.html?site={SITE}&token=demo-manager", SCREENS["board"]),
        "display": (f"/ui/display.html?site={SITE}", SCREENS["display"]),
        "status": (f"/ui/status.html#{ticket_id}", SCREENS["status"]),
        "online": (f"/ui/online.html?site={SITE}", SCREENS["online"]),
    }


async def load_once(browser: Any, url: str, screen: Screen) -> tuple[int, int, float]:
    """(bytes transferred, requests, seconds to first live data) of one cold load."""
    context = await browser.new_context(**screen.context_options())
    page = await context.new_page()
    sizes: list[int] = []
    pending: list[asyncio.Task[None]] = []

    async def measure(request: Any) -> None:
        try:
            got = await request.sizes()
        except Exception:  # the context closed while this request ended: not part of the load
            return
        sizes.append(got["responseBodySize"] + got["responseHeadersSize"])

    def finished(request: Any) -> None:
        pending.append(asyncio.ensure_future(measure(request)))

    page.on("requestfinished", finished)
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='1']", state="attached", timeout=15_000)
    ready_ms = await page.evaluate("window.antrianReadyAt")
    await page.wait_for_load_state("networkidle")  # images (the QR code) and late modules
    page.remove_listener("requestfinished", finished)
    await asyncio.gather(*pending)
    await context.close()
    return sum(sizes), len(sizes), ready_ms / 1000


async def run(server_url: str, chromium: str, loads: int) -> None:
    from playwright.async_api import async_playwright

    async with fresh_database(server_url, "bench_pages") as dsn:
        clock = ManualClock(MONDAY_9AM)
        settings = Settings(config_path=ROOT / "config" / "example-hall.toml", database_url=dsn)
        app = create_app(settings, load_config(settings.config_path), clock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            ticket_id = await seed(base, clock)
            banner(f"pages: {loads} cold loads each, loopback, headless Chromium")
            print(
                f"{'page':<10}{'transfer':>12}{'requests':>10}"
                f"{'to live data (median, min..max)':>36}"
            )
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                for name, (path, screen) in pages(ticket_id).items():
                    results = [await load_once(browser, base + path, screen) for _ in range(loads)]
                    size = statistics.median(r[0] for r in results)
                    count = statistics.median(r[1] for r in results)
                    times = [r[2] for r in results]
                    ok = size < TARGET_BYTES and statistics.median(times) < TARGET_SECONDS
                    print(
                        f"{name:<10}{size / 1024:>9.1f} KB{count:>10.0f}"
                        f"{statistics.median(times) * 1000:>16.0f} ms "
                        f"({min(times) * 1000:.0f}..{max(times) * 1000:.0f} ms)"
                        f"   {'within target' if ok else 'OVER TARGET'}",
                        flush=True,
                    )
                await browser.close()
            print(
                f"targets: transfer < {TARGET_BYTES // 1024} KB, live data < {TARGET_SECONDS:.0f} s"
            )
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--loads", type=int, default=5, help="cold loads per page (default 5)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("bench.pages needs Chromium (Debian package 'chromium')")
    run_on_server(None, lambda url: run(url, chromium, args.loads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
