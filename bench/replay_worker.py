"""One replay measurement in a fresh process: `python -m bench.replay_worker MODE --dsn ...`.

A fresh process per measurement keeps RSS figures honest (nothing left over from generating
the day or from an earlier repetition). Prints one JSON object on the last stdout line.

modes:
  time     Engine.start() timed, RSS before/after; with --stages then, in the same process,
           the stages of start one by one (server-side query time, fetch, JSON decoding,
           Event construction, apply, clone, answers) and two alternative fetches; with
           --sizes, a deep-sizeof estimate of the state (committed, working copy, answers).
  trace    Engine.start() under tracemalloc: live Python memory of the replayed state.
  profile  Engine.start() under cProfile: where the time goes, by function.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from bench.common import MB, rss_bytes
from bench.dayload import REPLAY_AT, replay_config
from queue_service.domain.clock import ManualClock
from queue_service.domain.state import SiteState
from queue_service.engine import IDEMPOTENCY_WINDOW, Engine
from queue_service.store.db import create_pool
from queue_service.store.event_store import _EVENT_COLUMNS, EventStore, _event_from_row

QUERY = (
    f"SELECT {_EVENT_COLUMNS} FROM ticket_events "  # noqa: S608 - constant
    "WHERE site_id = $1 AND service_day = $2 ORDER BY seq"
)
QUERY_TEXT_ONLY = (
    "SELECT data::text FROM ticket_events WHERE site_id = $1 AND service_day = $2 ORDER BY seq"
)


def state_factory(engine: Engine) -> Callable[[str, date], SiteState]:
    """Fresh SiteStates made as Engine.start makes them (with the engine's totals, if any)."""
    config = engine.config
    new_totals = getattr(engine, "_new_totals", None)
    if new_totals is None:
        return lambda sid, day: SiteState(config.sites[sid], day)
    return lambda sid, day: SiteState(config.sites[sid], day, new_totals(sid))


async def _engine(dsn: str, sites: int) -> tuple[Engine, Any]:
    config = replay_config(sites)
    pool = await create_pool(dsn)
    return Engine(config, EventStore(pool, dsn), ManualClock(REPLAY_AT)), pool


async def _close(engine: Engine, pool: Any) -> None:
    await engine.stop()
    await engine.store.close()
    await pool.close()


def _timed(began: float) -> float:
    return round(time.perf_counter() - began, 4)


def deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes of every object reachable from roots and not in seen (sys.getsizeof each once).

    Classes, functions and modules are not followed; objects already in `seen` (the shared
    configuration, or state counted before) are not counted again.
    """
    total = 0
    stack = list(roots)
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        else:
            for klass in type(obj).__mro__:
                for slot in getattr(klass, "__slots__", ()):
                    if hasattr(obj, slot):
                        stack.append(getattr(obj, slot))
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
    return total


def sizes(engine: Engine) -> dict[str, float]:
    """Estimated bytes of the live state: committed, the working copy's extra, the answers."""
    seen: set[int] = set()
    deep_size([engine.config], seen)  # shared configuration: not counted
    committed = deep_size(engine.committed.values(), seen)
    working = deep_size(engine.working.values(), seen)
    # Recent answers (JSON text) and, since the idempotency rework, the key hashes of 48 h.
    answers = deep_size([engine.answers.recent, engine.answers.keys], seen)
    return {"committed_mb": committed / MB, "working_mb": working / MB, "answers_mb": answers / MB}


async def mode_time(
    dsn: str, sites: int, stages: bool, want_sizes: bool, gc_off: bool = False
) -> dict[str, Any]:
    engine, pool = await _engine(dsn, sites)
    gc.collect()
    rss0 = rss_bytes()
    if gc_off:
        gc.disable()  # experiment: the cyclic collector's share of start-up
    began = time.perf_counter()
    await engine.start()
    out: dict[str, Any] = {
        "start_s": _timed(began),
        "events": engine.stats.replayed_events,
        "answers": len(engine.answers.recent),
        "answer_keys": len(engine.answers.keys),
        "gc_off": gc_off,
    }
    gc.enable()
    began = time.perf_counter()
    gc.collect()  # a full collection that traverses the whole replayed state
    out["full_gc_s"] = _timed(began)
    rss1 = rss_bytes()
    out.update(
        rss_before_mb=rss0 / MB,
        rss_after_mb=rss1 / MB,
        rss_delta_mb=(rss1 - rss0) / MB,
        tickets=sum(len(s.tickets) for s in engine.committed.values()),
    )
    if want_sizes:
        began = time.perf_counter()
        out.update(sizes(engine))
        out["sizes_s"] = _timed(began)
    await engine.stop()
    if stages:
        out.update(await _stages(engine, pool))
    await _close(engine, pool)
    return out


async def _stages(engine: Engine, pool: Any) -> dict[str, Any]:
    """The stages of Engine.start, one by one, in this process."""
    out: dict[str, Any] = {}
    config = engine.config
    day = {sid: site.service_day(REPLAY_AT) for sid, site in config.sites.items()}
    async with pool.acquire() as conn:
        began = time.perf_counter()
        executed = 0.0
        for sid in config.sites:
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {QUERY}", sid, day[sid]
            )
            plan = json.loads(plan) if isinstance(plan, str) else plan
            executed += plan[0]["Execution Time"] / 1000
        out["pg_execution_s"] = round(executed, 4)  # server-side time of the site queries
        out["pg_explain_wall_s"] = _timed(began)
        began = time.perf_counter()
        rows_by_site = {sid: await conn.fetch(QUERY, sid, day[sid]) for sid in config.sites}
        out["fetch_rows_s"] = _timed(began)  # asyncpg fetch incl. jsonb -> json.loads
        began = time.perf_counter()
        texts = [
            r[0] for sid in config.sites for r in await conn.fetch(QUERY_TEXT_ONLY, sid, day[sid])
        ]
        began = time.perf_counter()
        for text in texts:
            json.loads(text)
        out["json_loads_s"] = _timed(began)  # json.loads alone over the same data texts
        del texts
        the_day = next(iter(day.values()))
        began = time.perf_counter()
        await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM ticket_events "  # noqa: S608
            "WHERE service_day = $1 ORDER BY site_id, seq",
            the_day,
        )
        out["fetch_one_query_s"] = _timed(began)  # alternative: one query for every site

    if hasattr(engine.store, "read_days"):  # the fetch Engine.start uses since the rework
        gc.disable()
        began = time.perf_counter()
        replay_batches = [batch async for batch in engine.store.read_days(day)]
        out["read_days_s"] = _timed(began)
        gc.enable()
        if hasattr(SiteState, "replay_rows"):  # start's fast path: rows applied, no Events
            from itertools import groupby
            from operator import itemgetter

            from queue_service.domain.events import ROW_SITE

            fresh_rows = state_factory(engine)
            replayed = {sid: fresh_rows(sid, day[sid]) for sid in config.sites}
            gc.collect()
            gc.disable()
            began = time.perf_counter()
            for batch in replay_batches:
                for sid, run in groupby(batch, itemgetter(ROW_SITE)):
                    replayed[sid].replay_rows(run)
            out["replay_rows_s"] = _timed(began)
            gc.enable()
            del replayed
        del replay_batches

    sem = asyncio.Semaphore(8)

    async def one(sid: str) -> None:
        async with sem, pool.acquire() as c:
            await c.fetch(QUERY, sid, day[sid])

    began = time.perf_counter()
    await asyncio.gather(*(one(sid) for sid in config.sites))
    out["fetch_concurrent8_s"] = _timed(began)  # alternative: 8 site queries in flight

    began = time.perf_counter()
    events = {sid: [_event_from_row(r) for r in rows] for sid, rows in rows_by_site.items()}
    out["event_objects_s"] = _timed(began)
    del rows_by_site

    # Pure apply of the same Event objects to fresh SiteStates.
    fresh = state_factory(engine)
    gc.collect()
    states = {}
    began = time.perf_counter()
    for sid in config.sites:
        state = fresh(sid, day[sid])
        for e in events[sid]:
            state.apply(e)
        states[sid] = state
    out["apply_s"] = _timed(began)
    began = time.perf_counter()
    clones = {sid: st.clone() for sid, st in states.items()}
    out["clone_s"] = _timed(began)
    del clones
    began = time.perf_counter()
    await engine.store.load_answers(REPLAY_AT - IDEMPOTENCY_WINDOW)
    out["load_answers_s"] = _timed(began)
    began = time.perf_counter()
    await engine.store.max_seq()
    out["max_seq_s"] = _timed(began)
    return out


