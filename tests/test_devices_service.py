"""Devices against the real service: pseudo-terminals, local TCP ports and RFC 2217, a real
PostgreSQL (restarted mid-test in one case), and the simulated devices of `devices/`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from devices import supervisor
from devices.framing import encode
from devices.link import SerialLink
from devices.manager import DEVICES, DeviceManager
from devices.sim.hardware import SimDispenser, SimKeypadBus, SimPrinter
from devices.sim.ports import PtyPort, SimPort, TcpPort
from devices.sim.rfc2217 import Rfc2217Server
from devices.supervisor import DeviceRunner, KeypadRunner, PrinterRunner
from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.site import DeviceConfig
from queue_service.domain.vocab import DeviceKind, Role
from queue_service.settings import Settings
from queue_service.store.db import EmbeddedPostgres
from queue_service.web.app import create_app
from tests.conftest import MONDAY_9AM
from tests.halls import Bearer, Hall, counter, service

pytestmark = pytest.mark.timeout(60)

ADMIN_TOKEN = Bearer("dev-admin", Role.ADMIN)
KIOSK_TOKEN = Bearer("dev-kiosk", Role.KIOSK, name="Kiosk 1")
ADMIN = ADMIN_TOKEN.headers
KIOSK = KIOSK_TOKEN.headers
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2}


def hall(devices: list[dict[str, Any]]) -> AppConfig:
    return Hall(
        name="Mal Pelayanan Publik Uji",
        site_fields={"public_url": "http://antrian.test"},
        agencies=({"id": "a", "name": "Dinas Uji"},),
        services=(service("Q", name_en="Q", daily_quota=400), service("R", name_en="R")),
        counters=(counter("c1", "Q", "R", name="Loket 1"), counter("c2", "Q", name="Loket 2")),
        devices=devices,
        tokens=(ADMIN_TOKEN, KIOSK_TOKEN),
    ).config()


def dispenser_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "dispenser-1",
        "kind": "dispenser",
        "url": url,
        "buttons": {
            "1": {"service": "Q", "range": [501, 999]},
            "2": {"service": "R", "prefix": "X"},
        },
        "silence_timeout": 5,
        **FAST,
        **extra,
    }


def printer_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "printer-1",
        "kind": "printer",
        "url": url,
        "kiosk": "Kiosk 1",
        "poll_interval": 0.1,
        "silence_timeout": 10,  # a status reply is waited for 1 s
        **FAST,
        **extra,
    }


def keypad_config(url: str, addresses: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": "keypads",
        "kind": "keypad",
        "url": url,
        "addresses": addresses,
        "silence_timeout": 5,
        **FAST,
        **extra,
    }


NUMBERING = {1: ("Q", 501), 2: ("X", 1)}


class Start(Protocol):
    """The `start_app` fixture: the service on `config` (with its devices), on the test's
    database or on the one `url` names."""

    async def __call__(
        self, config: AppConfig, url: str | None = None, clock: ManualClock | None = None
    ) -> TestClient: ...


@pytest.fixture
def start_app(aiohttp_client: Any, database_url: str) -> Start:
    async def start(
        config: AppConfig, url: str | None = None, clock: ManualClock | None = None
    ) -> TestClient:
        settings = Settings(config_path=Path("devices.toml"), database_url=url or database_url)
        app = create_app(settings, config, clock or ManualClock(MONDAY_9AM))
        client: TestClient = await aiohttp_client(app)
        return client

    return start


def manager(client: TestClient) -> DeviceManager:
    app = client.app
    assert isinstance(app, web.Application)
    return app[DEVICES]


def runner(client: TestClient, device: str) -> DeviceRunner:
    return manager(client).runner("hall", device)


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


async def snapshot(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/api/v1/sites/hall/snapshot", headers=ADMIN)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def numbers(snap: dict[str, Any]) -> list[str]:
    return sorted(t["number"] for s in snap["services"] for t in s["tickets"])


async def make_port(kind: str, tmp_path: Path) -> SimPort:
    if kind == "pty":
        return PtyPort(tmp_path / "usb-Antrian_Dispenser-if00")
    port = TcpPort()
    await port.start()  # learn the port number, then let the sim start it again
    await port.unplug()
    return port


@pytest.fixture
async def sims() -> AsyncIterator[list[Any]]:
    started: list[Any] = []
    yield started
    for sim in started:
        await sim.stop()


# -- framing over a real pty ------------------------------------------------------------


async def silent_dispenser_on_a_pty(
    start_app: Start, tmp_path: Path, sims: list[Any]
) -> tuple[PtyPort, SimDispenser, TestClient, DeviceRunner]:
    """A dispenser on a pty that sends nothing by itself (every byte on the line is the
    test's own), and the service started with its link open."""
    port = PtyPort(tmp_path / "usb-Antrian_Dispenser-if00")
    sim = SimDispenser(port, NUMBERING)
    await sim.start(timers=False)
    sims.append(sim)
    client = await start_app(hall([dispenser_config(port.url)]))
    device = runner(client, "dispenser-1")
    await eventually(lambda: device.health.connected, what="pty opened")
    return port, sim, client, device


async def test_pty_frames_split_glued_garbage_corrupt_and_oversized_are_each_handled(
    start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port, sim, client, device = await silent_dispenser_on_a_pty(start_app, tmp_path, sims)
    # The service flushes its input when it opens the port: send only once it is open.
    # This frame is spelled out from docs/devices.md, not built by the code under test.
    literal = b"\x0201T0A1;Q501;101" + b"%04X\x03"
    from devices.framing import crc16_modbus

    literal = literal.replace(b"%04X", f"{crc16_modbus(b'01T0A1;Q501;101'):04X}".encode())
    for byte in literal:  # byte by byte: many reads, one frame
        port.send(bytes([byte]))
        await asyncio.sleep(0.002)
    glued = sim_frame(1, "Q502", 102) + sim_frame(2, "X001", 103)
    garbage = b"\x00\xffnoise\x03\x03 more noise"
    corrupt = bytearray(sim_frame(1, "Q503", 104))
    corrupt[8] ^= 0x01  # one bit of the data flipped: the CRC no longer matches
    oversized = b"\x0201T40" + b"A" * 100 + b"\x03"
    good_after = sim_frame(1, "Q505", 106)
    port.send(glued + garbage + bytes(corrupt) + oversized + good_after)
    await eventually(lambda: len(sim.acked) == 4, what="four tickets acknowledged")
    assert sim.acked == {101: "Q501", 102: "Q502", 103: "X001", 106: "Q505"}
    assert numbers(await snapshot(client)) == ["Q501", "Q502", "Q505", "X001"]
    h = device.health
    assert h.good_frames == 4
    assert h.bad_frames == 2  # the corrupted one and the oversized one
    assert h.discarded_bytes == len(garbage) + len(corrupt) + len(oversized)
    assert h.state == "up" and h.reconnects == 0


def sim_frame(button: int, number: str, seq: int) -> bytes:
    from devices.framing import encode

    return encode(1, "T", f"{button};{number};{seq}")


# -- unplug mid-frame, back later: pty and TCP ------------------------------------------


@pytest.mark.parametrize("kind", ["pty", "tcp"])
async def test_unplugged_mid_frame_and_back_later_reconnects_and_stores_each_ticket_once(
    kind: str, start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port = await make_port(kind, tmp_path)
    sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.1)
    await sim.start()
    sims.append(sim)
    client = await start_app(hall([dispenser_config(port.url)]))
    device = runner(client, "dispenser-1")
    await eventually(lambda: device.health.state == "up", what="link up")

    for button in (1, 2, 1):
        sim.press(button)
    await eventually(lambda: len(sim.acked) == 3)
    # The next acknowledgements are "lost": the dispenser will send these again later.
    sim.ignore_acks = True
    sim.press(1)
    sim.press(2)
    await eventually(lambda: manager(client).engine.stats.events_committed >= 5)
    # Half a frame, then the cable is pulled.
    port.send(sim_frame(1, "Q999", 999)[:7])
    await asyncio.sleep(0.05)
    await port.unplug()
    await eventually(lambda: device.health.state == "backing_off", what="link lost")
    assert not device.health.connected
    down = await snapshot(client)
    dev = next(d for d in down["devices"] if d["id"] == "dispenser-1")
    assert dev["connected"] is False and dev["state"] in ("backing_off", "connecting")
    # Tickets printed while unplugged wait in the dispenser; the service keeps retrying
    # (short backoff here stands in for "30 s later").
    sim.ignore_acks = False
    sim.press(1)
    sim.press(1)
    await asyncio.sleep(0.6)
    await port.replug()
    await eventually(lambda: len(sim.acked) == 7 and not sim.unacked, what="all acknowledged")

    assert device.health.reconnects >= 1
    assert device.health.bad_frames >= 1  # the half frame cut by the unplug
    snap = await snapshot(client)
    printed = sorted(number for _, number in sim.printed)
    assert numbers(snap) == printed  # every ticket once, none twice
    assert sum(s["issued_today"] for s in snap["services"]) == 7
    metrics = await (await client.get("/metrics")).text()
    assert 'qms_device_reconnects_total{site="hall",device="dispenser-1",kind="dispenser"}' in (
        metrics
    )
    assert 'qms_device_up{site="hall",device="dispenser-1",kind="dispenser"} 1' in metrics


# -- RFC 2217 ---------------------------------------------------------------------------

# pyserial 3.5's RFC 2217 client calls Thread.setDaemon()/setName(), deprecated since 3.10.
rfc2217_warnings = pytest.mark.filterwarnings(
    "ignore:setDaemon:DeprecationWarning", "ignore:setName:DeprecationWarning"
)


@rfc2217_warnings
async def test_rfc2217_link_round_trips_bytes_over_loop_port() -> None:
    with Rfc2217Server("loop://") as server:
        from concurrent.futures import ThreadPoolExecutor

        worker = ThreadPoolExecutor(1)
        link = await SerialLink.open(DeviceConfig("x", DeviceKind.DISPENSER, server.url), worker)
        try:
            assert link.socket is not None  # keepalive on the network link
            import socket

            assert link.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            payload = bytes(range(256))  # includes 0xFF, which Telnet must escape
            await link.write(payload)
            got = b""
            async with asyncio.timeout(5):
                while len(got) < len(payload):
                    got += await link.read()
            assert got == payload
        finally:
            await link.close()
            worker.shutdown()


@rfc2217_warnings
async def test_dispenser_behind_rfc2217_server_survives_a_dropped_connection(
    start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port = PtyPort(tmp_path / "nport-port1")
    sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.1)
    await sim.start()
    sims.append(sim)
    with Rfc2217Server(str(port.tty_name)) as server:
        client = await start_app(hall([dispenser_config(server.url)]))
        device = runner(client, "dispenser-1")
        await eventually(lambda: device.health.state == "up", what="rfc2217 link up")
        sim.press(1)
        sim.press(2)
        await eventually(lambda: len(sim.acked) == 2)
        server.drop_client()  # the device server's network goes away, then comes back
        await eventually(lambda: device.health.reconnects >= 1, what="reconnected")
        sim.press(1)
        await eventually(lambda: len(sim.acked) == 3)
        assert numbers(await snapshot(client)) == ["Q501", "Q502", "X001"]
        assert server.connections >= 2


# -- the database restarts while a dispenser keeps sending ----------------------------------


async def test_database_restart_holds_device_tickets_in_order_and_stores_each_once(
    start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = await asyncio.to_thread(server.start)
    try:
        port = TcpPort()
        sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.3)
        await sim.start()
        sims.append(sim)
        client = await start_app(hall([dispenser_config(port.url)]), dsn)
        device = runner(client, "dispenser-1")
        await eventually(lambda: device.health.state == "up")
        for i in range(5):
            sim.press(1 + i % 2)
        await eventually(lambda: len(sim.acked) == 5)
        await asyncio.to_thread(server.stop)
        for i in range(10):
            sim.press(1 + i % 2)
            await asyncio.sleep(0.05)
        await eventually(lambda: device.health.held > 0, what="tickets held")
        await asyncio.sleep(0.5)  # the dispenser re-sends what is not acknowledged yet
        assert len(sim.acked) == 5
        await asyncio.to_thread(server.start)
        await eventually(lambda: len(sim.acked) == 15, timeout=30, what="all committed")
        # The last acknowledgement can reach the dispenser before the task that sent it
        # resumes and lets go of the ticket: wait for that, don't race it.
        await eventually(lambda: device.health.held == 0, what="nothing held")
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT data->>'number' AS number FROM ticket_events "
                "WHERE type = 'ticket_issued' ORDER BY seq"
            )
        finally:
            await conn.close()
        stored = [r["number"] for r in rows]
        assert stored == [number for _, number in sorted(sim.printed)]  # in press order, once
        assert sim.acked == dict(sim.printed)
    finally:
        await asyncio.to_thread(server.stop)


# -- keypads ----------------------------------------------------------------------------


async def test_keypads_act_through_the_counter_rules_and_answer_each_key(
    start_app: Start, sims: list[Any]
) -> None:
    port = TcpPort()
    bus = SimKeypadBus(port, [1, 2, 3], heartbeat=0.2)
    await bus.start()
    sims.append(bus)
    config = hall([keypad_config(port.url, {"1": "c1", "2": "c2"})])
    client = await start_app(config)
    device = runner(client, "keypads")
    await eventually(lambda: device.health.state == "up")

    assert await bus.press_and_wait(1, "N") == ("E", "02")  # counter not open
    assert await bus.press_and_wait(1, "O") == ("D", "")
    assert await bus.press_and_wait(1, "N") == ("E", "01")  # nobody waiting
    for _ in range(2):
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        assert resp.status == 201
    assert await bus.press_and_wait(1, "N") == ("D", "Q001")
    assert await bus.press_and_wait(1, "N") == ("E", "03")  # still holds Q001
    assert await bus.press_and_wait(1, "X") == ("E", "05")  # no-show needs a second call
    assert await bus.press_and_wait(1, "R") == ("D", "Q001")
    assert await bus.press_and_wait(1, "S") == ("D", "Q001")
    assert await bus.press_and_wait(1, "F") == ("D", "Q001")
    assert await bus.press_and_wait(2, "O") == ("D", "")
    assert await bus.press_and_wait(2, "N") == ("D", "Q002")
    assert await bus.press_and_wait(3, "N") == ("E", "06")  # address 3 has no counter
    assert await bus.press_and_wait(1, "Z") == ("E", "08")  # no such key
    assert await bus.press_and_wait(1, "P") == ("D", "")
    # A keypad without sequence numbers, or a press without one, gets a clear error and
    # nothing happens.
    bad_before = device.health.bad_frames
    port.send(encode(2, "K", "N"))
    port.send(encode(2, "C", "R;"))
    await eventually(lambda: ("E", "R", None, "09") in bus.displays[2].answers)
    assert ("E", "N", None, "09") in bus.displays[2].answers
    assert device.health.bad_frames == bad_before + 2

    snap = await snapshot(client)
    counters = {c["id"]: c for c in snap["counters"]}
    assert counters["c1"]["state"] == "paused" and counters["c1"]["served_today"] == 1
    assert counters["c2"]["ticket"]["number"] == "Q002"


async def one_keypad_at_c1(
    port: SimPort, sims: list[Any], start_app: Start, *, first_seq: int
) -> tuple[SimKeypadBus, AppConfig, TestClient]:
    """A simulated keypad at address 1 of `port`, bound to counter c1; the service started."""
    bus = SimKeypadBus(port, [1], heartbeat=0.2, resend=0.1, first_seq=first_seq)
    await bus.start()
    sims.append(bus)
    config = hall([keypad_config(port.url, {"1": "c1"})])
    return bus, config, await start_app(config)


@pytest.mark.parametrize("kind", ["pty", "tcp"])
async def test_key_resent_after_a_dropped_link_acts_once_and_is_answered_alike(
    kind: str, start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port = await make_port(kind, tmp_path)
    bus, _, client = await one_keypad_at_c1(port, sims, start_app, first_seq=9998)
    device = runner(client, "keypads")
    assert isinstance(device, KeypadRunner)
    await eventually(lambda: device.health.state == "up")
    assert await bus.press_and_wait(1, "O") == ("D", "")  # seq 9998
    for _ in range(2):
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        assert resp.status == 201
    engine = manager(client).engine
    display = bus.displays[1]

    # "Call next": the service acts and answers, but the answer is lost with the link.
    bus.ignore_answers = True
    committed = engine.stats.events_committed
    seq = bus.press(1, "N")
    assert seq == 9999
    await eventually(lambda: len(display.lost) >= 1, what="first answer sent")
    assert display.lost[0] == ("D", "N", 9999, "Q001")
    assert engine.stats.events_committed == committed + 1
    await port.unplug()
    await eventually(lambda: device.health.state == "backing_off", what="link lost")
    bus.ignore_answers = False
    await asyncio.sleep(0.3)
    await port.replug()
    # The keypad re-sends press 9999 on the new link: the same answer, no second action.
    assert await bus.wait_answer(1, 9999) == ("D", "Q001")
    assert display.waiting is None and display.text == "Q001"
    assert device.health.reconnects >= 1
    assert device.keys_repeated >= 1 and device.keys_done == 2  # open and one call
    assert engine.stats.events_committed == committed + 1
    snap = await snapshot(client)
    counters = {c["id"]: c for c in snap["counters"]}
    assert counters["c1"]["ticket"]["number"] == "Q001"
    assert numbers(snap) == ["Q002"]  # still waiting: called once, not twice

    # New presses after that act: the numbers wrapped from 9999 to 0.
    assert await bus.press_and_wait(1, "F") == ("D", "Q001")
    assert display.seq == 0
    assert await bus.press_and_wait(1, "N") == ("D", "Q002")
    assert device.keys_done == 4
    snap = await snapshot(client)
    counters = {c["id"]: c for c in snap["counters"]}
    assert counters["c1"]["ticket"]["number"] == "Q002" and counters["c1"]["served_today"] == 1


@pytest.mark.parametrize("kind", ["pty", "tcp"])
async def test_key_resent_to_a_restarted_service_is_answered_from_the_stored_press(
    kind: str, start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    """The answer to "call next" is lost, and the service restarts before the keypad
    re-sends the press: the new process (no press memory) answers it from the press's
    stored idempotency answer, and the counter does not call a second ticket."""
    port = await make_port(kind, tmp_path)
    bus, config, client = await one_keypad_at_c1(port, sims, start_app, first_seq=41)
    device = runner(client, "keypads")
    await eventually(lambda: device.health.state == "up")
    assert await bus.press_and_wait(1, "O") == ("D", "")  # seq 41
    for _ in range(2):
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        assert resp.status == 201
    bus.ignore_answers = True
    assert bus.press(1, "N") == 42
    await eventually(lambda: len(bus.displays[1].lost) >= 1, what="first answer sent")
    assert bus.displays[1].lost[0] == ("D", "N", 42, "Q001")
    await client.close()  # the service stops; the keypad keeps re-sending press 42

    bus.ignore_answers = False
    client = await start_app(config)
    device = runner(client, "keypads")
    assert isinstance(device, KeypadRunner) and len(device.memory) == 0
    assert await bus.wait_answer(1, 42) == ("D", "Q001")
    snap = await snapshot(client)
    counters = {c["id"]: c for c in snap["counters"]}
    assert counters["c1"]["ticket"]["number"] == "Q001"
    assert numbers(snap) == ["Q002"]  # still waiting: called once, not twice
    assert await bus.press_and_wait(1, "F") == ("D", "Q001")  # seq 43 acts
    assert await bus.press_and_wait(1, "N") == ("D", "Q002")


# -- the printer and the kiosk ------------------------------------------------------------


async def printing(
    start_app: Start, sims: list[Any], printer: SimPrinter, port: TcpPort, **config: Any
) -> tuple[TestClient, PrinterRunner]:
    """`printer` started on `port`, and the service started with it (`config` added to its
    printer_config) once the printer's first status is in."""
    await printer.start()
    sims.append(printer)
    client = await start_app(hall([printer_config(port.url, **config)]))
    device = runner(client, "printer-1")
    assert isinstance(device, PrinterRunner)
    await eventually(lambda: device.health.printer is not None, what="first status")
    return client, device


async def read_notices(client: TestClient, into: list[dict[str, Any]]) -> None:
    async with client.get(
        "/api/v1/sites/hall/stream", headers={**ADMIN, "Accept": "text/event-stream"}
    ) as resp:
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))


async def test_kiosk_ticket_prints_and_reports_honestly_when_paper_runs_out(
    start_app: Start, sims: list[Any]
) -> None:
    port = TcpPort()
    printer = SimPrinter(port)
    client, device = await printing(start_app, sims, printer, port, silence_timeout=2)
    notices: list[dict[str, Any]] = []
    stream = asyncio.create_task(read_notices(client, notices))
    try:
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        body = await resp.json()
        assert resp.status == 201, body
        assert body["print"] == {"status": "printed", "message": "the ticket was printed"}
        assert len(printer.tickets) == 1
        paper = printer.tickets[0]
        assert b"Q001" in paper and b"Mal Pelayanan Publik Uji" in paper
        assert f"http://antrian.test/ui/status.html#{body['id']}".encode() in paper

        printer.paper_near_end = True
        printer.paper_end = True
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        body = await resp.json()
        assert resp.status == 201  # the ticket exists; only the paper is missing
        assert body["number"] == "Q002"
        assert body["print"]["status"] == "failed"
        assert "out of paper" in body["print"]["message"]
        assert body["print"]["problems"] == ["paper_end"]
        assert len(printer.tickets) == 1 and not printer.lost  # nothing was sent to print

        metrics = await (await client.get("/metrics")).text()
        assert 'qms_printer_paper_end{site="hall",device="printer-1"} 1' in metrics
        assert 'qms_printer_paper_near_end{site="hall",device="printer-1"} 1' in metrics
        assert 'qms_printer_cover_open{site="hall",device="printer-1"} 0' in metrics
        assert 'qms_device_up{site="hall",device="printer-1",kind="printer"} 1' in metrics
        snap = await snapshot(client)
        (dev,) = snap["devices"]
        assert dev["id"] == "printer-1" and dev["printer"]["paper_end"] is True
        await eventually(
            lambda: any(
                n.get("type") == "device_status" and (n["device"]["printer"] or {}).get("paper_end")
                for n in notices
            ),
            what="device_status notice on the stream",
        )

        printer.paper_end = printer.paper_near_end = False
        printer.cover_open = True
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        assert (await resp.json())["print"]["problems"] == ["cover_open"]
        printer.cover_open = False
        resp = await client.post(
            "/api/v1/sites/hall/tickets",
            json={"service": "Q"},
            headers={**KIOSK, "Idempotency-Key": "k-1"},
        )
        first = await resp.json()
        assert first["print"]["status"] == "printed"
        again = await (
            await client.post(
                "/api/v1/sites/hall/tickets",
                json={"service": "Q"},
                headers={**KIOSK, "Idempotency-Key": "k-1"},
            )
        ).json()
        assert again["id"] == first["id"] and again["print"]["status"] == "printed"
        assert len(printer.tickets) == 2  # the retry did not print a second paper

        # A staff token has no printer; an unplugged printer is reported, not pretended.
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=ADMIN)
        assert (await resp.json())["print"]["status"] == "no_printer"
        await port.unplug()
        await eventually(lambda: not device.health.connected, what="printer link lost")
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=KIOSK)
        assert (await resp.json())["print"] == {
            "status": "failed",
            "message": "the ticket printer is not connected",
            "problems": ["offline"],
        }
    finally:
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream


