"""The event store: append committed batches, read a day back, remember idempotent answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from queue_service.domain.events import Event
from queue_service.store.db import connect

log = logging.getLogger(__name__)

# Held for the life of the writer connection: exactly one process appends to the log.
WRITER_LOCK_ID = 0x616E7477  # "antw"

_EVENT_COLUMNS = (
    "seq, site_id, service_day, type, ts, ticket_id, counter_id, service, segment, data"
)


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the write; nothing was acknowledged."""


class WriterLockHeld(Exception):
    """Another process is already the writer of this database."""


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    site_id: str
    key: str
    request_hash: str
    status: int
    response: dict[str, Any]
    last_seq: int
    created_at: datetime


def _event_from_row(row: asyncpg.Record) -> Event:
    seq, site, day, type_, ts, ticket_id, counter_id, service, segment, data = row
    return Event(
        type=type_,
        site=site,
        ts=ts,
        day=day,
        ticket_id=ticket_id,
        counter_id=counter_id,
        service=service,
        segment=segment,
        data=data,
        seq=seq,
    )


class EventStore:
    """All SQL of the service. Reads use the pool; appends use one writer connection."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, commit_timeout: float = 5.0) -> None:
        self.pool = pool
        self.dsn = dsn
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
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK_ID):
            await conn.close()
            raise WriterLockHeld(
                "another Antrian process is writing to this database; run one writer per database"
            )
        self._writer = conn
        return conn

    async def open_writer(self) -> None:
        await self._writer_conn()

    async def close(self) -> None:
        if self._writer is not None and not self._writer.is_closed():
            await self._writer.close()
        self._writer = None

    async def ping(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def max_seq(self) -> int:
        conn = await self._writer_conn()
        value = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM ticket_events")
        return int(value)

    async def append(self, events: Sequence[Event], answers: Sequence[IdempotentAnswer]) -> None:
        """Commit a batch of events (with their seq set) and idempotent answers atomically."""
        try:
            async with asyncio.timeout(self.commit_timeout):
                await self._append(events, answers)
        except WriterLockHeld:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            await self._drop_writer()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def _append(self, events: Sequence[Event], answers: Sequence[IdempotentAnswer]) -> None:
        conn = await self._writer_conn()
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO ticket_events ({_EVENT_COLUMNS}) "  # noqa: S608 - constant
                "SELECT * FROM unnest($1::bigint[], $2::text[], $3::date[], $4::text[],"
                " $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::smallint[],"
                " $10::jsonb[])",
                [e.seq for e in events],
                [e.site for e in events],
                [e.day for e in events],
                [e.type for e in events],
                [e.ts for e in events],
                [e.ticket_id for e in events],
                [e.counter_id for e in events],
                [e.service for e in events],
                [e.segment for e in events],
                [dict(e.data) for e in events],
            )
            if answers:
                await conn.executemany(
                    "INSERT INTO idempotency_keys (site_id, key, request_hash, status,"
                    " response, last_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (site_id, key) DO NOTHING",
                    [
                        (
                            a.site_id,
                            a.key,
                            a.request_hash,
                            a.status,
                            a.response,
                            a.last_seq,
                            a.created_at,
                        )
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
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT site_id, key, request_hash, status, response, last_seq, created_at"
                " FROM idempotency_keys WHERE created_at >= $1 AND last_seq > $2",
                since,
                after_seq,
            )
        return [IdempotentAnswer(*r) for r in rows]

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
