"""The durable outbox of notices, and the phone numbers they go to (migration 0009).

`write` runs inside the event store's commit: the notices of a batch of events become rows
in the same transaction as the events, so a committed event's notice is never lost and a
rolled-back one is never sent. The webhook worker (queue_service/webhook.py) then claims due
rows (`due`), and records what each attempt came to (`delivered`, `failed`); `prune`
deletes finished rows after a week and `stats` feeds the outbox gauges.

A row's final outcome (delivered, or given up) also adds one to its count in
`notice_counts` (migration 0012), in the same statement, and only when the row's state
changes: the reports count reminders from there, over ranges longer than the outbox keeps
its rows, and a count is never lost nor added twice (a retried attempt is not an outcome;
an outcome recorded again, or late, changes no state and adds nothing).

Delivery order: a subject's rows are claimed one at a time, in the order they were made (a
row waits while an earlier row of its subject is pending), so a citizen never hears
"cancelled" before "booked". Rows of different subjects go out side by side.

`MemoryOutbox` keeps the same behaviour in memory, for the in-memory store.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.vocab import NoticeKind, NoticeState
from queue_service.store.db import connection


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed row: what the worker sends, and the attempt it is (1 for the first)."""

    id: int
    site: str
    key: str
    kind: NoticeKind
    subject: str
    ts: datetime
    data: dict[str, Any]
    phone: str = field(repr=False)
    attempts: int


@dataclass(frozen=True, slots=True)
class SiteOutboxStats:
    """One site's rows: pending (and since when the oldest waits), and given up."""

    pending: int
    oldest_pending: datetime | None
    failed: int


class NoticeCount(NamedTuple):
    """What a row of `notice_counts` counts: the final outcomes of one site's notices of
    one kind and service on one service day."""

    site: str
    day: date  # the site's service day of the outcome
    kind: NoticeKind
    service: str  # the service the notice names; "" for none
    outcome: NoticeState  # DELIVERED or FAILED (given up)


def _notice_service(data: Mapping[str, Any]) -> str:
    """The service a notice names in its data (every kind's does), or "" when it names
    none (as `_SERVICE` reads the payload)."""
    service = data.get("service")
    return service if isinstance(service, str) else ""


class Outbox(Protocol):
    """What the webhook worker needs of an outbox (`PgOutbox`, `MemoryOutbox`)."""

    async def due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxRow]:
        """Claim up to `limit` rows due by `now`: each one's attempt count goes up and it
        is not due again before `now + lease` (unless recorded meanwhile)."""
        ...

    async def delivered(self, id: int, now: datetime, day: date) -> None:
        """The row was delivered: done, its phone forgotten, and counted delivered on
        service day `day`, if it was still pending (else nothing changes)."""
        ...

    async def failed(
        self, id: int, now: datetime, error: str, next_at: datetime | None, day: date
    ) -> None:
        """The attempt failed: due again at `next_at`; or, when `next_at` is None, given
        up (phone forgotten) and counted failed on service day `day` (unused for a retry).
        Nothing changes for a row no longer pending."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete rows delivered or given up before `before`; how many."""
        ...

    async def stats(self) -> dict[str, SiteOutboxStats]:
        """Per site, the rows pending and given up (sites with neither are left out)."""
        ...


Connection = asyncpg.Connection | PoolConnectionProxy


def _latest_contacts(contacts: Sequence[Contact]) -> list[Contact]:
    """One contact per subject, the last given: an upsert cannot touch a row twice."""
    return list({(c.site, c.subject): c for c in contacts}.values())


_UPSERT_CONTACTS = (
    "INSERT INTO contacts (site_id, subject, phone)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
    " ON CONFLICT (site_id, subject) DO UPDATE SET phone = excluded.phone"
)
# Only subjects with a contact get a row, with the number copied into it; ORDER BY keeps
# the ids (and so a subject's delivery order) in the order the notices were made.
_INSERT_NOTICES = (
    "INSERT INTO outbox (site_id, key, kind, subject, ts, payload, phone)"
    " SELECT n.site_id, n.key, n.kind, n.subject, n.ts, n.payload::jsonb, c.phone"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
    " $6::text[]) WITH ORDINALITY AS n(site_id, key, kind, subject, ts, payload, ord)"
    " JOIN contacts c ON c.site_id = n.site_id AND c.subject = n.subject"
    " ORDER BY n.ord"
    " ON CONFLICT (key) DO NOTHING"
)
_ERASE_CONTACTS = (
    "DELETE FROM contacts WHERE (site_id, subject) IN"
    " (SELECT * FROM unnest($1::text[], $2::text[]))"
)