class SlowPort(TcpPort):
    """A device server in front of a printer: what the printer sends arrives `delay` s late."""

    delay = 0.0

    def send(self, data: bytes) -> bool:
        if self.delay <= 0:
            return super().send(data)
        asyncio.get_running_loop().call_later(self.delay, super().send, data)
        return True


class SlowPrinter(SimPrinter):
    """A printer that, once a ticket came out, answers its status `slow_after_ticket` s late."""

    def __init__(self, port: SlowPort) -> None:
        super().__init__(port)
        self.slow_port = port
        self.slow_after_ticket: float | None = None

    def _received(self, data: bytes) -> None:
        before = len(self.tickets)
        super()._received(data)
        if len(self.tickets) > before and self.slow_after_ticket is not None:
            self.slow_port.delay = self.slow_after_ticket


async def issue(client: TestClient, key: str) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/sites/hall/tickets",
        json={"service": "Q"},
        headers={**KIOSK, "Idempotency-Key": key},
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 201, body
    return body


async def test_overlapping_retry_of_a_kiosk_request_waits_for_the_print_and_prints_once(
    start_app: Start, sims: list[Any]
) -> None:
    port = SlowPort()
    printer = SlowPrinter(port)
    client, device = await printing(start_app, sims, printer, port)
    port.delay = 0.3  # busy: each of the 4 status replies comes late, the print takes seconds

    first = asyncio.create_task(issue(client, "k-slow"))
    await eventually(lambda: bool(device.print_jobs), what="first print started")
    (job,) = device.print_jobs.values()
    # The kiosk gave up on the first answer and sends the same request again.
    second = asyncio.create_task(issue(client, "k-slow"))
    await asyncio.sleep(0.2)
    assert not job.task.done() and not first.done()  # the two really overlap
    a, b = await asyncio.gather(first, second)

    assert a["id"] == b["id"] and a["number"] == b["number"] == "Q001"
    assert a["print"] == b["print"] == {"status": "printed", "message": "the ticket was printed"}
    assert len(printer.tickets) == 1 and not printer.lost  # one ticket's bytes, once
    assert b"Q001" in printer.tickets[0]
    assert device.jobs == 1
    # A later retry is answered from the record, still without a second paper.
    again = await issue(client, "k-slow")
    assert again["print"] == {"status": "printed", "message": "the ticket was already printed"}
    assert len(printer.tickets) == 1


