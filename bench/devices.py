"""Device benchmarks: parser throughput, line noise per link kind, frame-to-commit latency.

    python -m bench.devices [--frames 200000] [--tickets 300] [--rounds 3]
                            [--noise-mib 3] [--baseline-kib 128] [--kinds tty,socket,rfc2217]

1. Parser throughput: a stream of dispenser ticket frames with a little noise between
   them, fed to FrameParser in 4096-byte reads (a busy socket) and in 16-byte reads (a
   9600-baud serial port hands over a few bytes per read); frames per second.
2. Line noise through a link, per link kind (tty: a pty; socket: raw TCP; rfc2217: the
   RFC 2217 server of devices/ over a pty): a device in a child process writes random
   bytes as fast as the link takes them; the service's link reads them and FrameParser
   discards them. Bytes/s, this process's CPU per MiB (reader thread and event loop; the
   device's side is the child's), the worst event-loop lag; against the baseline in the
   same run: the link before issue 15 (stock pyserial, `read(in_waiting or 1)`, one
   delivery to the loop per read), on --baseline-kib of noise (it is slow on socket://).
3. --noise-mib of noise, then one dispenser ticket frame, through the real supervisor,
   engine and PostgreSQL: from the first byte of noise to the ticket's commit.
4. Latency per link kind: a simulated dispenser, the real device supervisor, engine and
   PostgreSQL (embedded, or DATABASE_URL); from the moment the frame is written by the
   dispenser until the engine has committed its ticket_issued event; one ticket at a
   time (p50/p99), and bursts of 20 presses at once.

Each figure is the median of the rounds. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import resource
import socket
import tempfile
import threading
import time
import tty
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import serial

from bench.common import (
    banner,
    database_server,
    fresh_database,
    hall_config,
    median,
    percentile,
)
from devices.framing import FrameParser, encode
from devices.link import READ_TIMEOUT, SerialLink
from devices.manager import DeviceManager
from devices.sim.hardware import SimDispenser
from devices.sim.ports import PtyPort, SimPort, TcpPort
from devices.sim.rfc2217 import Rfc2217Server
from devices.supervisor import DeviceRunner
from queue_service.config import AppConfig
from queue_service.domain.clock import SystemClock
from queue_service.domain.events import Event
from queue_service.domain.site import DeviceConfig
from queue_service.domain.vocab import DeviceKind, EventType
from queue_service.engine import Engine
from queue_service.store.db import create_pool
from queue_service.store.event_store import EventStore
from queue_service.store.migrate import migrate


def parser_throughput(frames: int, read_size: int) -> float:
    stream = b"".join(
        encode(1, "T", f"1;Q{n % 999 + 1:03d};{n}") + (b"\x00\xff" if n % 10 == 0 else b"")
        for n in range(frames)
    )
    chunks = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    parser = FrameParser()
    began = time.perf_counter()
    found = 0
    for chunk in chunks:
        found += len(parser.feed(chunk))
    elapsed = time.perf_counter() - began
    assert found == frames, (found, frames)
    return frames / elapsed


SITE = "site-000"  # the one site of bench.common.hall_config


def bench_config(url: str) -> AppConfig:
    """One site, one service, one counter, and a dispenser at `url` whose button 1 issues
    the service's tickets as X001, X002, ..."""
    dispenser = {
        "id": "d",
        "kind": DeviceKind.DISPENSER,
        "url": url,
        "buttons": {"1": {"service": "S00", "prefix": "X"}},
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    return hall_config(sites=1, services=1, counters=1, devices=[dispenser])


class Commits:
    """When each ticket (by number) was committed, as the engine's listener sees it."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.arrived = asyncio.Event()

    def __call__(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for e in events:
            if e.type == EventType.TICKET_ISSUED:
                self.at[e.data["number"]] = now
        self.arrived.set()

    async def wait_for(self, *numbers: str) -> None:
        while not all(n in self.at for n in numbers):
            self.arrived.clear()
            await self.arrived.wait()


@contextlib.asynccontextmanager
async def dispenser_service(dsn: str, url: str) -> AsyncIterator[tuple[DeviceRunner, Commits]]:
    """The service (engine on PostgreSQL, device supervisor) of `bench_config(url)`: the
    dispenser's runner and the commits of its tickets."""
    config = bench_config(url)
    pool = await create_pool(dsn)
    async with pool.acquire() as conn:
        await migrate(conn)
    store = EventStore(pool, dsn)
    engine = Engine(config, store, SystemClock())
    await engine.start()
    commits = Commits()
    engine.listeners.append(commits)
    manager = DeviceManager(config, engine)
    await manager.start()
    try:
        yield manager.runner(SITE, "d"), commits
    finally:
        await manager.stop()
        await engine.stop()
        await store.close()
        await pool.close()


@contextlib.asynccontextmanager
async def sim_port(kind: str, directory: Path) -> AsyncIterator[tuple[SimPort, Callable[[], str]]]:
    """The simulated device's port for a link kind, and (once started) the service's URL."""
    if kind == "socket":
        tcp = TcpPort()
        await tcp.start()  # to learn a free port number; the dispenser starts it again
        await tcp.unplug()
        yield tcp, lambda: tcp.url
        return
    pty = PtyPort(directory / f"dispenser-{kind}")
    if kind == "tty":
        yield pty, lambda: pty.url
        return
    servers: list[Rfc2217Server] = []

    def url() -> str:
        servers.append(Rfc2217Server(str(pty.tty_name)).start())
        return servers[0].url

    try:
        yield pty, url
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)


