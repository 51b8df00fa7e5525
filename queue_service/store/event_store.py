"""The event store: append committed batches, read a day back, remember idempotent answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from queue_service.domain.events import (
    BOOKING_EVENTS,
    EVENTS,
    PAYLOAD_AT,
    ROW_WIDTH,
    Event,
    PayloadField,
)
from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.vocab import EventType
from queue_service.errors import AntrianError
from queue_service.store import outbox
from queue_service.store.db import DB_ERRORS, connect, connection
from queue_service.store.protocol import REPLAY_BATCH, IdempotentAnswer, StoreUnavailable

log = logging.getLogger(__name__)

# Held for the life of the writer connection: exactly one process appends to the log.
WRITER_LOCK_ID = 0x616E7477  # "antw"

_EVENT_COLUMNS = (
    "seq, site_id, service_day, type, ts, ticket_id, counter_id, service, segment, data"
)
# The columns of an `IdempotentAnswer`, in its fields' order.
_ANSWER_COLUMNS = "site_id, key, request_hash, status, response, last_seq, created_at"


class WriterLockHeld(AntrianError, code="writer_lock_held"):
    """Another process is already the writer of this database."""


# Start-up replay reads the day in seq ranges of this many events (each sorted by site),
# this many ranges open at once, handing over batches of `REPLAY_BATCH` events.
REPLAY_CHUNK = 200_000
REPLAY_RANGES_OPEN = 2

# The first and last seq of one day of the given sites, from the (site_id, service_day,
# seq) index: two index probes per site, no scan.
_DAY_BOUNDS = (
    "SELECT min(b.lo), max(b.hi) FROM unnest($1::text[]) AS d(site_id),"
    " LATERAL (SELECT min(seq) AS lo, max(seq) AS hi FROM ticket_events e"
    "          WHERE e.site_id = d.site_id AND e.service_day = $2) AS b"
)


def _sql_type(f: PayloadField) -> str:
    """The SQL type a data field is read as: a string, or a vocabulary word (an enum of
    strings), is text."""
    return {int: "int", float: "float8"}.get(f.type, "text")


def _extract(f: PayloadField) -> str:
    """SQL of one data field as its Python type reads it (its default where it is absent)."""
    text = f"e.data->>'{f.key}'"
    if f.default is not None:
        text = f"coalesce({text}, '{f.default}')"
    kind = _sql_type(f)
    return text if kind == "text" else f"({text})::{kind}"


def _when(types: list[EventType], then: str) -> str:
    """`then` for rows of `types`, NULL for the others."""
    if not types:
        return "NULL"
    listed = ", ".join(f"'{t}'" for t in types)
    return f"CASE WHEN e.type IN ({listed}) THEN {then} END"


def _payload_column(i: int) -> str:
    """Column `PAYLOAD_AT + i` of a replay row: the i-th data field its type's handler reads."""
    cases = [(t, spec.replayed[i]) for t, spec in EVENTS.items() if len(spec.replayed) > i]
    if len({_sql_type(f) for _, f in cases}) != 1:
        raise TypeError(f"replay row column {PAYLOAD_AT + i} would mix SQL types")
    return "CASE e.type" + "".join(f" WHEN '{t}' THEN {_extract(f)}" for t, f in cases) + " END"


