"""Counters never go back: the real service process, restarted after its hall's local
midnight, goes on counting from where it was, and a real Prometheus's `increase()` over a
window spanning the restart equals the true count (issue 14, item 1).

The hall's local midnight is placed a few seconds ahead of the wall clock with a time
zone of the test's own: a TZif file with a fixed offset chosen at run time, found by the
service through PYTHONTZPATH (zoneinfo's search path). Nothing in the service is faked."""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from queue_service.domain.vocab import Role
from tests.halls import Bearer, Hall
from tests.service_process import Service
from tests.test_prometheus_live import Prometheus
from tests.tools import require_tool

pytestmark = pytest.mark.prometheus

ZONE = "Antrian/Midnight"
ADMIN = Bearer("restart-admin", Role.ADMIN)


def tzif(offset: int) -> bytes:
    """A TZif (version 2) zone with one fixed UTC offset of `offset` seconds."""
    name = b"TST\0"
    header = b"TZif2" + b"\0" * 15 + struct.pack(">6l", 0, 0, 0, 0, 1, len(name))
    body = struct.pack(">lBB", offset, 0, 0) + name
    sign = "-" if offset >= 0 else "+"  # POSIX TZ strings count west of Greenwich
    a = abs(offset)
    footer = f"\n<TST>{sign}{a // 3600}:{a % 3600 // 60:02d}:{a % 60:02d}\n".encode()
    return header + body + header + body + footer


def zone_with_midnight_in(directory: Path, seconds: float) -> float:
    """Write ZONE under `directory` so that its local midnight falls `seconds` from now;
    returns that instant (Unix time)."""
    now = time.time()
    midnight = int(now + seconds)
    offset = (-midnight) % 86400  # local time of `midnight` is 00:00:00
    if offset > 43200:
        offset -= 86400
    path = directory / ZONE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tzif(offset))
    return float(midnight)


async def metrics(session: aiohttp.ClientSession, service: Service) -> dict[Any, float]:
    async with session.get(f"{service.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("site") == "hall"
        and s.name.endswith(("_total", "_bucket", "_count", "_sum"))
    }


async def test_increase_over_a_restart_after_midnight_is_the_true_count(
    tmp_path: Path, database_url: str
) -> None:
    binary = require_tool("prometheus")
    zones = tmp_path / "zones"
    midnight = zone_with_midnight_in(zones, 25)
    config = Hall(name="Restart hall", timezone=ZONE, tokens=(ADMIN,)).write(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_url, PYTHONTZPATH=str(zones), ANTRIAN_LOG_LEVEL="INFO")
    service = Service(config, env)
    site = f"{service.url}/api/v1/sites/hall"
    issued = called = 0

    async with aiohttp.ClientSession() as session:

        async def post(path: str, **body: Any) -> Any:
            async with session.post(f"{site}{path}", json=body, headers=ADMIN.headers) as resp:
                assert resp.status in (200, 201), await resp.text()
                return await resp.json()

        async def issue(n: int) -> None:
            nonlocal issued
            for _ in range(n):
                await post("/tickets", service="Q")
                issued += 1

        async def call_and_finish() -> None:
            nonlocal called
            await post("/counters/c1/call-next")
            called += 1
            await post("/counters/c1/finish", outcome="served")

        with tempfile.TemporaryDirectory() as tmp:
            prom = Prometheus(binary, f"127.0.0.1:{service.port}", Path(tmp))
            try:
                await service.start(session)
                await prom.ready(session)
                await asyncio.sleep(2)  # a few scrapes of the empty hall (all counters 0)

                # The evening: 6 tickets, 2 served, 4 left waiting at midnight.
                await post("/counters/c1/open")
                await issue(6)
                for _ in range(2):
                    await call_and_finish()
                assert time.time() < midnight - 1, "the set-up took longer than planned"
                await asyncio.sleep(midnight - time.time() + 1.5)

                # After midnight: the day closer expired the four.
                for _ in range(50):
                    expired = (await metrics(session, service)).get(
                        (
                            "qms_tickets_closed_total",
                            (("outcome", "expired"), ("service", "Q"), ("site", "hall")),
                        )
                    )
                    if expired:
                        break
                    await asyncio.sleep(0.2)
                assert expired == 4
                await post("/counters/c1/open")  # a new day: every counter starts closed
                await issue(3)
                await call_and_finish()
                await asyncio.sleep(3)  # scraped
                before = await metrics(session, service)

                service.kill()  # SIGKILL: nothing is flushed on the way out
                await service.start(session)
                after = await metrics(session, service)
                lower = {k: (v, after.get(k)) for k, v in before.items() if after.get(k, -1) < v}
                assert not lower, lower
                await issue(2)  # c1 is still open: the replayed day says so
                await call_and_finish()
                await asyncio.sleep(4)  # scraped after the restart

                window = f"{int(time.time() - midnight + 60)}s"  # from before the first ticket
                for expr, truth in (
                    ("qms_tickets_issued_total", issued),
                    ("qms_tickets_called_total", called),
                    ("qms_ticket_wait_seconds_count", called),
                    ('qms_tickets_closed_total{outcome="expired"}', 4),
                    ('qms_tickets_closed_total{outcome="served"}', called),
                ):
                    resets = await prom.query(
                        session, f'resets({expr}{{site="hall"}}[{window}])'.replace("}{", ",")
                    )
                    assert [r["value"][1] for r in resets] == ["0"], (expr, resets)
                    got = await prom.query(
                        session, f'increase({expr}{{site="hall"}}[{window}])'.replace("}{", ",")
                    )
                    value = float(got[0]["value"][1])
                    # Prometheus extrapolates to the window's end (at most one scrape
                    # interval in a window of minutes): within half a ticket of the truth.
                    assert abs(value - truth) < 0.5, (expr, value, truth)
            finally:
                prom.stop()
                service.terminate()