async def test_a_ticket_sent_to_the_printer_is_never_sent_again_one_refused_before_may_be(
    start_app: Start, sims: list[Any]
) -> None:
    port = SlowPort()
    printer = SlowPrinter(port)
    client, device = await printing(start_app, sims, printer, port)

    # The paper comes out, but the check after it gets no answer in time: "unconfirmed"
    # (the printer received it), not "failed" ...
    printer.slow_after_ticket = 1.5
    body = await issue(client, "k-after")
    assert len(printer.tickets) == 1
    assert body["print"] == {
        "status": "unconfirmed",
        "message": "the ticket was sent to the printer, which did not answer afterwards",
    }
    printer.slow_after_ticket = None
    port.delay = 0.0
    await eventually(lambda: device.health.state == "up", what="answering again")
    # ... and the kiosk's retry reports that same outcome without printing it again.
    again = await issue(client, "k-after")
    assert again["id"] == body["id"] and again["print"] == body["print"]
    assert len(printer.tickets) == 1 and not printer.lost

    # Refused before a byte was written (cover open): once it is closed, a retry prints.
    printer.cover_open = True
    refused = await issue(client, "k-cover")
    assert refused["print"]["problems"] == ["cover_open"]
    assert len(printer.tickets) == 1 and not printer.lost
    printer.cover_open = False
    retried = await issue(client, "k-cover")
    assert retried["id"] == refused["id"]
    assert retried["print"] == {"status": "printed", "message": "the ticket was printed"}
    assert len(printer.tickets) == 2 and refused["number"].encode() in printer.tickets[1]


