"""The outbox of notices and the contacts table (migration 0009, store/outbox.py), and the
daily counts of the notices' outcomes (migration 0012), on a real PostgreSQL and in memory:
the same scenarios run on both, so the in-memory store keeps the database's behaviour. And
the phone numbers' one form (domain/notices.py)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bench.common import fresh_database
from queue_service.domain.notices import (
    Contact,
    Erase,
    InvalidPhone,
    Notice,
    normalise_phone,
)
from queue_service.domain.vocab import NoticeKind, NoticeState
from queue_service.store import outbox
from queue_service.store.db import create_pool
from queue_service.store.migrate import migrate
from queue_service.store.outbox import MemoryOutbox, NoticeCount, Outbox, PgOutbox

SITE = "mpp-banjarmasin"
PHONE = "+6281234567890"
LEASE = timedelta(minutes=1)
# The service days the worker says outcomes fall on.
DAY, NEXT_DAY = date(2026, 11, 23), date(2026, 11, 24)


# -- phone numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("081234567890", "+6281234567890"),
        ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("+62 (0)812 3456 7890", "+6281234567890"),
        ("(0812) 345.678", "+62812345678"),  # 10 digits in international form
        ("08123456789012", "+628123456789012"),  # 15
    ],
)
def test_indonesian_mobile_numbers_take_one_form(typed: str, stored: str) -> None:
    assert normalise_phone(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "0511-3252-525",  # a Banjarmasin landline
        "+6221 555 0100",  # a Jakarta landline
        "+14155550100",  # not Indonesian
        "0812345",  # too short
        "081234567890123",  # 16 digits in international form
        "0812 3456 78x0",
        "\uff10\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10",  # full-width
        "+ 62 812 3456 7890 ext 1",
    ],
)
def test_anything_else_is_refused_without_repeating_the_number(typed: str) -> None:
    with pytest.raises(InvalidPhone) as refused:
        normalise_phone(typed)
    assert refused.value.code == "invalid_phone"
    assert refused.value.status == 400
    assert typed.strip() == "" or typed not in str(refused.value)


def test_a_contact_is_printed_without_its_number() -> None:
    assert "812" not in repr(Contact(SITE, "B1", PHONE))
    rows = outbox.OutboxRow(1, SITE, "k", NoticeKind.CALLED, "T1", datetime.now(UTC), {}, PHONE, 1)
    assert "812" not in repr(rows)


# -- the outbox, on PostgreSQL and in memory ---------------------------------------------


@dataclass
class Bench:
    """One outbox under test, and how a commit writes to it."""

    outbox: Outbox
    write: Any  # async (contacts, notices, erase) -> None
    contacts: Any  # async () -> {(site, subject): phone}
    rows: Any  # async () -> [{key, state, phone, attempts, last_error}] by id
    counts: Any  # async () -> {NoticeCount: n}, the notice_counts table


async def pg_write(
    pool: asyncpg.Pool,
    contacts: Sequence[Contact] = (),
    notices: Sequence[Notice] = (),
    erase: Sequence[Erase] = (),
) -> None:
    """What the event store's commit does: the outbox's part of one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await outbox.write(conn, contacts, notices, erase)


def pg_bench(pool: asyncpg.Pool) -> Bench:
    async def contacts() -> dict[tuple[str, str], str]:
        rows = await pool.fetch("SELECT site_id, subject, phone FROM contacts")
        return {(r["site_id"], r["subject"]): r["phone"] for r in rows}

    async def rows() -> list[dict[str, Any]]:
        found = await pool.fetch(
            "SELECT key, state, phone, attempts, last_error FROM outbox ORDER BY id"
        )
        return [dict(r) for r in found]

    async def write(
        contacts: Sequence[Contact], notices: Sequence[Notice], erase: Sequence[Erase]
    ) -> None:
        await pg_write(pool, contacts, notices, erase)

    async def counts() -> dict[NoticeCount, int]:
        return await pg_counts(pool)

    return Bench(PgOutbox(pool), write, contacts, rows, counts)


async def pg_counts(pool: asyncpg.Pool) -> dict[NoticeCount, int]:
    found = await pool.fetch(
        "SELECT site_id, service_day, kind, service, outcome, n FROM notice_counts"
    )
    return {
        NoticeCount(
            r["site_id"],
            r["service_day"],
            NoticeKind(r["kind"]),
            r["service"],
            NoticeState(r["outcome"]),
        ): r["n"]
        for r in found
    }


