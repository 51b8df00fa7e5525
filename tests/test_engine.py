"""The engine: idempotent answers kept for their window, batches gathered and settled,
service days closed, store failures told apart from bugs. The tests that need the HTTP app
run on PostgreSQL; those of the engine alone run on both stores (`engines`: in memory and
on PostgreSQL), which also shows the two stores answer alike."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_service.domain import commands
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.vocab import EventType, Outcome
from queue_service.engine import ANSWER_MEMORY, IDEMPOTENCY_WINDOW, Engine, IdempotencyKeyReused
from queue_service.errors import AntrianError
from queue_service.settings import Settings
from queue_service.store.db import create_pool
from queue_service.store.event_store import EventStore
from queue_service.store.memory import MemoryStore, replay_row
from queue_service.store.migrate import migrate
from queue_service.store.protocol import IdempotentAnswer, Store, StoreUnavailable
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE
from tests.conftest import ADMIN, KIOSK, MONDAY_9AM, SITE, fetch, one_queue_hall

MONDAY = date(2026, 11, 23)


async def issue(client: TestClient[web.Request, web.Application], key: str) -> dict[str, str]:
    resp = await client.post(
        f"/api/v1/sites/{SITE}/tickets",
        json={"service": "KTP-EL"},
        headers={**KIOSK, "Idempotency-Key": key},
    )
    assert resp.status == 201
    return await resp.json()  # type: ignore[no-any-return]


async def issue_direct(engine: Engine, key: str) -> tuple[int, str, Any]:
    """Issue through the engine itself (no HTTP), with an Idempotency-Key."""
    ticket_id = secrets.token_urlsafe(16)
    return await engine.execute_json(
        SITE,
        lambda state, at: commands.issue(state, at, ticket_id=ticket_id, service="KTP-EL"),
        lambda state, events: (201, {"id": events[0].ticket_id}),
        idempotency_key=key,
        request_hash="the same request",
    )


async def _engine(
    config: Any,
    clock: ManualClock,
    database_url: str,
    *,
    store_options: dict[str, Any] | None = None,
    **options: Any,
) -> Engine:
    """A started engine on its own pool and store (no HTTP app)."""
    from queue_service.store.db import create_pool
    from queue_service.store.migrate import migrate

    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
    engine = Engine(
        config, EventStore(pool, database_url, **(store_options or {})), clock, **options
    )
    await engine.start()
    return engine


async def _close(engine: Engine) -> None:
    """Stop an engine `_engine` started, and close its store and pool."""
    store = engine.store
    assert isinstance(store, EventStore)
    await engine.stop()
    await store.close()
    await store.pool.close()


@contextlib.asynccontextmanager
async def store_holding(database_url: str, events: Sequence[Event]) -> AsyncIterator[EventStore]:
    """A store on its own pool of the migrated database, holding `events` (an engine
    started on it replays them); store and pool closed on the way out."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        store = EventStore(pool, database_url)
        try:
            await store.append(events, [])
            yield store
        finally:
            await store.close()
    finally:
        await pool.close()


async def test_answers_are_forgotten_after_the_window(
    client: TestClient[web.Request, web.Application], clock: ManualClock, database_url: str
) -> None:
    engine = client.app[ENGINE]
    first = await issue(client, "old-key")
    assert (SITE, "old-key") in engine.answers.recent
    clock.advance(IDEMPOTENCY_WINDOW.total_seconds() + 3600)  # Wednesday, 10:00 WITA
    await issue(client, "new-key")
    assert (SITE, "old-key") not in engine.answers.recent
    assert (SITE, "new-key") in engine.answers.recent
    # The stored answers are pruned by the writer right after it answers: wait for it.
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(50):
            keys = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
            if keys == {"new-key"}:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert keys == {"new-key"}
    # Past its window a key is a new request: a new ticket on the new day.
    again = await issue(client, "old-key")
    assert again["id"] != first["id"]


