"""Start-up replay builds exactly the state live `apply` builds, totals included.

Both run the one handler of each event type (`SiteState._apply`): live `apply` on the row
it makes of its event (`events.replay_row`), start-up replay on the rows the store's range
query reads, which extracts in SQL only what the handlers read (derived from the one
declaration of each type's data, `events.EVENTS`), sorted by site, in batches. These tests
hold replay to the plain path: each site's stored events, in seq order, with their full
data, through `SiteState.apply`.
"""

from __future__ import annotations

import dataclasses
import gc
from datetime import timedelta
from itertools import groupby
from typing import Any

import pytest

from bench.dayload import REPLAY_AT, replay_config, simulate_site
from queue_service.domain.clock import ManualClock
from queue_service.domain.commands import expire_day
from queue_service.domain.events import (
    BOOKING_EVENTS,
    EVENTS,
    PAYLOAD_AT,
    ROW_WIDTH,
    Event,
    replay_row,
)
from queue_service.domain.state import ReplayError, SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.domain.vocab import EventType, Outcome, Priority, Source, TicketStatus
from queue_service.engine import Engine
from queue_service.simulate.offline import run_day
from queue_service.simulate.profiles import profile, sample_hall
from tests.state_summary import summary
from tests.test_engine import store_holding


def day_of(sites: int, tickets: int) -> tuple[Any, list[Event]]:
    """A generated day of `sites` sites, merged by time into one seq order."""
    config = replay_config(sites)
    per_site = [simulate_site(site, i, tickets)[0] for i, site in enumerate(config.sites.values())]
    merged = sorted((e for events in per_site for e in events), key=lambda e: e.ts)
    return config, [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(merged)]


def with_totals(config: Any, day: Any) -> dict[str, SiteState]:
    """Fresh states of every site, with totals as the engine keeps them."""
    bounds = wait_bounds(
        svc.target_wait_seconds for site in config.sites.values() for svc in site.services.values()
    )
    return {
        s: SiteState(site, day, SiteTotals(site.services, site.counters, bounds))
        for s, site in config.sites.items()
    }


def applied_and_replayed(
    config: Any, events: list[Event], run: int
) -> tuple[dict[str, SiteState], dict[str, SiteState]]:
    """Every site's state (with totals) of one day's `events` applied one by one, and of
    their replay rows given `run` at a time per site, as the store's batches cut them."""
    day = events[0].day
    applied, replayed = with_totals(config, day), with_totals(config, day)
    for e in events:
        applied[e.site].apply(e)
    for s in config.sites:
        rows = [replay_row(e) for e in events if e.site == s]
        for i in range(0, len(rows), run):
            assert replayed[s].replay_rows(iter(rows[i : i + run])) == len(rows[i : i + run])
    return applied, replayed


def test_replaying_rows_builds_the_state_of_applying_events() -> None:
    config, events = day_of(3, 200)
    # Every type the day's replay rows carry but the expiry (bookings have their own load
    # and an online day of their own below).
    assert {e.type for e in events} == set(EventType) - {
        EventType.TICKET_EXPIRED,
        EventType.TICKET_CONFIRMED,
        *BOOKING_EVENTS,
    }
    applied, replayed = applied_and_replayed(config, events, 37)
    for s in config.sites:
        assert summary(replayed[s]) == summary(applied[s])
        assert summary(replayed[s].clone()) == summary(applied[s].clone())


def test_replaying_rows_rejects_what_apply_rejects() -> None:
    config, events = day_of(1, 20)
    site = next(iter(config.sites))
    state = SiteState(config.sites[site], events[0].day)
    called = next(e for e in events if e.type == EventType.TICKET_CALLED)
    with pytest.raises(ReplayError, match="unknown ticket"):
        state.replay_rows([replay_row(called)])
    with pytest.raises(ReplayError, match="unknown ticket"):
        state.apply(called)
    bad = (1, site, "ticket_teleported", *replay_row(called)[3:])
    with pytest.raises(ReplayError, match="unknown event type"):
        state.replay_rows([bad])
    with pytest.raises(ReplayError, match="unknown event type"):
        state.apply(dataclasses.replace(called, type="ticket_teleported"))  # type: ignore[arg-type]


def test_a_handler_reads_only_what_its_type_declares() -> None:
    """The replay row of an event carries only the data fields, counter and service its
    type declares its handler reads (`EVENTS`): applying events stripped of everything
    else builds the same state, so replay's rows (which hold nothing else) suffice."""
    config, events = day_of(2, 150)
    full, lean = with_totals(config, events[0].day), with_totals(config, events[0].day)
    for e in events:
        spec = EVENTS[e.type]
        full[e.site].apply(e)
        lean[e.site].apply(
            dataclasses.replace(
                e,
                counter_id=e.counter_id if spec.reads_counter else None,
                service=e.service if spec.reads_service else None,
                data={f.key: e.data[f.key] for f in spec.replayed if f.key in e.data},
            )
        )
    for s in config.sites:
        assert summary(lean[s]) == summary(full[s])


def test_replay_rows_are_laid_out_by_the_declaration() -> None:
    """Each type's data fields the handler reads follow the envelope, in declaration
    order; the row is as wide as the widest type needs."""
    _, events = day_of(1, 40)
    for e in events:
        row = replay_row(e)
        spec = EVENTS[e.type]
        assert len(row) == PAYLOAD_AT + len(spec.replayed) <= ROW_WIDTH
        for f in spec.replayed:
            assert row[spec.column(f.key)] == e.data.get(f.key, f.default)