def memory_bench() -> Bench:
    memory = MemoryOutbox()

    async def contacts() -> dict[tuple[str, str], str]:
        return dict(memory.contacts)

    async def rows() -> list[dict[str, Any]]:
        return [
            {
                "key": r.notice.key,
                "state": r.state,
                "phone": r.phone,
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in memory.rows.values()
        ]

    async def counts() -> dict[NoticeCount, int]:
        return dict(memory.counts)

    return Bench(memory, memory.write, contacts, rows, counts)


@pytest.fixture(params=["postgresql", "memory"])
async def bench(request: pytest.FixtureRequest, pg_server: str) -> AsyncIterator[Bench]:
    if request.param == "memory":
        yield memory_bench()
        return
    async with fresh_database(pg_server, "t") as url:
        pool = await create_pool(url)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            yield pg_bench(pool)
        finally:
            await pool.close()


T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def notice(subject: str, kind: NoticeKind, n: int = 0, **data: Any) -> Notice:
    return Notice(SITE, subject, kind, f"{subject}:{kind}:{n}", T0, data)


def now() -> datetime:
    """The worker's time: the wall clock (the server's now() stamps new rows)."""
    return datetime.now(UTC)


async def test_a_notice_is_made_only_for_a_subject_with_a_phone_which_it_copies(
    bench: Bench,
) -> None:
    await bench.write(
        [Contact(SITE, "B1", PHONE)],
        [notice("B1", NoticeKind.BOOKED, code="K7Q2MX"), notice("T9", NoticeKind.CALLED)],
        [],
    )
    rows = await bench.rows()
    assert [(r["key"], r["phone"], r["state"]) for r in rows] == [("B1:booked:0", PHONE, "pending")]
    (claimed,) = await bench.outbox.due(now(), 10, LEASE)
    assert (claimed.kind, claimed.subject, claimed.phone) == (NoticeKind.BOOKED, "B1", PHONE)
    assert claimed.data == {"code": "K7Q2MX"} and claimed.attempts == 1 and claimed.ts == T0


async def test_a_notice_key_is_made_once_within_a_batch_and_across_batches(bench: Bench) -> None:
    await bench.write([Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.NEAR)] * 2, [])
    await bench.write([], [notice("B1", NoticeKind.NEAR, position=1)], [])
    rows = await bench.rows()
    assert [r["key"] for r in rows] == ["B1:near:0"]
    (claimed,) = await bench.outbox.due(now(), 10, LEASE)
    assert claimed.data == {}  # the first notice of the key stands


async def test_a_visit_ended_in_the_batch_that_notifies_it_still_sends_the_notice(
    bench: Bench,
) -> None:
    """Called and erased in one commit: the contact is gone, the row keeps the number."""
    await bench.write([Contact(SITE, "T1", PHONE), Contact(SITE, "T2", "+6281111111111")], [], [])
    await bench.write([], [notice("T1", NoticeKind.CALLED)], [Erase(SITE, "T1")])
    assert await bench.contacts() == {(SITE, "T2"): "+6281111111111"}
    (claimed,) = await bench.outbox.due(now(), 10, LEASE)
    assert (claimed.subject, claimed.phone) == ("T1", PHONE)
    # Made and ended in one batch (a booking made and cancelled in one group commit).
    await bench.write(
        [Contact(SITE, "B3", PHONE)], [notice("B3", NoticeKind.BOOKED)], [Erase(SITE, "B3")]
    )
    assert (SITE, "B3") not in await bench.contacts()
    assert [r["key"] for r in await bench.rows()][-1] == "B3:booked:0"
    # A notice after the erasure finds no number: none is made.
    await bench.write([], [notice("T1", NoticeKind.NEAR)], [])
    assert "T1:near:0" not in [r["key"] for r in await bench.rows()]


async def test_the_last_number_given_for_a_subject_is_the_one_used(bench: Bench) -> None:
    other = "+6285700000000"
    await bench.write([Contact(SITE, "B1", PHONE), Contact(SITE, "B1", other)], [], [])
    await bench.write([], [notice("B1", NoticeKind.BOOKED)], [])
    (claimed,) = await bench.outbox.due(now(), 10, LEASE)
    assert claimed.phone == other


async def test_a_subjects_notices_are_claimed_one_at_a_time_in_order(bench: Bench) -> None:
    await bench.write([Contact(SITE, "B1", PHONE), Contact(SITE, "B2", PHONE)], [], [])
    await bench.write(
        [],
        [
            notice("B1", NoticeKind.BOOKED),
            notice("B1", NoticeKind.RESCHEDULED),
            notice("B2", NoticeKind.BOOKED),
            notice("B1", NoticeKind.CANCELLED),
        ],
        [],
    )
    first = await bench.outbox.due(now(), 10, LEASE)
    assert [r.key for r in first] == ["B1:booked:0", "B2:booked:0"]
    # Leased: nothing of B1 goes while its first row is in flight.
    assert await bench.outbox.due(now(), 10, LEASE) == []
    # A failed attempt keeps the subject's later rows behind it until it is delivered.
    await bench.outbox.failed(first[0].id, now(), "HTTP 500", now() - timedelta(seconds=1), DAY)
    await bench.outbox.delivered(first[1].id, now(), DAY)
    (again,) = await bench.outbox.due(now(), 10, LEASE)
    assert (again.key, again.attempts) == ("B1:booked:0", 2)
    await bench.outbox.delivered(again.id, now(), DAY)
    assert [r.key for r in await bench.outbox.due(now(), 10, LEASE)] == ["B1:rescheduled:0"]