async def test_silent_printer_is_closed_and_reconnected(start_app: Start, sims: list[Any]) -> None:
    port = TcpPort()
    printer = SimPrinter(port)
    await printer.start()
    sims.append(printer)
    client = await start_app(
        hall([printer_config(port.url, poll_interval=0.05, silence_timeout=0.5)])
    )
    device = runner(client, "printer-1")
    await eventually(lambda: device.health.state == "up")
    printer.mute = True  # powered off behind a device server that still accepts TCP
    await eventually(lambda: port.connections >= 2, what="closed on silence, reconnected")
    assert device.health.state != "up" or device.health.reconnects >= 1
    printer.mute = False
    await eventually(lambda: device.health.state == "up" and device.health.reconnects >= 1)


async def test_service_starts_cleanly_with_devices_absent(start_app: Start, tmp_path: Path) -> None:
    closed = TcpPort()
    await closed.start()
    await closed.unplug()  # nothing listens there now
    config = hall(
        [
            dispenser_config(closed.url),
            {
                "id": "keypads",
                "kind": "keypad",
                "url": str(tmp_path / "no-such-adapter"),
                "addresses": {"1": "c1"},
                **FAST,
            },
        ]
    )
    client = await start_app(config)
    resp = await client.get("/readyz")
    assert resp.status == 200
    await eventually(lambda: runner(client, "keypads").health.last_error is not None)
    snap = await snapshot(client)
    assert {d["id"]: d["connected"] for d in snap["devices"]} == {
        "dispenser-1": False,
        "keypads": False,
    }
    metrics = await (await client.get("/metrics")).text()
    assert 'qms_device_up{site="hall",device="keypads",kind="keypad"} 0' in metrics


