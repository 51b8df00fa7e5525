"""The engine: runs commands against live state and commits their events in group batches.

Two states are kept per site. Commands decide against the *working* state, which already
holds events that are decided but not yet committed, so two concurrent "call next" can
never pick the same ticket. Readers (snapshot, stream, metrics) see only the *committed*
state, which changes after the store has committed. A failed commit throws away every
uncommitted decision: working state is rebuilt from committed state, and the writer
reconciles with the store before accepting commands again (a commit whose
acknowledgement was lost is found there and applied, never decided twice).

Every event is made the same way (`_decide`): decided against a state, numbered with the
next seq, applied to that state. Reads never change a state: a site's committed state
rolls over to a new service day when a command's events of that day are committed, or
when the day closer (`_close_days`, on the clock) has expired what the ended day left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as day_time
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson

from queue_service import heap
from queue_service.config import AppConfig
from queue_service.domain import commands, errors, online, reminders
from queue_service.domain.clock import Clock
from queue_service.domain.events import ROW_SITE, Event
from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.engine.answers import (
    ANSWER_FAILED_STATUS,
    ANSWER_FAILED_TEXT,
    IDEMPOTENCY_WINDOW,
    AnswerFailed,
    Answers,
    Key,
)
from queue_service.store.db import database_errors
from queue_service.store.event_store import WriterLockHeld
from queue_service.store.protocol import IdempotentAnswer, Store, StoreUnavailable

log = logging.getLogger(__name__)

Decide = Callable[[SiteState, datetime], list[Event]]
Respond = Callable[[SiteState, list[Event]], tuple[int, dict[str, Any]]]
Listener = Callable[[Sequence[Event]], None]

# A refused write (a full disk refuses INSERTs while `SELECT 1` still works) marks the
# database as not writable until a commit succeeds, or this long with no new refusal (a
# quiet hall after a blip must not look broken all night).
WRITE_FAILURE_MEMORY = 60.0
# What a failed commit may raise that the writer recovers from (reconciling with the
# store, then accepting commands again): the store's own failures. `WriterLockHeld`: the
# writer connection was lost and another process holds the lock now; the store is not
# ours to write until it lets go. Anything else is a bug and stops the writer.
_STORE_FAILURES = (StoreUnavailable, WriterLockHeld)
_ROW_SITE = itemgetter(ROW_SITE)  # the site of a replay row


@dataclass(slots=True)
class _Pending:
    events: list[Event]
    answer: IdempotentAnswer | None
    future: asyncio.Future[None]
    # What commits with the events (antrian online, store/outbox.py): phone numbers given,
    # notices to citizens, visits whose numbers are erased.
    contacts: Sequence[Contact] = ()
    notices: Sequence[Notice] = ()
    erase: Sequence[Erase] = ()


@dataclass(slots=True)
class EngineStats:
    """Self-monitoring figures read by the metrics collector."""

    events_committed: int = 0
    batches_committed: int = 0
    commit_failures: int = 0
    replay_seconds: float = 0.0
    replayed_events: int = 0


class Engine:
    """Every configured site's live state, the commands run against it and the writer
    that commits their events to `store` (see the module's docstring)."""

    def __init__(
        self,
        config: AppConfig,
        store: Store,
        clock: Clock,
        *,
        max_batch: int = 1024,
        gather_seconds: float = 0.002,
        retry_seconds: float = 1.0,
        heap_check_seconds: float = 600.0,
        day_check_seconds: float = 1.0,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.max_batch = max_batch
        # How long the writer may let the event loop run before it sends a batch, while
        # each turn of the loop still adds decisions to it (see `_gather`).
        self.gather_seconds = gather_seconds
        self.retry_seconds = retry_seconds
        # How often the nightly heap collection looks at the clock (see `heap.Policy`).
        self.heap_check_seconds = heap_check_seconds
        # How often the day closer looks at the clock for a site's service day that ended.
        self.day_check_seconds = day_check_seconds
        self.wait_bounds = wait_bounds(
            svc.target_wait_seconds
            for site in config.sites.values()
            for svc in site.services.values()
        )
        self.committed: dict[str, SiteState] = {
            s: SiteState(site, None, self._new_totals(s)) for s, site in config.sites.items()
        }
        # Working copies are made on a site's first command (see `_working`), and dropped
        # after a failed commit: a site nobody commands costs no copy.
        self.working: dict[str, SiteState] = {}
        self.answers = Answers(store, clock)
        self._pending: list[_Pending] = []  # decided, waiting for the writer
        self._writing: Sequence[_Pending] = ()  # the batch being committed now
        self._wake: asyncio.Future[None] | None = None  # the idle writer waits on it
        self._settled: asyncio.Future[None] | None = None  # resolved after each batch
        self._task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._saving: set[asyncio.Task[None]] = set()  # totals being stored (see _rolled)
        # What start() takes and stop() gives back (the collector policy).
        self._resources = contextlib.AsyncExitStack()
        self._idle = asyncio.Event()  # set while nothing waits to be committed
        self._idle.set()
        self._next_seq = 1
        self._committed_seq = 0
        self.listeners: list[Listener] = []
        # Called after a committed batch that wrote notices (the webhook worker's wake).
        self.notice_listeners: list[Callable[[], None]] = []
        # The "near" notices made so far, per site (reminders.after); emptied at the roll.
        self._near_sent: dict[str, set[str]] = {s: set() for s in config.sites}
        # Phone numbers are known to the engine only as keyed hashes (the per-phone limit of
        # bookings); the key lives as long as the process, the numbers in the store.
        self._phone_secret = secrets.token_bytes(32)
        # Called with (seconds, events) after each committed batch (metrics).
        self.commit_observers: list[Callable[[float, int], None]] = []
        self.available = False
        self.ready = False
        self._write_failed_at: float | None = None  # time.monotonic() of the last refusal
        self.stats = EngineStats()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Replay today's events of every site, then start the writer."""
        await self.store.open_writer()
        began = time.perf_counter()
        now = self.clock.now()
        self._committed_seq = await self.store.max_seq()
        self._next_seq = self._committed_seq + 1
        count = 0
        totals = await self._restore_totals(now)
        states = {
            site_id: SiteState(site, site.service_day(now), totals[site_id])
            for site_id, site in self.config.sites.items()
        }
        days = {site_id: state.day for site_id, state in states.items() if state.day}
        first_site = next(iter(self.config.sites.values()))
        policy = await self._resources.enter_async_context(
            heap.policy(self.clock, first_site.timezone, self.heap_check_seconds)
        )
        with policy.replay():
            async for rows in self.store.read_days(days):
                # Each site's rows are contiguous in a batch: apply them as one run.
                for site_id, run in groupby(rows, _ROW_SITE):
                    count += states[site_id].replay_rows(run)
            # Bookings outlive the day they were made on: every booking of today or later.
            for event in await self.store.read_bookings(days):
                states[event.site].bookings.apply(event)
            for contact in await self.store.contacts():
                if contact.site in states:
                    states[contact.site].bookings.phone_of[contact.subject] = self.phone_key(
                        contact.phone
                    )
            for site_id, state in states.items():
                state.on_roll = partial(self._rolled, site_id)
            self.committed = states
        await self.answers.load()
        self.working = {}
        self.stats.replay_seconds = time.perf_counter() - began
        self.stats.replayed_events = count
        log.info(
            "replayed %d events of %d sites in %.3f s",
            count,
            len(self.committed),
            self.stats.replay_seconds,
        )
        self.available = True
        self._task = asyncio.create_task(self._writer(), name="engine-writer")
        self._task.add_done_callback(self._writer_ended)
        self._closer = asyncio.create_task(self._close_days(), name="engine-day-closer")
        self._closer.add_done_callback(_closer_ended)
        self.ready = True

    async def _restore_totals(self, now: datetime) -> dict[str, SiteTotals]:
        """Each site's cumulative totals through yesterday: the stored totals, plus every
        day since that was not added yet (the service was down at midnight, or the
        database predates `site_totals`), replayed from the log, its tickets still open
        expired, and stored. Today is replayed on top of these by `start`."""
        stored = await self.store.site_totals()
        out: dict[str, SiteTotals] = {}
        for site_id in self.config.sites:
            out[site_id] = self._new_totals(site_id)
            if site_id in stored:
                out[site_id].add_json(stored[site_id][1])
        missing = await self.store.days_between(
            {
                site_id: (stored[site_id][0] if site_id in stored else None, site.service_day(now))
                for site_id, site in self.config.sites.items()
            }
        )
        for site_id, days in missing.items():
            for day in days:
                await self._close_past_day(self.config.sites[site_id], day, out[site_id])
        return out

    async def _close_past_day(self, site: Site, day: date, totals: SiteTotals) -> None:
        """Add a past day to the totals (start-up, before the writer runs): replay it,
        commit the expiry of the tickets it left open, store the totals through it."""
        state = SiteState(site, day, totals)
        replayed = 0
        async for rows in self.store.read_days({site.id: day}):
            replayed += state.replay_rows(rows)
        expired = self._decide(state, _expire_day, self.clock.now())
        if expired:
            await self.store.append(expired, [])
            self._committed_seq = expired[-1].seq
        await self.store.save_site_totals(site.id, day, orjson.dumps(totals.to_json()).decode())
        log.info(
            "site %s: day %s added to the stored totals (%d events replayed, %d tickets expired)",
            site.id,
            day,
            replayed,
            len(expired),
        )

    def _rolled(self, site_id: str, day: date, totals: SiteTotals) -> None:
        """The committed state of a site is rolling over from `day`: store its totals
        through that day (in the background: a failure is repaired at the next start,
        which adds the days not stored from the log)."""
        text = orjson.dumps(totals.to_json()).decode()
        task = asyncio.get_running_loop().create_task(self._save_totals(site_id, day, text))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save_totals(self, site_id: str, day: date, text: str) -> None:
        try:
            await self.store.save_site_totals(site_id, day, text)
        except Exception as exc:
            log.warning("could not store the totals of %s through %s: %s", site_id, day, exc)

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            # Let queued commits finish: they were decided and their senders wait.
            if self.available:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), timeout=5)
            self.available = False  # from here on, commands are refused at once
            # Waited for, not awaited: a writer a bug ended has said so already.
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._closer is not None:
            self._closer.cancel()
            await asyncio.wait({self._closer})
            self._closer = None
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)
        await self._resources.aclose()
        self._fail_queued(StoreUnavailable("service is shutting down"))

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """The writer ends only when stopped; if a bug ends it, say so loudly and refuse
        commands (they could never be committed), instead of letting them hang."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("the engine's writer stopped: %r", exc, exc_info=exc)
            self.available = False
            self.ready = False
            self._fail_queued(StoreUnavailable("the engine's writer stopped"))

    def _new_totals(self, site_id: str) -> SiteTotals:
        site = self.config.sites[site_id]
        return SiteTotals(site.services, site.counters, self.wait_bounds)

    def settled_until(self, now: datetime) -> datetime:
        """The instant up to which the committed state is final: `now`, or the time of the
        earliest event decided and not yet committed (it may still change the state as of
        its own time). A figure that grows with the clock between events (idleness while
        a queue waits) is counted up to here, so a later commit can never take back what a
        scrape already showed: the counter never goes back, across a restart too."""
        pending = [p.events[0].ts for p in (*self._writing, *self._pending) if p.events]
        return min(now, *pending) if pending else now

    @property
    def writable(self) -> bool:
        """False while the database refuses writes: a commit failed in the last
        WRITE_FAILURE_MEMORY seconds and none succeeded since."""
        failed = self._write_failed_at
        return failed is None or time.monotonic() - failed > WRITE_FAILURE_MEMORY

    # -- service days ------------------------------------------------------------------

    async def _close_days(self) -> None:
        """Close each site's service day when it ends (at local midnight): expire its
        tickets still open (`close_day`), then let the committed state roll over. Looks
        at the clock every `day_check_seconds`, so a stepped or injected clock is followed;
        a database that is down is retried at the next look."""
        while True:
            await asyncio.sleep(self.day_check_seconds)
            now = self.clock.now()
            for site_id, state in self.committed.items():
                today = state.site.service_day(now)
                if state.day is None or today <= state.day:
                    continue
                self._roll_committed(site_id, today)  # nothing open: no database needed
                if state.day == today:
                    continue
                try:
                    await self.close_day(site_id)
                except StoreUnavailable as exc:
                    log.warning("could not close the day of %s yet: %s", site_id, exc)
            for site_id, state in self.committed.items():
                if not state.bookings.pending or not state.bookings.due_to_miss(state.site, now):
                    continue
                try:
                    await self.miss_bookings(site_id)
                except StoreUnavailable as exc:
                    log.warning("could not mark missed bookings of %s yet: %s", site_id, exc)

    async def close_day(self, site_id: str) -> int:
        """Expire the tickets a site's ended service day left open, wait for their commit,
        and roll the site over to today; returns how many expired (0 when the day is
        current or nothing was open)."""
        self.check_site(site_id)
        if not self.available:
            raise StoreUnavailable("the database is unavailable; retry shortly")
        now = self.clock.now()
        working = self._working(site_id)
        today = working.site.service_day(now)
        expired = None
        if working.day is not None and today > working.day:
            expired = self._expire_day(site_id, working, now)
            working.roll_to(today)
            if expired is not None:
                await expired[1]
        self._roll_committed(site_id, today)
        return 0 if expired is None else len(expired[0])

    async def miss_bookings(self, site_id: str) -> int:
        """Mark missed the site's bookings whose check-in window closed without a check-in
        (the day closer does this on the clock); returns how many, once committed."""
        self.check_site(site_id)
        if not self.available:
            raise StoreUnavailable("the database is unavailable; retry shortly")
        now = self.clock.now()
        missed = self._decide(self._working(site_id), online.miss_due, now)
        if missed:
            await self._queue_decided(site_id, None, "", missed, now, 200, None)
        return len(missed)

    def _expire_day(
        self, site_id: str, working: SiteState, now: datetime
    ) -> tuple[list[Event], asyncio.Future[None]] | None:
        """Decide the expiry of the tickets the working state's day left open, and queue
        it for the writer before anything of the next day (None when nothing is open)."""
        expired = self._decide(working, _expire_day, now)
        if not expired:
            return None
        log.info(
            "site %s: %d tickets left open at the end of %s expire",
            site_id,
            len(expired),
            working.day,
        )
        return expired, self._queue_decided(site_id, None, "", expired, now, 200, None)

    def _roll_committed(self, site_id: str, today: date) -> None:
        """Roll the site's committed state over to `today`, once nothing waits to be
        committed (a ticket issued at 23:59:59 and committed after midnight must still
        reach yesterday's state and totals) and the ended day has no open ticket left
        (their expiry is on its way: it must reach yesterday's state and totals too).
        Otherwise the day closer tries again at its next look."""
        state = self.committed[site_id]
        if state.day != today and self._idle.is_set() and not state.open_tickets():
            state.roll_to(today)
            self._near_sent[site_id] = set()

    # -- reads -------------------------------------------------------------------------

    def site_state(self, site_id: str) -> SiteState:
        """Committed state of a site (read-only: reading never rolls the day over)."""
        state = self.committed.get(site_id)
        if state is None:
            raise errors.UnknownSite(f"site {site_id!r} does not exist", site=site_id)
        return state

    def check_site(self, site_id: str) -> None:
        """Raise UnknownSite unless `site_id` is configured (no state is touched)."""
        if site_id not in self.committed:
            raise errors.UnknownSite(f"site {site_id!r} does not exist", site=site_id)

    def ticket_site(self, ticket_id: str) -> SiteState:
        """The committed state of the site holding today's ticket `ticket_id`."""
        for state in self.committed.values():
            if ticket_id in state.tickets:
                return state
        # The id is a capability: never echo it whole.
        raise errors.UnknownTicket("no such ticket today", ticket=ticket_id[:8] + "...")

    def booking_site(self, booking_id: str) -> SiteState:
        """The committed state of the site holding booking `booking_id` (of today or later,
        or ended since the service started)."""
        for state in self.committed.values():
            if booking_id in state.bookings.bookings:
                return state
        raise errors.BookingNotFound("no such booking", booking=booking_id[:8] + "...")

    # -- commands ----------------------------------------------------------------------

    def phone_key(self, phone: str) -> str:
        """The keyed hash a normalised phone number is known by in memory."""
        return hmac.new(self._phone_secret, phone.encode(), hashlib.sha256).hexdigest()[:32]

    async def execute(
        self,
        site_id: str,
        decide: Decide,
        respond: Respond,
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
        contacts: Sequence[Contact] = (),
    ) -> tuple[int, dict[str, Any]]:
        """Decide, apply, commit; return (status, response) once the events are committed.
        `contacts`: phone numbers the command was given, committed with its events."""
        status, response, text = await self._execute(
            site_id, decide, respond, idempotency_key, request_hash, contacts, encode=False
        )
        if response is None:
            assert text is not None
            response = json.loads(text)
        return status, response

    async def execute_json(
        self,
        site_id: str,
        decide: Decide,
        respond: Respond,
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
        contacts: Sequence[Contact] = (),
    ) -> tuple[int, str, dict[str, Any] | None]:
        """As `execute`, with the response as JSON text: the HTTP API sends the text that
        is stored as the idempotent answer, so an answer is encoded once, and a retried
        request is answered with the stored text without decoding it. The response is also
        given as made when it was decided now (None for a retried request's stored one)."""
        status, response, text = await self._execute(
            site_id, decide, respond, idempotency_key, request_hash, contacts, encode=True
        )
        assert text is not None
        return status, text, response

    async def _execute(
        self,
        site_id: str,
        decide: Decide,
        respond: Respond,
        idempotency_key: str | None,
        request_hash: str,
        contacts: Sequence[Contact],
        *,
        encode: bool,
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        self.check_site(site_id)
        key = (site_id, idempotency_key) if idempotency_key else None
        if key is not None:
            given = await self.answers.given(key, request_hash, self._batch_settled)
            if given is not None:
                if given.status == ANSWER_FAILED_STATUS:
                    raise AnswerFailed(given.response)
                return given.status, None, given.response
        if not self.available:
            raise StoreUnavailable("the database is unavailable; retry shortly")

        now = self.clock.now()
        working = self._working(site_id)
        today = working.site.service_day(now)
        if working.day is None or today > working.day:
            # The day ended: its open tickets expire first, in a batch of their own ahead
            # of this command's (the day closer may not have looked yet).
            expired = self._expire_day(site_id, working, now)
            if expired is not None:
                expired[1].add_done_callback(_consume)
            working.roll_to(today)
            self._roll_committed(site_id, today)
        elif today < working.day:
            # The wall clock stepped back across midnight: the day never rolls back (that
            # would wipe today's tickets). Decide at the latest time this day has seen, so
            # the events belong to it and the site's history never runs backwards.
            now = working.last_ts or datetime.combine(
                working.day, day_time(), tzinfo=working.site.timezone
            ).astimezone(UTC)
        numbered = self._decide(working, decide, now)
        for contact in contacts:
            working.bookings.phone_of[contact.subject] = self.phone_key(contact.phone)
        try:
            status, response = respond(working, numbered)
            text = orjson.dumps(response).decode() if encode or key is not None else None
        except Exception as exc:
            # The events are applied to the working state and later decisions build on
            # them: they must be committed even though this answer could not be made. With
            # an Idempotency-Key, that outcome is the stored answer, so a retry is not
            # decided a second time (a second ticket).
            log.exception("the answer to a command on %s could not be made", site_id)
            self._queue_decided(
                site_id,
                key,
                request_hash,
                numbered,
                now,
                ANSWER_FAILED_STATUS,
                ANSWER_FAILED_TEXT,
                contacts,
            ).add_done_callback(_consume)
            raise AnswerFailed() from exc
        future = self._queue_decided(
            site_id, key, request_hash, numbered, now, status, text, contacts
        )
        # Not shielded: if this task is cancelled, the future is cancelled with it, and the
        # events are committed all the same (the writer holds them, and the key stays in
        # flight until they are).
        await future
        return status, response, text

    def _decide(self, state: SiteState, decide: Decide, now: datetime) -> list[Event]:
        """Decide a command against `state`, number its events with the next seqs and
        apply them to `state`: the one way an event is made."""
        events = decide(state, now)
        for event in events:
            # Numbered in place: the events were made just now by `decide` and nobody else
            # holds them yet (an Event is treated as immutable from here on).
            event.seq = self._next_seq
            self._next_seq += 1
            state.apply(event)
        return events

    def _queue_decided(
        self,
        site_id: str,
        key: Key | None,
        request_hash: str,
        numbered: list[Event],
        now: datetime,
        status: int,
        text: str | None,
        contacts: Sequence[Contact] = (),
    ) -> asyncio.Future[None]:
        """Queue a decided command's events for the writer, with its answer to be stored
        under its Idempotency-Key (if it has one), and hold the key in flight until the
        batch is settled. What the events tell citizens (`reminders.after`) and the
        command's contacts commit with them."""
        answer = None
        if key is not None:
            assert text is not None
            answer = IdempotentAnswer(
                site_id,
                key[1],
                request_hash,
                status,
                text,
                numbered[-1].seq if numbered else self._committed_seq,
                now,
            )
            self.answers.hold(key, request_hash)
        notices, erase = reminders.after(
            self._working(site_id), numbered, now, self._near_sent[site_id]
        )
        return self._enqueue(numbered, answer, contacts, notices, erase)

    def _working(self, site_id: str) -> SiteState:
        """The site's working state: a copy of its committed state, made on first use."""
        working = self.working.get(site_id)
        if working is None:
            # No copy means no decision of this site waits to be committed (copies are
            # dropped only once the queue is empty or failed): committed state is current.
            working = self.working[site_id] = self.committed[site_id].clone()
        return working

    def _enqueue(
        self,
        events: list[Event],
        answer: IdempotentAnswer | None,
        contacts: Sequence[Contact] = (),
        notices: Sequence[Notice] = (),
        erase: Sequence[Erase] = (),
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.clear()
        self._pending.append(_Pending(events, answer, future, contacts, notices, erase))
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return future

    async def _batch_settled(self) -> None:
        """Wait until the writer has settled its next batch (committed or failed)."""
        settled = self._settled
        if settled is None or settled.done():
            settled = self._settled = asyncio.get_running_loop().create_future()
        # Shielded: the future is shared by every waiter; one cancelled must not cancel it.
        await asyncio.shield(settled)

    def _settle(self, batch: Sequence[_Pending]) -> None:
        """A batch is committed (its answers are stored) or failed: its keys are no longer
        in flight, and whoever waits on a batch looks again."""
        self.answers.settled([p.answer for p in batch if p.answer is not None])
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    # -- the writer --------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            if not self.available:
                try:
                    await self._reconcile()
                except _STORE_FAILURES:
                    await asyncio.sleep(self.retry_seconds)
                    continue
                self.available = True
                log.info("database reachable again; accepting commands")
            while not self._pending:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
            self._wake = None
            await self._gather()
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._writing = batch
            events = [e for p in batch for e in p.events]
            answers = [p.answer for p in batch if p.answer is not None]
            contacts = [c for p in batch for c in p.contacts]
            notices = [n for p in batch for n in p.notices]
            erase = [x for p in batch for x in p.erase]
            began = time.perf_counter()
            try:
                await self.store.append(events, answers, contacts, notices, erase)
            except asyncio.CancelledError:
                self._writing = ()
                # Stopped while the batch was being written (the database did not answer
                # within stop()'s wait): its senders learn that nothing is acknowledged, and
                # its keys leave the in-flight set (a restarted service finds the commit if
                # it landed).
                self._fail(batch, StoreUnavailable("service is shutting down"))
                raise
            except _STORE_FAILURES as exc:
                self._writing = ()
                failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
                log.error("commit of %d events failed: %s", len(events), exc)
                self.stats.commit_failures += 1
                self.available = False
                self._write_failed_at = time.monotonic()
                self._fail(batch, failure)
                self._fail_queued(failure)
                self.working = {}  # every uncommitted decision is void; copies made anew
                continue
            except Exception as exc:
                # Not the store's failure but a bug: the batch's senders get it as it is,
                # and the writer stops (`_writer_ended` logs it with its traceback and
                # refuses what is queued: it could never be committed).
                self._writing = ()
                self.stats.commit_failures += 1
                self._fail(batch, exc)
                raise
            elapsed = time.perf_counter() - began
            self._write_failed_at = None
            try:
                self._commit_applied(events, answers)
                for contact in contacts:
                    self.committed[contact.site].bookings.phone_of[contact.subject] = (
                        self.phone_key(contact.phone)
                    )
                if notices:
                    for wake in self.notice_listeners:
                        wake()
            finally:
                self._writing = ()
                # The batch is committed: its senders are answered even if applying it to
                # the read state failed (a bug, logged by the writer's done callback).
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(None)
                self._settle(batch)
            for observe in self.commit_observers:
                try:
                    observe(elapsed, len(events))
                except Exception:
                    log.exception("commit observer failed")
            if not self._pending:
                self._idle.set()
            await self.answers.prune_stored()  # after the senders have their answers

    async def _gather(self) -> None:
        """Let the event loop run, a turn at a time, while each turn adds decisions to the
        next batch; return after the first turn that adds none (or after `gather_seconds`,
        or when the batch is full), and the writer sends the batch.

        Without this the writer sent the next batch the moment the last one was committed,
        while this process still had that batch's answers to write and the requests they
        set off to decide. Sent as the loop runs out of work, batches are larger (about 21
        tickets instead of 18 at 50 clients): fewer commits per ticket, less CPU per ticket
        here and in PostgreSQL, and a shorter commit cycle. `python -m bench.ab` gave +10%
        tickets per second (8 of 10 pairs) and a lower p99. When one command waits alone
        this costs one idle turn of the loop, a few microseconds. bench/README.md has the
        runs.
        """
        deadline = time.monotonic() + self.gather_seconds
        seen = len(self._pending)
        while seen < self.max_batch and time.monotonic() < deadline:
            await asyncio.sleep(0)
            now_pending = len(self._pending)
            if now_pending == seen:
                return
            seen = now_pending

    def _commit_applied(self, events: Sequence[Event], answers: Sequence[IdempotentAnswer]) -> None:
        for event in events:
            self.committed[event.site].apply(event)
        if events:
            self._committed_seq = max(self._committed_seq, events[-1].seq)
        self.answers.committed(answers)
        self.stats.events_committed += len(events)
        self.stats.batches_committed += 1
        for listener in self.listeners:
            try:
                listener(events)
            except Exception:
                log.exception("event listener failed")

    def _fail(self, batch: Sequence[_Pending], exc: Exception) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(exc)
        self._settle(batch)

    def _fail_queued(self, exc: Exception) -> None:
        queued, self._pending = self._pending, []
        self._fail(queued, exc)
        self._idle.set()

    async def _reconcile(self) -> None:
        """After a failed commit: adopt whatever the database did commit, then resume."""
        late: list[Event] = []
        answers: list[IdempotentAnswer] = []
        with database_errors():
            await self.store.ping()
            max_seq = await self.store.max_seq()
            if max_seq > self._committed_seq:
                late = await self.store.load_after(self._committed_seq)
                answers = await self.store.load_answers(
                    self.clock.now() - IDEMPOTENCY_WINDOW, after_seq=self._committed_seq
                )
        if late or answers:
            log.warning("adopting %d events committed before a lost acknowledgement", len(late))
            self._commit_applied(late, answers)
        self._committed_seq = max(self._committed_seq, max_seq)
        self._next_seq = self._committed_seq + 1
        self.working = {}


def _expire_day(state: SiteState, now: datetime) -> list[Event]:
    """`commands.expire_day` as a decision (it takes no time: its events are stamped at
    the end of the state's day)."""
    return commands.expire_day(state)


def _closer_ended(task: asyncio.Task[None]) -> None:
    """The day closer ends only when stopped; a bug that ends it is logged loudly."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.critical("the engine's day closer stopped: %r", exc, exc_info=exc)


def _consume(future: asyncio.Future[None]) -> None:
    """Done callback of a commit nobody awaits: take its outcome, so that asyncio does
    not report a failed commit as an exception never retrieved."""
    if not future.cancelled():
        future.exception()
