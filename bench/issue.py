"""Issue-ticket throughput and latency with durable commits, against a bare-aiohttp ceiling.

    python -m bench issue [--reps 7] [--duration 5] [--warmup 1] [--clients 50]
                          [--profile | --no-profile]

Each repetition starts two server processes in turn (`python -m bench.server`):

* service -- the real app (create_app) on a fresh database: 20 sites x 20 services open
  24 h without quota, kiosk token; every POST carries a unique Idempotency-Key, so each 201
  is a ticket_issued event and an idempotency row committed (synchronous_commit as the
  server has it, see the printed settings);
* ceiling -- a bare aiohttp app with one JSON POST handler (parse JSON, answer a small 201).

The load generator runs in this process (its own event loop, not the server's): one aiohttp
ClientSession, N concurrent workers, a warm-up, then a fixed measuring window. A request
counts in the window when its response arrives inside it. Figures are medians over the
repetitions; service and ceiling alternate in order so drift on a noisy machine hits both.
Server CPU per request (from the server process's CPU time) is printed too: on a shared
2-core machine it is steadier than throughput. When a target is missed (or with --profile),
one extra service run is made with the server under cProfile and its hot spots printed.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

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

SITES = 20
SERVICES = 20
PER_SERVICE_LIMIT = 990  # ticket numbers run to 999 per service and day
# The source tree the server processes run from (bench.ab points it at other trees).
SERVER_ROOT = ROOT


@dataclass
class RunResult:
    kind: str
    duration: float
    completed: int = 0  # responses received inside the window
    ok_window: int = 0  # ... of which 201
    ok_total: int = 0  # 201 responses over the whole run (warm-up included)
    latencies: list[float] = field(default_factory=list)  # seconds, inside the window
    failures: Counter[str] = field(default_factory=Counter)
    client_cpu: float = 0.0  # fraction of one core, this process, during the window
    server_cpu: float = 0.0  # fraction of one core, the server process
    postgres_cpu: float = 0.0  # fraction of one core, all postgres processes
    committed: int | None = None  # ticket_issued rows after the run (service only)
    answers: int | None = None  # idempotency rows after the run (service only)
    transactions: int | None = None  # distinct recorded_at = commits (group commit size)
    commits: dict[str, float] | None = None  # the engine's commit totals (whole run)
    machine_idle: float | None = None  # share of both cores idle in the window (/proc/stat)

    @property
    def server_us_per_request(self) -> float:
        """Server-process CPU per completed request, a figure less sensitive to noise."""
        return self.server_cpu * self.duration / max(1, self.completed) * 1e6

    @property
    def postgres_us_per_request(self) -> float:
        return self.postgres_cpu * self.duration / max(1, self.completed) * 1e6

    @property
    def rps(self) -> float:
        return self.ok_window / self.duration

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


def pick_timezone() -> str:
    """A WITA/WIB/WIT zone where the 00:00-24:00 hours are not about to end mid-run."""
    now = datetime.now(UTC)
    for tz in ("Asia/Makassar", "Asia/Jakarta", "Asia/Jayapura"):
        local = now.astimezone(ZoneInfo(tz)).time()
        if dtime(0, 5) < local < dtime(23, 50):
            return tz
    return "Asia/Makassar"


def _cpu_ticks() -> tuple[int, int] | None:
    """Idle (idle + iowait) and total ticks of all cores since boot; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)