# -- honest counts, honest printer status, devices not present (issue 15) ------------------


async def test_checksum_valid_frames_refused_for_content_count_as_discarded_bytes(
    start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port, sim, client, device = await silent_dispenser_on_a_pty(start_app, tmp_path, sims)
    garbage = b"\x00\xff line noise \x03"
    # Good checksums, unusable contents: a ticket frame whose data is not a ticket, and a
    # command a dispenser does not send. Thrown away: every one of their bytes counts.
    refused = encode(1, "T", "not a ticket") + encode(1, "Z", "1;2")
    port.send(garbage + refused + sim_frame(1, "Q501", 101))
    await eventually(lambda: sim.acked == {101: "Q501"}, what="the good ticket acknowledged")
    h = device.health
    assert (h.good_frames, h.bad_frames) == (1, 2)
    assert h.discarded_bytes == len(garbage) + len(refused)
    metrics = await (await client.get("/metrics")).text()
    assert (
        'qms_device_discarded_bytes_total{site="hall",device="dispenser-1",kind="dispenser"} '
        f"{len(garbage) + len(refused)}\n"
    ) in metrics


async def test_a_printer_answering_only_dle_eot_1_prints_and_says_its_paper_state_is_unknown(
    start_app: Start, sims: list[Any]
) -> None:
    port = TcpPort()
    printer = SimPrinter(port)
    printer.answers = frozenset({1})  # online/offline only: no cover, error or paper reply
    client, device = await printing(start_app, sims, printer, port)

    unknown = ["paper_end", "cover_open", "error", "paper_near_end"]
    (dev,) = (await snapshot(client))["devices"]
    assert dev["printer"] == {
        "paper_near_end": None,
        "paper_end": None,
        "cover_open": None,
        "offline": False,
        "error": None,
        "problems": [],
        "unknown": unknown,
        "status": "unknown",  # not "ok": nobody knows whether there is paper
    }
    metrics = await (await client.get("/metrics")).text()
    for name in ("paper_end", "paper_near_end", "cover_open", "error"):
        assert f'qms_printer_{name}{{site="hall",device="printer-1"}} NaN\n' in metrics, name
    assert 'qms_printer_offline{site="hall",device="printer-1"} 0\n' in metrics
    assert 'qms_device_up{site="hall",device="printer-1",kind="printer"} 1\n' in metrics

    # A hall would rather print than refuse: it prints, and says what it could not check.
    for key in ("k-1", "k-2"):
        body = await issue(client, key)
        assert body["print"] == {
            "status": "printed",
            "message": "the ticket was printed (the printer does not report paper end, "
            "cover open, error, paper near end)",
            "unknown": unknown,
        }
    assert len(printer.tickets) == 2 and not printer.lost

    # Once it answers everything, the flags are known again (asked again now and then).
    printer.answers = frozenset({1, 2, 3, 4})
    printer.paper_near_end = True
    await eventually(
        lambda: device.health.printer is not None and not device.health.printer.unknown(),
        what="all four replies again",
    )
    metrics = await (await client.get("/metrics")).text()
    assert 'qms_printer_paper_end{site="hall",device="printer-1"} 0\n' in metrics
    assert 'qms_printer_paper_near_end{site="hall",device="printer-1"} 1\n' in metrics
    (dev,) = (await snapshot(client))["devices"]
    assert dev["printer"]["status"] == "ok" and dev["printer"]["unknown"] == []


async def test_a_device_absent_at_start_is_not_present_quietly_then_appears_and_heals_as_before(
    start_app: Start, sims: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devices")
    port = TcpPort()
    await port.start()
    await port.unplug()  # nothing listens there yet: the simulator is not running
    sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.1)
    client = await start_app(hall([dispenser_config(port.url)]))
    device = runner(client, "dispenser-1")

    def said(level: int) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("devices")
            and r.levelno == level
            and "dispenser-1" in r.getMessage()
        ]

    await eventually(lambda: device.health.state == "not_present", what="not present")
    await asyncio.sleep(0.6)  # several quiet retries (backoff 0.05 .. 0.2 s)
    assert device.health.state == "not_present"
    (line,) = said(logging.INFO)
    assert "not present" in line and port.url in line
    assert said(logging.WARNING) == []
    (dev,) = (await snapshot(client))["devices"]
    assert (dev["state"], dev["present"], dev["connected"]) == ("not_present", False, False)
    labels = '{site="hall",device="dispenser-1",kind="dispenser"}'
    metrics = await (await client.get("/metrics")).text()
    assert f"qms_device_present{labels} 0\n" in metrics
    assert f"qms_device_up{labels} 0\n" in metrics

    await sim.start()  # it appears
    sims.append(sim)
    await eventually(lambda: device.health.state == "up", what="appeared")
    assert [m for m in said(logging.INFO) if "appeared" in m] == [
        f"device hall/dispenser-1 appeared: connected on {port.url}"
    ]
    assert said(logging.WARNING) == []
    metrics = await (await client.get("/metrics")).text()
    assert f"qms_device_present{labels} 1\n" in metrics
    assert f"qms_device_up{labels} 1\n" in metrics
    seq, _ = sim.press(1)
    await eventually(lambda: seq in sim.acked, what="ticket acknowledged")

    # Present once, then lost: that is news (one warning), and it heals as before.
    await port.unplug()
    await eventually(lambda: device.health.state == "backing_off", what="lost")
    await asyncio.sleep(0.4)
    assert len(said(logging.WARNING)) == 1
    (dev,) = (await snapshot(client))["devices"]
    assert dev["present"] is True
    await port.replug()
    await eventually(lambda: device.health.state == "up" and device.health.reconnects == 1)
    assert any("is back" in m for m in said(logging.INFO))