async def test_a_row_is_due_again_when_its_lease_or_its_pause_ends(bench: Bench) -> None:
    await bench.write([Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)], [])
    t = now()
    (row,) = await bench.outbox.due(t, 10, LEASE)
    assert await bench.outbox.due(t + LEASE - timedelta(seconds=1), 10, LEASE) == []
    # The worker died mid-attempt: the row comes back when the lease ends.
    (row,) = await bench.outbox.due(t + LEASE, 10, LEASE)
    assert row.attempts == 2
    later = t + LEASE + timedelta(seconds=30)
    await bench.outbox.failed(row.id, t + LEASE, "cannot connect: Connection refused", later, DAY)
    assert await bench.outbox.due(later - timedelta(seconds=1), 10, LEASE) == []
    (row,) = await bench.outbox.due(later, 10, LEASE)
    assert row.attempts == 3
    assert (await bench.rows())[0]["last_error"] == "cannot connect: Connection refused"


async def test_delivered_and_given_up_rows_forget_the_number_and_are_pruned_later(
    bench: Bench,
) -> None:
    await bench.write(
        [Contact(SITE, "B1", PHONE), Contact(SITE, "B2", PHONE), Contact("other", "B3", PHONE)],
        [notice("B1", NoticeKind.BOOKED), notice("B2", NoticeKind.BOOKED)],
        [],
    )
    await bench.write([], [Notice("other", "B3", NoticeKind.BOOKED, "B3:booked", T0, {})], [])
    t = now()
    one, two, _ = await bench.outbox.due(t, 10, LEASE)
    await bench.outbox.delivered(one.id, t, DAY)
    await bench.outbox.failed(two.id, t, "HTTP 400", None, DAY)
    assert [(r["state"], r["phone"]) for r in await bench.rows()] == [
        ("delivered", None),
        ("failed", None),
        ("pending", PHONE),
    ]
    # Recording again changes nothing (a late duplicate of the worker's record).
    await bench.outbox.failed(one.id, t, "HTTP 500", None, DAY)
    assert (await bench.rows())[0]["state"] == "delivered"
    stats = await bench.outbox.stats()
    assert {s: (v.pending, v.failed) for s, v in stats.items()} == {SITE: (0, 1), "other": (1, 0)}
    assert stats["other"].oldest_pending is not None
    assert await bench.outbox.prune(t) == 0
    assert await bench.outbox.prune(t + timedelta(seconds=1)) == 2
    assert [r["key"] for r in await bench.rows()] == ["B3:booked"]


async def test_a_rolled_back_commit_leaves_no_contact_and_no_notice(pool: asyncpg.Pool) -> None:
    async def commit_that_fails() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.write(
                conn, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)], []
            )
            raise RuntimeError("the events' insert failed")

    with pytest.raises(RuntimeError):
        await commit_that_fails()
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_the_table_refuses_a_finished_row_that_keeps_its_number(pool: asyncpg.Pool) -> None:
    await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)])
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE outbox SET state = 'delivered'")


async def test_the_tables_states_are_the_notice_states(pool: asyncpg.Pool) -> None:
    """The migration's CHECK spells NoticeState's words: the two must not drift apart."""
    check = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'outbox'::regclass AND pg_get_constraintdef(oid) LIKE '%ANY%'"
    )
    assert set(re.findall(r"'(\w+)'::text", check)) == {str(s) for s in NoticeState}


