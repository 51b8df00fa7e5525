"""The embedded PostgreSQL is supervised (issue 15, item 1): a postmaster that dies alone
(an OOM kill: SIGKILL) is restarted on the same data directory, the service becomes ready
again by itself, and nothing acknowledged is lost or duplicated.

The first test is the whole service (`python -m queue_service run`) on its own embedded
PostgreSQL. The others run `EmbeddedPostgres.supervise()` in the test's event loop, against
a real server, to pin down what the supervisor does (and, with the service on DATABASE_URL,
that the engine's connections come back by themselves after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from queue_service.store.db import EmbeddedPostgres, create_pool
from tests.conftest import postmasters, server_processes
from tests.faults.conftest import make_service
from tests.faults.harness import Request, Traffic, check_store, record, write_hall
from tests.service_process import Service
from tests.test_embedded_start import embedded_env, issue, postmaster_pid

pytestmark = pytest.mark.timeout(120)

READY_WITHIN = 30.0
ATTEMPT = re.compile(r"restart attempt \d+ of \d+")


async def _ready(session: aiohttp.ClientSession, url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(f"{url}/readyz", timeout=aiohttp.ClientTimeout(2)) as resp:
            return resp.status == 200
    return False


async def _ready_again(
    session: aiohttp.ClientSession,
    url: str,
    killed_at: float,
    within: float,
    *,
    noticed: bool = True,
) -> float:
    """Seconds from the kill until /readyz answers 200 again, having answered otherwise in
    between (the service noticed) unless `noticed` is False; fails after `within`."""
    while noticed and await _ready(session, url):
        assert time.monotonic() - killed_at < 10, "/readyz never noticed the dead database"
        await asyncio.sleep(0.05)
    while not await _ready(session, url):
        assert time.monotonic() - killed_at < within, f"not ready {within:.0f} s after the kill"
        await asyncio.sleep(0.1)
    return time.monotonic() - killed_at


async def _metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("qms_embedded_postgres_")
    }


def _sigkill_postmaster(data_dir: Path) -> int:
    """SIGKILL the postmaster alone, as the OOM killer does; its children are left to notice."""
    pid = postmaster_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_postmaster_sigkilled_alone_is_restarted_and_the_service_recovers(
    tmp_path: Path, data_dir: Path
) -> None:
    """The real service on its embedded PostgreSQL, under kiosk and counter traffic that
    retries with its keys. The postmaster is SIGKILLed alone. Within 30 s /readyz is 200
    again without anyone's help, a retry of a ticket acknowledged before the kill gets that
    ticket, the restart is counted in /metrics and said in the log, and the database holds
    every acknowledged command once."""
    service = Service(write_hall(tmp_path), embedded_env(data_dir))
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            status, before = await issue(session, service.url, "acknowledged-before-kill")
            assert status == 201, before
            async with Traffic(session, service.url) as traffic:
                await asyncio.sleep(1.0)
                killed = _sigkill_postmaster(data_dir)
                recovery = await _ready_again(session, service.url, time.monotonic(), READY_WITHIN)
                await asyncio.sleep(1.0)
                ledger = await traffic.stop()
            ledger.requests.append(Request("issue", "acknowledged-before-kill", 1, 201, before))
            status, again = await issue(session, service.url, "acknowledged-before-kill")
            assert (status, again["id"], again["number"]) == (201, before["id"], before["number"])
            metrics = await _metrics(session, service.url)
            assert metrics == {
                "qms_embedded_postgres_restarts_total": 1.0,
                "qms_embedded_postgres_up": 1.0,
            }, metrics
            restarted = postmaster_pid(data_dir)
            assert restarted != killed
            assert [p.pid for p in postmasters(data_dir)] == [restarted]
            dsn = await asyncio.to_thread(EmbeddedPostgres(data_dir).start)  # adopts it
            checked = await check_store(dsn, ledger)
        died = [line for line in service.log.read_text().splitlines() if "has died" in line]
        assert len(died) == 1 and f"(pid {killed})" in died[0], died
    finally:
        service.terminate()
    assert ledger.retries_503 + ledger.connection_errors > 0, "the kill was never noticed"
    checked.assert_kept()
    record(
        "embedded_postmaster_sigkill",
        "SIGKILL of the embedded postmaster alone under 2 kiosks + 3 counters",
        checked,
        f"ready again {recovery:.1f} s after the kill (limit {READY_WITHIN:.0f} s), "
        f"503 answers {ledger.retries_503}, restarts counted 1",
    )


# -- the supervisor itself --------------------------------------------------------------------


@pytest.fixture
async def supervised(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A server started by EmbeddedPostgres, supervised by a task of this test."""
    server = EmbeddedPostgres(
        tmp_path / "pg", restart_attempts=3, backoff_initial=0.3, check_interval=0.2
    )
    dsn = await asyncio.to_thread(server.start)
    task = asyncio.create_task(server.supervise())
    try:
        yield server, dsn
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(server.stop)