# -- check-in by a scanned code at a dispenser ------------------------------------------

# Service Q takes bookings (30-minute slots, check-in from 30 minutes before a slot until
# 15 after) and remote joins confirmed on arrival; the test starts at 09:00 WITA.
BOOKING = {
    "slot_minutes": 30,
    "capacity": 1,
    "cutoff_minutes": 0,
    "early_minutes": 30,
    "late_minutes": 15,
    "remote_join": True,
}
TODAY = "2026-11-23"  # MONDAY_9AM's day in the hall's timezone


def booking_hall(devices: list[dict[str, Any]]) -> AppConfig:
    return Hall(
        name="Mal Pelayanan Publik Uji",
        site_fields={"public_url": "http://antrian.test"},
        agencies=({"id": "a", "name": "Dinas Uji"},),
        services=(
            service("Q", name_en="Q", daily_quota=400, booking=BOOKING),
            service("R", name_en="R"),
        ),
        counters=(counter("c1", "Q", "R", name="Loket 1"),),
        devices=devices,
        tokens=(ADMIN_TOKEN, KIOSK_TOKEN),
    ).config()


async def posted(client: TestClient, path: str, body: dict[str, Any], status: int) -> Any:
    resp = await client.post(path, json=body)
    answer = await resp.json()
    assert resp.status == status, answer
    return answer


