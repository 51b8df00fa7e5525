"""The 07:00 rush on antrian online: thousands of phones book one day's places at once,
beside the ticket-issue path measured in the same run against the same server.

    python -m bench booking [--reps 5] [--clients 2000] [--slots 10] [--capacity 30]
                            [--profile]

Each repetition starts one server process (`python -m bench.booking`: the real app,
`create_app`, on a fresh database, access log off, like `bench.server service`) with a
hall whose service B has `slots` x `capacity` bookable places tomorrow (30-minute slots,
its counters' time half kept for walk-ins, a daily quota capping the day at exactly those
places). A warm-up of 40 requests of each kind (bookings of the day after) comes first;
then, in an order that alternates between repetitions:

* booking -- `clients` phones, each with a connection of its own, all released at the same
  instant (an asyncio.Event), each POST one booking of one of the slots (spread evenly, each
  with an Idempotency-Key): exactly `slots` x `capacity` are booked (201), every other one
  is refused 409 `slot_full`;
* issue -- the same number of kiosk requests released the same way, each POST one walk-in
  ticket (`POST /tickets`, the path `bench issue` measures), spread over B and four
  walk-in services so that none nears 999 tickets.

Throughput is answers per second from the release to the last answer; latency is each
request's, from the release to its answer (what a citizen pressing "book" at 07:00 waits,
connecting included). The server process's CPU time per answer is printed too: on a shared
2-core machine it is steadier than throughput. The ratio booking/issue says what the
booking path costs against the ticket path on the same server, database and machine. After
each repetition the places are counted again from the committed events: no slot may hold
more than its capacity, and every 201 must be committed. With --profile, one more server
runs a booking burst alone under cProfile and its hot spots are printed.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import psutil

from bench.common import (
    KIOSK_TOKEN,
    PYTHON,
    ROOT,
    banner,
    create_database,
    drop_database,
    median,
    percentile,
    run_on_server,
    server_settings,
    spread,
)
from queue_service.config import AppConfig, hash_token, parse_config
from queue_service.domain.site import WEEKDAYS
from queue_service.domain.vocab import Role

SITE = "hall"
BOOKED = "B"  # the bookable service
WALK_IN = ("W1", "W2", "W3", "W4")  # walk-in services beside it, for the issue burst
SLOT_MINUTES = 30
FIRST_SLOT = "08:00"  # tomorrow's first slot the phones book


# -- a burst of requests -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's answer: its HTTP status (None: no answer, see `error`), its JSON body,
    and the seconds from the burst's release to the answer."""

    status: int | None
    body: dict[str, Any]
    seconds: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class Burst:
    """Every answer of a burst, and the seconds from the release to the last answer."""

    answers: list[Answer]
    seconds: float

    @property
    def per_second(self) -> float:
        return len(self.answers) / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile([a.seconds for a in self.answers], q) * 1000

    def statuses(self) -> Counter[str]:
        """How many answers of each status (or error, for requests that got none)."""
        return Counter(str(a.status) if a.status is not None else a.error for a in self.answers)


@dataclass(frozen=True, slots=True)
class Request:
    """One POST of a burst: where, its JSON body, its headers."""

    url: str
    body: bytes
    headers: dict[str, str]


def connector(clients: int) -> aiohttp.TCPConnector:
    """A connector with a connection for every client: none waits for another's."""
    return aiohttp.TCPConnector(limit=clients, limit_per_host=clients)


async def burst(session: aiohttp.ClientSession, requests: Sequence[Request]) -> Burst:
    """POST every request at the same instant: each client task is started and waits on
    one asyncio.Event, set once all of them wait; then every answer, timed from it."""
    assert requests, "a burst of no requests"
    all_waiting, release = asyncio.Event(), asyncio.Event()
    waiting = 0
    began = 0.0

    async def one(request: Request) -> Answer:
        nonlocal waiting
        waiting += 1
        if waiting == len(requests):
            all_waiting.set()
        await release.wait()
        try:
            async with session.post(request.url, data=request.body, headers=request.headers) as r:
                raw = await r.read()
                status = r.status
                kind = r.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(None, {}, time.perf_counter() - began, type(exc).__name__)
        seconds = time.perf_counter() - began
        body = json.loads(raw) if kind == "application/json" else {"text": raw.decode()}
        return Answer(status, body, seconds)

    tasks = [asyncio.create_task(one(r)) for r in requests]
    await all_waiting.wait()
    began = time.perf_counter()
    release.set()
    answers = await asyncio.gather(*tasks)
    return Burst(answers, time.perf_counter() - began)