async def test_an_answer_out_of_memory_is_fetched_from_the_database(
    client: TestClient[web.Request, web.Application], clock: ManualClock
) -> None:
    engine = client.app[ENGINE]
    first = await issue(client, "late-retry")
    clock.advance(ANSWER_MEMORY.total_seconds() + 60)
    await issue(client, "another")  # a commit prunes the answers held in memory
    assert (SITE, "late-retry") not in engine.answers.recent
    assert (SITE, "late-retry") in engine.answers.keys
    again = await issue(client, "late-retry")
    assert (again["id"], again["number"]) == (first["id"], first["number"])
    # The stored answer is the text that was sent (migration 0005), byte for byte.
    texts = []
    for _ in range(2):
        resp = await client.post(
            f"/api/v1/sites/{SITE}/tickets",
            json={"service": "KTP-EL"},
            headers={**KIOSK, "Idempotency-Key": "sent-as-stored"},
        )
        texts.append(await resp.text())
        clock.advance(ANSWER_MEMORY.total_seconds() + 60)
        await issue(client, f"prune-{len(texts)}")
    assert (SITE, "sent-as-stored") not in engine.answers.recent
    assert texts[0] == texts[1]
    resp = await client.post(
        f"/api/v1/sites/{SITE}/tickets",
        json={"service": "KTP-EL", "priority": "elderly"},
        headers={**KIOSK, "Idempotency-Key": "late-retry"},
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "idempotency_key_reused"


async def test_a_clock_stepped_back_across_midnight_never_rolls_the_day_back(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings, one_queue_hall(counters=1), clock))
    engine = client.app[ENGINE]

    async def issue_q() -> dict[str, str]:
        resp = await client.post("/api/v1/sites/hall/tickets", json={"service": "Q"}, headers=ADMIN)
        assert resp.status == 201, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]

    # Tuesday 24 November, 00:00:01 WITA (UTC+8).
    clock.set(datetime(2026, 11, 24, 0, 0, 1, tzinfo=ZoneInfo("Asia/Makassar")))
    first = await issue_q()
    clock.advance(-2)  # back to Monday 23:59:59 WITA
    second = await issue_q()
    assert (first["number"], second["number"]) == ("Q001", "Q002")
    for state in (engine.site_state("hall"), engine._working("hall")):
        assert state.day == date(2026, 11, 24)
        assert {first["id"], second["id"]} <= set(state.tickets)
    tickets = engine.site_state("hall").tickets
    # The site's history does not run backwards either.
    assert tickets[second["id"]].issued_at >= tickets[first["id"]].issued_at
    # Once the clock is past midnight again, the day goes on.
    clock.advance(5)
    assert (await issue_q())["number"] == "Q003"
    assert engine.site_state("hall").day == date(2026, 11, 24)


async def test_the_whole_heap_is_collected_once_a_night_at_three(
    engines: Engines, config: Any, clock: ManualClock
) -> None:
    from datetime import UTC

    from queue_service import heap

    await engines.start(heap_check_seconds=0.01)
    site = next(iter(config.sites.values()))
    local = site.local(clock.now())
    before = heap.renewals
    # 02:59 local of the next day: not yet.
    night = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
    clock.set(night.replace(hour=2, minute=59, tzinfo=site.timezone).astimezone(UTC))
    await asyncio.sleep(0.1)
    assert heap.renewals == before
    clock.set(night.replace(hour=3, minute=0, second=1, tzinfo=site.timezone).astimezone(UTC))
    for _ in range(100):
        if heap.renewals > before:
            break
        await asyncio.sleep(0.02)
    assert heap.renewals == before + 1  # once, not at every check
    await asyncio.sleep(0.1)
    assert heap.renewals == before + 1