async def latency_round(
    dsn: str, kind: str, tickets: int, burst: int
) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="antrian-bench-dev-") as tmp:
        async with sim_port(kind, Path(tmp)) as (port, url_of):
            sim = SimDispenser(port, {1: ("X", 1)}, heartbeat=1.0, resend=5.0)
            await sim.start(timers=False)
            try:
                async with dispenser_service(dsn, url_of()) as (runner, commits):
                    return await _latency(sim, port, runner, commits, tickets, burst)
            finally:
                await sim.stop()


async def _latency(
    sim: SimDispenser,
    port: SimPort,
    runner: DeviceRunner,
    commits: Commits,
    tickets: int,
    burst: int,
) -> tuple[list[float], list[float]]:
    sent: dict[str, float] = {}
    port.send(encode(1, "H"))
    while runner.health.state != "up":
        await asyncio.sleep(0.01)
        port.send(encode(1, "H"))
    single: list[float] = []
    for _ in range(tickets):
        before = time.perf_counter()
        _, number = sim.press(1)
        sent[number] = before
        await commits.wait_for(number)
        single.append(commits.at[number] - sent[number])
    bursts: list[float] = []
    for _ in range(max(1, tickets // burst)):
        numbers = []
        for _ in range(burst):
            before = time.perf_counter()
            numbers.append(sim.press(1)[1])
            sent[numbers[-1]] = before
        await commits.wait_for(*numbers)
        bursts += [commits.at[n] - sent[n] for n in numbers]
    return single, bursts


# -- line noise --------------------------------------------------------------------------

KINDS = ("tty", "socket", "rfc2217")
MIB = 1 << 20


def _device_side(kind: str, directory: str, conn: Connection) -> None:
    """The device, in a child process: serves `kind`, sends its URL, then on ("noise", n,
    frame) writes n random bytes and the frame, blocking as the link's flow control says,
    and answers ("sent",). Whatever the service writes back is read and dropped."""
    slave = master = -1
    server: Rfc2217Server | None = None
    clients: list[socket.socket] = []

    def drain(read: Callable[[], bytes]) -> None:
        with contextlib.suppress(OSError):
            while read():
                pass

    if kind == "socket":
        listener = socket.create_server(("127.0.0.1", 0))
        conn.send(("url", f"socket://127.0.0.1:{listener.getsockname()[1]}"))

        def accept() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                clients.append(client)
                threading.Thread(
                    target=drain, args=(lambda c=client: c.recv(65536),), daemon=True
                ).start()

        threading.Thread(target=accept, daemon=True).start()

        def write(data: bytes) -> None:
            while not clients:
                time.sleep(0.01)
            clients[-1].sendall(data)
    else:
        master, slave = os.openpty()
        tty.setraw(slave)
        link = Path(directory) / f"device-{kind}"
        link.symlink_to(os.ttyname(slave))
        threading.Thread(target=drain, args=(lambda: os.read(master, 65536),), daemon=True).start()
        if kind == "rfc2217":
            server = Rfc2217Server(os.ttyname(slave)).start()
            conn.send(("url", server.url))
        else:
            conn.send(("url", str(link)))

        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(master, view[:65536]) :]

    try:
        while True:
            command = conn.recv()
            if command[0] == "stop":
                break
            _, size, frame = command
            noise = random.Random(size).randbytes(size)
            write(noise)
            if frame:
                write(frame)
            conn.send(("sent",))
    finally:
        if server is not None:
            server.stop()
        for client in clients:
            client.close()
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


class Device:
    """The child process holding the device end of one link kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._tmp = tempfile.TemporaryDirectory(prefix="antrian-bench-noise-")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_device_side, args=(kind, self._tmp.name, child), daemon=True
        )
        self._process.start()
        _, self.url = self._conn.recv()

    def send_noise(self, size: int, frame: bytes = b"") -> None:
        self._conn.send(("noise", size, frame))

    async def wait_sent(self) -> None:
        await asyncio.to_thread(self._conn.recv)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop",))
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
        self._tmp.cleanup()


def cpu_seconds() -> float:
    """CPU time of this process, every thread (the device's side runs in a child)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoopLag:
    """The worst lateness of a 5 ms timer on the event loop while it runs."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - due)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _stock_open_port(device: DeviceConfig) -> Any:
    """The port as before issue 15: pyserial's own classes (RFC 2217 queues byte by byte)."""
    port = serial.serial_for_url(
        device.url,
        baudrate=9600,
        timeout=READ_TIMEOUT,
        write_timeout=None if device.url.startswith("rfc2217://") else 5.0,
    )
    return port


class PerByteLink(SerialLink):
    """The baseline: the link before issue 15 (stock pyserial, `read(in_waiting or 1)`:
    one byte at a time on socket://), each read delivered to the loop on its own."""

    open_port = staticmethod(_stock_open_port)

    def reader(self) -> Callable[[], bytes]:
        port = self.port

        def read() -> bytes:
            data: bytes = port.read(port.in_waiting or 1)
            return data

        return read

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            await self._ready.wait()
        return self._take(1)  # one delivery at a time, as before


@dataclass
class NoiseFigures:
    rate: float  # bytes/s
    cpu_per_mib: float  # s
    lag: float  # s


async def noise_through_link(
    device: Device, link_class: type[SerialLink], size: int
) -> NoiseFigures:
    worker = ThreadPoolExecutor(1)
    link = await link_class.open(DeviceConfig("bench", DeviceKind.DISPENSER, device.url), worker)
    parser = FrameParser()
    try:
        await asyncio.sleep(0.2)  # the connection settles (RFC 2217 negotiation)
        parser.feed(link.drain())
        began_cpu, began = cpu_seconds(), time.perf_counter()
        with LoopLag() as lag:
            device.send_noise(size)
            while parser.stats.discarded_bytes + parser.buffered < size:
                parser.feed(await link.read())
        elapsed, cpu = time.perf_counter() - began, cpu_seconds() - began_cpu
        await device.wait_sent()
    finally:
        await link.close()
        worker.shutdown()
    return NoiseFigures(size / elapsed, cpu / (size / MIB), lag.worst)


async def noise_then_ticket(dsn: str, device: Device, size: int, rounds: int) -> list[NoiseFigures]:
    """`size` bytes of noise then one ticket frame, through the service, `rounds` times."""
    out = []
    async with dispenser_service(dsn, device.url) as (runner, commits):
        for _ in range(1000):  # up to 10 s
            if runner.health.connected:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        for n in range(1, rounds + 1):
            number = f"X{n:03d}"
            frame = encode(1, "T", f"1;{number};{n}")
            began_cpu, began = cpu_seconds(), time.perf_counter()
            with LoopLag() as lag:
                device.send_noise(size, frame)
                await commits.wait_for(number)
            elapsed, cpu = commits.at[number] - began, cpu_seconds() - began_cpu
            await device.wait_sent()
            out.append(NoiseFigures(size / elapsed, cpu / (size / MIB), lag.worst))
        assert runner.health.reconnects == 0, "the link was reset"
    return out


def ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000


async def main_async(args: argparse.Namespace) -> None:
    kinds = [k for k in args.kinds.split(",") if k]
    banner("device frame parser throughput")
    for read_size in (4096, 16):
        rates = [parser_throughput(args.frames, read_size) for _ in range(args.rounds)]
        print(
            f"  {read_size:>5}-byte reads: {median(rates):>12,.0f} frames/s (median of "
            f"{args.rounds}; {args.frames} frames of ~21 bytes)"
        )

    size, base = int(args.noise_mib * MIB), args.baseline_kib * 1024
    banner(
        f"line noise through a link and the frame parser ({size / MIB:g} MiB; baseline: "
        f"the link before issue 15, {base // 1024} KiB)"
    )
    print(
        f"  {'link':<8} {'chunked':>12} {'CPU/MiB':>9} {'lag max':>8}   "
        f"{'baseline':>12} {'CPU/MiB':>9} {'lag max':>8}   CPU ratio"
    )
    for kind in kinds:
        device = Device(kind)
        try:
            new = [await noise_through_link(device, SerialLink, size) for _ in range(args.rounds)]
            old = [await noise_through_link(device, PerByteLink, base) for _ in range(args.rounds)]
        finally:
            device.close()
        n_rate, n_cpu = median([f.rate for f in new]), median([f.cpu_per_mib for f in new])
        o_rate, o_cpu = median([f.rate for f in old]), median([f.cpu_per_mib for f in old])
        print(
            f"  {kind:<8} {n_rate / MIB:>8.1f} MiB/s {n_cpu * 1000:>6.0f} ms "
            f"{median([f.lag for f in new]) * 1000:>5.1f} ms   "
            f"{o_rate / MIB:>8.3f} MiB/s {o_cpu * 1000:>6.0f} ms "
            f"{median([f.lag for f in old]) * 1000:>5.1f} ms   {o_cpu / n_cpu:>6.0f}x less"
        )

    with database_server() as server:
        banner(
            f"{size / MIB:g} MiB of noise, then a ticket frame -> committed (service, PostgreSQL)"
        )
        for kind in kinds:
            device = Device(kind)
            try:
                async with fresh_database(server, "bench_devices") as dsn:
                    figures = await noise_then_ticket(dsn, device, size, args.rounds)
            finally:
                device.close()
            delay = median([size / f.rate for f in figures])
            print(
                f"  {kind:<8} ticket committed {delay * 1000:>6.0f} ms after the first byte of "
                f"noise ({median([f.rate for f in figures]) / MIB:.1f} MiB/s, "
                f"{median([f.cpu_per_mib for f in figures]) * 1000:.0f} ms CPU per MiB, "
                f"loop lag max {median([f.lag for f in figures]) * 1000:.1f} ms; link not reset)"
            )

        banner("dispenser frame -> committed event latency (PostgreSQL), per link kind")
        for kind in kinds:
            p50s, p99s, b50s, b99s = [], [], [], []
            for _ in range(args.rounds):
                async with fresh_database(server, "bench_devices") as dsn:
                    single, bursts = await latency_round(dsn, kind, args.tickets, 20)
                p50s.append(ms(single, 50))
                p99s.append(ms(single, 99))
                b50s.append(ms(bursts, 50))
                b99s.append(ms(bursts, 99))
            print(
                f"  {kind:<8} one at a time: p50 {median(p50s):.2f} ms, p99 {median(p99s):.2f} ms"
                f"; bursts of 20: p50 {median(b50s):.2f} ms, p99 {median(b99s):.2f} ms "
                f"({args.tickets} tickets x {args.rounds} rounds)"
            )
    print(f"  at {datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noise-mib", type=float, default=3.0)
    parser.add_argument("--baseline-kib", type=int, default=128)
    parser.add_argument("--kinds", default=",".join(KINDS), help="tty,socket,rfc2217")
    asyncio.run(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
