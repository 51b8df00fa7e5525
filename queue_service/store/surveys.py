"""Survey (SKM) storage: what a ticket's served visit was, and one survey per ticket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from queue_service.domain.vocab import Outcome
from queue_service.store.db import connection


@dataclass(frozen=True, slots=True)
class ServedVisit:
    """What a survey is tied to: the ticket's last visit, and how it ended."""

    ticket_id: str
    site_id: str
    service_day: date
    segment: int
    service: str
    counter_id: str | None
    number: str | None
    outcome: Outcome | None  # of the last visit: served makes the ticket eligible
    finished_at: datetime | None
    wait_seconds: float | None  # the ticket's total wait over all its visits
    service_seconds: float | None


# The day and site of a ticket come from its issue event (the ticket index), then its
# visits from that site and day only.
_TICKET = (
    "SELECT site_id, service_day, data ->> 'number' FROM ticket_events"
    " WHERE ticket_id = $1 AND type = 'ticket_issued' ORDER BY seq LIMIT 1"
)
_VISITS = (
    "SELECT segment, service, counter_id, outcome, finished_at, wait_seconds, service_seconds"
    " FROM visits_of($1, $2, $2) WHERE ticket_id = $3 ORDER BY segment"
)


async def served_visit(pool: asyncpg.Pool, ticket_id: str) -> ServedVisit | None:
    """The ticket's last visit (None for an unknown ticket)."""
    async with connection(pool) as conn:
        head = await conn.fetchrow(_TICKET, ticket_id)
        if head is None:
            return None
        site_id, day, number = head
        rows = await conn.fetch(_VISITS, site_id, day, ticket_id)
    if not rows:
        return None
    last = rows[-1]
    waits = [r["wait_seconds"] for r in rows if r["wait_seconds"] is not None]
    return ServedVisit(
        ticket_id=ticket_id,
        site_id=site_id,
        service_day=day,
        segment=int(last["segment"]),
        service=last["service"],
        counter_id=last["counter_id"],
        number=number,
        outcome=None if last["outcome"] is None else Outcome(last["outcome"]),
        finished_at=last["finished_at"],
        wait_seconds=sum(waits) if waits else None,
        service_seconds=last["service_seconds"],
    )


@dataclass(frozen=True, slots=True)
class SurveyAnswers:
    mode: str  # "skm" | "quick"
    scores: tuple[int, ...] | None  # nine scores in skm mode
    rating: int | None  # quick mode
    comment: str | None
    channel: str  # "phone" | "counter"


async def insert_survey(
    pool: asyncpg.Pool, visit: ServedVisit, answers: SurveyAnswers, now: datetime
) -> bool:
    """Store the survey; False when the ticket already has one (nothing is changed)."""
    scores: Sequence[int | None] = answers.scores or (None,) * 9
    async with connection(pool) as conn:
        row = await conn.fetchrow(
            "INSERT INTO surveys (ticket_id, site_id, service_day, segment, service,"
            " counter_id, wait_seconds, service_seconds, mode, u1, u2, u3, u4, u5, u6,"
            " u7, u8, u9, rating, comment, channel, submitted_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
            " $16, $17, $18, $19, $20, $21, $22)"
            " ON CONFLICT (ticket_id) DO NOTHING RETURNING ticket_id",
            visit.ticket_id,
            visit.site_id,
            visit.service_day,
            visit.segment,
            visit.service,
            visit.counter_id,
            visit.wait_seconds,
            visit.service_seconds,
            answers.mode,
            *scores,
            answers.rating,
            answers.comment,
            answers.channel,
            now,
        )
    return row is not None


async def survey_of(pool: asyncpg.Pool, ticket_id: str) -> dict[str, Any] | None:
    """The stored survey of a ticket (without its comment), or None."""
    async with connection(pool) as conn:
        row = await conn.fetchrow(
            "SELECT mode, rating, submitted_at, channel FROM surveys WHERE ticket_id = $1",
            ticket_id,
        )
    return None if row is None else dict(row)


async def pending_for_counter(
    pool: asyncpg.Pool, site_id: str, day: date, counter_id: str, since: datetime
) -> list[dict[str, Any]]:
    """Visits served at a counter since `since` that have no survey yet, newest first (the
    counter's survey tablet offers the newest)."""
    async with connection(pool) as conn:
        # The tablet polls every few seconds per counter: read the counter's finish
        # events of today through the (site_id, service_day, seq) index, newest first,
        # rather than building every visit of the day (`visits_of`).
        rows = await conn.fetch(
            "SELECT e.ticket_id, e.ts AS finished_at, e.service FROM ticket_events e"
            " WHERE e.site_id = $1 AND e.service_day = $2 AND e.type = 'ticket_finished'"
            " AND e.counter_id = $3 AND e.ts >= $4 AND e.data->>'outcome' = 'served'"
            " AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.ticket_id = e.ticket_id)"
            " ORDER BY e.seq DESC LIMIT 5",
            site_id,
            day,
            counter_id,
            since,
        )
    return [dict(r) for r in rows]
