"""Benchmark: /metrics render at 300 sites x 20 services x 20 counters.

Prints, as medians over repeated runs in one process:
- the Exposition render time cold (nothing cached) and warm (a scrape after a few events),
  with the worst event-loop lag seen by a 1 ms ticker while it renders;
- the stock prometheus-client render (`generate_latest` of a custom collector yielding the
  same families from the same state) — its event-loop lag is the whole render, because the
  stock aiohttp handler renders on the loop;
- the ratio stock / ours;
- gzip (what /metrics sends to Prometheus): compressed size and compress time per zlib
  level, then whole scrapes (render + compress) plain against gzip as the handler does it
  (in a worker thread), and the alternatives (on the loop in one go; on the loop in slices
  with a yield between), with the render time, the compress time, the bytes and the
  event-loop lag a 1 ms probe saw during the scrape (median and max of its ticks).

Run: .venv/bin/python -m bench.metrics_render [--sites 300] [--repeat 5] [--no-gzip]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest

from queue_service.config import AppConfig, parse_config
from queue_service.domain import commands
from queue_service.domain.clock import ManualClock
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import CounterStatus
from queue_service.engine import Engine
from queue_service.exposition import Exposition
from queue_service.store.event_store import EventStore
from queue_service.stream import StreamHub
from queue_service.web.scrape import GZIP_LEVEL, gzip_compress, gzip_sync

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 WITA


def build_config(sites: int, services: int, counters: int) -> AppConfig:
    letters = [chr(ord("A") + i) for i in range(26)]
    return parse_config(
        {
            "sites": [
                {
                    "id": f"site-{n:03d}",
                    "name": f"MPP {n}",
                    "timezone": "Asia/Makassar",
                    "hours": {d: ["00:00", "23:59"] for d in DAYS},
                    "agencies": [{"id": "a", "name": "Agency"}],
                    "services": [
                        {
                            "code": f"S{k:02d}",
                            "agency": "a",
                            "name_id": f"Layanan {k}",
                            "name_en": f"Service {k}",
                            "prefix": letters[k % 26] + letters[k // 26],
                            "target_wait_minutes": 10 + 5 * (k % 4),
                        }
                        for k in range(services)
                    ],
                    "counters": [
                        {
                            "id": f"c{j:02d}",
                            "name": f"Loket {j}",
                            "services": [f"S{j % services:02d}"],
                        }
                        for j in range(counters)
                    ],
                }
                for n in range(sites)
            ]
        }
    )


def run(state: SiteState, clock: ManualClock, events: list[Any], seq: list[int]) -> None:
    for e in events:
        seq[0] += 1
        state.apply(type(e)(**{**{f: getattr(e, f) for f in e.__slots__}, "seq": seq[0]}))


def populate(engine: Engine, clock: ManualClock, tickets_per_service: int) -> None:
    """A busy morning in every site: tickets issued, most called and served, some waiting."""
    seq = [0]
    for site_id, site in engine.config.sites.items():
        clock.set(START)
        state = SiteState(site, site.service_day(START), engine._new_totals(site_id))
        for cid in site.counters:
            run(state, clock, commands.open_counter(state, clock.now(), counter_id=cid), seq)
        for i in range(tickets_per_service):
            for code in site.services:
                clock.advance(1)
                run(
                    state,
                    clock,
                    commands.issue(state, clock.now(), ticket_id=f"{code}-{i}", service=code),
                    seq,
                )
            if i < tickets_per_service - 3:
                for cid in site.counters:
                    clock.advance(2)
                    if state.counters[cid].ticket_id is not None:
                        run(state, clock, commands.finish(state, clock.now(), counter_id=cid), seq)
                    try:
                        run(
                            state,
                            clock,
                            commands.call_next(state, clock.now(), counter_id=cid),
                            seq,
                        )
                        run(state, clock, commands.start(state, clock.now(), counter_id=cid), seq)
                    except Exception:  # noqa: S112 - an empty queue is part of the day
                        continue
        engine.committed[site_id] = state
    clock.advance(600)


def _totals(states: dict[str, SiteState], attr: str) -> Iterator[tuple[str, Any, Any]]:
    """(site, key, value) of one of the day's totals (`attr` of the state's totals), for
    every site."""
    for site_id, st in states.items():
        assert st.totals is not None
        for key, value in getattr(st.totals, attr).items():
            yield site_id, key, value


class StockCollector:
    """The same families, yielded the stock prometheus-client way."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        states = self.engine.committed
        now = self.engine.clock.now()
        names = (
            ("qms_tickets_issued", "issued"),
            ("qms_tickets_called", "called"),
            ("qms_tickets_called_within_target", "called_within"),
            ("qms_tickets_recalled", "recalled"),
        )
        for name, attr in names:
            fam = CounterMetricFamily(name, name, labels=["site", "service"])
            for site_id, code, v in _totals(states, attr):
                fam.add_metric([site_id, code], v)
            yield fam
        closed = CounterMetricFamily(
            "qms_tickets_closed", "closed", labels=["site", "service", "outcome"]
        )
        for site_id, (code, outcome), v in _totals(states, "closed"):
            closed.add_metric([site_id, code, outcome], v)
        yield closed
        for name, attr in (
            ("qms_ticket_wait_seconds", "wait"),
            ("qms_ticket_walk_seconds", "walk"),
            ("qms_ticket_service_seconds", "service"),
        ):
            hist = HistogramMetricFamily(name, name, labels=["site", "service"])
            for site_id, code, h in _totals(states, attr):
                cum = h.cumulative()
                buckets = [(str(float(b)), c) for b, c in zip(h.bounds, cum, strict=False)]
                buckets.append(("+Inf", h.count))
                hist.add_metric([site_id, code], buckets, h.sum)
            yield hist
        for name, attr in (
            ("qms_loket_served", "counter_served"),
            ("qms_loket_busy_seconds", "counter_busy"),
        ):
            fam = CounterMetricFamily(name, name, labels=["site", "counter"])
            for site_id, cid, v in _totals(states, attr):
                fam.add_metric([site_id, cid], v)
            yield fam
        gauges = {
            n: GaugeMetricFamily(n, n, labels=["site", "service"])
            for n in (
                "qms_queue_waiting_tickets",
                "qms_queue_oldest_wait_seconds",
                "qms_queue_open_counters",
                "qms_service_target_wait_seconds",
            )
        }
        for site_id, st in states.items():
            for code, q in st.queues.items():
                waiting = list(q.waiting())
                oldest = min((t.enqueued_at for t in waiting), default=None)
                gauges["qms_queue_waiting_tickets"].add_metric([site_id, code], len(waiting))
                gauges["qms_queue_oldest_wait_seconds"].add_metric(
                    [site_id, code], (now - oldest).total_seconds() if oldest else 0
                )
                gauges["qms_queue_open_counters"].add_metric(
                    [site_id, code], len(st.open_counters(code))
                )
                gauges["qms_service_target_wait_seconds"].add_metric(
                    [site_id, code], q.service.target_wait_seconds
                )
        yield from gauges.values()
        cgauges = {
            n: GaugeMetricFamily(n, n, labels=["site", "counter"])
            for n in ("qms_loket_open", "qms_loket_serving")
        }
        for site_id, st in states.items():
            for cid, c in st.counters.items():
                cgauges["qms_loket_open"].add_metric([site_id, cid], c.state == CounterStatus.OPEN)
                cgauges["qms_loket_serving"].add_metric([site_id, cid], c.ticket_id is not None)
        yield from cgauges.values()