async def test_a_contact_whose_visit_end_was_never_recorded_is_forgotten_after_its_lifetime(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await outbox.write(conn, [Contact(SITE, "old", PHONE), Contact(SITE, "new", PHONE)], [], [])
        await conn.execute(
            "UPDATE contacts SET created_at = now() - $1::interval WHERE subject = 'old'",
            outbox.CONTACT_LIFETIME + timedelta(days=8),
        )
    await outbox.prune(pool, now() - timedelta(days=7))
    async with pool.acquire() as conn:
        assert [r["subject"] for r in await conn.fetch("SELECT subject FROM contacts")] == ["new"]


# -- the notice counts (migration 0012) ----------------------------------------------------


async def test_a_rows_final_outcome_is_counted_once_by_day_kind_and_service(bench: Bench) -> None:
    """Delivered and given up count, a retried attempt does not; recording an outcome again
    (a lost answer, a late record after an outage) adds nothing; pruning keeps the counts."""
    subjects = ("B1", "B2", "T3", "T4", "T5", "B6")
    await bench.write([Contact(SITE, s, PHONE) for s in subjects], [], [])
    await bench.write(
        [],
        [
            notice("B1", NoticeKind.BOOKED, service="B"),
            notice("B2", NoticeKind.BOOKED, service="B"),
            notice("T3", NoticeKind.CALLED, service="W"),
            notice("T4", NoticeKind.NEAR),  # names no service
            notice("T5", NoticeKind.NEAR, service=17),  # nor does this (not a code)
            notice("B6", NoticeKind.BOOKED, service="B"),
        ],
        [],
    )
    t = now()
    b1, b2, t3, t4, t5, b6 = await bench.outbox.due(t, 10, LEASE)
    await bench.outbox.failed(b2.id, t, "HTTP 500", t, DAY)  # tried again later
    assert await bench.counts() == {}
    await bench.outbox.delivered(b1.id, t, DAY)
    await bench.outbox.delivered(b6.id, t, DAY)
    (b2,) = await bench.outbox.due(t, 10, LEASE)
    await bench.outbox.failed(b2.id, t, "HTTP 500", None, DAY)  # the last attempt
    await bench.outbox.delivered(t3.id, t, NEXT_DAY)
    await bench.outbox.failed(t4.id, t, "HTTP 400", None, DAY)
    await bench.outbox.delivered(t5.id, t, DAY)
    expected = {
        NoticeCount(SITE, DAY, NoticeKind.BOOKED, "B", NoticeState.DELIVERED): 2,
        NoticeCount(SITE, DAY, NoticeKind.BOOKED, "B", NoticeState.FAILED): 1,
        NoticeCount(SITE, NEXT_DAY, NoticeKind.CALLED, "W", NoticeState.DELIVERED): 1,
        NoticeCount(SITE, DAY, NoticeKind.NEAR, "", NoticeState.FAILED): 1,
        NoticeCount(SITE, DAY, NoticeKind.NEAR, "", NoticeState.DELIVERED): 1,
    }
    assert await bench.counts() == expected
    # Every row recorded again, each way, on another day: its state changed once, its
    # count with it.
    for r in (b1, b2, t3, t4, t5, b6):
        await bench.outbox.delivered(r.id, t, NEXT_DAY)
        await bench.outbox.failed(r.id, t, "HTTP 500", None, NEXT_DAY)
        await bench.outbox.failed(r.id, t, "HTTP 500", t, NEXT_DAY)
    assert await bench.counts() == expected
    assert [r["state"] for r in await bench.rows()] == [
        "delivered", "failed", "delivered", "failed", "delivered", "delivered"
    ]  # fmt: skip
    assert await bench.outbox.prune(t + timedelta(seconds=1)) == len(subjects)
    assert await bench.counts() == expected


async def test_rows_recorded_by_two_workers_at_once_are_counted_once(pool: asyncpg.Pool) -> None:
    """Two workers record each row at the same moment, one delivered and one given up (a
    lease that ran out mid-attempt): the row takes one of the two, and so does its count."""
    subjects = [f"B{i}" for i in range(40)]
    await pg_write(
        pool,
        [Contact(SITE, s, PHONE) for s in subjects],
        [notice(s, NoticeKind.BOOKED, service="B") for s in subjects],
    )
    claimed = await outbox.due(pool, now(), 100, LEASE)
    assert len(claimed) == len(subjects)
    t = now()
    await asyncio.gather(
        *(
            record
            for r in claimed
            for record in (
                outbox.delivered(pool, r.id, t, DAY),
                outbox.failed(pool, r.id, t, "HTTP 500", None, DAY),
            )
        )
    )
    states = [r["state"] for r in await pool.fetch("SELECT state FROM outbox")]
    assert await pg_counts(pool) == {
        NoticeCount(SITE, DAY, NoticeKind.BOOKED, "B", NoticeState(state)): n
        for state, n in Counter(states).items()
    }


async def test_the_counts_outcomes_are_the_final_notice_states(pool: asyncpg.Pool) -> None:
    """The migration's CHECK spells the NoticeStates a row ends in: they must not drift."""
    check = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'notice_counts'::regclass AND pg_get_constraintdef(oid) LIKE '%ANY%'"
    )
    assert set(re.findall(r"'(\w+)'::text", check)) == {
        str(s) for s in NoticeState if s is not NoticeState.PENDING
    }