async def test_start_rebuilds_the_state_of_applying_every_event(database_url: str) -> None:
    config, today = day_of(3, 120)
    first = next(iter(config.sites))
    # The day before, for one site: stored, not part of today's state, but in its totals
    # (cumulative over the whole history), with the tickets it left open expired.
    yesterday = [
        dataclasses.replace(e, day=e.day - timedelta(days=1), ts=e.ts - timedelta(days=1), seq=0)
        for e in today
        if e.site == first
    ][:40]
    events = [dataclasses.replace(e, seq=i + 1) for i, e in enumerate(yesterday + today)]
    expected = with_totals(config, today[0].day)
    before = SiteState(config.sites[first], yesterday[0].day, expected[first].totals)
    for e in events[: len(yesterday)]:
        before.apply(e)
    left_open = expire_day(before)
    assert left_open  # the first 40 events leave tickets waiting
    for i, e in enumerate(left_open):
        e.seq = len(events) + 1 + i
        before.apply(e)
    today_only = with_totals(config, today[0].day)
    for e in events:
        if e.day == today[0].day:
            expected[e.site].apply(e)
            today_only[e.site].apply(e)

    async with store_holding(database_url, events) as store:
        await store.close()  # lets go of the writer connection: the engine below takes it

        # Small ranges and batches: many of each, and ranges that cut sites' runs.
        days = dict.fromkeys(config.sites, today[0].day)
        got = with_totals(config, today[0].day)
        per_site: dict[str, list[tuple[Any, ...]]] = {s: [] for s in config.sites}
        async for batch in store.read_days(days, chunk=97, batch=13):
            assert 0 < len(batch) <= 13
            for site_id, run in groupby(batch, lambda row: row[1]):
                rows = list(run)
                per_site[site_id].extend(tuple(row) for row in rows)
                assert got[site_id].replay_rows(rows) == len(rows)
        # The words a ticket holds are the vocabulary's members, not strings of the rows.
        tickets = [t for state in got.values() for t in state.tickets.values()]
        assert all(type(t.source) is Source and type(t.state) is TicketStatus for t in tickets)
        assert {type(t.priority) for t in tickets} == {Priority, type(None)}
        assert {type(t.outcome) for t in tickets} <= {Outcome, type(None)}
        for s in config.sites:
            # The store reads exactly the rows `replay_row` makes (None up to the width).
            assert per_site[s] == [
                (*row, *(None,) * (ROW_WIDTH - len(row)))
                for row in (replay_row(e) for e in events if e.site == s and e.day == days[s])
            ]
            assert summary(got[s]) == summary(today_only[s])

        engine = Engine(config, store, ManualClock(REPLAY_AT))
        await engine.start()
        try:
            assert engine.stats.replayed_events == len(today)
            stored = await store.load_day(first, yesterday[0].day)
            assert [e.type for e in stored[len(yesterday) :]] == [EventType.TICKET_EXPIRED] * len(
                left_open
            )
            assert (await store.site_totals())[first][0] == yesterday[0].day
            assert engine.working == {}  # copies are made on a site's first command
            for s in config.sites:
                assert summary(engine.committed[s]) == summary(expected[s])
                assert summary(engine._working(s)) == summary(expected[s].clone())
        finally:
            await engine.stop()


async def test_start_freezes_the_replayed_state_before_the_collector_runs_again(
    database_url: str,
) -> None:
    """Replay runs with the cyclic collector off, so everything it builds is still in the
    young generation at its end: the state is frozen before the collector is on again, so
    no young collection traverses the whole day (it did, ~0.2 s at a million events)."""
    config, today = day_of(2, 900)
    young_at_collections: list[int] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            young_at_collections.append(len(gc.get_objects(generation=0)))

    async with store_holding(database_url, today) as store:
        engine = Engine(config, store, ManualClock(REPLAY_AT))
        gc.collect()
        gc.callbacks.append(watch)
        try:
            await engine.start()
        finally:
            gc.callbacks.remove(watch)
        try:
            tickets = sum(len(state.tickets) for state in engine.committed.values())
            assert tickets == 1800
            # Ordinary young collections hold what a few thousand allocations left; the
            # replayed day here is over ten thousand objects.
            assert max(young_at_collections, default=0) < 5_000, young_at_collections[-5:]
        finally:
            await engine.stop()


async def test_an_online_day_replays_as_it_was_applied() -> None:
    """Start-up's two loads of an online day (its bookings' events to the book, the rest as
    replay rows) build the state applying every event one by one built: bookings, booked
    tickets' due times, remote joins' codes and confirmations, queues and totals."""
    site = next(iter(sample_hall(20).sites.values()))
    events = (await run_day(site, profile("online"), 5)).events
    kinds = {e.type for e in events}
    # (the simulator's bookers do not move their bookings: tests/test_online_numbers.py)
    assert {EventType.TICKET_CONFIRMED, *BOOKING_EVENTS} - kinds == {EventType.BOOKING_RESCHEDULED}
    config = sample_hall(20)
    applied, replayed = with_totals(config, events[0].day), with_totals(config, events[0].day)
    for e in events:
        applied[e.site].apply(e)
    state = replayed[site.id]
    state.bookings.apply_all(e for e in events if e.type in BOOKING_EVENTS)
    state.replay_rows(iter([replay_row(e) for e in events if e.type not in BOOKING_EVENTS]))
    assert summary(state) == summary(applied[site.id])
    assert any(t.due_at for t in state.tickets.values())
    assert any(t.confirmed for t in state.tickets.values())
    book, expected = state.bookings, applied[site.id].bookings
    assert {k: vars_of(b) for k, b in book.bookings.items()} == {
        k: vars_of(b) for k, b in expected.bookings.items()
    }
    assert (book.codes, book.taken, book.per_day, book.pending) == (
        expected.codes,
        expected.taken,
        expected.per_day,
        expected.pending,
    )


def vars_of(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record))