async def measure(render: Any) -> tuple[float, float, int]:
    """(render seconds, worst loop lag seconds, bytes) with a 1 ms ticker running."""
    lag = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal lag
        while not stop:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = max(lag, time.perf_counter() - before - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    lag = 0.0
    began = time.perf_counter()
    body = await render()
    elapsed = time.perf_counter() - began
    await asyncio.sleep(0.005)
    stop = True
    await task
    return elapsed, lag, len(body)


async def main(sites: int, repeat: int, render: bool, gzip: bool) -> None:
    clock = ManualClock(START)
    config = build_config(sites, 20, 20)
    engine = Engine(config, cast(EventStore, None), clock)
    t0 = time.perf_counter()
    populate(engine, clock, tickets_per_service=12)
    print(f"populated {sites} sites in {time.perf_counter() - t0:.1f} s")
    exposition = Exposition(engine, StreamHub())
    if render:
        await render_vs_stock(engine, clock, exposition, repeat)
    if gzip:
        await gzip_figures(engine, clock, exposition, repeat)


def touch(engine: Engine, clock: ManualClock) -> None:
    """A few events in a few sites between scrapes: the rest is served from cache."""
    for site_id in list(engine.committed)[:5]:
        st = engine.committed[site_id]
        code = next(iter(st.site.services))
        st.apply(commands.issue(st, clock.advance(1), ticket_id=f"x{clock.now()}", service=code)[0])


async def render_vs_stock(
    engine: Engine, clock: ManualClock, exposition: Exposition, repeat: int
) -> None:
    registry = CollectorRegistry()
    registry.register(StockCollector(engine))

    async def stock() -> bytes:
        return generate_latest(registry)  # on the loop, as the stock aiohttp handler does

    cold, warm, stock_runs = [], [], []
    series = 0
    for _ in range(repeat):
        exposition._cache.clear()
        exposition._gauge_cache.clear()
        r = await measure(exposition.render)
        cold.append(r)
        touch(engine, clock)
        warm.append(await measure(exposition.render))
        stock_runs.append(await measure(stock))
    body = await exposition.render()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

    def med(rows: list[tuple[float, float, int]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(f"series in the exposition: {series}, size {len(body) / 1e6:.1f} MB")
    print(
        f"ours, cold:  render {med(cold, 0) * 1000:7.1f} ms   max loop lag "
        f"{med(cold, 1) * 1000:6.1f} ms"
    )
    print(
        f"ours, warm:  render {med(warm, 0) * 1000:7.1f} ms   max loop lag "
        f"{med(warm, 1) * 1000:6.1f} ms"
    )
    print(
        f"stock:       render {med(stock_runs, 0) * 1000:7.1f} ms   max loop lag "
        f"{med(stock_runs, 1) * 1000:6.1f} ms  (same families, fewer gauges)"
    )
    print(
        f"stock / ours: cold {med(stock_runs, 0) / med(cold, 0):.1f}x, "
        f"warm {med(stock_runs, 0) / med(warm, 0):.1f}x  (medians of {repeat} runs)"
    )


# -- gzip --------------------------------------------------------------------------------

LEVELS = (1, 2, 3, 4, 5, 6, 9)
SLICE_BYTES = 64 * 1024
SLICE_YIELD_SECONDS = 0.005  # as the exposition's own YIELD_EVERY_SECONDS

Compress = Callable[[bytes], Awaitable[bytes]]
T = TypeVar("T")


async def gzip_inline(body: bytes) -> bytes:
    """On the loop in one go: the loop waits for the whole compression."""
    return gzip_sync(body)


async def gzip_sliced(body: bytes) -> bytes:
    """On the loop, 64 KiB at a time, yielding to the loop every 5 ms."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    view = memoryview(body)
    parts = []
    last = time.perf_counter()
    for start in range(0, len(body), SLICE_BYTES):
        parts.append(compressor.compress(view[start : start + SLICE_BYTES]))
        if time.perf_counter() - last > SLICE_YIELD_SECONDS:
            await asyncio.sleep(0)
            last = time.perf_counter()
    parts.append(compressor.flush())
    return b"".join(parts)


class Scrape:
    """One scrape's figures: render and compress seconds, bytes sent, the probe's tick lags
    over the whole scrape and over the compression run alone (same body, nothing else)."""

    def __init__(
        self, render: float, compress: float, size: int, lags: list[float], alone: list[float]
    ) -> None:
        self.render, self.compress, self.size = render, compress, size
        self.total = render + compress
        self.lag_median = statistics.median(lags) if lags else 0.0
        self.lag_max = max(lags, default=0.0)
        self.alone_median = statistics.median(alone) if alone else 0.0
        self.alone_max = max(alone, default=0.0)


async def probed(work: Callable[[], Awaitable[T]]) -> tuple[T, list[float]]:
    """Run `work` while a 1 ms ticker records how late each of its ticks is."""
    lags: list[float] = []
    stop = False

    async def probe() -> None:
        while not stop:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    lags.clear()
    result = await work()
    await asyncio.sleep(0.002)  # the tick the work held up reports its lag
    stop = True
    await task
    return result, lags


async def scrape(exposition: Exposition, compress: Compress | None) -> Scrape:
    times: list[float] = []

    async def work() -> bytes:
        began = time.perf_counter()
        body = await exposition.render()
        rendered = time.perf_counter()
        if compress is not None:
            body = await compress(body)
        times.extend((rendered - began, time.perf_counter() - rendered))
        return body

    body, lags = await probed(work)
    alone: list[float] = []
    if compress is not None:
        plain = await exposition.render()
        _, alone = await probed(lambda: compress(plain))
    return Scrape(times[0], times[1], len(body), lags, alone)


async def gzip_figures(
    engine: Engine, clock: ManualClock, exposition: Exposition, repeat: int
) -> None:
    touch(engine, clock)
    body = await exposition.render()
    print(f"\ngzip by zlib level, warm body of {len(body) / 1e6:.1f} MB (medians of {repeat}):")
    # CPU time of the compressing thread as well as wall time: on a busy machine the wall
    # time includes waiting for a core, the CPU time does not.
    print("| level | gzip bytes | plain / gzip | compress ms (wall) | CPU ms | MB/s (CPU) |")
    print("|---|---|---|---|---|---|")
    wall: dict[int, list[float]] = {level: [] for level in LEVELS}
    cpu: dict[int, list[float]] = {level: [] for level in LEVELS}
    sizes: dict[int, int] = {}
    for _ in range(repeat):
        for level in LEVELS:  # alternated, as the scrapes below
            began, began_cpu = time.perf_counter(), time.thread_time()
            sizes[level] = len(gzip_sync(body, level))
            cpu[level].append(time.thread_time() - began_cpu)
            wall[level].append(time.perf_counter() - began)
    for level in LEVELS:
        w, c, size = statistics.median(wall[level]), statistics.median(cpu[level]), sizes[level]
        print(
            f"| {level}{' (used)' if level == GZIP_LEVEL else ''} | {size / 1e6:.2f} MB "
            f"| {len(body) / size:.1f}x | {w * 1000:.0f} | {c * 1000:.0f} "
            f"| {len(body) / c / 1e6:.0f} |"
        )

    ways: dict[str, Compress | None] = {
        "plain": None,
        f"gzip {GZIP_LEVEL}, worker thread (the handler)": gzip_compress,
        f"gzip {GZIP_LEVEL}, on the loop in one go": gzip_inline,
        f"gzip {GZIP_LEVEL}, on the loop in 64 KiB slices, yield every 5 ms": gzip_sliced,
    }
    runs: dict[str, list[Scrape]] = {name: [] for name in ways}
    cold: dict[str, list[Scrape]] = {"plain": [], "gzip": []}
    for _ in range(repeat):
        # Alternated within each round, so a drift of the machine's speed hits them alike.
        for name, compress in ways.items():
            touch(engine, clock)
            runs[name].append(await scrape(exposition, compress))
        for name, compress in (("plain", None), ("gzip", gzip_compress)):
            exposition._cache.clear()
            exposition._gauge_cache.clear()
            cold[name].append(await scrape(exposition, compress))

    def med(rows: list[Scrape], attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in rows))

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    def row(name: str, rows: list[Scrape], base: list[Scrape]) -> str:
        return (
            f"| {name} | {ms(med(rows, 'render'))} | {ms(med(rows, 'compress'))} "
            f"| {ms(med(rows, 'total'))} | {med(rows, 'size') / 1e6:.2f} MB "
            f"| {ms(med(rows, 'lag_median'))} / {ms(med(rows, 'lag_max'))} "
            f"({ms(max(r.lag_max for r in rows))}) "
            f"| {ms(med(rows, 'alone_median'))} / {ms(med(rows, 'alone_max'))} "
            f"| {med(rows, 'total') / med(base, 'total'):.2f}x "
            f"| {med(rows, 'lag_max') / med(base, 'lag_max'):.2f}x |"
        )

    print(
        f"\nscrapes at {len(engine.committed)} sites, render + compress (medians of {repeat}; "
        "loop lag: how late the ticks of a 1 ms probe were, median / max of the ticks, "
        "worst run in brackets; over the whole scrape, and over the compression run alone):"
    )
    print(
        "| scrape | render ms | compress ms | total ms | bytes sent "
        "| loop lag, scrape: median / max ms | loop lag, compressing: median / max ms "
        "| total / plain | lag max / plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    plain = runs["plain"]
    for name, rows in runs.items():
        print(row(f"warm, {name}", rows, plain))
    print(row("cold, plain", cold["plain"], cold["plain"]))
    print(row(f"cold, gzip {GZIP_LEVEL}, worker thread", cold["gzip"], cold["plain"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-gzip", action="store_true", help="skip the gzip figures")
    parser.add_argument("--gzip-only", action="store_true", help="only the gzip figures")
    args = parser.parse_args()
    asyncio.run(main(args.sites, args.repeat, not args.gzip_only, not args.no_gzip))
