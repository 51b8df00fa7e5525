"""Idempotent answers: a command retried with its Idempotency-Key gets the answer it was
first given, and is never decided a second time.

An answer is committed with its command's events (`Store.append`), so a retry after a lost
acknowledgement finds it. Recent answers (ANSWER_MEMORY) are kept here as the JSON text that
was sent; the keys of the whole window (IDEMPOTENCY_WINDOW) are kept as hashes, so a new key
is known to be new without asking the store, and an older answer of the window is fetched
from the store by its key. A key whose request is decided and not committed yet is *in
flight*: a retry with it waits for that commit instead of deciding again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import orjson

from queue_service.domain import errors
from queue_service.domain.clock import Clock
from queue_service.errors import AntrianError
from queue_service.store.protocol import IdempotentAnswer, Store

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=48)
# Answers are kept in memory (as JSON text) this long: retries come within seconds. Older
# answers of the window are fetched from the store by key, for the rare late retry.
ANSWER_MEMORY = timedelta(minutes=15)
# The keys of the window are kept in memory (as hashes, in buckets of this many seconds),
# so a new key is known to be new without asking the store.
KEY_BUCKET_SECONDS = 4 * 3600
# Stored answers past the window are deleted this often.
PRUNE_EVERY = timedelta(hours=1)

Key = tuple[str, str]  # (site id, Idempotency-Key)


class IdempotencyKeyReused(errors.Conflict, code="idempotency_key_reused"):
    """The key was used before, within the idempotency window, for a different request."""


class AnswerFailed(AntrianError, code="answer_failed", status=500):
    """A command was carried out (its events are committed) but its answer could not be
    made, now or when it was first decided. `text` is the JSON body to send."""

    def __init__(self, text: str | None = None) -> None:
        super().__init__("the command was carried out but its answer could not be made")
        self.text = ANSWER_FAILED_TEXT if text is None else text


# The stored answer of a command whose events were decided (and are committed) but whose
# answer could not be made: a retry with its key gets this answer, not a second decision.
ANSWER_FAILED_STATUS = AnswerFailed.status
ANSWER_FAILED_TEXT = orjson.dumps(
    {
        "code": AnswerFailed.code,
        "message": "The request was carried out and recorded, but its answer could not be "
        "made. Repeating it with the same Idempotency-Key gives this answer again; check "
        "the queue for its result.",
        "details": {},
    }
).decode()


def _key_hash(site_id: str, key: str) -> int:
    # Keys are printable, so "\x1f" cannot occur in them: the joined text is unambiguous.
    return hash(f"{site_id}\x1f{key}")


class AnswerKeys:
    """Hashes of the idempotency keys stored in the window, bucketed by creation time.

    A key whose hash is absent was never used in the window (no false negatives); a hash
    present may, very rarely, belong to another key, which only costs a store look-up
    that finds nothing. About 60 bytes per key, against ~3.7 KB for a decoded answer.
    """

    def __init__(self) -> None:
        self.buckets: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def add(self, site_id: str, key: str, created_at: datetime) -> None:
        bucket = int(created_at.timestamp()) // KEY_BUCKET_SECONDS
        hashes = self.buckets.get(bucket)
        if hashes is None:
            hashes = self.buckets[bucket] = set()
        hashes.add(_key_hash(site_id, key))

    def add_joined(self, bucket: int, joined: list[str]) -> None:
        """Add "site_id\x1fkey" strings of one bucket (as `Store.answer_keys` gives)."""
        self.buckets.setdefault(bucket, set()).update(map(hash, joined))

    def __contains__(self, site_key: Key) -> bool:
        h = hash(f"{site_key[0]}\x1f{site_key[1]}")  # _key_hash, inline: once per request
        for hashes in self.buckets.values():  # noqa: SIM110 - a loop, not a generator: hot path
            if h in hashes:
                return True
        return False

    def forget_before(self, cutoff: datetime) -> None:
        """Drop buckets that end before `cutoff`."""
        last = int(cutoff.timestamp()) // KEY_BUCKET_SECONDS
        for bucket in [b for b in self.buckets if b < last]:
            del self.buckets[bucket]


class Answers:
    """The answers of the window: recent ones in memory, the keys of all, those in flight."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # Recent answers (ANSWER_MEMORY), oldest first; the keys of the whole window.
        self.recent: dict[Key, IdempotentAnswer] = {}
        self.keys = AnswerKeys()
        # Keys whose request is decided and not yet committed (or failed), with the
        # request's hash. Entries are removed once their batch is settled (`settled`),
        # never by the request's task: a cancelled request must not let a retry with its
        # key decide it a second time while its events are still on the way.
        self.inflight: dict[Key, str] = {}
        self._pruned_at = datetime.min.replace(tzinfo=UTC)

    async def load(self) -> None:
        """At start-up: delete the stored answers past the window, read the keys of it."""
        now = self.clock.now()
        await self.store.forget_answers(now - IDEMPOTENCY_WINDOW)
        stored = await self.store.answer_keys(now - IDEMPOTENCY_WINDOW, KEY_BUCKET_SECONDS)
        for bucket, joined in stored.items():
            self.keys.add_joined(bucket, joined)
        self._pruned_at = now

    async def given(
        self, key: Key, request_hash: str, batch_settled: Callable[[], Awaitable[None]]
    ) -> IdempotentAnswer | None:
        """The answer already given to this key, or None to decide the request now.
        `batch_settled` waits for the writer's next batch (committed or failed).

        Returning None happens with no await after the last check, so the caller holds
        the key in flight (`hold`) before any other request with it can look."""
        looked_up = False
        while True:
            inflight = self.inflight.get(key)
            if inflight is not None:
                if inflight != request_hash:
                    raise _reused(key)
                # Wait for the first attempt's batch: committed, its answer is found below;
                # failed, the request is decided afresh.
                await batch_settled()
                continue
            answer = self.recent.get(key)
            if answer is None and not looked_up and key in self.keys:
                # Used in the window but no longer in memory: ask the store.
                looked_up = True
                answer = await self.store.find_answer(
                    key[0], key[1], self.clock.now() - IDEMPOTENCY_WINDOW
                )
                if answer is None:
                    continue  # look again: another request may have taken the key meanwhile
            if answer is None:
                return None
            if answer.request_hash != request_hash:
                raise _reused(key)
            return answer

    def hold(self, key: Key, request_hash: str) -> None:
        """The request with this key is decided: in flight until its batch is settled."""
        self.inflight[key] = request_hash

    def settled(self, answers: Sequence[IdempotentAnswer]) -> None:
        """The batch of these answers is committed or failed: their keys are not in flight."""
        for answer in answers:
            self.inflight.pop((answer.site_id, answer.key), None)

    def committed(self, answers: Sequence[IdempotentAnswer]) -> None:
        """Answers just committed: remembered, and those past their time forgotten."""
        if not answers:
            return
        for answer in answers:
            self.recent[(answer.site_id, answer.key)] = answer
            self.keys.add(answer.site_id, answer.key, answer.created_at)
        now = self.clock.now()
        cutoff = now - ANSWER_MEMORY
        # Oldest first (dicts keep order): stop at the first one still recent.
        while self.recent:
            key = next(iter(self.recent))
            if self.recent[key].created_at >= cutoff:
                break
            del self.recent[key]
        self.keys.forget_before(now - IDEMPOTENCY_WINDOW)

    async def prune_stored(self) -> None:
        """Every PRUNE_EVERY, delete the stored answers past the window."""
        now = self.clock.now()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            await self.store.forget_answers(now - IDEMPOTENCY_WINDOW)
        except Exception:  # the next commit will tell whether the store is there
            log.warning("could not delete old idempotency answers", exc_info=True)


def _reused(key: Key) -> IdempotencyKeyReused:
    return IdempotencyKeyReused("this Idempotency-Key was used for a different request", key=key[1])