async def book(client: TestClient, slot: str) -> Any:
    body = {"service": "Q", "day": TODAY, "slot": slot}
    return await posted(client, "/api/v1/sites/hall/bookings", body, 201)


async def got(client: TestClient, path: str) -> Any:
    resp = await client.get(path)
    answer = await resp.json()
    assert resp.status == 200, answer
    return answer


@pytest.mark.parametrize("kind", ["pty", "tcp"])
async def test_codes_scanned_at_a_dispenser_check_in_once_and_refusals_carry_their_codes(
    kind: str, start_app: Start, tmp_path: Path, sims: list[Any]
) -> None:
    port = await make_port(kind, tmp_path)
    sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.1)
    await sim.start()
    sims.append(sim)
    client = await start_app(booking_hall([dispenser_config(port.url)]))
    device = runner(client, "dispenser-1")
    await eventually(lambda: device.health.state == "up", what="link up")

    on_time = await book(client, "09:30")  # its check-in opened at 09:00
    later = await book(client, "10:30")  # opens at 10:00
    dropped = await book(client, "11:00")
    await posted(client, f"/api/v1/bookings/{dropped['id']}/cancel", {}, 200)
    joined = await posted(client, "/api/v1/sites/hall/join", {"service": "Q"}, 201)
    assert joined["confirmed"] is False and joined["code"]

    assert await sim.scan_and_wait(later["code"]) == ("N", "09")  # too early
    assert await sim.scan_and_wait("ZZZZ99") == ("N", "08")  # no such code
    assert await sim.scan_and_wait(dropped["code"]) == ("N", "12")  # cancelled
    assert sim.printed == []  # a refused scan prints nothing

    # On time, and every answer lost on the line: the dispenser re-sends the scan (same
    # seq) until one arrives; each re-send is answered with the same number, and the
    # booking has one ticket. The reader gives the code in lower case: the same code.
    sim.ignore_acks = True
    seq = sim.scan(on_time["code"].lower())
    await eventually(lambda: sum(s == seq for _, s, _ in sim.lost) >= 3, what="three answers lost")
    sim.ignore_acks = False
    await eventually(lambda: seq in sim.checked_in, what="the check-in answered")
    number = sim.checked_in[seq]
    assert {(c, v) for c, s, v in sim.lost if s == seq} == {("K", number)}
    assert sim.printed == [(seq, number)]
    booking = await got(client, f"/api/v1/bookings/{on_time['id']}")
    assert booking["state"] == "checked_in" and booking["number"] == number
    # In the queue (the snapshot lists waiting tickets), due at its slot.
    waiting = [t for s in (await snapshot(client))["services"] for t in s["tickets"]]
    booked = [t for t in waiting if t["source"] == "booking"]
    assert [t["number"] for t in booked] == [number]
    due, starts = (datetime.fromisoformat(booked[0]["due_at"]), booking["starts_at"])
    assert due == datetime.fromisoformat(starts)
    # Scanned again (a new scan, a new seq): already checked in.
    assert await sim.scan_and_wait(on_time["code"]) == ("N", "11")

    # A remote join's code confirms it: the dispenser prints its own number.
    assert await sim.scan_and_wait(joined["code"]) == ("K", joined["number"])
    status = await got(client, f"/api/v1/tickets/{joined['id']}")
    assert status["confirmed"] is True and status["source"] == "online"
    assert await sim.scan_and_wait(joined["code"]) == ("N", "11")
    assert numbers(await snapshot(client)) == sorted([number, joined["number"]])

    # Unreadable codes are bad frames, refused under their seq when it can be read; the
    # link stays up and the next scan is answered.
    bad = device.health.bad_frames
    port.send(
        encode(1, "C", "K7Q;901")  # too short
        + encode(1, "C", "A" * 17 + ";902")  # too long
        + encode(1, "C", "K7Q2M\\;903")  # not a letter or digit
        + encode(1, "C", "K7Q2MX")  # no seq: nothing to answer under
        + b"\x0201C6C"
        + b"K" * 104
        + b";904"
        + b"0000\x03"  # longer than a frame holds
    )
    await eventually(lambda: {901, 902, 903} <= set(sim.refused), what="refused")
    assert [sim.refused[s] for s in (901, 902, 903)] == ["13", "13", "13"]
    await eventually(lambda: device.health.bad_frames == bad + 5, what="five bad frames")
    assert 904 not in sim.refused  # thrown away by the parser: its seq was never read
    assert await sim.scan_and_wait("ZZZZ98") == ("N", "08")
    assert device.health.state == "up" and device.health.reconnects == 0
    assert numbers(await snapshot(client)) == sorted([number, joined["number"]])


