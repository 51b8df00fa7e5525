"""Shared fixtures: a real PostgreSQL (embedded, or DATABASE_URL), a fresh database per test,
the example hall, a manual clock and an HTTP client on the real app; and which tests are
slow (`make test-fast` runs the others)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiohttp.test_utils import TestClient

from bench.common import database_server, fresh_database
from queue_service.config import AppConfig, load_config
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.store.db import EmbeddedPostgres, create_pool
from queue_service.store.migrate import migrate
from queue_service.web.app import create_app
from tests.halls import DEMO_ADMIN, DEMO_KIOSK, DEMO_MANAGER, Hall, numbered_counters, service

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example-hall.toml"
SITE = "mpp-banjarmasin"
# Monday 23 November 2026, 09:00 WITA (UTC+8): the hall is open.
MONDAY_9AM = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def pytest_configure() -> None:
    """Keep this checkout's temporary directories (tmp_path) out of /tmp/pytest-of-<user>:
    pytest makes that folder 0700 again at the start of every session of the user, and a
    PostgreSQL a test runs below it as its system user (EmbeddedPostgres, when root) then
    cannot open its files: such a test failed whenever another checkout's suite started."""
    if "PYTEST_DEBUG_TEMPROOT" not in os.environ:
        checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
        root = Path(tempfile.gettempdir()) / f"antrian-tests-{checkout}"
        root.mkdir(exist_ok=True)
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server: DATABASE_URL when set, else an embedded one for the run."""
    with database_server("test") as url:
        if not os.environ.get("DATABASE_URL"):
            asyncio.run(without_fsync(url))
        yield url


async def without_fsync(url: str) -> None:
    """Have the server skip fsync, much of what creating a database per test waits for.
    The session's server lives in a temporary directory and no test crashes it (the tests
    that kill or stop PostgreSQL start one of their own)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER SYSTEM SET fsync = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    async with fresh_database(pg_server, "t") as url:
        yield url


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live PostgreSQL process (postmaster and children) working in `data_dir`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.name() == "postgres"
                and proc.status() != psutil.STATUS_ZOMBIE
                and Path(proc.cwd()) == data_dir.resolve()
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def postmasters(data_dir: Path) -> list[psutil.Process]:
    """The postmasters among them (children retitle themselves "postgres: ...")."""
    out = []
    for proc in server_processes(data_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            if not proc.cmdline()[0].startswith("postgres:"):
                out.append(proc)
    return out


def stop_leftover_server(data_dir: Path) -> None:
    """A test that killed the service leaves its server running: adopt it and stop it."""
    if postmasters(data_dir):
        server = EmbeddedPostgres(data_dir)
        server.start()
        server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The data directory of a service's embedded PostgreSQL; a server the test left
    running there is stopped afterwards. (Ask for it before the fixtures that stop the
    service, so that it is torn down after them.)"""
    path = tmp_path / "pgdata"
    yield path
    with contextlib.suppress(Exception):
        stop_leftover_server(path)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's migrated database."""
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def config() -> AppConfig:
    return load_config(EXAMPLE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_9AM)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(config_path=EXAMPLE, database_url=database_url)


@pytest.fixture
async def client(
    settings: Settings,  # first: the database outlives the app that uses it
    config: AppConfig,
    clock: ManualClock,
    aiohttp_client: Any,
) -> TestClient:
    test_client: TestClient = await aiohttp_client(create_app(settings, config, clock))
    return test_client


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One query on a connection of its own: what a test finds stored in the database."""
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    finally:
        await conn.close()
    return rows


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


KIOSK = DEMO_KIOSK.headers
MANAGER = DEMO_MANAGER.headers
ADMIN = DEMO_ADMIN.headers


def counter_auth(counter_id: str) -> dict[str, str]:
    return auth(f"demo-{counter_id}")


def one_queue_hall(counters: int, **service_fields: Any) -> AppConfig:
    """A one-site, one-service hall whose every counter serves the single queue Q."""
    return Hall(
        services=(service("Q", **service_fields),),
        counters=numbered_counters(counters),
        tokens=(DEMO_ADMIN,),
    ).config()


# -- the slow tests: `make test-fast` (pytest -m "not slow") leaves them out -----------------

TESTS = Path(__file__).resolve().parent
# Whole files (or folders) of tests that start the service or PostgreSQL as processes of
# their own and kill, stop or starve them, fuzz at length, or run the README's commands.
SLOW_FILES = (
    "faults/",  # fault injection and the soak, each on a PostgreSQL of its own
    "browser/",  # headless Chromium
    "test_hostile.py",  # schemathesis and hypothesis fuzzing, slow clients, connection floods
    "test_startup.py",  # the service process while its database is missing, or going
    "test_embedded_start.py",  # the service process on its embedded PostgreSQL, killed
    "test_durability.py",  # the service process killed, its PostgreSQL restarted
    "test_readme_commands.py",  # the README's commands as written, `make demo` among them
)
# Markers of tests that drive a live tool (Prometheus, promtool, amtool, Chromium).
SLOW_MARKERS = ("browser", "prometheus")
# Single tests of a few seconds or more in files otherwise quick: file -> test (or class).
SLOW_TESTS = {
    "test_call_order.py": (  # hypothesis, 400 examples
        "test_positions_and_snapshot_order_are_the_order_call_next_hands_tickets_out",
    ),
    "test_cli.py": (  # the service process on an embedded PostgreSQL of its own
        "test_the_banner_of_the_embedded_database_names_its_directory_and_its_log",
    ),
    "test_devices_service.py": (
        "test_a_printer_answering_only_dle_eot_1_prints_and_says_its_paper_state_is_unknown",
        "test_database_restart_holds_device_tickets_in_order_and_stores_each_once",  # its own
    ),
    "test_domain_properties.py": ("TestHallMachine",),  # a hypothesis state machine
    "test_engine.py": (  # waits out the stop's grace period
        "test_stopping_while_a_batch_is_stuck_answers_its_senders_and_frees_its_keys",
    ),
    "test_simulate.py": (  # the service as a process of its own
        "test_http_mode_rides_out_a_restart_of_the_service_and_stops_on_ctrl_c",
        "test_http_mode_says_the_hall_is_closed_and_when_it_opens",
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tests `slow`; a name in SLOW_TESTS that its file does not define stops
    the run (a renamed test would quietly become a fast one)."""
    seen: set[str] = set()
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        where = item.path.relative_to(TESTS).as_posix()
        name = item.nodeid.split("::")[1].split("[")[0]
        if (
            where.startswith(SLOW_FILES)
            or any(item.get_closest_marker(m) for m in SLOW_MARKERS)
            or name in SLOW_TESTS.get(where, ())
        ):
            item.add_marker(pytest.mark.slow)
        if where in SLOW_TESTS and where not in seen and isinstance(item, pytest.Function):
            seen.add(where)
            missing = [n for n in SLOW_TESTS[where] if not hasattr(item.module, n)]
            if missing:
                raise pytest.UsageError(f"tests/conftest.py SLOW_TESTS: {where} has no {missing}")