async def write(
    conn: Connection,
    contacts: Sequence[Contact],
    notices: Sequence[Notice],
    erase: Sequence[Erase],
) -> None:
    """Store a batch's contacts, notices and erasures on `conn`, inside the caller's
    transaction, in this order: contacts upserted, notices inserted (only for subjects
    with a contact, once per key), contacts erased. So a batch that calls a remote-join
    ticket and ends its visit still sends the "called" notice, and a batch that makes a
    booking sends its "booked" notice. Nothing is sent to the database for empty lists."""
    if contacts:
        latest = _latest_contacts(contacts)
        await conn.execute(
            _UPSERT_CONTACTS,
            [c.site for c in latest],
            [c.subject for c in latest],
            [c.phone for c in latest],
        )
    if notices:
        await conn.execute(
            _INSERT_NOTICES,
            [n.site for n in notices],
            [n.key for n in notices],
            [str(n.kind) for n in notices],
            [n.subject for n in notices],
            [n.ts for n in notices],
            [orjson.dumps(dict(n.data)).decode() for n in notices],
        )
    if erase:
        await conn.execute(_ERASE_CONTACTS, [e.site for e in erase], [e.subject for e in erase])


async def read_contacts(conn: Connection) -> list[Contact]:
    """Every contact held (the visits still going on): start-up reads them so the engine
    knows which bookings each phone holds (the per-phone limit)."""
    rows = await conn.fetch("SELECT site_id, subject, phone FROM contacts")
    return [Contact(r["site_id"], r["subject"], r["phone"]) for r in rows]


_CLAIM = (
    "WITH claimed AS ("
    " SELECT o.id FROM outbox o"
    " WHERE o.state = 'pending' AND o.next_attempt_at <= $1"
    " AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.state = 'pending'"
    "  AND e.site_id = o.site_id AND e.subject = o.subject AND e.id < o.id)"
    " ORDER BY o.next_attempt_at, o.id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE outbox o SET attempts = o.attempts + 1, last_attempt_at = $1,"
    " next_attempt_at = $1 + $3::interval"
    " FROM claimed WHERE o.id = claimed.id"
    " RETURNING o.id, o.site_id, o.key, o.kind, o.subject, o.ts, o.payload::text, o.phone,"
    " o.attempts"
)


