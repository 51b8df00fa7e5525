"""Start-up replay's fast path rebuilds exactly the state of applying every event in order.

Replay reads the day in seq ranges sorted by site, decodes `data` only for the event types
whose handler reads it (`DATA_READ_BY`) and builds no working copies; these tests hold it to
the plain path: apply each site's stored events, in seq order, with their full data.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from bench.dayload import REPLAY_AT, replay_config, simulate_site
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.state import DATA_READ_BY, SiteState
from queue_service.engine import Engine
from queue_service.store.db import create_pool
from queue_service.store.event_store import EventStore
from queue_service.store.migrate import migrate


def summary(state: SiteState) -> dict[str, Any]:
    return {
        "day": state.day,
        "last_seq": state.last_seq,
        "tickets": dict(state.tickets),
        "counters": dict(state.counters),
        "queues": {
            code: (
                list(q.priority),
                list(q.regular),
                q.issued,
                q.priority_streak,
                q.called,
                q.called_within,
                q.finished,
                q.service_seconds,
                q.no_shows,
                q.cancelled,
            )
            for code, q in state.queues.items()
        },
    }


def day_of(sites: int, tickets: int) -> tuple[Any, list[Event]]:
    """A generated day of `sites` sites, merged by time into one seq order."""
    config = replay_config(sites)
    per_site = [simulate_site(site, i, tickets)[0] for i, site in enumerate(config.sites.values())]
    merged = sorted((e for events in per_site for e in events), key=lambda e: e.ts)
    return config, [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(merged)]


def test_replay_needs_data_only_of_the_types_that_read_it() -> None:
    config, events = day_of(2, 150)
    full = {s: SiteState(site, events[0].day) for s, site in config.sites.items()}
    lean = {s: SiteState(site, events[0].day) for s, site in config.sites.items()}
    for e in events:
        full[e.site].apply(e)
        lean[e.site].apply(e if e.type in DATA_READ_BY else dataclasses.replace(e, data={}))
    assert {e.type for e in events} >= DATA_READ_BY
    for s in config.sites:
        assert summary(lean[s]) == summary(full[s])


async def test_start_rebuilds_the_state_of_applying_every_event(database_url: str) -> None:
    config, today = day_of(3, 120)
    first = next(iter(config.sites))
    # The day before, for one site: stored, and not part of today's state.
    yesterday = [
        dataclasses.replace(e, day=e.day - timedelta(days=1), ts=e.ts - timedelta(days=1), seq=0)
        for e in today
        if e.site == first
    ][:40]
    events = [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(yesterday + today)]
    expected = {s: SiteState(site, today[0].day) for s, site in config.sites.items()}
    for e in events:
        if e.day == today[0].day:
            expected[e.site].apply(e)

    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        store = EventStore(pool, database_url)
        await store.append(events, [])
        await store.close()

        # Small ranges and batches: many of each, and ranges that cut sites' runs.
        days = dict.fromkeys(config.sites, today[0].day)
        got = {s: SiteState(site, today[0].day) for s, site in config.sites.items()}
        per_site: dict[str, list[int]] = {s: [] for s in config.sites}
        async for batch in store.read_days(days, chunk=97, batch=13):
            assert 0 < len(batch) <= 13
            for e in batch:
                per_site[e.site].append(e.seq)
                got[e.site].apply(e)
        for s in config.sites:
            assert per_site[s] == [e.seq for e in events if e.site == s and e.day == days[s]]
            assert summary(got[s]) == summary(expected[s])

        engine = Engine(config, store, ManualClock(REPLAY_AT))
        await engine.start()
        try:
            assert engine.stats.replayed_events == len(today)
            assert engine.working == {}  # copies are made on a site's first command
            for s in config.sites:
                assert summary(engine.committed[s]) == summary(expected[s])
                assert summary(engine._working(s)) == summary(expected[s])
        finally:
            await engine.stop()
            await store.close()
    finally:
        await pool.close()
