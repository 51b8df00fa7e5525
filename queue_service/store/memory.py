"""An in-memory `Store`: the log, the answers and the totals in this process, nothing on disk.

The offline simulator runs the engine on it (a simulated day in a second), and engine unit
tests run on it as well as on PostgreSQL. It keeps the PostgreSQL store's semantics: seq
order, the first answer of a key stands, totals are stored only forward, replay rows as
`domain.events.replay_row` lays them out. Events are kept as the engine made them (the engine
treats an Event as immutable once committed).
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from queue_service.domain import events
from queue_service.domain.events import BOOKING_EVENTS, ROW_WIDTH, Event
from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.state import Row
from queue_service.domain.vocab import EventType
from queue_service.store.outbox import MemoryOutbox
from queue_service.store.protocol import REPLAY_BATCH, IdempotentAnswer


def replay_row(e: Event) -> Row:
    """The row the PostgreSQL store's range query reads of `e`: all `ROW_WIDTH` columns,
    those its type does not use None."""
    row = events.replay_row(e)
    return row + (None,) * (ROW_WIDTH - len(row))


class MemoryStore:
    """The `Store` protocol in memory (see the module's docstring)."""

    def __init__(self) -> None:
        self.events: list[Event] = []  # in seq order
        self.answers: dict[tuple[str, str], IdempotentAnswer] = {}
        self.totals: dict[str, tuple[date, str]] = {}
        self._seqs: list[int] = []  # the events' seqs, for bisection
        self.outbox = MemoryOutbox()  # the contacts and the notices (store/outbox.py)

    async def open_writer(self) -> None:
        """Nothing to take: the store belongs to its process."""

    async def close(self) -> None:
        """Nothing to release."""

    async def ping(self) -> None:
        """Always there."""

    async def max_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    async def append(
        self,
        events: Sequence[Event],
        answers: Sequence[IdempotentAnswer],
        contacts: Sequence[Contact] = (),
        notices: Sequence[Notice] = (),
        erase: Sequence[Erase] = (),
    ) -> None:
        last = self._seqs[-1] if self._seqs else 0
        for e in events:
            if e.seq <= last:
                raise ValueError(f"seq {e.seq} is not above the last committed ({last})")
            last = e.seq
        self.events.extend(events)
        self._seqs.extend(e.seq for e in events)
        for a in answers:
            self.answers.setdefault((a.site_id, a.key), a)
        await self.outbox.write(contacts, notices, erase)

    async def read_days(
        self, days: Mapping[str, date], *, batch: int = REPLAY_BATCH
    ) -> AsyncIterator[list[Row]]:
        for site_id, day in days.items():
            rows = [
                replay_row(e)
                for e in self.events
                if e.site == site_id and e.day == day and e.type not in BOOKING_EVENTS
            ]
            for first in range(0, len(rows), batch):
                yield rows[first : first + batch]

    async def contacts(self) -> list[Contact]:
        return self.outbox.read_contacts()

    async def read_bookings(self, days: Mapping[str, date]) -> list[Event]:
        latest: dict[str, tuple[str, date]] = {}
        for e in self.events:
            if e.type in (EventType.BOOKING_MADE, EventType.BOOKING_RESCHEDULED):
                latest[e.ticket_id or ""] = (e.site, date.fromisoformat(e.data["day"]))
        keep = {bid for bid, (site, day) in latest.items() if site in days and day >= days[site]}
        return [e for e in self.events if e.type in BOOKING_EVENTS and e.ticket_id in keep]

    async def load_after(
        self, seq: int, site_ids: Iterable[str] | None = None, limit: int = 100_000
    ) -> list[Event]:
        after = self.events[bisect.bisect_right(self._seqs, seq) :]
        if site_ids is not None:
            sites = set(site_ids)
            after = [e for e in after if e.site in sites]
        return after[:limit]

    async def site_totals(self) -> dict[str, tuple[date, dict[str, Any]]]:
        return {s: (day, orjson.loads(text)) for s, (day, text) in self.totals.items()}

    async def save_site_totals(self, site_id: str, through_day: date, totals: str) -> None:
        stored = self.totals.get(site_id)
        if stored is None or stored[0] < through_day:
            self.totals[site_id] = (through_day, totals)

    async def days_between(
        self, spans: Mapping[str, tuple[date | None, date]]
    ) -> dict[str, list[date]]:
        out: dict[str, list[date]] = {}
        for site_id, (after, before) in spans.items():
            low = after or date.min
            days = {e.day for e in self.events if e.site == site_id and low < e.day < before}
            out[site_id] = sorted(days)
        return out

    async def load_answers(self, since: datetime, after_seq: int = 0) -> list[IdempotentAnswer]:
        found = [
            a for a in self.answers.values() if a.created_at >= since and a.last_seq > after_seq
        ]
        return sorted(found, key=lambda a: a.created_at)

    async def find_answer(self, site_id: str, key: str, since: datetime) -> IdempotentAnswer | None:
        answer = self.answers.get((site_id, key))
        return answer if answer is not None and answer.created_at >= since else None

    async def latest_answer(
        self, site_id: str, key_prefix: str, since: datetime
    ) -> IdempotentAnswer | None:
        found = [
            a
            for (site, key), a in self.answers.items()
            if site == site_id and key.startswith(key_prefix) and a.created_at >= since
        ]
        return max(found, key=lambda a: a.last_seq, default=None)

    async def answer_keys(self, since: datetime, bucket_seconds: int) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for (site, key), a in self.answers.items():
            if a.created_at >= since:
                bucket = int(a.created_at.timestamp()) // bucket_seconds
                out.setdefault(bucket, []).append(f"{site}\x1f{key}")
        return out

    async def forget_answers(self, before: datetime) -> int:
        old = [k for k, a in self.answers.items() if a.created_at < before]
        for k in old:
            del self.answers[k]
        return len(old)