async def test_a_cancelled_request_keeps_its_key_in_flight_until_its_batch_is_settled(
    client: TestClient[web.Request, web.Application], database_url: str
) -> None:
    """A command's task is cancelled while its batch waits on a locked table: its events
    are still committed, and a retry with its key waits for them and is answered with the
    same ticket instead of deciding the request a second time."""
    engine = client.app[ENGINE]

    await issue(client, "warm-up")
    blocker = await asyncpg.connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE ticket_events IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(issue_direct(engine, "cancelled"))
        for _ in range(100):
            if (SITE, "cancelled") in engine.answers.inflight:
                break
            await asyncio.sleep(0.01)
        assert (SITE, "cancelled") in engine.answers.inflight
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert first.cancelled()
        retry = asyncio.create_task(issue_direct(engine, "cancelled"))
        await asyncio.sleep(0.3)
        assert not retry.done()  # it waits for the first attempt's batch
        await tx.rollback()
        status, text, _ = await asyncio.wait_for(retry, timeout=10)
    finally:
        await blocker.close()
    assert (SITE, "cancelled") not in engine.answers.inflight
    issued = await fetch(
        database_url,
        "SELECT ticket_id FROM ticket_events WHERE type = 'ticket_issued' ORDER BY seq",
    )
    assert len(issued) == 2  # the warm-up, and the cancelled command once
    assert status == 201
    assert json.loads(text)["id"] == issued[1]["ticket_id"]


async def test_stopping_while_a_batch_is_stuck_answers_its_senders_and_frees_its_keys(
    config: Any, clock: ManualClock, database_url: str
) -> None:
    """stop() waits a few seconds for the batch being written, then cancels the writer:
    the batch's sender and a retry waiting on its key are told the database is
    unavailable (nothing acknowledged) instead of waiting forever, and later commands are
    refused at once."""
    from queue_service.store.protocol import StoreUnavailable

    engine = await _engine(config, clock, database_url, store_options={"commit_timeout": 30})

    blocker = await asyncpg.connect(database_url)
    try:
        await issue_direct(engine, "warm-up")
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE ticket_events IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(issue_direct(engine, "stuck"))
        await asyncio.sleep(0.3)
        retry = asyncio.create_task(issue_direct(engine, "stuck"))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(engine.stop(), timeout=15)
        for task in (first, retry):
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(task, timeout=2)
        assert engine.answers.inflight == {}
        with pytest.raises(StoreUnavailable):
            await issue_direct(engine, "after-stop")
        await tx.rollback()
    finally:
        await blocker.close()
        await _close(engine)  # stopped already: stopping again only closes the store


async def test_a_command_whose_answer_fails_is_committed_once_and_its_retry_gets_the_failure(
    client: TestClient[web.Request, web.Application], database_url: str
) -> None:
    """The answer of a decided command cannot be made (a bug in a view, say): its events
    are committed all the same, and a retry with its key is answered with the stored
    failure (500, code answer_failed), not decided a second time (a second ticket), also
    when the answer has to be read back from the database and when it comes over HTTP."""
    import hashlib

    from queue_service.engine import AnswerFailed

    engine = client.app[ENGINE]
    path = f"/api/v1/sites/{SITE}/tickets"
    # The request hash the HTTP API makes of {"service": "KTP-EL"} on this path.
    digest = hashlib.sha256(f'POST {path}\n{{"service":"KTP-EL"}}'.encode()).hexdigest()

    def broken(state: Any, events: Any) -> tuple[int, dict[str, Any]]:
        raise RuntimeError("a view that cannot be built")

    async def attempt() -> None:
        ticket_id = secrets.token_urlsafe(16)
        await engine.execute_json(
            SITE,
            lambda state, at: commands.issue(state, at, ticket_id=ticket_id, service="KTP-EL"),
            broken,
            idempotency_key="broken-answer",
            request_hash=digest,
        )

    with pytest.raises(AnswerFailed):
        await attempt()
    with pytest.raises(AnswerFailed) as retried:  # at once, while its batch may be in flight
        await attempt()
    assert json.loads(retried.value.text)["code"] == "answer_failed"
    assert isinstance(retried.value, AntrianError)
    assert (retried.value.code, retried.value.status) == ("answer_failed", 500)
    await asyncio.wait_for(engine._idle.wait(), timeout=10)
    engine.answers.recent.clear()  # as after a restart: the answer is read from the database
    with pytest.raises(AnswerFailed):
        await attempt()
    resp = await client.post(
        path, json={"service": "KTP-EL"}, headers={**KIOSK, "Idempotency-Key": "broken-answer"}
    )
    assert resp.status == 500
    assert (await resp.json())["code"] == "answer_failed"

    [(issued,)] = await fetch(
        database_url, "SELECT count(*) FROM ticket_events WHERE type = 'ticket_issued'"
    )
    [(status,)] = await fetch(
        database_url, "SELECT status FROM idempotency_keys WHERE key = 'broken-answer'"
    )
    assert issued == 1
    assert status == 500


