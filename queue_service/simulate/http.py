"""Mode (a): a simulated day against a running service, through its public HTTP API.

The kiosk issues with the kiosk token, each counter acts with its own counter token, and
every POST carries an `Idempotency-Key` (a retry after a lost answer or a 503 reuses it,
so nothing is done twice). The service stamps events with its own clock: the day's
schedule (07:50 counters open, 12:00 break, ...) is replayed from the moment the run
starts, `speed` times faster than real time, so `speed=60` plays an hour a minute.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from queue_service.domain import events as ev
from queue_service.simulate.day import Called, Issued, Refused

log = logging.getLogger(__name__)

_ACTION_EVENT = {
    "open": ev.COUNTER_OPENED,
    "pause": ev.COUNTER_PAUSED,
    "close": ev.COUNTER_CLOSED,
    "call-next": ev.TICKET_CALLED,
    "recall": ev.TICKET_RECALLED,
    "start": ev.TICKET_STARTED,
    "finish": ev.TICKET_FINISHED,
    "no-show": ev.TICKET_NO_SHOW,
    "transfer": ev.TICKET_TRANSFERRED,
}
RETRIES = 5


class ServiceUnavailable(Exception):
    """The service did not answer after every retry (it is down, or the URL is wrong)."""


# (event type, ticket number or None, counter or None) of each thing the service did.
Done = tuple[str, str | None, str | None]


@dataclass(slots=True)
class HttpDriver:
    session: aiohttp.ClientSession
    base_url: str
    site: str
    kiosk_token: str
    counter_token: str  # a pattern with {counter}, e.g. "demo-{counter}"
    sim_start: datetime
    speed: float = 60.0
    done: list[Done] = field(default_factory=list)
    _real_start: float | None = None

    async def wait_until(self, at: datetime) -> None:
        loop = asyncio.get_running_loop()
        if self._real_start is None:
            self._real_start = loop.time()
        target = self._real_start + (at - self.sim_start).total_seconds() / self.speed
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _post(
        self, path: str, token: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Idempotency-Key": f"sim-{uuid.uuid4().hex}"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base_url.rstrip("/") + path
        for attempt in range(RETRIES):
            try:
                async with self.session.post(url, json=body, headers=headers) as response:
                    data = await response.json(content_type=None)
                    if response.status == 429:
                        # Rate limited: wait as told, then retry with the same key.
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    if response.status != 503:
                        return response.status, data
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("POST %s failed (%s); retrying", path, exc)
            await asyncio.sleep(0.2 * 2**attempt)
        raise ServiceUnavailable(f"POST {url}: no answer after {RETRIES} attempts")

    async def issue(self, at: datetime, service: str, priority: str | None) -> Issued | Refused:
        body: dict[str, Any] = {"service": service}
        if priority is not None:
            body["priority"] = priority
        path = f"/api/v1/sites/{self.site}/tickets"
        status, data = await self._post(path, self.kiosk_token, body)
        if status != 201:
            return str(data.get("code", status))
        self.done.append((ev.TICKET_ISSUED, data["number"], None))
        return Issued(data["number"], data.get("id"))

    async def _counter_post(
        self, counter: str, action: str, body: dict[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        token = self.counter_token.format(counter=counter)
        path = f"/api/v1/sites/{self.site}/counters/{counter}/{action}"
        status, data = await self._post(path, token, body or {})
        if status == 200:
            ticket = data.get("ticket") or {}
            number = ticket.get("number") if action in _TICKET_ACTIONS else None
            self.done.append((_ACTION_EVENT[action], number, counter))
        return status, data

    async def call_next(self, at: datetime, counter: str) -> Called | Refused:
        status, data = await self._counter_post(counter, "call-next", None)
        if status != 200:
            return str(data.get("code", status))
        ticket = data["ticket"]
        return Called(ticket["number"], ticket.get("id"), ticket["service"])

    async def counter(
        self, at: datetime, counter: str, action: str, body: dict[str, str] | None = None
    ) -> Refused | None:
        status, data = await self._counter_post(counter, action, body)
        return None if status == 200 else str(data.get("code", status))

    async def cancel(self, at: datetime, number: str, ticket_id: str | None) -> Refused | None:
        if ticket_id is None:
            return "no_ticket_id"
        status, data = await self._post(f"/api/v1/tickets/{ticket_id}/cancel", None, {})
        if status != 200:
            return str(data.get("code", status))
        self.done.append((ev.TICKET_CANCELLED, number, None))
        return None


_TICKET_ACTIONS = frozenset({"call-next", "recall", "start", "finish", "no-show", "transfer"})
