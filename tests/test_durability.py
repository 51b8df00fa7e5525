"""Durability: acknowledged events survive SIGKILL, replay rebuilds the same live state,
the embedded PostgreSQL keeps its data across restarts, a database restart loses nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from queue_service.domain.vocab import Role
from queue_service.store.db import EmbeddedPostgres
from tests.conftest import fetch
from tests.halls import Bearer, Hall, counter, service
from tests.service_process import Service, issue, stable

ADMIN_TOKEN = Bearer("durability-admin", Role.ADMIN)
ADMIN = ADMIN_TOKEN.headers
HALL = Hall(
    name="Durability hall",
    services=(service("Q"), service("R")),
    counters=(counter("c1", "Q", "R"), counter("c2", "Q")),
    tokens=(ADMIN_TOKEN,),
)


@pytest.fixture
def hall_config(tmp_path: Path) -> Path:
    return HALL.write(tmp_path)


@pytest.fixture(params=["database_url", "embedded"])
def service_env(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[dict[str, str]]:
    """Run the service on DATABASE_URL, or (DATABASE_URL unset) on its embedded PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["ANTRIAN_LOG_LEVEL"] = "WARNING"
    if request.param == "database_url":
        env["DATABASE_URL"] = database_url
        yield env
        return
    data_dir = tmp_path / "pgdata"
    env["ANTRIAN_DATA_DIR"] = str(data_dir)
    yield env
    # The killed service could not stop its embedded server: adopt it and stop it.
    if (data_dir / "PG_VERSION").exists():
        server = EmbeddedPostgres(data_dir)
        server.start()
        server.stop()


