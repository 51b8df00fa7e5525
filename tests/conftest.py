"""Shared fixtures: a real PostgreSQL (embedded, or DATABASE_URL), a fresh database per test,
the example hall, a manual clock and an HTTP client on the real app."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig, hash_token, load_config, parse_config
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.store.db import EmbeddedPostgres
from queue_service.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example-hall.toml"
SITE = "mpp-banjarmasin"
# Monday 23 November 2026, 09:00 WITA (UTC+8): the hall is open.
MONDAY_9AM = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server: DATABASE_URL when set, else an embedded one for the run."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    base = Path(tempfile.mkdtemp(prefix="antrian-test-"))
    server = EmbeddedPostgres(base / "pgdata")
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(pg_server, name)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
    return await aiohttp_client(create_app(settings, config, clock))


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


KIOSK = auth("demo-kiosk")
MANAGER = auth("demo-manager")
ADMIN = auth("demo-admin")


def counter_auth(counter_id: str) -> dict[str, str]:
    return auth(f"demo-{counter_id}")


def one_queue_hall(counters: int, **service: Any) -> AppConfig:
    """A one-site, one-service hall whose every counter serves the single queue Q."""
    return parse_config(
        {
            "sites": [
                {
                    "id": "hall",
                    "name": "Test hall",
                    "timezone": "Asia/Makassar",
                    "hours": {
                        d: ["00:00", "24:00"]
                        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    },
                    "agencies": [{"id": "a", "name": "Agency"}],
                    "services": [
                        {
                            "code": "Q",
                            "agency": "a",
                            "name_id": "Layanan",
                            "name_en": "Service",
                            "prefix": "Q",
                            "target_wait_minutes": 15,
                            **service,
                        }
                    ],
                    "counters": [
                        {"id": f"c{n:02d}", "name": f"Loket {n}", "services": ["Q"]}
                        for n in range(counters)
                    ],
                }
            ],
            "tokens": [{"name": "admin", "role": "admin", "sha256": hash_token("demo-admin")}],
        }
    )