async def _staggered(engine: Engine, n: int) -> None:
    """n commands, the i-th decided after i turns of the event loop (as requests arriving
    one after another are)."""

    async def one(i: int) -> None:
        for _ in range(i):
            await asyncio.sleep(0)
        await issue_direct(engine, f"staggered-{i}")

    await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.parametrize("gather_seconds", [0.0, 5.0])
async def test_the_writer_gathers_decisions_while_each_loop_turn_adds_some(
    engines: Engines, gather_seconds: float
) -> None:
    """Commands decided over consecutive turns of the loop go out in one batch; without
    gathering, the writer sends the first one alone as soon as it wakes."""
    engine = await engines.start(gather_seconds=gather_seconds)
    before = engine.stats.batches_committed
    await _staggered(engine, 8)
    batches = engine.stats.batches_committed - before
    if gather_seconds:
        assert batches == 1
    else:
        assert batches > 1
    assert len(await engine.store.load_after(0)) == 8


async def test_gathering_ends_after_a_quiet_turn_or_at_its_time_bound(
    config: Any, clock: ManualClock, database_url: str
) -> None:
    """With nothing more decided, gathering ends after one turn of the loop; with a
    decision added on every turn, it ends at gather_seconds (the batch size bound set out
    of reach), so a flood of commands never holds a batch back for longer."""
    from queue_service.store.event_store import EventStore

    store = EventStore(None, database_url)  # type: ignore[arg-type]  # never used here
    engine = Engine(config, store, clock, gather_seconds=10.0, max_batch=10**9)
    loop = asyncio.get_running_loop()
    engine._pending.append(object())  # type: ignore[arg-type]
    began = loop.time()
    await engine._gather()
    assert loop.time() - began < 1.0  # a turn, not the 10 s bound

    engine.gather_seconds = 0.1

    stop = asyncio.Event()

    async def decide_every_turn() -> None:
        while not stop.is_set():
            engine._pending.append(object())  # type: ignore[arg-type]
            await asyncio.sleep(0)

    feeding = asyncio.create_task(decide_every_turn())
    try:
        await asyncio.sleep(0)
        began = loop.time()
        await asyncio.wait_for(engine._gather(), timeout=5)
        waited = loop.time() - began
    finally:
        stop.set()
        await feeding
    assert 0.1 <= waited < 2.0


# -- the engine on either store ----------------------------------------------------------