# One seq range of that day: a forward read of the primary key (the heap in the order it
# was written, not one random page per row), sorted by site in memory so that each site's
# events arrive together (applying them site by site is much kinder to the CPU caches than
# in global order; the "C" collation makes that sort bytewise, and the order of the sites
# does not matter). No JSON reaches Python: the rows are laid out as the state's handlers
# read them (`events.replay_row`), derived from the one declaration of each event type
# (`events.EVENTS`): the data fields its handler reads extracted here, the counter and
# service only of the types whose handler reads them (fewer strings to decode).
_DAY_RANGE = (
    "SELECT e.seq, e.site_id, e.type, e.ts, e.ticket_id, "  # noqa: S608 - from constants
    + _when([t for t, spec in EVENTS.items() if spec.reads_counter], "e.counter_id")
    + ", "
    + _when([t for t, spec in EVENTS.items() if spec.reads_service], "e.service")
    + "".join(f", {_payload_column(i)}" for i in range(ROW_WIDTH - PAYLOAD_AT))
    + " FROM ticket_events e"
    " WHERE e.seq >= $1 AND e.seq < $2 AND e.service_day = $3 AND e.site_id = ANY($4::text[])"
    f" AND e.type NOT IN ({', '.join(repr(str(t)) for t in sorted(BOOKING_EVENTS))})"
    ' ORDER BY e.site_id COLLATE "C", e.seq'
)
# Every event of each booking whose slot (its latest booking_made or booking_rescheduled)
# is on the site's given day or later, in seq order: the site's booking book at start-up
# (bookings are not replayed with the day's rows: they outlive the day they were made on).
# Candidates come from the index on the slot days (migration 0010), then each one's
# latest slot day decides.
_BOOKINGS = (
    "WITH d AS (SELECT * FROM unnest($1::text[], $2::text[]) AS d(site_id, first_day)),"  # noqa: S608
    " candidates AS (SELECT DISTINCT e.ticket_id FROM ticket_events e JOIN d USING (site_id)"
    "   WHERE e.type IN ('booking_made', 'booking_rescheduled')"
    "     AND e.data ->> 'day' >= d.first_day),"
    " latest AS (SELECT DISTINCT ON (e.ticket_id) e.ticket_id, e.site_id, e.data ->> 'day' AS day"
    "   FROM ticket_events e JOIN candidates c USING (ticket_id)"
    "   WHERE e.type IN ('booking_made', 'booking_rescheduled')"
    "   ORDER BY e.ticket_id, e.seq DESC)"
    f" SELECT {_EVENT_COLUMNS} FROM ticket_events e"
    " WHERE e.ticket_id IN (SELECT l.ticket_id FROM latest l JOIN d USING (site_id)"
    "                        WHERE l.day >= d.first_day)"
    f" AND e.type IN ({', '.join(repr(str(t)) for t in sorted(BOOKING_EVENTS))})"
    " ORDER BY e.seq"
)
# The sort of one range fits in memory; replay runs next to this process, on one core.
_RANGE_SETTINGS = "SET LOCAL work_mem = '64MB'; SET LOCAL max_parallel_workers_per_gather = 0"


# A batch of events and the idempotent answers they produced, in one statement (see
# `EventStore._append`). A key already stored is kept as it is (its first answer stands).
# A batch is two arrays of records (migration 0006): events and the answers committed with
# them, in one statement.
_APPEND = (
    "WITH answers AS ("  # noqa: S608 - built from constants only
    f" INSERT INTO idempotency_keys ({_ANSWER_COLUMNS})"
    " SELECT * FROM unnest($2::antrian_answer_row[])"
    " ON CONFLICT (site_id, key) DO NOTHING)"
    f" INSERT INTO ticket_events ({_EVENT_COLUMNS})"
    " SELECT seq, site_id, service_day, type, ts, ticket_id, counter_id, service, segment,"
    " data::jsonb FROM unnest($1::antrian_event_row[])"
)


def _event_from_row(row: asyncpg.Record) -> Event:
    seq, site, day, type_, ts, ticket_id, counter_id, service, segment, data = row
    return Event(
        EventType(type_), site, ts, day, ticket_id, counter_id, service, segment, data, seq
    )


