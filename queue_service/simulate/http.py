"""Mode (a): a simulated day against a running service, through its public HTTP API.

The kiosk issues with the kiosk token, each counter acts with its own counter token, and
every POST carries an `Idempotency-Key` (a retry after a lost answer or a 503 reuses it,
so nothing is done twice). The service stamps events with its own clock: the day's
schedule (07:50 counters open, 12:00 break, ...) is replayed from the moment the run
starts, `speed` times faster than real time, so `speed=60` plays an hour a minute.

When the service does not answer (a connection refused or reset, a timeout, 502/503/504)
the request is retried with the same key, with exponential backoff (0.5 s, 1 s, 2 s, ...
at most 10 s apart) and one line per retry, for `retry_for` seconds (120 by default)
before giving up: a restart of the service is ridden out. A 429 (rate limited) is waited
out as its `Retry-After` says, without giving up. The simulated clock stands still while
the simulator waits, so the day resumes where it paused instead of rushing to catch up.

Antrian online goes through the public API as a phone would (book, cancel, join: no
token) and through the kiosk (check-in and confirmation, with the kiosk token). The service
marks missed bookings on its own clock. Its slots are times of its own day: they meet the
simulated day's only when the service's clock runs with it (`speed` 1 from the day's
start, or a test's clock), else bookings are refused or checked in out of their window,
and the simulator counts what the service answered.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import aiohttp

from queue_service.domain.actions import ACTIONS, CounterAction
from queue_service.domain.vocab import EventType, Priority
from queue_service.errors import AntrianError
from queue_service.simulate.day import Booked, Called, Issued, Refused

# The event each counter action the simulator takes is recorded as.
_ACTION_EVENT = {
    CounterAction.OPEN: EventType.COUNTER_OPENED,
    CounterAction.PAUSE: EventType.COUNTER_PAUSED,
    CounterAction.CLOSE: EventType.COUNTER_CLOSED,
    CounterAction.CALL_NEXT: EventType.TICKET_CALLED,
    CounterAction.RECALL: EventType.TICKET_RECALLED,
    CounterAction.START: EventType.TICKET_STARTED,
    CounterAction.FINISH: EventType.TICKET_FINISHED,
    CounterAction.NO_SHOW: EventType.TICKET_NO_SHOW,
    CounterAction.TRANSFER: EventType.TICKET_TRANSFERRED,
}
BACKOFF_FIRST = 0.5  # seconds before the first retry; doubled each time
BACKOFF_CAP = 10.0  # ... up to this
RETRY_FOR = 120.0  # seconds without an answer before giving up
RATE_NOTE_EVERY = 60.0  # seconds between the "still rate limited" lines
UNAVAILABLE = frozenset({502, 503, 504})


class ServiceUnavailable(AntrianError, code="service_unreachable"):
    """The service did not answer for `retry_for` seconds (it is down, or the URL is
    wrong)."""


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _retry_after(response: aiohttp.ClientResponse, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def _problem(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    return str(exc) or type(exc).__name__


# (event type, ticket number or None, counter or None) of each thing the service did.
Done = tuple[EventType, str | None, str | None]


@dataclass(slots=True)
class HttpDriver:
    session: aiohttp.ClientSession
    base_url: str
    site: str
    kiosk_token: str
    counter_token: str  # a pattern with {counter}, e.g. "demo-{counter}"
    sim_start: datetime
    speed: float = 60.0
    retry_for: float = RETRY_FOR
    notice: Callable[[str], None] = _stderr  # one line for the person watching
    done: list[Done] = field(default_factory=list)
    retries: int = 0  # retries after no answer
    rate_limited: int = 0  # 429 answers waited out
    rate_limited_seconds: float = 0.0
    _real_start: float | None = None
    _rate_noted_at: float | None = None
    _closed_noted: bool = False

    async def wait_until(self, at: datetime) -> None:
        loop = asyncio.get_running_loop()
        if self._real_start is None:
            self._real_start = loop.time()
        target = self._real_start + (at - self.sim_start).total_seconds() / self.speed
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _pause(self, seconds: float) -> None:
        """The simulated clock stands still for `seconds` of real time."""
        if self._real_start is not None:
            self._real_start += seconds

    def _note_rate_limited(self, wait: float, data: dict[str, Any]) -> None:
        self.rate_limited += 1
        self.rate_limited_seconds += wait
        now = asyncio.get_running_loop().time()
        if self._rate_noted_at is None:
            scope = (data.get("details") or {}).get("scope", "?")
            self.notice(
                f"simulate: rate limited by the service (429, {scope}): waiting as its "
                f"Retry-After says ({wait:g} s); the day runs slower than --speed while the "
                "service allows fewer tickets (ANTRIAN_RATE_LIMITS=off on the service lets "
                "it keep pace)"
            )
            self._rate_noted_at = now
        elif now - self._rate_noted_at >= RATE_NOTE_EVERY:
            self.notice(
                f"simulate: still rate limited: {self.rate_limited} waits, "
                f"{self.rate_limited_seconds:.0f} s so far"
            )
            self._rate_noted_at = now

    async def request(
        self, method: str, path: str, token: str | None, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The service's status and JSON answer, once it answers (see the module's doc)."""
        headers = {}
        if method == "POST":
            # One key for every retry: a request the service did before its answer was
            # lost is answered from the stored answer, never done twice.
            headers["Idempotency-Key"] = f"sim-{uuid.uuid4().hex}"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base_url.rstrip("/") + path
        loop = asyncio.get_running_loop()
        down_since: float | None = None
        attempt = 0
        while True:
            tried_at = loop.time()
            floor = 0.0
            try:
                async with self.session.request(
                    method, url, json=body if method == "POST" else None, headers=headers
                ) as response:
                    try:
                        data = await response.json(content_type=None)
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        data = {"code": str(response.status)}
                    if response.status == 429:
                        wait = _retry_after(response, 1.0)
                        self._note_rate_limited(wait, data)
                        await asyncio.sleep(wait)
                        self._pause(wait)
                        continue
                    if response.status not in UNAVAILABLE:
                        if down_since is not None:
                            down = loop.time() - down_since
                            self.notice(f"simulate: the service answers again after {down:.0f} s")
                            self._pause(down)
                        return response.status, data
                    problem = f"{response.status} {data.get('code', '')}".strip()
                    floor = _retry_after(response, 0.0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = _problem(exc)
            if down_since is None:
                down_since = tried_at
            down = loop.time() - down_since
            if down >= self.retry_for:
                raise ServiceUnavailable(
                    f"{method} {url}: no answer for {down:.0f} s ({problem}); giving up"
                )
            attempt += 1
            self.retries += 1
            delay = max(floor, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1)))
            self.notice(
                f"simulate: {method} {path}: {problem}; retry {attempt} in {delay:.1f} s "
                f"(no answer for {down:.0f} s; giving up after {self.retry_for:.0f} s)"
            )
            await asyncio.sleep(delay)

    async def _post(
        self, path: str, token: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return await self.request("POST", path, token, body)

    async def issue(
        self, at: datetime, service: str, priority: Priority | None
    ) -> Issued | Refused:
        body: dict[str, Any] = {"service": service}
        if priority is not None:
            body["priority"] = priority
        path = f"/api/v1/sites/{self.site}/tickets"
        status, data = await self._post(path, self.kiosk_token, body)
        if status != 201:
            code = str(data.get("code", status))
            if code == "site_closed" and not self._closed_noted:
                self._closed_noted = True
                self.notice(
                    "simulate: the hall is closed now (site_closed): the service refuses "
                    "tickets until it opens again; the counters go on with their queues"
                )
            return code
        self.done.append((EventType.TICKET_ISSUED, data["number"], None))
        return Issued(data["number"], data.get("id"))

    async def _counter_post(
        self, counter: str, action: CounterAction, body: dict[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        token = self.counter_token.format(counter=counter)
        path = f"/api/v1/sites/{self.site}/counters/{counter}/{action}"
        status, data = await self._post(path, token, body or {})
        if status == 200:
            ticket = data.get("ticket") or {}
            number = ticket.get("number") if ACTIONS[action].holds_ticket else None
            self.done.append((_ACTION_EVENT[action], number, counter))
        return status, data

    async def call_next(self, at: datetime, counter: str) -> Called | Refused:
        status, data = await self._counter_post(counter, CounterAction.CALL_NEXT, None)
        if status != 200:
            return str(data.get("code", status))
        ticket = data["ticket"]
        return Called(ticket["number"], ticket.get("id"), ticket["service"])

    async def counter(
        self, at: datetime, counter: str, action: CounterAction, body: dict[str, str] | None = None
    ) -> Refused | None:
        status, data = await self._counter_post(counter, action, body)
        return None if status == 200 else str(data.get("code", status))

    async def cancel(self, at: datetime, number: str, ticket_id: str | None) -> Refused | None:
        if ticket_id is None:
            return "no_ticket_id"
        status, data = await self._post(f"/api/v1/tickets/{ticket_id}/cancel", None, {})
        if status != 200:
            return str(data.get("code", status))
        self.done.append((EventType.TICKET_CANCELLED, number, None))
        return None

    # -- antrian online --------------------------------------------------------------------

    async def book(self, at: datetime, service: str, day: date, slot: str) -> Booked | Refused:
        body = {"service": service, "day": day.isoformat(), "slot": slot}
        status, data = await self._post(f"/api/v1/sites/{self.site}/bookings", None, body)
        if status != 201:
            return str(data.get("code", status))
        self.done.append((EventType.BOOKING_MADE, None, None))
        return Booked(data["id"], data["code"])

    async def cancel_booking(self, at: datetime, booking_id: str) -> Refused | None:
        status, data = await self._post(f"/api/v1/bookings/{booking_id}/cancel", None, {})
        if status != 200:
            return str(data.get("code", status))
        self.done.append((EventType.BOOKING_CANCELLED, None, None))
        return None

    async def _check_in(self, code: str) -> tuple[int, dict[str, Any]]:
        path = f"/api/v1/sites/{self.site}/check-in"
        return await self._post(path, self.kiosk_token, {"code": code})

    async def check_in(self, at: datetime, code: str) -> Issued | Refused:
        status, data = await self._check_in(code)
        if status != 201:
            return str(data.get("code", status))
        ticket = data["ticket"]
        self.done.append((EventType.BOOKING_CHECKED_IN, None, None))
        self.done.append((EventType.TICKET_ISSUED, ticket["number"], None))
        due = ticket.get("due_at")
        return Issued(
            ticket["number"],
            ticket.get("id"),
            due_at=None if due is None else datetime.fromisoformat(due),
        )

    async def join(self, at: datetime, service: str) -> Issued | Refused:
        path = f"/api/v1/sites/{self.site}/join"
        status, data = await self._post(path, None, {"service": service})
        if status != 201:
            return str(data.get("code", status))
        self.done.append((EventType.TICKET_ISSUED, data["number"], None))
        return Issued(
            data["number"],
            data.get("id"),
            code=data.get("code"),
            estimate=data.get("estimated_wait_seconds"),
        )

    async def estimate(self, at: datetime, service: str) -> float | None:
        status, data = await self.request("GET", f"/api/v1/sites/{self.site}", None)
        if status != 200:
            return None
        for s in data.get("services", []):
            if s.get("code") == service:
                value = s.get("estimated_wait_seconds")
                return None if value is None else float(value)
        return None

    async def confirm(self, at: datetime, code: str) -> Refused | None:
        status, data = await self._check_in(code)
        if status != 200:
            return str(data.get("code", status))
        self.done.append((EventType.TICKET_CONFIRMED, data["ticket"]["number"], None))
        return None

    async def miss_bookings(self, at: datetime) -> None:
        return None  # the service's day closer does it on its clock
