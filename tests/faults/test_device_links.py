"""Serial device servers that drop their TCP connections, and half-open TCP links.

A dispenser (the simulator of `devices/`) sits behind a device server's TCP port; between
the service and that port runs a small TCP relay that can
- reset every connection (RST, as a device server does when it reboots or drops a client),
  at random points, mid-frame included;
- make the current connection half-open: both directions stop, no FIN and no RST (a cable
  pulled somewhere between switch and device server). Only the service's silence timeout
  can notice that; a new connection works again.
The device must recover on its own each time, and every ticket the dispenser printed must
be stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from devices.framing import encode
from devices.manager import DEVICES
from devices.sim.hardware import SimDispenser
from devices.sim.ports import SimPort, TcpPort
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.web.app import create_app
from tests.conftest import MONDAY_9AM, fetch
from tests.faults.harness import FULL, Checked, record, rng_for
from tests.test_devices_service import NUMBERING, dispenser_config, hall, numbers, snapshot

ROUNDS = 24 if FULL else 6
SILENCE = 1.0

pytestmark = pytest.mark.timeout(240 if FULL else 90)


class _Pair:
    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        self.down, self.up = down, up  # service side, device-server side
        self.dead = False  # half-open: whatever arrives is swallowed
        self.tasks: list[asyncio.Task[None]] = []


class FaultyRelay:
    """A TCP relay in front of a device server, with resets and half-open links on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.pairs: list[_Pair] = []
        self.accepted = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        pair = _Pair(writer, up_writer)
        self.pairs.append(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(pair, reader, up_writer)),
            asyncio.create_task(self._pump(pair, up_reader, writer)),
        ]

    async def _pump(
        self, pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(4096):
                if not pair.dead:
                    writer.write(data)
        if not pair.dead:
            writer.close()

    def live_pairs(self) -> list[_Pair]:
        return [p for p in self.pairs if not p.dead and not p.down.is_closing()]

    def reset_all(self) -> int:
        """Abort every connection with an RST (SO_LINGER 0) on both sides."""
        count = 0
        for pair in self.pairs:
            for w in (pair.down, pair.up):
                sock = w.get_extra_info("socket")
                if sock is not None and not w.is_closing():
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    w.transport.abort()
                    count += 1
        self.pairs = []
        return count

    def half_open(self) -> int:
        """The live connections go silent both ways; their sockets stay open."""
        pairs = self.live_pairs()
        for pair in pairs:
            pair.dead = True
        return len(pairs)

    async def close(self) -> None:
        self.reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def relay_and_sim() -> AsyncIterator[tuple[FaultyRelay, SimDispenser]]:
    port = TcpPort()
    # TcpPort's url is a read-only property where SimPort declares an attribute.
    sim = SimDispenser(cast("SimPort", port), NUMBERING, heartbeat=0.2, resend=0.1)
    await sim.start()
    relay = FaultyRelay(port.port)
    await relay.start()
    try:
        yield relay, sim
    finally:
        await relay.close()
        await sim.stop()


async def until(check: Any, timeout: float, what: str) -> float:
    began = time.monotonic()
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what
    return time.monotonic() - began


async def test_device_server_resets_and_half_open_links_recover_and_store_each_ticket_once(
    relay_and_sim: tuple[FaultyRelay, SimDispenser], database_url: str, aiohttp_client: Any
) -> None:
    relay, sim = relay_and_sim
    rng = rng_for("device_links")
    config = hall([dispenser_config(relay.url, silence_timeout=SILENCE)])
    settings = Settings(config_path=Path("faults.toml"), database_url=database_url)
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings, config, ManualClock(MONDAY_9AM))
    )
    assert client.app is not None
    device = client.app[DEVICES].runner("hall", "dispenser-1")
    await until(lambda: device.health.state == "up", 10, "link up")

    injected = {"reset": 0, "half_open": 0}
    recovery: dict[str, list[float]] = {"reset": [], "half_open": []}
    for _ in range(ROUNDS):
        for _ in range(rng.randint(1, 3)):
            sim.press(rng.choice((1, 2)))
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        fault = rng.choice(("reset", "half_open"))
        connects = device.health.connects
        if fault == "reset":
            # Half a frame on the wire first, sometimes: the cut lands mid-frame.
            if rng.random() < 0.5:
                sim.port.send(encode(1, "T", "1;Q998;9999")[:7])
                await asyncio.sleep(0.02)
            assert relay.reset_all() > 0
        else:
            assert relay.half_open() > 0
        injected[fault] += 1
        sim.press(rng.choice((1, 2)))  # printed while the link is broken
        recovery[fault].append(
            await until(
                lambda c=connects: device.health.connects > c and device.health.state == "up",
                SILENCE + 10,
                f"device back after {fault}",
            )
        )
    await until(lambda: not sim.unacked, 15, "every printed ticket acknowledged")

    snap = await snapshot(client)
    printed = sorted(number for _, number in sim.printed)
    stored = await fetch(
        database_url,
        "SELECT data->>'number' AS number FROM ticket_events WHERE type = 'ticket_issued'",
    )
    stored_numbers = sorted(r["number"] for r in stored)
    duplicated = len(stored_numbers) - len(set(stored_numbers))
    lost = len(set(printed) - set(stored_numbers))
    assert duplicated == 0
    assert lost == 0
    assert stored_numbers == printed
    assert numbers(snap) == printed
    assert device.health.reconnects >= ROUNDS
    assert device.health.state == "up" and device.health.connected

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2] if xs else 0.0

    record(
        "device_links",
        f"{injected['reset']} connection resets (RST, some mid-frame) and "
        f"{injected['half_open']} half-open links on a TCP device server",
        Checked(
            sent=len(sim.printed),
            acknowledged=len(sim.acked),
            refused=len(sim.refused),
            stored_events=len(stored),
            stored_answers=len(sim.acked),
            duplicated=duplicated,
            lost=lost,
            tickets=len(stored),
        ),
        f"reconnects {device.health.reconnects}, bad frames {device.health.bad_frames}, "
        f"recovery median: reset {median(recovery['reset']):.2f} s, half-open "
        f"{median(recovery['half_open']):.2f} s (silence timeout {SILENCE:g} s)",
    )
