"""PostgreSQL stopped under steady kiosk and counter traffic, then started again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import OwnPostgres, make_service
from tests.faults.harness import FULL, Dispenser, Traffic, check_store, record, replayable, snapshot
from tests.service_process import Service

OUTAGE_SECONDS = 30.0 if FULL else 6.0

pytestmark = pytest.mark.timeout(180 if FULL else 90)


async def test_postgres_stopped_and_restarted_under_traffic_loses_and_duplicates_nothing(
    own_pg: OwnPostgres, tmp_path: Path, service_factory: list[Service]
) -> None:
    dispenser = Dispenser()
    service = make_service(tmp_path, own_pg.dsn, service_factory, await dispenser.start())
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        async with Traffic(session, service.url) as traffic, contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(dispenser.close)
            dispenser.start_pressing()
            await asyncio.sleep(2.0)
            before = len(traffic.ledger.acknowledged)
            await own_pg.stop()
            stopped_at = time.monotonic()
            await asyncio.sleep(1.0)
            async with session.get(f"{service.url}/readyz") as resp:
                assert resp.status == 503  # the service says it cannot take commands
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
            during = len(traffic.ledger.acknowledged) - before
            refused = traffic.ledger.retries_503
            await own_pg.start()
            started_at = time.monotonic()
            await asyncio.sleep(3.0)
            ledger = await traffic.stop()
            await dispenser.stop_pressing()
            first_ack = ledger.first_ack_after(started_at)
            assert first_ack is not None, "nothing was acknowledged after the database came back"
        live = await snapshot(session, service.url)
        checked = await check_store(own_pg.dsn, ledger, dispenser.printed)

        # A clean restart replays the stored events into the same live state.
        service.terminate()
        await service.start(session)
        replayed = await snapshot(session, service.url)

    assert refused > 0, "the outage never reached a client"
    checked.assert_kept(live)
    assert replayable(replayed) == replayable(live)
    record(
        "postgres_outage",
        f"PostgreSQL stopped {OUTAGE_SECONDS:.0f} s under 2 kiosks + 3 counters + 1 dispenser",
        checked,
        f"503 answers retried {refused}, acknowledged during the outage {during}, "
        f"first acknowledgement {first_ack - started_at:.2f} s after restart, "
        "replayed snapshot equal to live",
    )
