"""What the engine needs of a store: the `Store` protocol.

Two stores satisfy it: `event_store.EventStore` (PostgreSQL, the service's) and
`memory.MemoryStore` (the offline simulator's and the engine unit tests'). The engine is
written against this protocol only, so the same decide, number, apply and commit path runs
on both. A store raises `StoreUnavailable` (or one of the PostgreSQL store's `db.DB_ERRORS`,
which the engine maps to it) when its database cannot take or give what was asked; any
other exception is a bug and travels as what it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from queue_service.domain.events import Event
from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.state import Row
from queue_service.errors import AntrianError


class StoreUnavailable(AntrianError, code="database_unavailable", status=503):
    """The database cannot be reached or refused the write; nothing was acknowledged."""


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    """A command's answer stored with its events, returned again to a retry of its key."""

    site_id: str
    key: str
    request_hash: str
    status: int
    response: str  # the JSON text of the answer (decoded only when a retry needs it)
    last_seq: int
    created_at: datetime


# A store's `read_days` hands over replay rows in batches of this many.
REPLAY_BATCH = 20_000


class Store(Protocol):
    """An append-only log of events with a global sequence, the idempotent answers
    committed with them, and each site's cumulative totals through a stored day."""

    async def open_writer(self) -> None:
        """Become the one writer of the log (before any `append`)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return when the store answers; raise when it does not."""
        ...

    async def max_seq(self) -> int:
        """The highest seq committed (0 for an empty log)."""
        ...

    async def append(
        self,
        events: Sequence[Event],
        answers: Sequence[IdempotentAnswer],
        contacts: Sequence[Contact] = (),
        notices: Sequence[Notice] = (),
        erase: Sequence[Erase] = (),
    ) -> None:
        """Commit events (their seq set, in order) and answers atomically. An answer whose
        (site, key) is stored already is kept as it is: its first answer stands. The
        batch's contacts, notices and erasures commit with them (store/outbox.py)."""
        ...

    def read_days(self, days: Mapping[str, date]) -> AsyncIterator[Sequence[Row]]:
        """Every event of each site's given day, as replay rows (laid out as
        `domain.events.replay_row` makes them) in batches; each site's rows in seq order and
        contiguous within a batch."""
        ...

    async def load_after(
        self, seq: int, site_ids: Iterable[str] | None = None, limit: int = 100_000
    ) -> list[Event]:
        """Events with a seq above `seq` (of the given sites), in seq order."""
        ...

    async def contacts(self) -> list[Contact]:
        """The phone numbers held for visits still going on (store/outbox.py)."""
        ...

    async def read_bookings(self, days: Mapping[str, date]) -> list[Event]:
        """The events of every booking of each site whose slot (as last booked or moved)
        is on the site's given day or later, in seq order, whatever day they were made on."""
        ...

    async def site_totals(self) -> dict[str, tuple[date, dict[str, Any]]]:
        """Each site's stored totals: (through_day, totals as `SiteTotals.to_json` made)."""
        ...

    async def save_site_totals(self, site_id: str, through_day: date, totals: str) -> None:
        """Store a site's totals through `through_day` (JSON text), unless totals through
        that day or a later one are stored already."""
        ...

    async def days_between(
        self, spans: Mapping[str, tuple[date | None, date]]
    ) -> dict[str, list[date]]:
        """For each site, `(after, before)`: its service days with events after `after`
        (all when None) and before `before`, in order."""
        ...

    async def load_answers(self, since: datetime, after_seq: int = 0) -> list[IdempotentAnswer]:
        """Answers created since `since` whose last seq is above `after_seq`, oldest first."""
        ...

    async def find_answer(self, site_id: str, key: str, since: datetime) -> IdempotentAnswer | None:
        """The stored answer of one key, if it was created since `since`."""
        ...

    async def latest_answer(
        self, site_id: str, key_prefix: str, since: datetime
    ) -> IdempotentAnswer | None:
        """The answer with the highest last seq among the keys starting with `key_prefix`,
        created since `since`."""
        ...

    async def answer_keys(self, since: datetime, bucket_seconds: int) -> dict[int, list[str]]:
        """The keys stored since `since` as "site_id<US>key" strings, by bucket of
        `created_at` (epoch seconds // bucket_seconds)."""
        ...

    async def forget_answers(self, before: datetime) -> int:
        """Delete answers created before `before`; how many were deleted."""
        ...
