"""What the fault tests share: a hall, steady kiosk and counter traffic that retries with its
idempotency keys, the ledger of what was sent and acknowledged, and the check of that ledger
against what PostgreSQL stored.

Every fault test runs the real service (`python -m queue_service run`, see
tests/test_durability.py) on a PostgreSQL of its own, never on the session's shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from queue_service.domain.vocab import Role
from tests.conftest import ROOT
from tests.halls import Bearer, Hall, counter, service

# ruff: noqa: E501

FULL = os.environ.get("ANTRIAN_FAULTS_FULL", "").strip().lower() not in ("", "0", "false", "no")
SUMMARY = ROOT / "artifacts" / "faults.txt"

COUNTERS = ("c1", "c2", "c3")
ADMIN_TOKEN = Bearer("faults-admin", Role.ADMIN)
KIOSK_TOKEN = Bearer("faults-kiosk", Role.KIOSK, name="Kiosk 1")
ADMIN = ADMIN_TOKEN.headers
KIOSK = KIOSK_TOKEN.headers


def counter_token(counter_id: str) -> Bearer:
    return Bearer(
        f"faults-{counter_id}",
        Role.COUNTER,
        name=f"Loket {counter_id}",
        sites=("hall",),
        counters=(counter_id,),
    )


def counter_headers(counter_id: str) -> dict[str, str]:
    return counter_token(counter_id).headers


FAULT_HALL = Hall(
    name="Fault hall",
    services=(service("Q", name_en="Q"), service("R", name_en="R")),
    counters=(
        counter("c1", "Q", "R", name="Loket 1"),
        counter("c2", "Q", name="Loket 2"),
        counter("c3", "R", name="Loket 3"),
    ),
    tokens=(ADMIN_TOKEN, KIOSK_TOKEN, *map(counter_token, COUNTERS)),
)


def write_hall(directory: Path, dispenser_port: int | None = None) -> Path:
    """The fault hall's configuration file in `directory`, with a dispenser on a device
    server's TCP port when `dispenser_port` is given."""
    devices = (
        ()
        if dispenser_port is None
        else (
            {
                "id": "dispenser-1",
                "kind": "dispenser",
                "url": f"socket://127.0.0.1:{dispenser_port}",
                "buttons": {
                    "1": {"service": "Q", "prefix": "Y"},
                    "2": {"service": "R", "prefix": "X"},
                },
                "silence_timeout": 5,
                "backoff_initial": 0.05,
                "backoff_max": 0.5,
            },
        )
    )
    return dataclasses.replace(FAULT_HALL, devices=devices).write(directory)


DISPENSER_NUMBERING = {1: ("Y", 1), 2: ("X", 1)}


