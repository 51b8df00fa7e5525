"""Start-up replay of one service day of 300 sites (about a million events), and its memory.

    python -m bench replay [--sites 300] [--tickets 780] [--reps 3] [--no-cache] [--no-answers]
                           [--tracemalloc]

1. Generate the day by driving the pure domain (bench/dayload.py; cached on disk).
2. Bulk-load it with COPY into a fresh database (then VACUUM ANALYZE, so hint bits and
   statistics do not make the first repetition special).
3. Baseline, in this process: the same day as Event objects in memory, applied to fresh
   SiteStates (pure apply cost, no database), repeated.
4. Repeat in fresh processes (bench/replay_worker.py): time Engine.start(), RSS before and
   after; the first repetition then times the stages of start one by one.
5. The size of the live state: a deep-sizeof estimate (first repetition) and, with
   --tracemalloc, tracemalloc in one more process (slow); then a cProfile of Engine.start().
6. Unless --no-answers: add the idempotency answer of every issue (what the API stores when
   kiosks send Idempotency-Key) and time Engine.start() once more (it loads the answers of
   the last 48 h too), with tracemalloc of the answers.

Figures are medians; nothing asserts a timing. Target from the issue: start < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from typing import Any

import asyncpg

from bench.common import (
    PYTHON,
    ROOT,
    banner,
    create_database,
    database_server,
    drop_database,
    median,
    spread,
)
from bench.dayload import (
    ANSWER_COLUMNS,
    EVENT_COLUMNS,
    REPLAY_AT,
    Day,
    generate,
    replay_config,
)
from queue_service.store.migrate import migrate

TARGET_SECONDS = 5.0


async def load_events(dsn: str, day: Day) -> dict[str, Any]:
    # Binary COPY: jsonb goes in as JSON text (asyncpg's built-in codec), not the service's
    # text-format codec, which COPY cannot use.
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        began = time.perf_counter()
        await conn.copy_records_to_table(
            "ticket_events", records=day.event_records(), columns=list(EVENT_COLUMNS)
        )
        copy_s = time.perf_counter() - began
        began = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) ticket_events")
        vacuum_s = time.perf_counter() - began
        size = await conn.fetchval("SELECT pg_total_relation_size('ticket_events')")
        heap = await conn.fetchval("SELECT pg_relation_size('ticket_events')")
    finally:
        await conn.close()
    return {
        "copy_s": copy_s,
        "vacuum_s": vacuum_s,
        "total_mb": size / 2**20,
        "heap_mb": heap / 2**20,
    }


async def load_answers(dsn: str, day: Day) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        await conn.copy_records_to_table(
            "idempotency_keys", records=day.answer_records(), columns=list(ANSWER_COLUMNS)
        )
        await conn.execute("VACUUM (ANALYZE) idempotency_keys")
        return time.perf_counter() - began
    finally:
        await conn.close()


async def worker(mode: str, dsn: str, sites: int, *extra: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.replay_worker",
        mode,
        "--dsn",
        dsn,
        "--sites",
        str(sites),
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"replay worker {mode} failed with exit {proc.returncode}")
    return json.loads(stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def baseline_apply(day: Day, sites: int, reps: int) -> tuple[list[float], int]:
    """Pure apply: the day's Event objects (built once, in memory) into fresh SiteStates."""
    from bench.replay_worker import state_factory
    from queue_service.domain.clock import ManualClock
    from queue_service.engine import Engine

    events = day.event_objects()
    engine = Engine(replay_config(sites), None, ManualClock(REPLAY_AT))  # type: ignore[arg-type]
    fresh = state_factory(engine)
    n = sum(len(v) for v in events.values())
    seconds = []
    for _ in range(reps):
        gc.collect()
        began = time.perf_counter()
        for sid, site_events in events.items():
            state = fresh(sid, site_events[0].day)
            for e in site_events:
                state.apply(e)
        seconds.append(time.perf_counter() - began)
    return seconds, n