async def due(
    pool: asyncpg.Pool, now: datetime, limit: int, lease: timedelta = timedelta(minutes=1)
) -> list[OutboxRow]:
    """Claim up to `limit` pending rows due by `now`, the longest due first, one per
    subject (its earliest pending). A claimed row is leased: not due again before
    `now + lease`, so a worker that dies mid-attempt leaves it to be tried again then."""
    async with connection(pool) as conn:
        rows = await conn.fetch(_CLAIM, now, limit, lease)
    claimed = [
        OutboxRow(
            id=r["id"],
            site=r["site_id"],
            key=r["key"],
            kind=NoticeKind(r["kind"]),
            subject=r["subject"],
            ts=r["ts"],
            data=orjson.loads(r["payload"]),
            phone=r["phone"],
            attempts=r["attempts"],
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda row: row.id)


# The service a row's notice names, as `_notice_service` reads a notice's data.
_SERVICE = (
    "CASE WHEN jsonb_typeof(payload -> 'service') = 'string' THEN payload ->> 'service' ELSE '' END"
)


def _finish(changes: str) -> str:
    """One statement that finishes a pending row ($1 its id) with `changes` and adds one
    to its count on service day $2 under outcome $3. The INSERT reads what the UPDATE
    returned: nothing when the row was no longer pending (recorded before, by this worker
    or another), so a row is counted once, when its state changes, never twice."""
    return (
        "WITH done AS ("  # noqa: S608 - constant parts, values are $n parameters
        f" UPDATE outbox SET {changes} WHERE id = $1 AND state = 'pending'"
        f" RETURNING site_id, kind, {_SERVICE} AS service)"
        " INSERT INTO notice_counts (site_id, service_day, kind, service, outcome, n)"
        " SELECT site_id, $2, kind, service, $3, 1 FROM done"
        " ON CONFLICT (site_id, service_day, kind, service, outcome)"
        " DO UPDATE SET n = notice_counts.n + 1"
    )


_DELIVERED = _finish("state = 'delivered', delivered_at = $4, phone = NULL, last_error = NULL")
_GIVEN_UP = _finish("state = 'failed', phone = NULL, last_error = $4, next_attempt_at = $5")


async def delivered(pool: asyncpg.Pool, id: int, now: datetime, day: date) -> None:
    """The row was delivered: its phone is forgotten, and it counts as delivered on the
    site's service day `day`. A row no longer pending is left as it is, uncounted."""
    async with connection(pool) as conn:
        await conn.execute(_DELIVERED, id, day, str(NoticeState.DELIVERED), now)


async def failed(
    pool: asyncpg.Pool,
    id: int,
    now: datetime,
    error: str,
    next_at: datetime | None,
    day: date,
) -> None:
    """The attempt failed with `error`: the row is due again at `next_at`, or, when
    `next_at` is None (the last attempt), given up, its phone forgotten, and counted as
    failed on the site's service day `day`. A row no longer pending is left as it is."""
    async with connection(pool) as conn:
        if next_at is None:
            await conn.execute(_GIVEN_UP, id, day, str(NoticeState.FAILED), error, now)
        else:
            await conn.execute(
                "UPDATE outbox SET next_attempt_at = $3, last_error = $2"
                " WHERE id = $1 AND state = 'pending'",
                id,
                error,
                next_at,
            )


# A phone number is erased when its visit ends. One held longer than the furthest a booking
# may lie ahead (90 days) and its day is a visit whose end was never recorded: a safety net
# deletes it with the finished rows.
CONTACT_LIFETIME = timedelta(days=92)


async def prune(pool: asyncpg.Pool, before: datetime) -> int:
    """Delete the rows delivered or given up before `before`; how many were deleted. Also
    forget contacts older than CONTACT_LIFETIME before `before`."""
    async with connection(pool) as conn:
        status = await conn.execute(
            "DELETE FROM outbox WHERE state <> 'pending' AND last_attempt_at < $1", before
        )
        await conn.execute("DELETE FROM contacts WHERE created_at < $1", before - CONTACT_LIFETIME)
    return int(status.rpartition(" ")[2])


# Each half reads its rows through its partial index (outbox_due, outbox_failed): the
# table also holds a week of delivered rows, which a scan of one query would read through.
_STATS = (
    "SELECT site_id, count(*) AS pending, min(created_at) AS oldest, 0 AS failed"
    " FROM outbox WHERE state = 'pending' GROUP BY site_id"
    " UNION ALL"
    " SELECT site_id, 0, NULL, count(*) FROM outbox WHERE state = 'failed' GROUP BY site_id"
)


async def stats(pool: asyncpg.Pool) -> dict[str, SiteOutboxStats]:
    """Per site, the pending rows (how many, the oldest's creation) and the given-up rows
    still kept."""
    async with connection(pool) as conn:
        rows = await conn.fetch(_STATS)
    out: dict[str, SiteOutboxStats] = {}
    for r in rows:
        s = out.get(r["site_id"], SiteOutboxStats(0, None, 0))
        out[r["site_id"]] = SiteOutboxStats(
            s.pending + r["pending"], r["oldest"] or s.oldest_pending, s.failed + r["failed"]
        )
    return out


class PgOutbox:
    """The `Outbox` of a PostgreSQL database (the module's functions on one pool)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxRow]:
        return await due(self.pool, now, limit, lease)

    async def delivered(self, id: int, now: datetime, day: date) -> None:
        await delivered(self.pool, id, now, day)

    async def failed(
        self, id: int, now: datetime, error: str, next_at: datetime | None, day: date
    ) -> None:
        await failed(self.pool, id, now, error, next_at, day)

    async def prune(self, before: datetime) -> int:
        return await prune(self.pool, before)

    async def stats(self) -> dict[str, SiteOutboxStats]:
        return await stats(self.pool)


@dataclass(slots=True)
class _MemoryRow:
    """A row of `MemoryOutbox`, with the columns of the table's row."""

    id: int
    notice: Notice
    phone: str | None  # None once delivered or given up
    created_at: datetime
    state: NoticeState = NoticeState.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None  # None: due at once
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None

    def claimed(self) -> OutboxRow:
        n = self.notice
        assert self.phone is not None  # pending rows keep their phone
        return OutboxRow(
            self.id,
            n.site,
            n.key,
            n.kind,
            n.subject,
            n.ts,
            dict(n.data),
            self.phone,
            self.attempts,
        )


class MemoryOutbox:
    """The outbox, the contacts and the notice counts in memory, with the PostgreSQL
    tables' behaviour: the in-memory store holds one and calls `write` from its `append`."""

    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], str] = {}  # (site, subject) -> phone
        self.rows: dict[int, _MemoryRow] = {}  # by id, so in the order they were made
        self.counts: Counter[NoticeCount] = Counter()  # the table notice_counts
        self._keys: set[str] = set()
        self._ids = itertools.count(1)

    async def write(
        self, contacts: Sequence[Contact], notices: Sequence[Notice], erase: Sequence[Erase]
    ) -> None:
        """As the module's `write` does in a transaction. A row's creation time is its
        notice's `ts` (memory has no server clock)."""
        for c in contacts:
            self.contacts[c.site, c.subject] = c.phone
        for n in notices:
            phone = self.contacts.get((n.site, n.subject))
            if phone is None or n.key in self._keys:
                continue
            self._keys.add(n.key)
            row_id = next(self._ids)
            self.rows[row_id] = _MemoryRow(row_id, n, phone, created_at=n.ts)
        for e in erase:
            self.contacts.pop((e.site, e.subject), None)

    def read_contacts(self) -> list[Contact]:
        return [Contact(site, subject, phone) for (site, subject), phone in self.contacts.items()]

    async def due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxRow]:
        heads: dict[tuple[str, str], _MemoryRow] = {}
        for r in self.rows.values():
            if r.state is NoticeState.PENDING:
                heads.setdefault((r.notice.site, r.notice.subject), r)
        ready = [r for r in heads.values() if r.next_attempt_at is None or r.next_attempt_at <= now]
        ready.sort(key=lambda r: (r.next_attempt_at or r.created_at, r.id))
        for r in ready[:limit]:
            r.attempts += 1
            r.last_attempt_at = now
            r.next_attempt_at = now + lease
        return sorted((r.claimed() for r in ready[:limit]), key=lambda row: row.id)

    def _count(self, r: _MemoryRow, day: date) -> None:
        """Add `r`, just finished, to its count of service day `day` (the table's upsert)."""
        n = r.notice
        self.counts[NoticeCount(n.site, day, n.kind, _notice_service(n.data), r.state)] += 1

    async def delivered(self, id: int, now: datetime, day: date) -> None:
        r = self.rows.get(id)
        if r is not None and r.state is NoticeState.PENDING:
            r.state = NoticeState.DELIVERED
            r.delivered_at = now
            r.phone = r.last_error = None
            self._count(r, day)

    async def failed(
        self, id: int, now: datetime, error: str, next_at: datetime | None, day: date
    ) -> None:
        r = self.rows.get(id)
        if r is None or r.state is not NoticeState.PENDING:
            return
        r.last_error = error
        if next_at is None:
            r.state = NoticeState.FAILED
            r.next_attempt_at = now
            r.phone = None
            self._count(r, day)
        else:
            r.next_attempt_at = next_at

    async def prune(self, before: datetime) -> int:
        old = [
            r
            for r in self.rows.values()
            if r.state is not NoticeState.PENDING
            and r.last_attempt_at is not None
            and r.last_attempt_at < before
        ]
        for r in old:
            del self.rows[r.id]
            self._keys.discard(r.notice.key)  # as the table's UNIQUE key goes with its row
        return len(old)

    async def stats(self) -> dict[str, SiteOutboxStats]:
        pending: dict[str, list[datetime]] = {}
        given_up: dict[str, int] = {}
        for r in self.rows.values():
            if r.state is NoticeState.PENDING:
                pending.setdefault(r.notice.site, []).append(r.created_at)
            elif r.state is NoticeState.FAILED:
                given_up[r.notice.site] = given_up.get(r.notice.site, 0) + 1
        return {
            site: SiteOutboxStats(
                len(pending.get(site, ())),
                min(pending[site]) if site in pending else None,
                given_up.get(site, 0),
            )
            for site in pending.keys() | given_up.keys()
        }