async def test_a_scan_resent_to_a_restarted_service_prints_its_number_and_a_database_outage_refuses(
    start_app: Start, tmp_path: Path, sims: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer to a check-in is lost and the service restarts before the dispenser
    re-sends the scan: the new process answers it from the stored answer, the same number,
    and the booking has one ticket. With the database down a scan is refused (14) once
    the patience ran out, and a scan once it is back checks in."""
    monkeypatch.setattr(supervisor, "CHECK_IN_PATIENCE", 1.0)
    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = await asyncio.to_thread(server.start)
    try:
        port = TcpPort()
        sim = SimDispenser(port, NUMBERING, heartbeat=0.2, resend=0.1)
        await sim.start()
        sims.append(sim)
        config = booking_hall([dispenser_config(port.url)])
        clock = ManualClock(MONDAY_9AM)
        client = await start_app(config, dsn, clock)
        await eventually(lambda: runner(client, "dispenser-1").health.state == "up")
        first, second = await book(client, "09:30"), await book(client, "10:00")
        clock.set(MONDAY_9AM + timedelta(minutes=35))  # both check-ins are open

        sim.ignore_acks = True
        seq = sim.scan(first["code"])
        await eventually(lambda: len(sim.lost) >= 1, what="first answer sent")
        ((command, answered, number),) = sim.lost[:1]
        assert (command, answered) == ("K", seq)
        await client.close()  # the service stops; the dispenser keeps re-sending the scan
        sim.ignore_acks = False
        client = await start_app(config, dsn, clock)
        await eventually(lambda: seq in sim.checked_in, what="answered after the restart")
        assert sim.checked_in[seq] == number and sim.printed == [(seq, number)]
        assert numbers(await snapshot(client)) == [number]

        await asyncio.to_thread(server.stop)
        assert await sim.scan_and_wait(second["code"]) == ("N", "14")
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(30):
            while (answer := await sim.scan_and_wait(second["code"])) == ("N", "14"):
                await asyncio.sleep(0.2)  # the citizen scans again
        assert answer[0] == "K"
        assert numbers(await snapshot(client)) == sorted([number, answer[1]])
    finally:
        await asyncio.to_thread(server.stop)