class EventStore:
    """All SQL of the service. Reads use the pool; appends use one writer connection."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        commit_timeout: float = 5.0,
        writer_lock_wait: float = 15.0,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        # A process restarted straight after a crash can find its predecessor's session still
        # holding the writer lock for a moment (the server notices a dead client within
        # client_connection_check_interval, or once a running statement ends): start-up waits
        # this long for the lock before refusing as a second writer.
        self.writer_lock_wait = writer_lock_wait
        # A database that stops answering without dropping the connection (a lock, a dead
        # network path) must not hold every request: past this, the batch is abandoned and
        # reported unavailable; a commit that did land is adopted by reconciliation.
        self.commit_timeout = commit_timeout
        self._writer: asyncpg.Connection | None = None

    async def _writer_conn(self) -> asyncpg.Connection:
        if self._writer is not None and not self._writer.is_closed():
            return self._writer
        self._writer = None
        conn = await connect(self.dsn)
        try:
            locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK_ID)
        except BaseException:
            # The server went away (or we were cancelled) between connecting and locking:
            # close it now, not in the garbage collector (an unclosed-connection warning).
            conn.terminate()
            raise
        if not locked:
            await conn.close()
            raise WriterLockHeld(
                "another Antrian process is writing to this database; run one writer per database"
            )
        self._writer = conn
        return conn

    async def open_writer(self) -> None:
        """Become the writer, waiting up to `writer_lock_wait` for a dead predecessor's lock."""
        deadline = asyncio.get_running_loop().time() + self.writer_lock_wait
        warned = False
        while True:
            try:
                await self._writer_conn()
            except WriterLockHeld:
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                if not warned:
                    warned = True
                    log.warning(
                        "the writer lock is held by %s; waiting up to %.0f s for it "
                        "(a crashed predecessor's session ends by itself; a running "
                        "second process does not)",
                        await self._lock_holder(),
                        self.writer_lock_wait,
                    )
                await asyncio.sleep(0.2)
            else:
                return

    async def _lock_holder(self) -> str:
        """Who holds the writer lock, as far as the server can tell (for the log)."""
        with contextlib.suppress(*DB_ERRORS):
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT a.pid, a.application_name, a.client_addr::text, a.state"
                    " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1",
                    WRITER_LOCK_ID,
                )
            if row is not None:
                pid, app, addr, state = row
                return f"backend {pid} ({app or 'no name'}, {addr or 'local socket'}, {state})"
        return "another session"

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closed():
            await self._writer.close()
        self._writer = None

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def site_totals(self) -> dict[str, tuple[date, dict[str, Any]]]:
        """Each site's stored cumulative totals: (through_day, totals as `to_json` made)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT site_id, through_day, totals::text FROM site_totals")
        return {r[0]: (r[1], orjson.loads(r[2])) for r in rows}

    async def save_site_totals(self, site_id: str, through_day: date, totals: str) -> None:
        """Store a site's cumulative totals through `through_day` (JSON text), unless totals
        through that day or a later one are stored already."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO site_totals (site_id, through_day, totals)"
                " VALUES ($1, $2, $3::text::jsonb)"
                " ON CONFLICT (site_id) DO UPDATE SET through_day = excluded.through_day,"
                " totals = excluded.totals, updated_at = now()"
                " WHERE site_totals.through_day < excluded.through_day",
                site_id,
                through_day,
                totals,
            )

    async def days_between(
        self, spans: Mapping[str, tuple[date | None, date]]
    ) -> dict[str, list[date]]:
        """For each site, `(after, before)`: its service days with events after `after`
        (all when None) and before `before`, in order. One statement for every site: a
        skip scan of the (site_id, service_day, seq) index, one probe per day found, so a
        start-up with every site's totals current costs one probe per site."""
        sites = list(spans)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.site_id, d.day FROM unnest($1::text[], $2::date[], $3::date[])"
                "  AS s(site_id, after, before)"
                " CROSS JOIN LATERAL ("
                "  WITH RECURSIVE d(day) AS ("
                "   SELECT min(service_day) FROM ticket_events"
                "    WHERE site_id = s.site_id AND service_day > s.after"
                "      AND service_day < s.before"
                "   UNION ALL"
                "   SELECT (SELECT min(service_day) FROM ticket_events"
                "    WHERE site_id = s.site_id AND service_day > d.day"
                "      AND service_day < s.before)"
                "   FROM d WHERE d.day IS NOT NULL)"
                "  SELECT day FROM d WHERE day IS NOT NULL) d"
                " ORDER BY s.site_id, d.day",
                sites,
                [spans[s][0] or date.min for s in sites],
                [spans[s][1] for s in sites],
            )
        out: dict[str, list[date]] = {s: [] for s in sites}
        for r in rows:
            out[r[0]].append(r[1])
        return out

    async def max_seq(self) -> int:
        conn = await self._writer_conn()
        value = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM ticket_events")
        return int(value)

    async def append(
        self,
        events: Sequence[Event],
        answers: Sequence[IdempotentAnswer],
        contacts: Sequence[Contact] = (),
        notices: Sequence[Notice] = (),
        erase: Sequence[Erase] = (),
    ) -> None:
        """Commit a batch of events (with their seq set) and idempotent answers atomically,
        with the batch's contacts, notices and erasures (store/outbox.py)."""
        try:
            async with asyncio.timeout(self.commit_timeout):
                await self._append(events, answers, contacts, notices, erase)
        except WriterLockHeld:
            raise
        except DB_ERRORS as exc:
            await self._drop_writer()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def _append(
        self,
        events: Sequence[Event],
        answers: Sequence[IdempotentAnswer],
        contacts: Sequence[Contact],
        notices: Sequence[Notice],
        erase: Sequence[Erase],
    ) -> None:
        # One statement, so one round trip: a statement outside a transaction block commits
        # on its own (atomically: both inserts or neither), with no BEGIN and COMMIT round
        # trips around it. The writer waits on this; requests decided meanwhile queue up.
        # A batch with outbox work is one transaction: its notices commit with its events.
        conn = await self._writer_conn()
        if contacts or notices or erase:
            async with conn.transaction():
                await self._insert(conn, events, answers)
                await outbox.write(conn, contacts, notices, erase)
        else:
            await self._insert(conn, events, answers)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        events: Sequence[Event],
        answers: Sequence[IdempotentAnswer],
    ) -> None:
        await conn.execute(
            _APPEND,
            [
                (
                    e.seq,
                    e.site,
                    e.day,
                    e.type,
                    e.ts,
                    e.ticket_id,
                    e.counter_id,
                    e.service,
                    e.segment,
                    orjson.dumps(e.data if type(e.data) is dict else dict(e.data)).decode(),
                )
                for e in events
            ],
            [
                (a.site_id, a.key, a.request_hash, a.status, a.response, a.last_seq, a.created_at)
                for a in answers
            ],
        )

    async def _drop_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.terminate()
            except Exception:  # already gone
                log.debug("writer connection already closed", exc_info=True)
        self._writer = None

    async def load_day(self, site_id: str, day: date) -> list[Event]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM ticket_events "  # noqa: S608 - constant
                "WHERE site_id = $1 AND service_day = $2 ORDER BY seq",
                site_id,
                day,
            )
        return [_event_from_row(r) for r in rows]

    async def read_days(
        self,
        days: Mapping[str, date],
        *,
        chunk: int = REPLAY_CHUNK,
        batch: int = REPLAY_BATCH,
    ) -> AsyncIterator[list[asyncpg.Record]]:
        """Every event of each site's given day as replay rows (`events.replay_row`), in
        lists of up to `batch` rows.

        Each site's rows come in seq order, and within a list each site's rows are
        contiguous (a seq range of `chunk` is read sorted by site, and the ranges follow in
        seq order); rows of different sites are not ordered. For start-up replay only
        (`SiteState.replay_rows`): a row carries only what the state's handlers read.
        Two ranges are read at once through cursors, each a few batches ahead, so
        PostgreSQL reads and sorts while this process decodes and applies, and only a few
        batches are ever held in memory.
        """
        by_day: dict[date, list[str]] = {}
        for site_id, day in days.items():
            by_day.setdefault(day, []).append(site_id)
        for day, sites in sorted(by_day.items()):
            async with self.pool.acquire() as conn:
                bounds = await conn.fetchrow(_DAY_BOUNDS, sites, day)
            assert bounds is not None  # an aggregate always has one row
            lo, hi = bounds
            if lo is None:
                continue
            open_ranges = asyncio.Semaphore(REPLAY_RANGES_OPEN)
            queues: list[asyncio.Queue[list[asyncpg.Record] | BaseException | None]] = []
            tasks = []
            for first in range(lo, hi + 1, chunk):
                queue: asyncio.Queue[list[asyncpg.Record] | BaseException | None] = asyncio.Queue(2)
                queues.append(queue)
                last = min(first + chunk, hi + 1)
                tasks.append(
                    asyncio.create_task(
                        self._read_range(open_ranges, queue, first, last, day, sites, batch)
                    )
                )
            try:
                for queue in queues:
                    while (item := await queue.get()) is not None:
                        if isinstance(item, BaseException):
                            raise item
                        yield item
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_range(
        self,
        open_ranges: asyncio.Semaphore,
        queue: asyncio.Queue[list[asyncpg.Record] | BaseException | None],
        first: int,
        last: int,
        day: date,
        sites: list[str],
        batch: int,
    ) -> None:
        try:
            async with open_ranges, self.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute(_RANGE_SETTINGS)
                cursor = await conn.cursor(_DAY_RANGE, first, last, day, sites)
                while rows := await cursor.fetch(batch):
                    await queue.put(rows)
        except Exception as exc:
            await queue.put(exc)
            return
        await queue.put(None)

    async def contacts(self) -> list[Contact]:
        async with self.pool.acquire() as conn:
            return await outbox.read_contacts(conn)

    async def read_bookings(self, days: Mapping[str, date]) -> list[Event]:
        """The events of every booking of each site whose slot is on its given day or
        later, in seq order (the booking book at start-up)."""
        if not days:
            return []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_BOOKINGS, list(days), [d.isoformat() for d in days.values()])
        return [_event_from_row(r) for r in rows]

    async def load_after(
        self, seq: int, site_ids: Iterable[str] | None = None, limit: int = 100_000
    ) -> list[Event]:
        """Events with a seq above `seq` (reconciling after a failed write, stream back-fill)."""
        async with self.pool.acquire() as conn:
            if site_ids is None:
                rows = await conn.fetch(
                    f"SELECT {_EVENT_COLUMNS} FROM ticket_events "  # noqa: S608 - constant
                    "WHERE seq > $1 ORDER BY seq LIMIT $2",
                    seq,
                    limit,
                )
            else:
                rows = await conn.fetch(
                    f"SELECT {_EVENT_COLUMNS} FROM ticket_events "  # noqa: S608 - constant
                    "WHERE seq > $1 AND site_id = any($2::text[]) ORDER BY seq LIMIT $3",
                    seq,
                    list(site_ids),
                    limit,
                )
        return [_event_from_row(r) for r in rows]

    async def load_answers(self, since: datetime, after_seq: int = 0) -> list[IdempotentAnswer]:
        """Answers created since `since` with a seq above `after_seq` (reconciliation)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_ANSWER_COLUMNS} FROM idempotency_keys"  # noqa: S608 - constant
                " WHERE created_at >= $1 AND last_seq > $2"
                " ORDER BY created_at",
                since,
                after_seq,
            )
        return [IdempotentAnswer(*r) for r in rows]

    async def find_answer(self, site_id: str, key: str, since: datetime) -> IdempotentAnswer | None:
        """The stored answer of one key, if it was created since `since` (primary key look-up)."""
        return await self._one_answer(
            "site_id = $1 AND key = $2 AND created_at >= $3", site_id, key, since
        )

    async def latest_answer(
        self, site_id: str, key_prefix: str, since: datetime
    ) -> IdempotentAnswer | None:
        """The most recent answer (by its last event) among the keys that start with
        `key_prefix`, created since `since`: a device's last acted press, say."""
        return await self._one_answer(
            "site_id = $1 AND created_at >= $2 AND starts_with(key, $3)"
            " ORDER BY last_seq DESC LIMIT 1",
            site_id,
            since,
            key_prefix,
        )

    async def _one_answer(self, where: str, *args: Any) -> IdempotentAnswer | None:
        """The first stored answer that `where` (and its order) selects, if any."""
        async with connection(self.pool) as conn:
            row = await conn.fetchrow(
                f"SELECT {_ANSWER_COLUMNS} FROM idempotency_keys WHERE {where}",  # noqa: S608 - constant parts
                *args,
            )
        return None if row is None else IdempotentAnswer(*row)

    async def answer_keys(self, since: datetime, bucket_seconds: int) -> dict[int, list[str]]:
        """The keys (not the answers) stored since `since`, as "site_id<US>key" strings by
        time bucket (`created_at` in seconds // bucket_seconds).

        One row per bucket with the keys joined by a record separator: splitting one long
        text is far cheaper than decoding a row per key. Keys are printable, so they
        contain neither separator.
        """
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT floor(extract(epoch FROM created_at) / $2)::bigint,"
                " string_agg(site_id || E'\\x1f' || key, E'\\x1e')"
                " FROM idempotency_keys WHERE created_at >= $1 GROUP BY 1",
                since,
                bucket_seconds,
            )
        return {bucket: text.split("\x1e") for bucket, text in rows}

    async def forget_answers(self, before: datetime) -> int:
        """Delete idempotent answers older than `before` (retries come within seconds)."""
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1", before
            )
        return int(status.split()[-1])

    async def visits(self, site_id: str, day: date) -> list[dict[str, Any]]:
        """Rows of the ticket_visits view for one site and day (reports, tests)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM ticket_visits WHERE site_id = $1 AND service_day = $2"
                " ORDER BY ticket_issued_at, ticket_id, segment",
                site_id,
                day,
            )
        return [dict(r) for r in rows]