@pytest.fixture(params=["memory", "postgres"])
def storage(request: pytest.FixtureRequest) -> str | None:
    """Where the engine's store keeps the log: None in memory, else a fresh database."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("database_url")
    return url


class Engines:
    """Engines on one storage, one after another: starting another is a restart of the
    service on the same data."""

    def __init__(self, storage: str | None, config: Any, clock: ManualClock) -> None:
        self.url = storage
        self.config = config
        self.clock = clock
        self.memory = MemoryStore()
        self.running: list[Engine] = []
        self.pools: list[asyncpg.Pool] = []

    async def start(self, **options: Any) -> Engine:
        store: Store = self.memory
        if self.url is not None:
            from queue_service.store.db import create_pool
            from queue_service.store.migrate import migrate

            pool = await create_pool(self.url)
            self.pools.append(pool)
            async with pool.acquire() as conn:
                await migrate(conn)
            store = EventStore(pool, self.url)
        engine = Engine(self.config, store, self.clock, **options)
        self.running.append(engine)
        await engine.start()
        return engine

    async def stop(self, engine: Engine) -> None:
        self.running.remove(engine)
        await engine.stop()
        await engine.store.close()

    async def close(self) -> None:
        for engine in list(self.running):
            await self.stop(engine)
        for pool in self.pools:
            await pool.close()


@pytest.fixture
async def engines(storage: str | None, config: Any, clock: ManualClock) -> AsyncIterator[Engines]:
    made = Engines(storage, config, clock)
    try:
        yield made
    finally:
        await made.close()


def run(engine: Engine, command: Any, **kwargs: Any) -> Any:
    """A command of `commands` on the example hall's site, with no answer to speak of."""
    return engine.execute(
        SITE, lambda state, at: command(state, at, **kwargs), lambda state, events: (200, {})
    )


async def test_a_retry_gets_the_first_answer_from_memory_or_from_the_store(
    engines: Engines, clock: ManualClock
) -> None:
    engine = await engines.start()
    first = (await issue_direct(engine, "retried"))[:2]  # (status, text)
    assert (await issue_direct(engine, "retried"))[:2] == first
    clock.advance(ANSWER_MEMORY.total_seconds() + 60)
    await issue_direct(engine, "another")  # a commit forgets the answers past their time
    assert (SITE, "retried") not in engine.answers.recent
    assert (await issue_direct(engine, "retried"))[:2] == first
    with pytest.raises(IdempotencyKeyReused):
        await engine.execute_json(
            SITE,
            lambda state, at: commands.issue(state, at, ticket_id="other", service="KK"),
            lambda state, events: (201, {}),
            idempotency_key="retried",
            request_hash="another request",
        )
    assert len(await engine.store.load_after(0)) == 2


async def test_a_restarted_engine_replays_the_state_it_had(
    engines: Engines, clock: ManualClock
) -> None:
    engine = await engines.start()
    for n in range(6):
        await run(engine, commands.issue, ticket_id=f"t{n}", service=("KTP-EL", "KK")[n % 2])
    for counter in ("loket-01", "loket-02"):
        await run(engine, commands.open_counter, counter_id=counter)
    clock.advance(minutes=3)
    await run(engine, commands.call_next, counter_id="loket-01")
    await run(engine, commands.start, counter_id="loket-01")
    clock.advance(minutes=4)
    await run(engine, commands.finish, counter_id="loket-01", outcome="served")
    await run(engine, commands.call_next, counter_id="loket-02")
    await run(engine, commands.transfer, counter_id="loket-02", to_service="SKCK")
    await run(engine, commands.cancel, ticket_id="t5", reason="pulang")
    await run(engine, commands.pause_counter, counter_id="loket-01", reason="Istirahat")
    await issue_direct(engine, "kept")
    before = engine.site_state(SITE)
    await engines.stop(engine)

    again = await engines.start()
    after = again.site_state(SITE)
    assert again.stats.replayed_events == before.last_seq
    assert after.tickets == before.tickets
    assert after.counters == before.counters
    for code, queue in before.queues.items():
        assert [t.id for t in after.queues[code].call_order()] == [t.id for t in queue.call_order()]
    assert after.totals is not None and before.totals is not None
    assert after.totals.to_json() == before.totals.to_json()
    assert (SITE, "kept") in again.answers.keys