async def test_sigkill_after_acknowledged_tickets_loses_nothing(
    service_env: dict[str, str], hall_config: Path
) -> None:
    service = Service(hall_config, service_env)
    async with aiohttp.ClientSession() as session:
        try:
            await service.start(session)
            site = f"{service.url}/api/v1/sites/hall"
            # Phase 1: N acknowledged events, SIGKILL, restart: the snapshot is identical.
            for n in range(20):
                status, _ = await issue(
                    session, service.url, ADMIN, f"seq-{n}", "Q" if n % 2 else "R"
                )
                assert status == 201
            for path in ("c1/open", "c1/call-next", "c1/start", "c2/open", "c2/call-next"):
                async with session.post(f"{site}/counters/{path}", headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()
            async with session.get(f"{site}/snapshot", headers=ADMIN) as resp:
                before_kill = await resp.json()
            service.kill()
            await service.start(session)
            async with session.get(f"{site}/snapshot", headers=ADMIN) as resp:
                assert stable(await resp.json()) == stable(before_kill)
            for path in ("c1/finish", "c2/finish"):
                async with session.post(f"{site}/counters/{path}", headers=ADMIN) as resp:
                    assert resp.status == 200, await resp.text()

            # Phase 2: kill while requests are in flight.
            keys = [str(uuid.uuid4()) for _ in range(120)]
            acked: dict[str, dict[str, Any]] = {}

            async def one(key: str) -> None:
                try:
                    status, body = await issue(
                        session, service.url, ADMIN, key, "Q" if len(acked) % 2 else "R"
                    )
                except aiohttp.ClientError:
                    return
                if status == 201:
                    acked[key] = body

            # Fire everything, and kill the service once 60 are acknowledged: some requests
            # are then in flight, decided but not committed or not acknowledged.
            tasks = [asyncio.create_task(one(k)) for k in keys]
            while len(acked) < 60:
                await asyncio.sleep(0.001)
            service.kill()
            await asyncio.gather(*tasks)
            acked_now = dict(acked)
            assert len(acked_now) >= 60

            await service.start(session)
            async with session.get(
                f"{service.url}/api/v1/sites/hall/snapshot", headers=ADMIN
            ) as resp:
                after_restart = await resp.json()
            # Every acknowledged ticket is there, with the number it was given.
            for body in acked_now.values():
                async with session.get(f"{service.url}/api/v1/tickets/{body['id']}") as resp:
                    assert resp.status == 200
                    assert (await resp.json())["number"] == body["number"]
            # Retrying every request with its key never makes a second ticket.
            for key in keys:
                status, body = await issue(
                    session,
                    service.url,
                    ADMIN,
                    key,
                    acked_now[key]["service"] if key in acked_now else "Q",
                )
                if key in acked_now:
                    assert (status, body["id"]) == (201, acked_now[key]["id"])
            async with session.get(
                f"{service.url}/api/v1/sites/hall/snapshot", headers=ADMIN
            ) as resp:
                final = await resp.json()
            # Each key made exactly one ticket: acknowledged ones were kept, the others
            # were either committed before the kill (and answered now) or made now.
            issued = sum(s["issued_today"] for s in final["services"])
            assert issued == len(keys) + 20
            ids = {t["id"] for s in final["services"] for t in s["tickets"]}
            assert len(ids) == len(keys) + 20 - 2  # c1 and c2 each called and finished one
            assert {b["id"] for b in acked_now.values()} <= ids

            # A clean restart replays to an identical snapshot.
            service.terminate()
            await service.start(session)
            async with session.get(
                f"{service.url}/api/v1/sites/hall/snapshot", headers=ADMIN
            ) as resp:
                replayed = await resp.json()
            assert stable(replayed) == stable(final)
            assert stable(after_restart)["counters"][0]["state"] == "open"
        finally:
            service.terminate()


async def test_database_restart_answers_503_then_recovers_without_duplicates(
    tmp_path: Path, hall_config: Path
) -> None:
    data_dir = tmp_path / "pg"
    server = EmbeddedPostgres(data_dir)
    dsn = await asyncio.to_thread(server.start)
    env = dict(os.environ)
    env.update(DATABASE_URL=dsn, ANTRIAN_LOG_LEVEL="ERROR")
    service = Service(hall_config, env)
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            status, first = await issue(session, service.url, ADMIN, "before")
            assert status == 201
            await asyncio.to_thread(server.stop)
            status, body = await issue(session, service.url, ADMIN, "during")
            assert status == 503
            assert body["code"] == "database_unavailable"
            async with session.get(f"{service.url}/readyz") as resp:
                assert resp.status == 503
            await asyncio.to_thread(server.start)
            for _ in range(100):
                status, body = await issue(session, service.url, ADMIN, "during")
                if status == 201:
                    break
                assert status == 503
                await asyncio.sleep(0.1)
            assert status == 201
            status, again = await issue(session, service.url, ADMIN, "during")
            assert (status, again["id"]) == (201, body["id"])
            [(count,)] = await fetch(
                dsn, "SELECT count(*) FROM ticket_events WHERE type = 'ticket_issued'"
            )
            assert count == 2
            assert body["number"] == "Q002" and first["number"] == "Q001"
    finally:
        service.terminate()
        await asyncio.to_thread(server.stop)


async def test_the_writer_lock_outlasts_a_dead_predecessor_and_refuses_a_live_writer(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart straight after a crash waits for the dead session's lock; a second live
    writer is refused (the service's one-writer-per-database rule)."""
    from queue_service.store.db import create_pool
    from queue_service.store.event_store import WRITER_LOCK_ID, EventStore, WriterLockHeld

    pool = await create_pool(database_url)
    holder = await asyncpg.connect(database_url)
    stores: list[EventStore] = []
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK_ID)
        holder_pid = holder.get_server_pid()

        live = EventStore(pool, database_url, writer_lock_wait=0.5)
        stores.append(live)
        with pytest.raises(WriterLockHeld):
            await live.open_writer()
        assert f"held by backend {holder_pid}" in caplog.text

        # The predecessor dies mid-statement without a goodbye (as under SIGKILL): its
        # server session holds the lock until the statement ends, two seconds on.
        sleeping = asyncio.create_task(holder.execute("SELECT pg_sleep(2)"))
        await asyncio.sleep(0.2)
        holder.terminate()
        started = asyncio.get_running_loop().time()
        restarted = EventStore(pool, database_url, writer_lock_wait=15)
        stores.append(restarted)
        await restarted.open_writer()
        waited = asyncio.get_running_loop().time() - started
        assert 1.0 < waited < 10, waited
        with pytest.raises((asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)):
            await sleeping

        second = EventStore(pool, database_url, writer_lock_wait=0)
        stores.append(second)
        with pytest.raises(WriterLockHeld):
            await second.open_writer()
    finally:
        for store in stores:
            await store.close()
        if not holder.is_closed():
            holder.terminate()
        await pool.close()
