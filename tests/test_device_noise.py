"""Line noise on network device links (issue 15, item 4): the link reads in chunks on
every kind of port, holds back a device that floods it, and a valid frame behind megabytes
of garbage or behind an endless frame is acted on at once, on a link that stays up.

Real TCP sockets, the RFC 2217 server of `devices/` over a real pseudo-terminal, the real
service on a real PostgreSQL, and the simulated dispenser."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from devices.framing import ETX, STX
from devices.link import SerialLink
from devices.manager import DEVICES
from devices.sim.hardware import SimDispenser
from devices.sim.ports import PtyPort, TcpPort
from devices.sim.rfc2217 import Rfc2217Server
from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.site import DeviceConfig
from queue_service.domain.vocab import DeviceKind
from queue_service.settings import Settings
from queue_service.web.app import create_app
from tests.conftest import MONDAY_9AM
from tests.test_devices_service import (
    NUMBERING,
    dispenser_config,
    eventually,
    hall,
    numbers,
    snapshot,
)

pytestmark = [
    pytest.mark.timeout(60),
    # pyserial 3.5's RFC 2217 client calls Thread.setDaemon()/setName(), deprecated since 3.10.
    pytest.mark.filterwarnings(
        "ignore:setDaemon:DeprecationWarning", "ignore:setName:DeprecationWarning"
    ),
]

NOISE = random.Random(15).randbytes(3 << 20)  # 3 MiB of line noise, the same every run
# STX, then 1 MiB of printable bytes that never end the frame.
ENDLESS = bytes([STX]) + bytes(random.Random(16).choices(range(0x20, 0x7F), k=1 << 20))


@pytest.fixture
async def started() -> AsyncIterator[list[Any]]:
    """Simulators and RFC 2217 servers a test started; stopped at its end."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Rfc2217Server):
            await asyncio.to_thread(thing.stop)
        else:
            await thing.stop()


@pytest.fixture
async def service(aiohttp_client: Any, database_url: str) -> Any:
    async def start(config: AppConfig) -> TestClient[Any, Any]:
        settings = Settings(config_path=Path("noise.toml"), database_url=database_url)
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(settings, config, ManualClock(MONDAY_9AM))
        )
        return client

    return start


async def dispenser_on(
    kind: str, tmp_path: Path, started: list[Any]
) -> tuple[SimDispenser, TcpPort | PtyPort, str]:
    """A simulated dispenser behind a device server's raw TCP port (`socket`) or behind an
    RFC 2217 server whose serial port is a pty (`rfc2217`); its port and the service's URL."""
    port: TcpPort | PtyPort = TcpPort() if kind == "socket" else PtyPort(tmp_path / "nport-port1")
    # A chatty device: a heartbeat every 10 ms, also while the service's link opens (an
    # RFC 2217 client negotiates its options through the same reader that queues data).
    sim = SimDispenser(port, NUMBERING, heartbeat=0.01, resend=0.01)
    await sim.start()
    started.append(sim)
    if isinstance(port, TcpPort):
        return sim, port, port.url
    server = Rfc2217Server(str(port.tty_name)).start()
    started.append(server)
    return sim, port, server.url


@pytest.mark.parametrize("kind", ["socket", "rfc2217"])
async def test_three_mib_of_noise_then_a_ticket_is_acknowledged_within_5_s(
    kind: str, tmp_path: Path, started: list[Any], service: Any
) -> None:
    sim, port, url = await dispenser_on(kind, tmp_path, started)
    client = await service(hall([dispenser_config(url)]))
    device = client.server.app[DEVICES].runner("hall", "dispenser-1")
    await eventually(lambda: device.health.state == "up", what="link up")
    loop = asyncio.get_running_loop()

    began = loop.time()
    assert await port.send_all(NOISE)
    seq, number = sim.press(1)
    await eventually(lambda: seq in sim.acked, timeout=15, what="ticket acknowledged")
    elapsed = loop.time() - began
    assert elapsed < 5.0, f"3 MiB of noise delayed the ticket by {elapsed:.1f} s"

    assert numbers(await snapshot(client)) == [number]
    h = device.health
    # Every byte of the noise arrived (0xFF included, which RFC 2217 doubles on the wire)
    # and was thrown away and counted; the heartbeats between it were good frames.
    await eventually(lambda: device.health.discarded_bytes >= len(NOISE), timeout=5)
    assert h.discarded_bytes == len(NOISE)
    assert h.connects == 1 and h.reconnects == 0 and h.state == "up"


async def test_an_endless_frame_of_1_mib_is_discarded_and_the_link_stays_up(
    tmp_path: Path, started: list[Any], service: Any
) -> None:
    sim, port, url = await dispenser_on("socket", tmp_path, started)
    # silence_timeout 5 s: a link that took longer than that over the megabyte would reset.
    client = await service(hall([dispenser_config(url)]))
    device = client.server.app[DEVICES].runner("hall", "dispenser-1")
    await eventually(lambda: device.health.state == "up", what="link up")
    bad_before = device.health.bad_frames

    assert ETX not in ENDLESS[1:] and STX not in ENDLESS[1:]
    assert await port.send_all(ENDLESS)
    seq, number = sim.press(2)
    await eventually(lambda: seq in sim.acked, timeout=10, what="ticket acknowledged")

    h = device.health
    assert numbers(await snapshot(client)) == [number]
    assert h.connects == 1 and h.reconnects == 0 and h.state == "up"
    assert h.bad_frames == bad_before + 1  # the endless frame, once
    assert h.discarded_bytes == len(ENDLESS)


async def test_a_flooding_socket_device_is_read_in_chunks_and_held_back_losing_nothing() -> None:
    """The reader thread reads whole chunks off a `socket://` link, and stops reading
    while MAX_PENDING bytes wait for the event loop: the device is held back by TCP flow
    control instead of filling the service's memory; every byte arrives, in order."""
    from devices.link import CHUNK, MAX_PENDING

    server = TcpPort()
    await server.start()
    worker = ThreadPoolExecutor(1)
    link = await SerialLink.open(DeviceConfig("flood", DeviceKind.DISPENSER, server.url), worker)
    flood = random.Random(17).randbytes(16 << 20)
    try:
        await eventually(lambda: server.client_connected, what="link connected")
        sending = asyncio.create_task(server.send_all(flood))
        await asyncio.sleep(0.5)  # nobody reads the link meanwhile
        assert link.received <= MAX_PENDING + CHUNK
        got = bytearray()
        reads = 0
        while len(got) < len(flood):
            got += await link.read()
            reads += 1
        assert bytes(got) == flood
        assert reads <= len(flood) // 4096  # chunks, never byte by byte
        assert await sending
    finally:
        await link.close()
        worker.shutdown()
        await server.close()