async def test_reading_a_state_never_rolls_its_day_over(
    engines: Engines, clock: ManualClock
) -> None:
    """After midnight a read shows the day that ended until the day closer (or a command)
    has closed it, with open tickets or without: reads change nothing."""
    engine = await engines.start(day_check_seconds=3600)
    await run(engine, commands.issue, ticket_id="left-open", service="KTP-EL")
    clock.set(MONDAY_9AM + timedelta(days=1))
    for _ in range(2):
        state = engine.site_state(SITE)
        assert state.day == MONDAY
        assert state.tickets["left-open"].state == "waiting"
    assert await engine.close_day(SITE) == 1
    state = engine.site_state(SITE)
    assert state.day == MONDAY + timedelta(days=1)
    assert state.totals is not None
    assert state.totals.closed[("KTP-EL", Outcome.EXPIRED)] == 1
    # Nothing open: a read still leaves the day as it is.
    clock.set(MONDAY_9AM + timedelta(days=2))
    assert engine.site_state(SITE).day == MONDAY + timedelta(days=1)
    assert await engine.close_day(SITE) == 0
    assert engine.site_state(SITE).day == MONDAY + timedelta(days=2)


async def test_the_day_closer_rolls_a_quiet_site_over_on_the_clock(
    engines: Engines, clock: ManualClock
) -> None:
    engine = await engines.start(day_check_seconds=0.01)
    await run(engine, commands.issue, ticket_id="left-open", service="KTP-EL")
    clock.set(MONDAY_9AM + timedelta(days=1))
    for _ in range(200):
        if engine.site_state(SITE).day != MONDAY:
            break
        await asyncio.sleep(0.02)
    state = engine.site_state(SITE)
    assert state.day == MONDAY + timedelta(days=1)
    assert state.tickets == {}
    assert [e.type for e in await engine.store.load_after(0)] == [
        EventType.TICKET_ISSUED,
        EventType.TICKET_EXPIRED,
    ]