def _postgres_cpu_seconds() -> float:
    """CPU seconds of every process named postgres (read only; the server is not ours to touch)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres":
                t = proc.cpu_times()
                total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


async def start_server(
    kind: str, dsn: str | None, timezone: str, profile: str | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    argv = [
        PYTHON,
        "-m",
        "bench.server",
        "bare" if kind == "ceiling" else kind,
        "--timezone",
        timezone,
        "--sites",
        str(SITES),
        "--services",
        str(SERVICES),
    ]
    if dsn:
        argv += ["--dsn", dsn]
    if profile:
        argv += ["--profile", profile]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=SERVER_ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SERVER_ROOT)},
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    if not line.startswith(b"READY "):
        await proc.wait()
        raise RuntimeError(f"{kind} server did not start (exit {proc.returncode})")
    return proc, int(line.split()[1])


async def stop_server(proc: asyncio.subprocess.Process) -> dict[str, float] | None:
    """Stop the server; the service's commit totals (bench.server prints them), if any."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    try:
        out = await asyncio.wait_for(proc.stdout.read(), timeout=30)
        await asyncio.wait_for(proc.wait(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("COMMITS "):
            totals: dict[str, float] = json.loads(line.removeprefix("COMMITS "))
            return totals
    return None


async def generate_load(
    port: int, kind: str, *, clients: int, warmup: float, duration: float, server_pid: int
) -> RunResult:
    import psutil

    result = RunResult(kind, duration)
    headers_base = {"Authorization": f"Bearer {KIOSK_TOKEN}", "Content-Type": "application/json"}
    targets = [(f"site-{s:03d}", f"S{j:02d}") for s in range(SITES) for j in range(SERVICES)]
    urls = {site: f"http://127.0.0.1:{port}/api/v1/sites/{site}/tickets" for site, _ in targets}
    bodies = {svc: json.dumps({"service": svc}).encode() for _, svc in targets}
    issued: Counter[tuple[str, str]] = Counter()
    server = psutil.Process(server_pid)
    began = time.perf_counter()
    window_start = began + warmup
    window_end = window_start + duration
    marks: dict[str, tuple[float, float, float]] = {}
    ticks: dict[str, tuple[int, int] | None] = {}

    async def sampler() -> None:
        # CPU of client, server and postgres, and of the whole machine, at the window's edges.
        for name, at in (("start", window_start), ("end", window_end)):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            st = server.cpu_times()
            marks[name] = (time.process_time(), st.user + st.system, _postgres_cpu_seconds())
            ticks[name] = _cpu_ticks()

    async def worker(n: int, session: aiohttp.ClientSession) -> None:
        rng = random.Random(n)
        while True:
            t0 = time.perf_counter()
            if t0 >= window_end:
                return
            target = rng.choice(targets)
            while issued[target] >= PER_SERVICE_LIMIT:
                target = rng.choice(targets)
            issued[target] += 1
            site, service = target
            headers = {**headers_base, "Idempotency-Key": uuid.uuid4().hex}
            status: int | None = None
            try:
                async with session.post(urls[site], data=bodies[service], headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failures[type(exc).__name__] += 1
            t1 = time.perf_counter()
            if status == 201:
                result.ok_total += 1
            elif status is not None:
                result.failures[f"HTTP {status}"] += 1
            if window_start <= t1 <= window_end:
                result.completed += 1
                result.latencies.append(t1 - t0)
                if status == 201:
                    result.ok_window += 1

    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sample = asyncio.create_task(sampler())
        await asyncio.gather(*(worker(n, session) for n in range(clients)))
        await sample
    (c0, s0, p0), (c1, s1, p1) = marks["start"], marks["end"]
    result.client_cpu = (c1 - c0) / duration
    result.server_cpu = (s1 - s0) / duration
    result.postgres_cpu = (p1 - p0) / duration
    t0, t1 = ticks["start"], ticks["end"]
    if t0 is not None and t1 is not None and t1[1] > t0[1]:
        result.machine_idle = (t1[0] - t0[0]) / (t1[1] - t0[1])
    return result


async def count_committed(dsn: str, result: RunResult) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        result.committed = await conn.fetchval(
            "SELECT count(*) FROM ticket_events WHERE type = 'ticket_issued'"
        )
        result.answers = await conn.fetchval("SELECT count(*) FROM idempotency_keys")
        result.transactions = await conn.fetchval(
            "SELECT count(DISTINCT recorded_at) FROM ticket_events"
        )
    finally:
        await conn.close()


async def one_run(
    kind: str,
    server_url: str,
    timezone: str,
    *,
    clients: int,
    warmup: float,
    duration: float,
    profile: str | None = None,
) -> RunResult:
    dsn = await create_database(server_url, "bench_issue") if kind == "service" else None
    try:
        proc, port = await start_server(kind, dsn, timezone, profile)
        try:
            result = await generate_load(
                port, kind, clients=clients, warmup=warmup, duration=duration, server_pid=proc.pid
            )
        finally:
            # The engine drains its queue before exiting.
            commits = await stop_server(proc)
        if kind == "service":
            result.commits = commits
        if dsn is not None:
            await count_committed(dsn, result)
        return result
    finally:
        if dsn is not None:
            await drop_database(server_url, dsn)


def _describe(r: RunResult) -> str:
    line = (
        f"  {r.kind:8s} {r.rps:7.0f} req/s  p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms"
        f"  cpu client {r.client_cpu:4.0%} server {r.server_cpu:4.0%}"
        f" postgres {r.postgres_cpu:4.0%}; server {r.server_us_per_request:4.0f} us/req"
    )
    if r.machine_idle is not None:
        line += f"; machine idle {r.machine_idle:4.0%}"
    if r.committed is not None:
        line += (
            f"  | 201s {r.ok_total} = committed {r.committed}"
            f" {'OK' if r.committed == r.ok_total else 'MISMATCH'}"
            f", {r.ok_total / max(1, r.transactions or 1):.1f} tickets/commit"
        )
    if r.commits and r.commits["batches"]:
        c = r.commits
        line += (
            f"; commit {c['seconds'] / c['batches'] * 1000:.2f} ms mean,"
            f" {c['max_seconds'] * 1000:.0f} ms max"
        )
    if r.failures:
        line += f"  failures {dict(r.failures)}"
    return line


def _group(func: str) -> str:
    if "'poll' of 'select.epoll'" in func:
        return "idle: epoll wait"
    if "_socket.socket" in func:
        return "socket send/recv (kernel, loopback TCP to client and PostgreSQL)"
    for prefix, name in (
        ("queue_service/", "queue_service (handler, engine, views, store)"),
        ("aiohttp/", "aiohttp/yarl/multidict (HTTP parsing, routing, response)"),
        ("yarl/", "aiohttp/yarl/multidict (HTTP parsing, routing, response)"),
        ("multidict/", "aiohttp/yarl/multidict (HTTP parsing, routing, response)"),
        ("asyncpg/", "asyncpg (protocol, codecs)"),
        ("json/", "json (stdlib encoder/decoder)"),
        ("asyncio/", "asyncio (event loop, futures, queues)"),
    ):
        if func.startswith(prefix):
            return name
    if func.startswith("~:0("):
        return "C builtins called from Python (dict, str, hashlib, datetime, ...)"
    return "other Python (stdlib: hashlib, secrets, uuid, logging, ...)"


def print_profile(path: str, wall: float, top: int = 22) -> list[dict[str, Any]]:
    """Top functions of the server's profile by own time, and the cumulative time of ours."""
    import pstats

    stats = pstats.Stats(path)
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.split("site-packages/")[-1].split(str(ROOT) + "/")[-1]
        where = where.split("lib/python3.11/")[-1]
        rows.append({"func": f"{where}:{line}({name})", "calls": nc, "tottime": tt, "cumtime": ct})
    print(f"  top by own time (server process, {wall:g} s of load incl. warm-up):")
    for r in sorted(rows, key=lambda r: -r["tottime"])[:top]:
        print(
            f"    {r['tottime']:6.2f} s own {r['cumtime']:6.2f} s cum {r['calls']:>8,}x"
            f"  {r['func']}"
        )
    groups: Counter[str] = Counter()
    for r in rows:
        groups[_group(r["func"])] += r["tottime"]
    busy = sum(v for k, v in groups.items() if k != "idle: epoll wait")
    print(
        f"  own time by area ({busy:.2f} s busy under the profiler; idle "
        f"{groups['idle: epoll wait']:.2f} s):"
    )
    for name, value in groups.most_common():
        if name != "idle: epoll wait":
            print(f"    {value:6.2f} s {value / busy:4.0%}  {name}")
    ours = [r for r in rows if r["func"].startswith("queue_service/")]
    print("  queue_service functions by cumulative time:")
    for r in sorted(ours, key=lambda r: -r["cumtime"])[:14]:
        print(
            f"    {r['cumtime']:6.2f} s cum {r['tottime']:6.2f} s own {r['calls']:>8,}x"
            f"  {r['func']}"
        )
    return rows


async def profile_run(
    server_url: str, timezone: str, *, clients: int, warmup: float, duration: float
) -> None:
    """One more service run with the server under cProfile (not part of the medians)."""
    import tempfile

    print(
        "\n profile: one extra service run with cProfile in the server process "
        "(profiling slows it; figures below are shares, not speeds)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="antrian-bench-prof-") as tmp:
        path = os.path.join(tmp, "server.prof")
        r = await one_run(
            "service",
            server_url,
            timezone,
            clients=clients,
            warmup=warmup,
            duration=duration,
            profile=path,
        )
        print(_describe(r))
        print_profile(path, warmup + duration)


async def run(args: argparse.Namespace, server_url: str) -> dict[str, Any]:
    """The service against the ceiling, `args.reps` alternated pairs (see add_arguments)."""
    reps, clients, warmup, duration = args.reps, args.clients, args.warmup, args.duration
    banner("issue: POST /api/v1/sites/{site}/tickets, durable commits")
    settings = await server_settings(server_url)
    print("postgres: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    timezone = pick_timezone()
    print(
        f"config: {SITES} sites x {SERVICES} services (open 00:00-24:00 {timezone}, no quota),"
        f" {clients} concurrent clients, warm-up {warmup:g} s, window {duration:g} s,"
        f" {reps} repetitions, cpus {os.cpu_count()}",
        flush=True,
    )
    runs: dict[str, list[RunResult]] = {"ceiling": [], "service": []}
    for i in range(reps):
        order = ("ceiling", "service") if i % 2 == 0 else ("service", "ceiling")
        print(f" repetition {i + 1}/{reps}", flush=True)
        for kind in order:
            r = await one_run(
                kind, server_url, timezone, clients=clients, warmup=warmup, duration=duration
            )
            runs[kind].append(r)
            print(_describe(r), flush=True)

    svc, ceil = runs["service"], runs["ceiling"]
    svc_rps, ceil_rps = [r.rps for r in svc], [r.rps for r in ceil]
    ratios = [s.rps / c.rps for s, c in zip(svc, ceil, strict=True) if c.rps]
    p99 = [r.p99_ms for r in svc]
    p50 = [r.p50_ms for r in svc]
    ok = sum(r.ok_total for r in svc)
    committed = sum(r.committed or 0 for r in svc)
    ratio = median(svc_rps) / median(ceil_rps)
    print("\n summary (median (min..max) over repetitions)")
    print(
        f"  ceiling (bare aiohttp): {spread(ceil_rps)} req/s, p50 "
        f"{spread([r.p50_ms for r in ceil], '{:.1f}')} ms, p99 "
        f"{spread([r.p99_ms for r in ceil], '{:.1f}')} ms"
    )
    print(
        f"  service (durable):      {spread(svc_rps)} req/s, p50 {spread(p50, '{:.1f}')} ms,"
        f" p99 {spread(p99, '{:.1f}')} ms"
    )
    svc_us = median([r.server_us_per_request for r in svc])
    ceil_us = median([r.server_us_per_request for r in ceil])
    pg_us = median([r.postgres_us_per_request for r in svc])
    print(
        f"  server CPU per request: service {svc_us:.0f} us (+ postgres {pg_us:.0f} us), "
        f"ceiling {ceil_us:.0f} us -> {svc_us / ceil_us:.1f}x the ceiling's CPU cost"
    )
    idle = {k: [r.machine_idle for r in rs if r.machine_idle is not None] for k, rs in runs.items()}
    if idle["service"] and idle["ceiling"]:
        print(
            f"  machine idle (both cores, /proc/stat) in the window: service"
            f" {median(idle['service']):.0%}, ceiling {median(idle['ceiling']):.0%}"
        )
    client_ceil = median([r.client_cpu for r in ceil])
    if client_ceil >= 0.9:
        print(
            f"  note: during the ceiling runs the load generator used {client_ceil:.0%} of a "
            "core: the ceiling is bounded by the client, so it is a lower bound"
        )
    print(
        f"  service / ceiling:      {ratio:.0%} of median throughput"
        f" (per-repetition ratios {', '.join(f'{x:.0%}' for x in ratios)};"
        f" their median {median(ratios):.0%}: each pair ran back to back, so it is the"
        " figure that the machine's drift between repetitions moves least)"
    )
    print(
        f"  target >= 40% of ceiling: {'met' if ratio >= 0.40 else 'NOT met'};"
        f" target p99 < 50 ms: {'met' if median(p99) < 50 else 'NOT met'}"
        f" (median p99 {median(p99):.1f} ms)"
    )
    print(
        f"  durability: {ok} responses 201, {committed} ticket_issued rows committed -> "
        f"{'equal' if ok == committed else 'DIFFERENT'}",
        flush=True,
    )
    missed = ratio < 0.40 or median(p99) >= 50
    if args.profile or (args.profile is None and missed):
        await profile_run(server_url, timezone, clients=clients, warmup=warmup, duration=duration)
    return {
        "service_rps": median(svc_rps),
        "ceiling_rps": median(ceil_rps),
        "ratio": ratio,
        "service_us": svc_us,
        "ceiling_us": ceil_us,
        "p50_ms": median(p50),
        "p99_ms": median(p99),
        "ok": ok,
        "committed": committed,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile the server in one extra run (default: when a target is missed)",
    )


def main(args: argparse.Namespace, server_url: str | None = None) -> dict[str, Any]:
    return run_on_server(server_url, lambda url: run(args, url))