async def _until(condition: object, within: float, what: str) -> float:
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - began < within, what
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_supervisor_restarts_the_postmaster_and_the_engine_reconnects_by_itself(
    tmp_path: Path, supervised: tuple[EmbeddedPostgres, str], service_factory: list[Service]
) -> None:
    """The service on DATABASE_URL (the supervised server's URI): after the postmaster is
    SIGKILLed and the supervisor has restarted it, an asyncpg pool made before the kill
    answers on its next query and the service's engine commits again, with no restart of
    the service; the idempotent retry of an acknowledged ticket gets it back."""
    server, dsn = supervised
    service = make_service(tmp_path, dsn, service_factory)
    pool = await create_pool(dsn, min_size=2, max_size=2)
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            status, before = await issue(session, service.url, "before")
            assert status == 201, before
            assert server.render_metrics(0.0).endswith(
                "qms_embedded_postgres_restarts_total 0\n"
                "# HELP qms_embedded_postgres_up 1 when the embedded PostgreSQL runs and"
                " answered the last check.\n"
                "# TYPE qms_embedded_postgres_up gauge\n"
                "qms_embedded_postgres_up 1\n"
            )
            killed = _sigkill_postmaster(server.data_dir)
            killed_at = time.monotonic()
            took = await _until(lambda: server.restarts == 1, READY_WITHIN, "no restart")
            assert server.up
            assert postmaster_pid(server.data_dir) != killed
            assert await pool.fetchval("SELECT 1") == 1  # no error first: it reconnected
            recovery = await _ready_again(
                session, service.url, killed_at, READY_WITHIN, noticed=False
            )
            status, again = await issue(session, service.url, "before")
            assert (status, again["id"]) == (201, before["id"])
            status, after = await issue(session, service.url, f"after-{uuid.uuid4()}")
            assert (status, after["number"]) == (201, "Q002"), after
            assert "qms_embedded_postgres_restarts_total 1\n" in server.render_metrics(0.0)
            print(f"\n[supervisor] restarted {took:.1f} s, ready {recovery:.1f} s after the kill")
    finally:
        await pool.close()


async def test_supervisor_gives_up_after_its_attempts_and_keeps_looking(
    supervised: tuple[EmbeddedPostgres, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A server that cannot start again (here a setting it refuses) gets `restart_attempts`
    attempts with a doubling pause between them, each logged, then one CRITICAL line and
    no more attempts; when someone starts it again, the supervisor sees it and uses it."""
    caplog.set_level(logging.INFO, logger="queue_service.store.db")
    server, _ = supervised
    conf = server.data_dir / "postgresql.auto.conf"
    good = conf.read_text()
    conf.write_text(good + "shared_buffers = 'not a size'\n")
    _sigkill_postmaster(server.data_dir)
    await _until(
        lambda: any(r.levelno == logging.CRITICAL for r in caplog.records), 60, "never gave up"
    )
    attempts = [r for r in caplog.records if ATTEMPT.search(r.getMessage())]
    started = [r.created for r in attempts if "failed" not in r.getMessage()]
    assert len(started) == 3 and len(attempts) == 6, [r.getMessage() for r in attempts]
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # backoff 0.3 s, then doubled
    assert [r.getMessage() for r in caplog.records].count(
        next(r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL)
    ) == 1
    assert not server.up and server.restarts == 0
    assert "qms_embedded_postgres_up 0\n" in server.render_metrics(0.0)

    await asyncio.sleep(1.0)  # looking, not trying: no more attempts
    assert len([r for r in caplog.records if ATTEMPT.search(r.getMessage())]) == 6
    assert not server_processes(server.data_dir)

    conf.write_text(good)  # the operator mends it and starts the server
    operator = EmbeddedPostgres(server.data_dir)
    await asyncio.to_thread(operator.start)
    await _until(lambda: server.up, 5, "the server started by someone else was not adopted")
    assert server.restarts == 0


async def test_stop_is_not_a_death(supervised: tuple[EmbeddedPostgres, str]) -> None:
    """stop() ends the server for good: the supervisor does not start it again."""
    server, _ = supervised
    await asyncio.to_thread(server.stop)
    await asyncio.sleep(1.0)
    assert not server_processes(server.data_dir)
    assert server.restarts == 0
    assert "qms_embedded_postgres_up 0\n" in server.render_metrics(0.0)
