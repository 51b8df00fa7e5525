"""The webhook worker: delivers the outbox's notices to the deployment's receiver (an SMS or
WhatsApp gateway) as signed JSON POSTs (docs/webhooks.md).

One asyncio task claims due rows (`Outbox.due`) every `poll_seconds`, or at once when
`wake()` is called (the engine does after a commit that wrote notices), and posts them, a
few at a time. A 2xx answer delivers a row; anything else, or no answer within the
timeout, schedules the next attempt after an exponential pause with full jitter, and the
last attempt gives the row up. The worker outlives its receiver and its database being
down: it logs the trouble once, keeps what it could not record, and tries again; it never
stops on its own. `stop()` lets the attempts in flight finish (within the timeout).

A row's final outcome (delivered, or given up) is recorded with the site's service day it
happened on (the site's local date; a site no longer configured: the UTC date), where the
outbox counts it for the reports (`notice_counts`, docs/reports.md). The day is taken when
the outcome is decided, so an outcome recorded late, after the database was down, still
counts on its own day.

Nothing personal leaves through the logs or the metrics: a row is named by its key, its
kind and its site, never by its phone number.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial

import aiohttp
import orjson

from queue_service.domain.clock import Clock, SystemClock
from queue_service.domain.site import Site
from queue_service.domain.vocab import DeliveryOutcome
from queue_service.exposition import escape, header
from queue_service.settings import WebhookSettings
from queue_service.store.db import DB_ERRORS
from queue_service.store.outbox import Outbox, OutboxRow, SiteOutboxStats
from queue_service.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Antrian-Signature"
TIMESTAMP_HEADER = "X-Antrian-Timestamp"
# Delivered and failed rows are pruned this often.
PRUNE_EVERY = timedelta(hours=1)
# What the database's being down or slow raises through the outbox.
_DATABASE_DOWN = (*DB_ERRORS, StoreUnavailable)


def body(row: OutboxRow) -> bytes:
    """The JSON the receiver gets for `row` (docs/webhooks.md, "Payload")."""
    return orjson.dumps(
        {
            "id": row.key,
            "kind": row.kind,
            "site": row.site,
            "subject": row.subject,
            "phone": row.phone,
            "ts": row.ts.astimezone(UTC).isoformat(),
            "data": row.data,
        }
    )


def signature(secret: str, timestamp: str, payload: bytes) -> str:
    """The X-Antrian-Signature of a POST: HMAC-SHA256 keyed by the shared secret over
    `<timestamp>.<body>`, so a receiver can refuse a body replayed with another time."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The pause after failed attempt `attempt` (1, 2, ...): uniformly random up to
    min(cap, base * 2^(attempt-1)) ("full jitter"), so receivers coming back up are not
    met by every notice at once."""
    return rng.uniform(0, min(cap, base * 2.0 ** min(attempt - 1, 64)))


def _retry_after(value: str | None, cap: float) -> float | None:
    """A Retry-After given in seconds (429, 503), at most `cap`; None for none or a date."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), cap)