class Dispenser:
    """A standalone dispenser (the simulator of `devices/`) on a device server's TCP port,
    pressed at a steady pace; it re-sends each ticket until the service acknowledges it."""

    def __init__(self, interval: float = 0.3) -> None:
        from devices.sim.hardware import SimDispenser
        from devices.sim.ports import TcpPort

        self.port = TcpPort()
        self.sim = SimDispenser(self.port, DISPENSER_NUMBERING, heartbeat=0.5, resend=0.3)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        await self.sim.start()
        return self.port.port

    async def _press(self) -> None:
        n = 0
        while True:
            self.sim.press(1 + n % 2)
            n += 1
            await asyncio.sleep(self.interval)

    def start_pressing(self) -> None:
        self._task = asyncio.create_task(self._press())

    async def stop_pressing(self, settle: float = 30.0) -> None:
        """Stop pressing, then wait until every printed ticket is acknowledged."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with asyncio.timeout(settle):
            while self.sim.unacked:
                await asyncio.sleep(0.05)

    @property
    def printed(self) -> list[str]:
        return [number for _, number in self.sim.printed]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sim.stop()


def rng_for(name: str) -> random.Random:
    """A seeded generator; ANTRIAN_FAULTS_SEED replays a failing run's random points."""
    seed = int(os.environ.get("ANTRIAN_FAULTS_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"[{name}] seed {seed} (ANTRIAN_FAULTS_SEED={seed} repeats it)")
    return random.Random(seed)


@dataclass
class Request:
    """One command with its idempotency key, retried until it has a final answer."""

    kind: str  # issue | open | call-next | finish
    key: str
    attempts: int = 0
    status: int | None = None  # the final answer's status
    body: dict[str, Any] = field(default_factory=dict)
    answered_at: float = 0.0  # time.monotonic() of the final answer


@dataclass
class Ledger:
    requests: list[Request] = field(default_factory=list)
    retries_503: int = 0
    connection_errors: int = 0

    @property
    def acknowledged(self) -> list[Request]:
        return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def first_ack_after(self, moment: float) -> float | None:
        times = [r.answered_at for r in self.acknowledged if r.answered_at >= moment]
        return min(times) if times else None

    @property
    def unanswered(self) -> list[Request]:
        return [r for r in self.requests if r.status is None]


@dataclass
class Traffic:
    """Steady kiosk and counter traffic against one service URL.

    Every command carries an Idempotency-Key; on a 503, a refused connection or a reset
    the client sends the same request with the same key again (as the kiosk page does)
    until it has a final answer. `stop()` ends the loops after their current command, so
    at the end every request sent has its final answer.
    """

    session: aiohttp.ClientSession
    url: str
    _: KW_ONLY
    kiosks: int = 2
    kiosk_interval: float = 0.05
    counters: tuple[str, ...] = COUNTERS
    retry_cap: float = 0.5
    give_up_after: float = 120.0
    ledger: Ledger = field(default_factory=Ledger, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False, repr=False)

    async def _send(
        self, req: Request, path: str, headers: dict[str, str], body: dict[str, Any] | None
    ) -> None:
        self.ledger.requests.append(req)
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            req.attempts += 1
            try:
                async with self.session.post(
                    f"{self.url}{path}",
                    json=body,
                    headers={**headers, "Idempotency-Key": req.key},
                    timeout=aiohttp.ClientTimeout(total=15),
                ) as resp:
                    if resp.status == 503:
                        self.ledger.retries_503 += 1
                        wait = float(resp.headers.get("Retry-After", "1"))
                        await asyncio.sleep(min(wait, self.retry_cap))
                        continue
                    req.status = resp.status
                    req.body = await resp.json()
                    req.answered_at = time.monotonic()
                    return
            except (aiohttp.ClientError, TimeoutError):
                self.ledger.connection_errors += 1
                await asyncio.sleep(0.1)
        raise AssertionError(f"{req.kind} {req.key} had no answer in {self.give_up_after} s")

    async def _kiosk(self, n: int) -> None:
        services = ("Q", "R")
        i = 0
        while not self._stopping.is_set():
            req = Request("issue", f"k{n}-{uuid.uuid4().hex}")
            await self._send(
                req, "/api/v1/sites/hall/tickets", KIOSK, {"service": services[(i + n) % 2]}
            )
            assert req.status == 201, (req.status, req.body)
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.kiosk_interval)

    async def _counter(self, counter: str) -> None:
        base = f"/api/v1/sites/hall/counters/{counter}"
        headers = counter_headers(counter)
        opened = Request("open", f"{counter}-open-{uuid.uuid4().hex}")
        await self._send(opened, f"{base}/open", headers, None)
        assert opened.status == 200, (opened.status, opened.body)
        while not self._stopping.is_set():
            call = Request("call-next", f"{counter}-call-{uuid.uuid4().hex}")
            await self._send(call, f"{base}/call-next", headers, None)
            if call.status == 409:
                assert call.body["code"] == "queue_empty", call.body
                await asyncio.sleep(0.05)
                continue
            assert call.status == 200, (call.status, call.body)
            finish = Request("finish", f"{counter}-finish-{uuid.uuid4().hex}")
            await self._send(finish, f"{base}/finish", headers, None)
            assert finish.status == 200, (finish.status, finish.body)
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._kiosk(n)) for n in range(self.kiosks)]
        self._tasks += [asyncio.create_task(self._counter(c)) for c in self.counters]

    async def __aenter__(self) -> Traffic:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # A failed test leaves loops running: cancel them before the session closes.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> Ledger:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        assert not self.ledger.unanswered
        return self.ledger


@dataclass
class Checked:
    sent: int
    acknowledged: int
    refused: int  # final answers that record nothing (409 queue_empty on call-next)
    stored_events: int
    stored_answers: int
    duplicated: int
    lost: int
    tickets: int

    def assert_kept(self, live: dict[str, Any] | None = None) -> None:
        """Every command sent has its final answer, none was stored twice, none is lost;
        and the `live` snapshot (when given) counts every ticket stored."""
        assert self.acknowledged + self.refused == self.sent
        assert self.duplicated == 0
        assert self.lost == 0
        if live is not None:
            assert sum(s["issued_today"] for s in live["services"]) == self.tickets

    def line(self) -> str:
        return (
            f"commands sent {self.sent}, acknowledged {self.acknowledged}, refused "
            f"{self.refused} (queue empty), stored "
            f"{self.stored_events} events / {self.stored_answers} answers / {self.tickets} tickets, "
            f"duplicated {self.duplicated}, lost {self.lost}"
        )


