"""SIGKILL of the service at random points under load, then a restart, again and again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import OwnPostgres, make_service
from tests.faults.harness import (
    FULL,
    Dispenser,
    Traffic,
    check_store,
    record,
    replayable,
    rng_for,
    snapshot,
)
from tests.service_process import Service

KILLS = 30 if FULL else 10

pytestmark = pytest.mark.timeout(240 if FULL else 120)


async def test_sigkill_at_random_points_under_load_loses_and_duplicates_nothing(
    own_pg: OwnPostgres, tmp_path: Path, service_factory: list[Service]
) -> None:
    rng = rng_for("service_kill")
    dispenser = Dispenser()
    service = make_service(tmp_path, own_pg.dsn, service_factory, await dispenser.start())
    downtime: list[float] = []
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        async with Traffic(session, service.url) as traffic, contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(dispenser.close)
            dispenser.start_pressing()
            for _ in range(KILLS):
                # A random point: requests are decided, queued, committing or answering.
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                in_flight_acks = len(traffic.ledger.acknowledged)
                service.kill()
                killed_at = time.monotonic()
                await service.start(session)
                downtime.append(time.monotonic() - killed_at)
                assert len(traffic.ledger.acknowledged) >= in_flight_acks
            await asyncio.sleep(1.0)
            ledger = await traffic.stop()
            await dispenser.stop_pressing()
        live = await snapshot(session, service.url)
        checked = await check_store(own_pg.dsn, ledger, dispenser.printed)
        service.terminate()
        await service.start(session)
        replayed = await snapshot(session, service.url)

    assert ledger.connection_errors > 0, "no request was ever cut by a kill"
    checked.assert_kept(live)
    assert replayable(replayed) == replayable(live)
    record(
        "service_sigkill",
        f"SIGKILL x{KILLS} at random points under 2 kiosks + 3 counters + 1 dispenser",
        checked,
        f"requests cut {ledger.connection_errors}, restart to ready median "
        f"{sorted(downtime)[len(downtime) // 2]:.2f} s, replayed snapshot equal to live",
    )