def _stage_table(r: dict[str, Any], sites: int) -> None:
    fetch = r["fetch_rows_s"]
    total = (
        fetch
        + r["event_objects_s"]
        + r["apply_s"]
        + r["clone_s"]
        + r["load_answers_s"]
        + r["max_seq_s"]
    )
    print("  stages of Engine.start, timed one by one in one fresh process:")
    rows = [
        (f"fetch: {sites} sequential site queries (asyncpg, jsonb decoded)", fetch),
        ("   PostgreSQL execution time of those queries (EXPLAIN ANALYZE)", r["pg_execution_s"]),
        ("   json.loads alone over the same data texts", r["json_loads_s"]),
        ("_event_from_row: build the Event objects", r["event_objects_s"]),
        ("SiteState.apply of every event", r["apply_s"]),
        ("SiteState.clone of every site (the working copy)", r["clone_s"]),
        ("load_answers (idempotency answers of the last 48 h)", r["load_answers_s"]),
        ("max_seq", r["max_seq_s"]),
        ("sum of the top-level stages", total),
    ]
    for label, value in rows:
        print(f"    {label:66s} {value:7.2f} s")
    print("  alternative fetches of the same rows (decode included):")
    if "read_days_s" in r:
        print(
            f"    {'EventStore.read_days, as Engine.start reads now (rows, no Events)':66s} "
            f"{r['read_days_s']:7.2f} s"
        )
    if "replay_rows_s" in r:
        print(
            f"    {'   then SiteState.replay_rows of those rows (the apply of start)':66s} "
            f"{r['replay_rows_s']:7.2f} s"
        )
    print(
        f"    {'one query for every site (WHERE service_day = $1 ORDER BY site_id, seq)':66s} "
        f"{r['fetch_one_query_s']:7.2f} s"
    )
    print(
        f"    {f'{sites} site queries, 8 in flight on the pool':66s} "
        f"{r['fetch_concurrent8_s']:7.2f} s"
    )