async def mode_trace(dsn: str, sites: int) -> dict[str, Any]:
    engine, pool = await _engine(dsn, sites)
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    await engine.start()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    engine.working = {}
    gc.collect()
    without_working, _ = tracemalloc.get_traced_memory()
    answers = engine.answers.recent
    engine.answers.recent = {}
    del answers
    gc.collect()
    without_answers, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {
        "live_mb": (current - base) / MB,
        "peak_mb": (peak - base) / MB,
        "working_mb": (current - without_working) / MB,
        "answers_mb": (without_working - without_answers) / MB,
        "events": engine.stats.replayed_events,
        "tickets": sum(len(s.tickets) for s in engine.committed.values()),
    }
    await _close(engine, pool)
    return out


async def mode_profile(dsn: str, sites: int, top: int) -> dict[str, Any]:
    engine, pool = await _engine(dsn, sites)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    await engine.start()
    profiler.disable()
    wall = time.perf_counter() - began
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(
            {
                "func": f"{where}:{line}({name})",
                "calls": nc,
                "tottime": round(tt, 3),
                "cumtime": round(ct, 3),
            }
        )
    by_tottime = sorted(rows, key=lambda r: -r["tottime"])[:top]
    by_cumtime = sorted(rows, key=lambda r: -r["cumtime"])[:top]
    await _close(engine, pool)
    return {"profiled_wall_s": round(wall, 3), "by_tottime": by_tottime, "by_cumtime": by_cumtime}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_worker")
    parser.add_argument("mode", choices=("time", "trace", "profile"))
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stages", action="store_true", help="time: also time each stage")
    parser.add_argument(
        "--gc-off",
        action="store_true",
        help="time: run Engine.start with the cyclic GC disabled (experiment)",
    )
    parser.add_argument(
        "--sizes",
        action="store_true",
        help="time: also estimate the state's size (deep sys.getsizeof)",
    )
    args = parser.parse_args()
    if args.mode == "time":
        result = asyncio.run(mode_time(args.dsn, args.sites, args.stages, args.sizes, args.gc_off))
    elif args.mode == "trace":
        result = asyncio.run(mode_trace(args.dsn, args.sites))
    else:
        result = asyncio.run(mode_profile(args.dsn, args.sites, args.top))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
