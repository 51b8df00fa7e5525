"""Device benchmarks: parser throughput, and device frame to committed event latency.

    python -m bench.devices [--frames 200000] [--tickets 300] [--rounds 3]

1. Parser throughput: a stream of dispenser ticket frames with a little noise between
   them, fed to FrameParser in 4096-byte reads (a busy socket) and in 16-byte reads (a
   9600-baud serial port hands over a few bytes per read); frames per second.
2. Latency: a simulated dispenser on a local TCP port, the real device supervisor, engine
   and PostgreSQL (embedded, or DATABASE_URL); from the moment the frame is written by
   the dispenser until the engine has committed its ticket_issued event; one ticket at a
   time (p50/p99), and bursts of 20 presses at once.

Each figure is the median of the rounds. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from bench.common import banner, create_database, database_server, drop_database, median, percentile
from devices.ports import TcpPort
from devices.sims import SimDispenser
from queue_service.config import AppConfig, parse_config
from queue_service.devices.framing import FrameParser, encode
from queue_service.devices.manager import DeviceManager
from queue_service.domain.clock import SystemClock
from queue_service.domain.events import TICKET_ISSUED, Event
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


def bench_config(port: int) -> AppConfig:
    return parse_config(
        {
            "sites": [
                {
                    "id": "hall",
                    "name": "Bench hall",
                    "timezone": "Asia/Makassar",
                    "hours": {
                        d: ["00:00", "24:00"]
                        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    },
                    "agencies": [{"id": "a", "name": "A"}],
                    "services": [
                        {
                            "code": "Q",
                            "agency": "a",
                            "name_id": "Q",
                            "name_en": "Q",
                            "prefix": "Q",
                            "target_wait_minutes": 15,
                        },
                    ],
                    "counters": [{"id": "c1", "name": "1", "services": ["Q"]}],
                    "devices": [
                        {
                            "id": "d",
                            "kind": "dispenser",
                            "url": f"socket://127.0.0.1:{port}",
                            "buttons": {"1": {"service": "Q", "prefix": "X"}},
                            "backoff_initial": 0.05,
                            "backoff_max": 0.2,
                        },
                    ],
                }
            ]
        }
    )


async def latency_round(dsn: str, tickets: int, burst: int) -> tuple[list[float], list[float]]:
    port = TcpPort()
    await port.start()  # to learn a free port number; the dispenser starts it again
    await port.unplug()
    sim = SimDispenser(port, {1: ("X", 1)}, heartbeat=1.0, resend=5.0)
    config = bench_config(port.port)
    pool = await create_pool(dsn)
    async with pool.acquire() as conn:
        await migrate(conn)
    store = EventStore(pool, dsn)
    engine = Engine(config, store, SystemClock())
    await engine.start()
    sent: dict[str, float] = {}
    committed: dict[str, float] = {}
    arrived = asyncio.Event()

    def on_commit(events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for e in events:
            if e.type == TICKET_ISSUED:
                committed[e.data["number"]] = now
        arrived.set()

    engine.listeners.append(on_commit)
    manager = DeviceManager(config, engine)
    await manager.start()
    runner = manager.runner("hall", "d")
    try:
        await sim.start(timers=False)
        port.send(encode(1, "H"))
        while runner.health.state != "up":
            await asyncio.sleep(0.01)
            port.send(encode(1, "H"))
        single: list[float] = []
        for _ in range(tickets):
            before = time.perf_counter()
            _, number = sim.press(1)
            sent[number] = before
            while number not in committed:
                arrived.clear()
                await arrived.wait()
            single.append(committed[number] - sent[number])
        bursts: list[float] = []
        for _ in range(max(1, tickets // burst)):
            numbers = []
            for _ in range(burst):
                before = time.perf_counter()
                numbers.append(sim.press(1)[1])
                sent[numbers[-1]] = before
            while not all(n in committed for n in numbers):
                arrived.clear()
                await arrived.wait()
            bursts += [committed[n] - sent[n] for n in numbers]
        return single, bursts
    finally:
        await manager.stop()
        await sim.stop()
        await engine.stop()
        await store.close()
        await pool.close()


def ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000


async def main_async(args: argparse.Namespace) -> None:
    banner("device frame parser throughput")
    for read_size in (4096, 16):
        rates = [parser_throughput(args.frames, read_size) for _ in range(args.rounds)]
        print(
            f"  {read_size:>5}-byte reads: {median(rates):>12,.0f} frames/s (median of "
            f"{args.rounds}; {args.frames} frames of ~21 bytes)"
        )
    banner("dispenser frame -> committed event latency (TCP link, PostgreSQL)")
    with database_server() as server:
        p50s, p99s, b50s, b99s = [], [], [], []
        for _ in range(args.rounds):
            dsn = await create_database(server, "bench_devices")
            try:
                single, bursts = await latency_round(dsn, args.tickets, 20)
            finally:
                await drop_database(server, dsn)
            p50s.append(ms(single, 50))
            p99s.append(ms(single, 99))
            b50s.append(ms(bursts, 50))
            b99s.append(ms(bursts, 99))
        print(
            f"  one at a time: p50 {median(p50s):.2f} ms, p99 {median(p99s):.2f} ms "
            f"({args.tickets} tickets x {args.rounds} rounds)"
        )
        print(f"  bursts of 20:  p50 {median(b50s):.2f} ms, p99 {median(b99s):.2f} ms")
    print(f"  at {datetime.now():%Y-%m-%d %H:%M}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