def booking_requests(
    url: str, site: str, service: str, day: date, slots: Sequence[str], clients: int
) -> list[Request]:
    """`clients` phones booking `service` on `day`, the n-th one slot n mod len(slots)."""
    target = f"{url}/api/v1/sites/{site}/bookings"
    return [
        Request(
            target,
            json.dumps(
                {"service": service, "day": day.isoformat(), "slot": slots[n % len(slots)]}
            ).encode(),
            {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        )
        for n in range(clients)
    ]


def ticket_requests(
    url: str, site: str, services: Sequence[str], token: str, clients: int
) -> list[Request]:
    """`clients` kiosk requests for a walk-in ticket, the n-th one of service n mod len."""
    target = f"{url}/api/v1/sites/{site}/tickets"
    return [
        Request(
            target,
            json.dumps({"service": services[n % len(services)]}).encode(),
            {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
        for n in range(clients)
    ]


def slot_labels(first: str, count: int, minutes: int = SLOT_MINUTES) -> list[str]:
    """`count` consecutive slot starts "HH:MM" from `first`, `minutes` apart."""
    start = datetime.strptime(first, "%H:%M")
    return [f"{start + timedelta(minutes=minutes * i):%H:%M}" for i in range(count)]


# -- the benchmark's hall and server -------------------------------------------------------


def rush_config(timezone: str, slots: int, capacity: int) -> AppConfig:
    """Site "hall", open 00:00-24:00: service B bookable in 30-minute slots of `capacity`,
    with exactly enough counters (5 minutes a citizen) for half their time to go to
    bookings, and a daily quota that caps a day's bookings at `slots` x `capacity`; four
    walk-in services of one counter each; the kiosk token."""
    per_counter = SLOT_MINUTES // 5  # citizens a counter serves in a slot
    counters = -(-2 * capacity // per_counter)  # half of their time is booked
    booked = {
        "code": BOOKED,
        "agency": "a",
        "name_id": "Layanan dengan booking",
        "name_en": "Booked service",
        "prefix": "B",
        "target_wait_minutes": 20,
        "default_service_minutes": 5,
        "daily_quota": 2 * slots * capacity,
        "booking": {
            "slot_minutes": SLOT_MINUTES,
            "capacity": capacity,
            "walk_in_share": 0.5,
        },
    }
    walk_ins = [
        {
            "code": code,
            "agency": "a",
            "name_id": f"Layanan {code}",
            "name_en": f"Service {code}",
            "prefix": prefix,
            "target_wait_minutes": 20,
        }
        for code, prefix in zip(WALK_IN, "CDEF", strict=True)
    ]
    return parse_config(
        {
            "sites": [
                {
                    "id": SITE,
                    "name": "Mal Pelayanan Publik (bench)",
                    "timezone": timezone,
                    "hours": {d: ["00:00", "24:00"] for d in WEEKDAYS},
                    "agencies": [{"id": "a", "name": "Instansi"}],
                    "services": [booked, *walk_ins],
                    "counters": [
                        {"id": f"b{i:02d}", "name": f"Loket B{i}", "services": [BOOKED]}
                        for i in range(counters)
                    ]
                    + [
                        {"id": code.lower(), "name": f"Loket {code}", "services": [code]}
                        for code in WALK_IN
                    ],
                    # Every phone of the bench comes from 127.0.0.1.
                    "online": {"max_per_address_per_day": 1000},
                }
            ],
            "tokens": [{"name": "kiosk", "role": Role.KIOSK, "sha256": hash_token(KIOSK_TOKEN)}],
        },
        "<bench booking>",
    )


def pick_timezone() -> str:
    """A WITA/WIB/WIT zone where today is not about to end mid-run."""
    now = datetime.now(UTC)
    for tz in ("Asia/Makassar", "Asia/Jakarta", "Asia/Jayapura"):
        if now.astimezone(ZoneInfo(tz)).hour < 23:
            return tz
    return "Asia/Makassar"


def serve_main(argv: list[str] | None = None) -> int:
    """`python -m bench.booking --dsn DSN --timezone TZ ...`: the server process."""
    import logging
    from pathlib import Path

    from bench.server import serve
    from queue_service.settings import Settings
    from queue_service.web.app import create_app

    parser = argparse.ArgumentParser(prog="python -m bench.booking")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--timezone", required=True)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--profile", help="write a cProfile of the serving to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="server %(levelname)s %(name)s: %(message)s",
    )
    config = rush_config(args.timezone, args.slots, args.capacity)
    settings = Settings(
        config_path=Path("<bench booking>"), database_url=args.dsn, host="127.0.0.1", port=0
    )
    asyncio.run(serve(create_app(settings, config), args.profile))
    return 0


async def start_server(
    dsn: str, timezone: str, slots: int, capacity: int, profile: str | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    argv = ["--dsn", dsn, "--timezone", timezone, "--slots", str(slots)]
    argv += ["--capacity", str(capacity)] + (["--profile", profile] if profile else [])
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.booking",
        *argv,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if not line.startswith(b"READY "):
        await proc.wait()
        raise RuntimeError(f"booking server did not start (exit {proc.returncode})")
    return proc, int(line.split()[1])


async def stop_server(proc: asyncio.subprocess.Process) -> dict[str, float]:
    """Stop the server; the engine's commit totals it prints (`bench.server.serve`)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    try:
        out = await asyncio.wait_for(proc.stdout.read(), timeout=30)
        await asyncio.wait_for(proc.wait(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {}
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("COMMITS "):
            totals: dict[str, float] = json.loads(line.removeprefix("COMMITS "))
            return totals
    return {}


# -- the benchmark -------------------------------------------------------------------------


@dataclass
class Repetition:
    booking: Burst
    issue: Burst | None  # None: a profiled run, bookings alone
    warm_tickets: int = 0  # tickets issued in the warm-up (201s)
    booked_per_slot: Counter[str] = field(default_factory=Counter)  # committed, the rush's day
    issued: int = 0  # committed ticket_issued events, warm-up included
    cpu: dict[str, float] = field(default_factory=dict)  # server CPU seconds, per burst
    commits: dict[str, float] = field(default_factory=dict)  # the engine's, whole run

    @property
    def ratio(self) -> float:
        assert self.issue is not None
        return self.booking.per_second / self.issue.per_second


async def committed(dsn: str, day: date) -> tuple[Counter[str], int]:
    """The bookings of `day` per slot, and the tickets, that the database holds."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT data ->> 'slot' AS slot, count(*) AS n FROM ticket_events"
            " WHERE type = 'booking_made' AND data ->> 'day' = $1 GROUP BY 1",
            day.isoformat(),
        )
        issued = await conn.fetchval(
            "SELECT count(*) FROM ticket_events WHERE type = 'ticket_issued'"
        )
    finally:
        await conn.close()
    return Counter({r["slot"]: r["n"] for r in rows}), int(issued)


WARM_UP = 40  # requests of each kind before the bursts, on another day for bookings


async def one_repetition(
    server_url: str,
    timezone: str,
    *,
    clients: int,
    slots: int,
    capacity: int,
    kinds: Sequence[str] = ("booking", "issue"),
    profile: str | None = None,
) -> Repetition:
    """One server on a fresh database: a warm-up of both paths (bookings of the day after
    tomorrow, walk-in tickets), then a burst of each of `kinds` in that order."""
    dsn = await create_database(server_url, "bench_booking")
    try:
        proc, port = await start_server(dsn, timezone, slots, capacity, profile)
        url = f"http://127.0.0.1:{port}"
        tomorrow = datetime.now(ZoneInfo(timezone)).date() + timedelta(days=1)
        labels = slot_labels(FIRST_SLOT, slots)

        def requests(kind: str, n: int, day: date) -> list[Request]:
            if kind == "booking":
                return booking_requests(url, SITE, BOOKED, day, labels, n)
            return ticket_requests(url, SITE, (BOOKED, *WALK_IN), KIOSK_TOKEN, n)

        try:
            bursts: dict[str, Burst] = {}
            warm: dict[str, Burst] = {}
            cpu: dict[str, float] = {}
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(
                connector=connector(WARM_UP), timeout=timeout
            ) as session:
                for kind in ("booking", "issue"):
                    warm[kind] = await burst(
                        session, requests(kind, WARM_UP, tomorrow + timedelta(days=1))
                    )
            server = psutil.Process(proc.pid)
            for kind in kinds:
                # A session (and so connections) of its own: every phone connects at 07:00.
                async with aiohttp.ClientSession(
                    connector=connector(clients), timeout=timeout
                ) as session:
                    before = server.cpu_times()
                    bursts[kind] = await burst(session, requests(kind, clients, tomorrow))
                    after = server.cpu_times()
                cpu[kind] = after.user + after.system - before.user - before.system
        finally:
            commits = await stop_server(proc)
        rep = Repetition(bursts["booking"], bursts.get("issue"), warm["issue"].statuses()["201"])
        rep.cpu = cpu
        rep.commits = commits
        rep.booked_per_slot, rep.issued = await committed(dsn, tomorrow)
        return rep
    finally:
        await drop_database(server_url, dsn)


def _describe(name: str, b: Burst, cpu: float) -> str:
    return (
        f"  {name:8s} {len(b.answers)} answers in {b.seconds:5.2f} s = {b.per_second:6.0f}/s,"
        f" p50 {b.latency_ms(50):6.0f} ms, p99 {b.latency_ms(99):6.0f} ms;"
        f" server {cpu / len(b.answers) * 1e6:4.0f} us CPU/answer;"
        f" {dict(sorted(b.statuses().items()))}"
    )


async def run(args: argparse.Namespace, server_url: str) -> dict[str, Any]:
    """`args.reps` servers, each measuring both bursts (booking first in odd repetitions,
    issue first in even ones), then the summary; with --profile, one more server under
    cProfile for a booking burst alone."""
    clients, slots, capacity, reps = args.clients, args.slots, args.capacity, args.reps
    places = slots * capacity
    banner("booking: the 07:00 rush, POST /api/v1/sites/{site}/bookings, durable commits")
    settings = await server_settings(server_url)
    print("postgres: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    timezone = pick_timezone()
    print(
        f"config: service {BOOKED} with {slots} slots x {capacity} places tomorrow ({places}),"
        f" {clients} clients released at once per burst (a connection each), {reps}"
        f" repetitions; issue burst: {clients} walk-in tickets over {1 + len(WALK_IN)}"
        f" services, same server; warm-up {WARM_UP} of each first; {timezone},"
        f" cpus {os.cpu_count()}",
        flush=True,
    )
    done: list[Repetition] = []
    for i in range(reps):
        kinds = ("booking", "issue") if i % 2 == 0 else ("issue", "booking")
        rep = await one_repetition(
            server_url, timezone, clients=clients, slots=slots, capacity=capacity, kinds=kinds
        )
        assert rep.issue is not None
        done.append(rep)
        over = [s for s, n in rep.booked_per_slot.items() if n > capacity]
        print(f" repetition {i + 1}/{reps} ({kinds[0]} first)")
        print(_describe("booking", rep.booking, rep.cpu["booking"]))
        print(_describe("issue", rep.issue, rep.cpu["issue"]))
        print(
            f"  committed: {sum(rep.booked_per_slot.values())} bookings"
            f" (201s {rep.booking.statuses()['201']}), most in a slot"
            f" {max(rep.booked_per_slot.values(), default=0)} of {capacity}"
            f"{' OVER CAPACITY ' + str(over) if over else ''}; {rep.issued} tickets (201s"
            f" {rep.issue.statuses()['201']} + {rep.warm_tickets} warm-up);"
            f" booking/issue {rep.ratio:.0%}",
            flush=True,
        )
        if rep.commits.get("batches"):
            c = rep.commits
            print(
                f"  engine: {c['batches']:.0f} commits of {c['events']:.0f} events in the run"
                f" (warm-up included), {c['seconds'] / c['batches'] * 1000:.0f} ms mean,"
                f" {c['max_seconds'] * 1000:.0f} ms max",
                flush=True,
            )

    issues = [r.issue for r in done if r.issue is not None]
    book_rate = [r.booking.per_second for r in done]
    issue_rate = [b.per_second for b in issues]
    ratios = [r.ratio for r in done]
    book_us = [r.cpu["booking"] / clients * 1e6 for r in done]
    issue_us = [r.cpu["issue"] / clients * 1e6 for r in done]
    print("\n summary (median (min..max) over repetitions)")
    print(
        f"  booking: {spread(book_rate)} answers/s, p50"
        f" {spread([r.booking.latency_ms(50) for r in done])} ms, p99"
        f" {spread([r.booking.latency_ms(99) for r in done])} ms,"
        f" server {spread(book_us)} us CPU/answer"
    )
    print(
        f"  issue:   {spread(issue_rate)} answers/s, p50"
        f" {spread([b.latency_ms(50) for b in issues])} ms, p99"
        f" {spread([b.latency_ms(99) for b in issues])} ms,"
        f" server {spread(issue_us)} us CPU/answer"
    )
    print(
        f"  booking / issue: {median(ratios):.0%} of the answers/s (per repetition"
        f" {', '.join(f'{x:.0%}' for x in ratios)}); server CPU per answer"
        f" {median(book_us) / median(issue_us):.2f}x"
    )
    exact = all(
        r.booking.statuses() == Counter({"201": places, "409": clients - places})
        and sum(r.booked_per_slot.values()) == places
        and max(r.booked_per_slot.values()) <= capacity
        and r.issued == clients + r.warm_tickets
        for r in done
    )
    print(
        f"  places: {'exactly' if exact else 'NOT exactly'} {places} booked and"
        f" {clients - places} refused in every repetition, no slot over {capacity}, every"
        " 201 committed",
        flush=True,
    )
    if args.profile:
        await profile_run(server_url, timezone, clients=clients, slots=slots, capacity=capacity)
    return {
        "booking_per_second": median(book_rate),
        "issue_per_second": median(issue_rate),
        "ratio": median(ratios),
        "booking_p50_ms": median([r.booking.latency_ms(50) for r in done]),
        "booking_p99_ms": median([r.booking.latency_ms(99) for r in done]),
        "exact": exact,
    }


async def profile_run(
    server_url: str, timezone: str, *, clients: int, slots: int, capacity: int
) -> None:
    """One more server under cProfile, for a booking burst alone (not in the medians)."""
    import tempfile

    from bench.issue import print_profile

    print("\n profile: one more server under cProfile, a booking burst alone", flush=True)
    with tempfile.TemporaryDirectory(prefix="antrian-bench-booking-") as tmp:
        path = os.path.join(tmp, "server.prof")
        rep = await one_repetition(
            server_url,
            timezone,
            clients=clients,
            slots=slots,
            capacity=capacity,
            kinds=("booking",),
            profile=path,
        )
        print(_describe("booking", rep.booking, rep.cpu["booking"]))
        print_profile(path, rep.booking.seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--capacity", type=int, default=30)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the server in one more run, a booking burst alone",
    )


def main(args: argparse.Namespace, server_url: str | None = None) -> dict[str, Any]:
    return run_on_server(server_url, lambda url: run(args, url))


if __name__ == "__main__":
    sys.exit(serve_main())