async def check_store(dsn: str, ledger: Ledger, printed: Sequence[str] = ()) -> Checked:
    """Compare the ledger (and the numbers a dispenser printed) with what the database
    holds; count duplicates and losses."""
    conn = await asyncpg.connect(dsn)
    try:
        events = await conn.fetch(
            "SELECT seq, type, ticket_id, counter_id, data->>'number' AS number, service_day,"
            " data->>'source' AS source FROM ticket_events ORDER BY seq"
        )
        answers = {
            r["key"]: r for r in await conn.fetch("SELECT key, last_seq FROM idempotency_keys")
        }
    finally:
        await conn.close()
    seqs = {r["seq"] for r in events}
    issued = [r for r in events if r["type"] == "ticket_issued"]
    calls = [r for r in events if r["type"] == "ticket_called"]
    finishes = [r for r in events if r["type"] == "ticket_finished"]

    acked = ledger.acknowledged
    lost = 0
    for req in acked:
        answer = answers.get(req.key)
        # Acknowledged means: its events and its answer are both committed.
        if (
            req.body.get("seq") not in seqs
            or answer is None
            or answer["last_seq"] != req.body["seq"]
        ):
            lost += 1
    acked_tickets = {r.body["id"] for r in acked if r.kind == "issue"}
    lost += len(acked_tickets - {r["ticket_id"] for r in issued})

    duplicated = 0
    # Tickets a dispenser printed: each stored once (the number is the device's own).
    from_device = [r for r in issued if r["source"] == "dispenser"]
    lost += len(set(printed) - {r["number"] for r in from_device})
    duplicated += sum(1 for r in from_device if r["number"] not in set(printed))
    device_numbers = Counter(r["number"] for r in from_device)
    duplicated += sum(n - 1 for n in device_numbers.values() if n > 1)
    issued = [r for r in issued if r["source"] != "dispenser"]
    # A ticket for a key whose final answer is another ticket, or a number given twice.
    duplicated += sum(1 for r in issued if r["ticket_id"] not in acked_tickets)
    numbers = Counter((r["service_day"], r["number"]) for r in issued)
    duplicated += sum(n - 1 for n in numbers.values() if n > 1)
    ticket_ids = Counter(r["ticket_id"] for r in issued)
    duplicated += sum(n - 1 for n in ticket_ids.values() if n > 1)
    # Each acknowledged call-next / finish is exactly one stored call / finish.
    acked_calls = sum(1 for r in acked if r.kind == "call-next")
    acked_finishes = sum(1 for r in acked if r.kind == "finish")
    duplicated += max(0, len(calls) - acked_calls) + max(0, len(finishes) - acked_finishes)
    lost += max(0, acked_calls - len(calls)) + max(0, acked_finishes - len(finishes))
    called = Counter(r["ticket_id"] for r in calls)
    duplicated += sum(n - 1 for n in called.values() if n > 1)  # no recalls in this traffic
    return Checked(
        sent=len(ledger.requests) + len(printed),
        acknowledged=len(acked) + len(printed),
        refused=sum(1 for r in ledger.requests if r.status == 409),
        stored_events=len(events),
        stored_answers=len(answers),
        duplicated=duplicated,
        lost=lost,
        tickets=len(issued) + len(from_device),
    )


def record(test: str, injected: str, checked: Checked, extra: str = "") -> None:
    """Print what was injected and checked, and add the one-line summary to faults.txt."""
    line = f"{test}: injected {injected}; {checked.line()}" + (f"; {extra}" if extra else "")
    print(f"\n[{test}] {line}")
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    with SUMMARY.open("a") as out:
        out.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line + "\n")


async def snapshot(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/v1/sites/hall/snapshot", headers=ADMIN) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def replayable(snap: dict[str, Any]) -> dict[str, Any]:
    """The part of a snapshot that replay rebuilds: without wall-clock fields, and without
    device health (link state and frame counts belong to the process, not to the log)."""
    from tests.service_process import stable

    state: dict[str, Any] = stable({k: v for k, v in snap.items() if k != "devices"})
    return state