def _describe(exc: BaseException) -> str:
    """A failed attempt, for the row's last_error and the log: no URL, no body."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        # asyncio's refusals read "Connect call failed ('10.0.0.5', 443)": the errno's
        # own words are shorter and the same for every address.
        err = exc.os_error
        reason = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror
        return f"cannot connect: {reason or type(err).__name__}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection"
    return type(exc).__name__


class WebhookWorker:
    """Delivers the outbox (see the module's docstring); a metrics source for /metrics."""

    def __init__(
        self,
        outbox: Outbox,
        settings: WebhookSettings,
        *,
        sites: Mapping[str, Site] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        # Deliveries happen in real time, whatever clock the engine runs on.
        self.clock = clock or SystemClock()
        self.rng = rng or random.SystemRandom()
        # A claimed row is not claimed again before its attempt can have ended.
        self.lease = timedelta(seconds=settings.timeout_seconds + 30)
        # (site, kind, outcome) -> attempts that came to it.
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.pending: dict[str, SiteOutboxStats] = {}
        # The configured sites: the service days outcomes count on.
        self.sites: Mapping[str, Site] = sites or {}
        # The sites with gauges: the configured ones (0 rather than nothing) and any other
        # the outbox holds rows of.
        self.gauged = set(self.sites)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Outcomes decided but not yet recorded (the database was down): recorded first.
        self._unrecorded: list[Callable[[], Awaitable[None]]] = []
        self._last_prune: datetime | None = None
        self._last_stats = 0.0
        self._trouble: str | None = None  # the database's, logged once until it clears
        self._receiver_failing = False  # logged once until a delivery succeeds

    # -- the task ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-worker")

    def wake(self) -> None:
        """Look for due rows now (after a commit that wrote notices)."""
        self._wake.set()

    async def stop(self) -> None:
        """Claim nothing more; let the attempts in flight end, then close the session."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=self.settings.timeout_seconds + 5)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while not self._stopping:
                self._wake.clear()
                more = False
                try:
                    await self._record_unrecorded()
                    more = await self._round(session)
                    await self._housekeeping()
                except _DATABASE_DOWN as exc:
                    self._trouble_seen("the outbox's database is unreachable", exc)
                except Exception as exc:  # a bug: said with its traceback, then retried
                    self._trouble_seen("unexpected error", exc, traceback=True)
                else:
                    if self._trouble is not None:
                        log.info("webhook worker: the outbox is reachable again")
                        self._trouble = None
                if not more and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.poll_seconds):
                            await self._wake.wait()

    def _trouble_seen(self, what: str, exc: BaseException, *, traceback: bool = False) -> None:
        """Log `what` went wrong, once until it clears (a database that is down fails with
        one error after another, of several types, every poll)."""
        if what == self._trouble:
            return
        self._trouble = what
        log.warning(
            "webhook worker: %s (%s); trying again every %g s",
            what,
            type(exc).__name__,
            self.settings.poll_seconds,
            exc_info=exc if traceback else None,
        )

    async def _record_unrecorded(self) -> None:
        while self._unrecorded:
            await self._unrecorded[0]()
            self._unrecorded.pop(0)

    async def _round(self, session: aiohttp.ClientSession) -> bool:
        """Claim and attempt one batch; whether a full batch was claimed (more may be due)."""
        rows = await self.outbox.due(self.clock.now(), self.settings.batch, self.lease)
        if not rows:
            return False
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def attempt(row: OutboxRow) -> None:
            async with gate:
                await self._attempt(session, row)

        async with asyncio.TaskGroup() as group:
            for row in rows:
                group.create_task(attempt(row))
        return len(rows) == self.settings.batch

    async def _attempt(self, session: aiohttp.ClientSession, row: OutboxRow) -> None:
        """Post one row and record what came of it (kept for later if the database is
        down). Never raises but for cancellation."""
        payload = body(row)
        stamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row.key,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(self.settings.secret, stamp, payload),
        }
        error: str | None = None
        wait: float | None = None
        try:
            async with session.post(
                self.settings.url, data=payload, headers=headers, allow_redirects=False
            ) as answer:
                if not 200 <= answer.status < 300:
                    error = f"HTTP {answer.status}"
                    wait = _retry_after(
                        answer.headers.get("Retry-After"), self.settings.backoff_cap
                    )
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            error = _describe(exc)
        now = self.clock.now()
        day = self.service_day(row.site, now)
        record: Callable[[], Awaitable[None]]
        if error is None:
            outcome = DeliveryOutcome.DELIVERED
            record = partial(self.outbox.delivered, row.id, now, day)
            if self._receiver_failing:
                log.info("webhook: the receiver at %s takes notices again", self.settings.target)
                self._receiver_failing = False
        else:
            if row.attempts >= self.settings.max_attempts:
                outcome = DeliveryOutcome.FAILED
                next_at = None
                log.warning(
                    "webhook: notice %s (%s, site %s) given up after %d attempts: %s",
                    row.key,
                    row.kind,
                    row.site,
                    row.attempts,
                    error,
                )
            else:
                outcome = DeliveryOutcome.RETRIED
                pause = backoff(
                    row.attempts, self.settings.backoff_base, self.settings.backoff_cap, self.rng
                )
                next_at = now + timedelta(seconds=max(pause, wait or 0.0))
                log.debug("webhook: notice %s attempt %d: %s", row.key, row.attempts, error)
            if not self._receiver_failing:
                log.warning(
                    "webhook: the receiver at %s fails (%s); notices are retried",
                    self.settings.target,
                    error,
                )
                self._receiver_failing = True
            record = partial(self.outbox.failed, row.id, now, error, next_at, day)
        self.counts[row.site, row.kind, outcome] += 1
        try:
            await record()
        except _DATABASE_DOWN as exc:
            self._trouble_seen("the outbox's database is unreachable", exc)
            self._unrecorded.append(record)

    def service_day(self, site_id: str, now: datetime) -> date:
        """The service day an outcome at `now` counts on: the site's local date, or the
        UTC date for a site no longer in the configuration (its timezone is unknown)."""
        site = self.sites.get(site_id)
        return site.service_day(now) if site is not None else now.astimezone(UTC).date()

    async def _housekeeping(self) -> None:
        """Refresh the gauges (every poll at most), prune finished rows (hourly)."""
        if time.monotonic() - self._last_stats >= self.settings.poll_seconds:
            self.pending = await self.outbox.stats()
            self.gauged.update(self.pending)
            self._last_stats = time.monotonic()
        now = self.clock.now()
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            pruned = await self.outbox.prune(now - timedelta(days=self.settings.retention_days))
            if pruned:
                log.info("webhook: pruned %d finished notices", pruned)
            self._last_prune = now

    # -- /metrics ------------------------------------------------------------------------

    def render_metrics(self, now: float) -> str:
        """qms_notices_total (since the process started) and the outbox gauges (as of the
        last poll)."""
        parts = [
            header(
                "qms_notices_total",
                "counter",
                "Notice delivery attempts to the webhook, by what they came to.",
            )
        ]
        for (site, kind, outcome), n in sorted(self.counts.items()):
            parts.append(
                f'qms_notices_total{{site="{escape(site)}",kind="{kind}",outcome="{outcome}"}}'
                f" {n}\n"
            )
        empty = SiteOutboxStats(0, None, 0)
        stats = [(escape(site), self.pending.get(site, empty)) for site in sorted(self.gauged)]

        def age(oldest: datetime | None) -> float:
            return 0.0 if oldest is None else round(max(0.0, now - oldest.timestamp()), 3)

        gauges = (
            ("qms_outbox_pending", "Notices waiting to be delivered.", lambda s: s.pending),
            (
                "qms_outbox_oldest_pending_seconds",
                "Age of the oldest notice waiting to be delivered (0: none waits).",
                lambda s: age(s.oldest_pending),
            ),
            (
                "qms_outbox_failed",
                "Notices given up after their last attempt, kept for the retention period.",
                lambda s: s.failed,
            ),
        )
        for name, help_text, value in gauges:
            parts.append(header(name, "gauge", help_text))
            parts += [f'{name}{{site="{site}"}} {value(s)}\n' for site, s in stats]
        return "".join(parts)
