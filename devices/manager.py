"""The device manager: one supervised task per configured device, for the app's lifetime.

It also answers for the devices as a whole: their health (snapshot, SSE, /metrics) and
printing a kiosk's ticket on that kiosk's printer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from devices import metric_families as metrics
from devices.escpos import PrintableTicket, ticket_bytes
from devices.supervisor import (
    RUNNERS,
    DeviceRunner,
    PrinterRunner,
    cancel_and_wait,
)
from queue_service.config import AppConfig
from queue_service.engine import Engine
from queue_service.stream import StreamHub

log = logging.getLogger(__name__)

# What a ticket's "print" field says when the kiosk has no printer configured.
NO_PRINTER: dict[str, Any] = {
    "status": "no_printer",
    "message": "no printer is configured for this kiosk",
}


class DeviceManager:
    def __init__(
        self,
        config: AppConfig,
        engine: Engine,
        hub: StreamHub | None = None,
        *,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.engine = engine
        self.hub = hub
        self.runners: dict[tuple[str, str], DeviceRunner] = {}
        self.printers: dict[tuple[str, str], PrinterRunner] = {}  # (site, kiosk token name)
        for site in config.sites.values():
            for device in site.devices:
                runner = RUNNERS[device.kind](
                    site, device, engine, self._changed, rng=rng, wall_clock=wall_clock
                )
                self.runners[(site.id, device.id)] = runner
                if isinstance(runner, PrinterRunner) and device.kiosk is not None:
                    self.printers[(site.id, device.kiosk)] = runner
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for (site_id, device_id), runner in self.runners.items():
            self._tasks.append(
                asyncio.create_task(runner.run(), name=f"device:{site_id}:{device_id}")
            )
        if self.runners:
            log.info("started %d device link(s)", len(self.runners))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def runner(self, site_id: str, device_id: str) -> DeviceRunner:
        return self.runners[(site_id, device_id)]

    # -- health -----------------------------------------------------------------------

    def health(self, site_id: str) -> list[dict[str, Any]]:
        return [r.health.view() for (s, _), r in self.runners.items() if s == site_id]

    def _changed(self, runner: DeviceRunner) -> None:
        if self.hub is not None:
            self.hub.notify(
                runner.site.id, {"type": "device_status", "device": runner.health.view()}
            )

    def render_metrics(self, now: float) -> str:
        return metrics.render([r.health for r in self.runners.values()])

    # -- printing ---------------------------------------------------------------------

    def has_printer(self, site_id: str, kiosk: str | None) -> bool:
        return (site_id, kiosk or "") in self.printers

    async def print_ticket(
        self, site_id: str, kiosk: str | None, ticket: dict[str, Any]
    ) -> dict[str, Any]:
        """Print an issued ticket (the API's ticket body) on the kiosk's printer, if any."""
        printer = self.printers.get((site_id, kiosk or ""))
        if printer is None:
            return dict(NO_PRINTER)
        site = self.config.sites[site_id]
        service = site.services[ticket["service"]]
        agency = site.agencies.get(service.agency)
        issued = datetime.fromisoformat(ticket["issued_at"]).astimezone(site.timezone)
        printable = PrintableTicket(
            hall=site.name,
            agency=agency.name if agency else "",
            service=service.name_id,
            number=ticket["number"],
            issued_at=issued,
            people_ahead=int(ticket.get("people_ahead") or 0),
            estimated_wait_seconds=ticket.get("estimated_wait_seconds"),
            estimated_wait_range=_range(ticket.get("estimated_wait_range_seconds")),
            status_url=f"{site.public_url or ''}/ui/status.html#{ticket['id']}",
            priority=ticket.get("priority"),
        )
        outcome = await printer.print_ticket(ticket_bytes(printable), ticket["id"])
        out: dict[str, Any] = {"status": outcome.status, "message": outcome.message}
        if outcome.problems:
            out["problems"] = list(outcome.problems)
        if outcome.unknown:
            out["unknown"] = list(outcome.unknown)
        if outcome.status != "printed":
            log.warning(
                "kiosk %r at %s: ticket %s %s: %s",
                kiosk,
                site_id,
                ticket["number"],
                "not printed" if outcome.status == "failed" else "printed unconfirmed",
                outcome.message,
            )
        return out


DEVICES = web.AppKey("devices", DeviceManager)


def _range(value: Any) -> tuple[float, float] | None:
    """The ticket status's `estimated_wait_range_seconds` ([low, high] or null)."""
    if isinstance(value, list) and len(value) == 2:
        return float(value[0]), float(value[1])
    return None