async def test_a_store_failure_is_unavailable_and_a_bug_is_raised_as_it_is(
    engines: Engines, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit the store refuses is `StoreUnavailable` (503, retry) and the writer
    reconciles; a failure that is not the store's is a bug: its sender gets it as it is,
    it is logged with its traceback, and the writer stops instead of retrying it."""
    engine = await engines.start(retry_seconds=0.01)
    store = engine.store
    append = store.append

    async def refuse(events: Sequence[Event], *rest: Sequence[object]) -> None:
        raise StoreUnavailable("the disk is full")

    store.append = refuse  # type: ignore[method-assign, assignment]
    with pytest.raises(StoreUnavailable):
        await issue_direct(engine, "refused")
    store.append = append  # type: ignore[method-assign]
    for _ in range(200):
        if engine.available:
            break
        await asyncio.sleep(0.01)
    status, _, _ = await issue_direct(engine, "refused")
    assert status == 201

    async def broken(events: Sequence[Event], *rest: Sequence[object]) -> None:
        raise ZeroDivisionError("a bug in the store")

    store.append = broken  # type: ignore[method-assign, assignment]
    with pytest.raises(ZeroDivisionError):
        await issue_direct(engine, "bug")
    for _ in range(100):  # the writer's end is seen by its done callback, a turn later
        if not engine.ready:
            break
        await asyncio.sleep(0.01)
    assert not engine.ready
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    with pytest.raises(StoreUnavailable):  # refused at once: nothing could be committed
        await issue_direct(engine, "after the bug")


# -- the stores the engine runs on ---------------------------------------------------------


def _event(seq: int, type_: EventType, day: date, **fields: Any) -> Event:
    ts = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("Asia/Makassar"))
    return Event(
        type_, fields.pop("site", SITE), ts + timedelta(minutes=seq), day, seq=seq, **fields
    )


async def test_both_stores_keep_the_log_the_answers_and_the_totals_alike(
    engines: Engines,
) -> None:
    """The in-memory store answers as the PostgreSQL one does: the same replay rows (as
    the range query reads them), the first answer of a key stands, totals only forward."""
    store = (await engines.start()).store  # an idle engine: the store is migrated
    day, next_day = MONDAY, MONDAY + timedelta(days=1)
    issued = {"number": "A001", "seq": 1, "source": "reception", "priority": "lansia"}
    log = [
        _event(1, EventType.TICKET_ISSUED, day, ticket_id="t1", service="KK", data=issued),
        _event(2, EventType.COUNTER_OPENED, day, counter_id="loket-01"),
        _event(3, EventType.TICKET_CALLED, day, ticket_id="t1", counter_id="loket-01"),
        _event(4, EventType.TICKET_RECALLED, day, ticket_id="t1", counter_id="loket-01"),
        _event(
            5,
            EventType.TICKET_TRANSFERRED,
            day,
            ticket_id="t1",
            counter_id="loket-01",
            service="KK",
            data={"to_service": "SKCK"},
        ),
        _event(6, EventType.COUNTER_PAUSED, day, counter_id="loket-01", data={"reason": "Rapat"}),
        _event(
            7,
            EventType.TICKET_ISSUED,
            day,
            site="mpp-banjarbaru",
            ticket_id="t2",
            service="KTP-EL",
            data={"number": "B001", "seq": 1, "estimated_wait_seconds": 90.5},
        ),
        _event(8, EventType.TICKET_CANCELLED, day, site="mpp-banjarbaru", ticket_id="t2"),
        _event(
            9,
            EventType.TICKET_ISSUED,
            next_day,
            ticket_id="t3",
            service="KK",
            data={"number": "A001", "seq": 1},
        ),
    ]
    created = MONDAY_9AM
    first = IdempotentAnswer(SITE, "press-1", "h", 201, '{"n": 1}', 1, created)
    await store.append(log[:5], [first])
    again = IdempotentAnswer(SITE, "press-1", "h", 201, '{"n": 2}', 5, created)
    later = IdempotentAnswer(SITE, "press-2", "h", 200, "{}", 9, created + timedelta(hours=5))
    await store.append(log[5:], [again, later])

    assert await store.max_seq() == 9
    assert [e.seq for e in await store.load_after(5)] == [6, 7, 8, 9]
    assert [e.seq for e in await store.load_after(5, ["mpp-banjarbaru"], limit=1)] == [7]
    rows = [tuple(r) async for batch in store.read_days({SITE: day}) for r in batch]
    assert rows == [replay_row(e) for e in log[:6]]
    assert await store.days_between({SITE: (None, next_day + timedelta(days=1))}) == {
        SITE: [day, next_day]
    }
    assert await store.days_between({SITE: (day, next_day + timedelta(days=1))}) == {
        SITE: [next_day]
    }

    found = await store.find_answer(SITE, "press-1", created)
    assert found is not None and found.response == '{"n": 1}'  # the first answer stands
    assert await store.find_answer(SITE, "press-1", created + timedelta(seconds=1)) is None
    latest = await store.latest_answer(SITE, "press-", created)
    assert latest is not None and latest.key == "press-2"
    assert [a.key for a in await store.load_answers(created, after_seq=1)] == ["press-2"]
    buckets = await store.answer_keys(created, 3600)
    assert {k for keys in buckets.values() for k in keys} == {
        f"{SITE}\x1fpress-1",
        f"{SITE}\x1fpress-2",
    }
    assert len(buckets) == 2
    assert await store.forget_answers(created + timedelta(hours=1)) == 1
    assert await store.find_answer(SITE, "press-1", created) is None

    await store.save_site_totals(SITE, next_day, '{"version": 2}')
    await store.save_site_totals(SITE, day, '{"version": 1}')  # older: not stored
    assert await store.site_totals() == {SITE: (next_day, {"version": 2})}