async def run(
    server_url: str,
    *,
    sites: int,
    tickets: int,
    reps: int,
    use_cache: bool,
    answers: bool,
    tracemalloc: bool = False,
) -> dict[str, Any]:
    began_all = time.perf_counter()

    def stamp() -> str:
        return f"[{time.perf_counter() - began_all:4.0f} s]"

    banner(f"replay: Engine.start() over one service day of {sites} sites")
    day = await asyncio.to_thread(generate, sites, tickets, use_cache=use_cache)
    how = f"loaded from cache {day.cache}" if day.from_cache else "generated"
    print(
        f"{stamp()} day: {len(day.events):,} events, {len(day.answers):,} tickets issued, "
        f"{how} in {day.generate_seconds:.1f} s"
    )
    print("  by type: " + ", ".join(f"{k} {v:,}" for k, v in day.type_counts().items()))
    dsn = await create_database(server_url, "bench_replay")
    result: dict[str, Any] = {"events": len(day.events)}
    try:
        loaded = await load_events(dsn, day)
        print(
            f"{stamp()} COPY of {len(day.events):,} rows {loaded['copy_s']:.1f} s "
            f"({len(day.events) / loaded['copy_s']:,.0f} rows/s), VACUUM ANALYZE "
            f"{loaded['vacuum_s']:.1f} s; table with indexes {loaded['total_mb']:.0f} MB "
            f"(heap {loaded['heap_mb']:.0f} MB)",
            flush=True,
        )

        base_s, base_n = await asyncio.to_thread(baseline_apply, day, sites, reps)
        print(
            f"{stamp()} baseline, pure apply of {base_n:,} in-memory Events to fresh "
            f"SiteStates: " + ", ".join(f"{x:.2f} s" for x in base_s),
            flush=True,
        )

        runs = []
        for i in range(reps):
            r = await worker("time", dsn, sites, *(["--stages", "--sizes"] if i == 0 else []))
            runs.append(r)
            print(
                f"{stamp()} repetition {i + 1}/{reps}: Engine.start {r['start_s']:.2f} s for "
                f"{r['events']:,} events ({r['events'] / r['start_s']:,.0f} events/s); RSS "
                f"{r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MB",
                flush=True,
            )
        start_s = [r["start_s"] for r in runs]
        events = runs[0]["events"]
        ratio = median(start_s) / median(base_s)
        print("\n summary (median (min..max) over repetitions)")
        print(
            f"  Engine.start():          {spread(start_s, '{:.2f}')} s, "
            f"{events / median(start_s):,.0f} events/s"
        )
        print(
            f"  baseline (pure apply):   {spread(base_s, '{:.2f}')} s, "
            f"{base_n / median(base_s):,.0f} events/s"
        )
        print(
            f"  start / pure apply:      {ratio:.1f}x (the rest: database read, decoding, "
            "Event objects, clone)"
        )
        print(
            f"  target < {TARGET_SECONDS:g} s: "
            f"{'met' if median(start_s) < TARGET_SECONDS else 'NOT met'}"
        )
        _stage_table(runs[0], sites)
        rss_delta = median([r["rss_delta_mb"] for r in runs])
        print(
            f"  RSS: {median([r['rss_before_mb'] for r in runs]):.0f} MB before start, "
            f"{median([r['rss_after_mb'] for r in runs]):.0f} MB after (+{rss_delta:.0f} MB "
            f"for {runs[0]['tickets']:,} tickets), fresh process per repetition",
            flush=True,
        )
        result.update(
            start_s=median(start_s),
            apply_s=median(base_s),
            ratio=ratio,
            rss_delta_mb=rss_delta,
            stages=runs[0],
        )

        gc_off = [
            (await worker("time", dsn, sites, "--gc-off"))["start_s"]
            for _ in range(max(1, reps - 1))
        ]
        print(
            f"{stamp()} experiment: Engine.start with the cyclic GC disabled: "
            f"{', '.join(f'{x:.2f} s' for x in gc_off)} (vs median {median(start_s):.2f} s "
            f"with GC); one full gc.collect() over the replayed state takes "
            f"{median([r['full_gc_s'] for r in runs]) * 1000:.0f} ms",
            flush=True,
        )
        result["start_gc_off_s"] = median(gc_off)
        first = runs[0]
        print(
            f"  estimated size (deep sys.getsizeof, config excluded): committed state "
            f"{first['committed_mb']:.0f} MB + working copy {first['working_mb']:.0f} MB = "
            f"{first['committed_mb'] + first['working_mb']:.0f} MB; "
            f"{first['committed_mb'] * 2**20 / max(1, first['tickets']):,.0f} bytes of "
            "committed state per ticket",
            flush=True,
        )
        if tracemalloc:
            trace = await worker("trace", dsn, sites)
            committed = trace["live_mb"] - trace["working_mb"] - trace["answers_mb"]
            print(
                f"{stamp()} tracemalloc: live Python memory {trace['live_mb']:.0f} MB after "
                f"start = committed state {committed:.0f} MB + working copy "
                f"{trace['working_mb']:.0f} MB; peak during start {trace['peak_mb']:.0f} MB",
                flush=True,
            )
            result["trace"] = trace

        prof = await worker("profile", dsn, sites)
        print(
            f"{stamp()} cProfile of Engine.start() (wall {prof['profiled_wall_s']:.1f} s under "
            "the profiler), top by own time:"
        )
        for row in prof["by_tottime"][:16]:
            print(
                f"    {row['tottime']:6.2f} s own {row['cumtime']:6.2f} s cum "
                f"{row['calls']:>9,}x  {row['func']}"
            )
        result["profile"] = prof

        if answers:
            copy_s = await load_answers(dsn, day)
            print(
                f"\n{stamp()} with idempotency answers: {len(day.answers):,} rows in "
                f"idempotency_keys (one per issued ticket; COPY {copy_s:.1f} s)",
                flush=True,
            )
            a = await worker("time", dsn, sites, "--sizes")
            known = max(a["answers"], a.get("answer_keys", 0))
            print(
                f"{stamp()}  Engine.start(): {a['start_s']:.2f} s (one run) for "
                f"{a['events']:,} events, {a['answers']:,} answers held in memory and "
                f"{a.get('answer_keys', 0):,} keys known; RSS "
                f"{a['rss_before_mb']:.0f} -> {a['rss_after_mb']:.0f} MB; estimated size of "
                f"the answers and keys {a['answers_mb']:.1f} MB = "
                f"{a['answers_mb'] * 2**20 / max(1, known):,.0f} bytes per key"
            )
            print(
                f"  target < {TARGET_SECONDS:g} s: "
                f"{'met' if a['start_s'] < TARGET_SECONDS else 'NOT met'}"
            )
            result.update(
                start_with_answers_s=a["start_s"],
                answers_mb=a["answers_mb"],
                rss_with_answers_mb=a["rss_delta_mb"],
            )
    finally:
        await drop_database(server_url, dsn)
    print(f"{stamp()} replay done")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--tickets", type=int, default=780, help="tickets per site")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="generate the day even when a cached copy exists",
    )
    parser.add_argument(
        "--no-answers",
        dest="answers",
        action="store_false",
        help="skip the run with idempotency answers loaded",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also measure the live state under tracemalloc (slow: ~2 min)",
    )


def main(args: argparse.Namespace, server_url: str | None = None) -> dict[str, Any]:
    async def go(url: str) -> dict[str, Any]:
        return await run(
            url,
            sites=args.sites,
            tickets=args.tickets,
            reps=args.reps,
            use_cache=args.cache,
            answers=args.answers,
            tracemalloc=args.tracemalloc,
        )

    if server_url is not None:
        return asyncio.run(go(server_url))
    with database_server() as url:
        return asyncio.run(go(url))
