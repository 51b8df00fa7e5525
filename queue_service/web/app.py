"""The app factory and the service's bring-up.

The bring-up opens, in order, the database (an embedded PostgreSQL when DATABASE_URL is
unset, kept running by its supervisor), the migrations, the event store and the engine
(writer lock, replay of today), the devices, the report task and, when a webhook URL is
set, the webhook worker; each resource's closing is kept on one exit stack and runs in
reverse at shutdown.

Two ways to start an app:

- `create_app(settings, config)`: the app's start-up (aiohttp's runner, the test client)
  runs the whole bring-up and fails if it fails, so the engine is ready once the app is.
  For tests, benchmarks and tools.
- `create_app(..., serve_while_starting=True)` (`queue-service run`): the bring-up runs as
  a background task and the server answers from its first moment: `/healthz`; `/readyz`
  503 with the reason until ready; `/metrics` with what is known (`qms_database_up 0`, the
  embedded PostgreSQL's and the rate limiter's families, the process); the pages; the API
  503 `starting` with Retry-After (`api.not_ready_gate`). A database that cannot be
  reached is waited for: attempts after 0.5, 1, 2, then every 3 s, one log line each.
  Only a state that waiting cannot mend (another process holds the writer lock, an
  unusable DATABASE_URL, a bug) ends the bring-up: `Startup.task` then fails and the
  command stops with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, cast

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware as AioMiddleware
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest

from devices.manager import DEVICES, DeviceManager
from queue_service.config import AppConfig
from queue_service.domain.clock import Clock, SystemClock
from queue_service.engine import Engine
from queue_service.errors import AntrianError
from queue_service.exposition import Exposition, MetricSource, header
from queue_service.reports.task import ReportsTask
from queue_service.settings import Settings, describe_database_url
from queue_service.store.db import DB_ERRORS, EmbeddedPostgres, create_pool
from queue_service.store.event_store import EventStore, WriterLockHeld
from queue_service.store.migrate import migrate
from queue_service.store.outbox import PgOutbox
from queue_service.store.protocol import StoreUnavailable
from queue_service.stream import StreamHub
from queue_service.web import online, reports_api
from queue_service.web.api import STARTUP, Stage, Startup, not_ready_gate
from queue_service.web.errors import error_middleware
from queue_service.web.keys import (
    CLOCK,
    CONFIG,
    ENGINE,
    EXPOSITION,
    HUB,
    KNOWN_SECRETS,
    OPENAPI,
    SETTINGS,
    STORE,
    TOKENS,
)
from queue_service.web.openapi import encoded_document
from queue_service.web.routes import add_routes
from queue_service.web.security import LIMITER, RateLimiter, install_security_headers
from queue_service.webhook import WebhookWorker

log = logging.getLogger(__name__)

# The webhook worker, when ANTRIAN_WEBHOOK_URL is set (queue_service/webhook.py).
WEBHOOK = web.AppKey("webhook", WebhookWorker)

# One attempt to reach the database gives up after this long (a host that drops packets
# would otherwise hold it for asyncpg's default of a minute).
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 30.0
# Pauses before the 2nd, 3rd, 4th attempt, then every attempt after: quick at first (compose
# starts services in any order), and at most 3 s, so the service is ready within about 3 s
# (plus migrations and replay) of its database appearing.
BACKOFF = (0.5, 1.0, 2.0, 3.0)
# What waiting can mend: the database down, restarting, unreachable, missing, refusing.
_RETRIED = (*DB_ERRORS, StoreUnavailable)


def backoff(attempt: int) -> float:
    """The pause after failed attempt `attempt` (1, 2, ...)."""
    return BACKOFF[min(attempt, len(BACKOFF)) - 1]


class StartupFailed(AntrianError):
    """The bring-up cannot succeed by waiting. Its `code` is the reason /readyz shows
    (`writer_lock_held`, `database_url_invalid`)."""

    code = "startup_failed"


def explain(exc: BaseException, stage: str) -> tuple[str, str]:
    """(reason, detail) of a failed attempt, for /readyz (public: no host, no password) and
    the log line. `stage` is the step that failed."""
    if isinstance(exc, StoreUnavailable) and exc.__cause__ is not None:
        return explain(exc.__cause__, stage)  # what the database said, not its address
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "database_missing", exc.args[0] if exc.args else "the database does not exist"
    if isinstance(exc, asyncpg.CannotConnectNowError | asyncpg.InterfaceError):
        return "database_unreachable", str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError):
        # The server answered and refused: authentication, permissions, too many clients;
        # or a statement of the migrations or the replay failed (a full disk, say).
        message = exc.args[0] if exc.args else type(exc).__name__
        if stage == "database":
            return "database_refused", message
        return "database_error", f"{stage}: {message}"
    if isinstance(exc, TimeoutError):
        if stage == "database":
            return "database_unreachable", f"no answer within {CONNECT_TIMEOUT:g} s"
        return "database_unreachable", f"{stage}: the database did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "database_unreachable", "connection refused"
    if isinstance(exc, FileNotFoundError):
        return "database_unreachable", "no server at the socket"
    if isinstance(exc, OSError):
        if exc.strerror:
            return "database_unreachable", exc.strerror
        # asyncpg joins the failures of every address as "Multiple exceptions: [Errno
        # 111] Connect call failed ('127.0.0.1', 5432), ...": the addresses stay out.
        text = str(exc)
        if "Connect call failed" in text or "Errno 111" in text:
            return "database_unreachable", "connection refused"
        return "database_unreachable", type(exc).__name__
    return "database_unreachable", type(exc).__name__


class StartupExposition:
    """/metrics until the engine is there: `qms_database_up 0` (nothing can be committed
    yet), the families of the parts already running (the rate limiter, the embedded
    PostgreSQL) and the process collectors. web/scrape.py only calls `render()`."""

    def __init__(self, sources: list[MetricSource]) -> None:
        self.sources = sources
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    async def render(self) -> bytes:
        now = time.time()
        parts = [header("qms_database_up", "gauge", "1 when the writer can commit.")]
        parts.append("qms_database_up 0\n")
        parts += [source.render_metrics(now) for source in self.sources]
        return "".join(parts).encode() + generate_latest(self.registry)


def _publish(app: web.Application, key: web.AppKey[Any], value: Any) -> None:
    """Set an app key during the bring-up. When the server already serves, aiohttp warns
    that a started app's state changes (a guard against handlers seeing half-made state);
    here the not-ready gate keeps every handler that reads these keys away until the
    bring-up has set all of them."""
    if not app.frozen:
        app[key] = value
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app[key] = value


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout=10)
    except TimeoutError:
        pool.terminate()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.wait({task})


class _BringUp:
    """One run of the bring-up. Resources that are up are on `stack`, closed in reverse."""

    def __init__(self, app: web.Application, *, retry: bool, sources: list[MetricSource]) -> None:
        self.app = app
        self.retry = retry  # wait for the database (True), or fail at once (create_app)
        self.startup = app[STARTUP]
        self.stack = AsyncExitStack()
        self.began = time.monotonic()
        # Metric sources running before the engine (the start-up /metrics shows them).
        self.sources = sources

    async def run(self) -> None:
        settings = self.app[SETTINGS]
        if settings.database_url is None:
            dsn = await self._embedded(settings)
            where = f"embedded PostgreSQL in {settings.data_dir}"
        else:
            dsn = settings.database_url
            where = describe_database_url(dsn)
        engine, store = await self._database(dsn, where)
        self.startup.step(Stage.DEVICES, "starting the device links and the report task")
        exposition = self.app[EXPOSITION]
        manager = DeviceManager(self.app[CONFIG], engine, self.app[HUB])
        _publish(self.app, DEVICES, manager)
        exposition.sources.append(manager)
        self.stack.push_async_callback(manager.stop)
        # After the engine: device tickets and keys are commands. Stopped before the engine,
        # so no device task runs against a stopped engine. Devices that are absent only
        # back off and show as down: the service starts cleanly without them.
        await manager.start()
        # IKM gauges on /metrics and warm report rollups: one background task.
        reports = ReportsTask(store.pool, self.app[CONFIG], self.app[CLOCK])
        _publish(self.app, reports_api.REPORTS, reports)
        exposition.sources.append(reports)
        self.stack.push_async_callback(reports.stop)
        reports.start()
        webhook = self.app[SETTINGS].webhook
        if webhook is not None:
            # Notices in the outbox go to the receiver; stopped before the engine and the
            # pool (LIFO), after letting its attempts in flight end.
            worker = WebhookWorker(PgOutbox(store.pool), webhook, sites=self.app[CONFIG].sites)
            _publish(self.app, WEBHOOK, worker)
            exposition.sources.append(worker)
            self.stack.push_async_callback(worker.stop)
            worker.start()
            engine.notice_listeners.append(worker.wake)  # a commit with notices wakes it
            log.info("notices are posted to %s", webhook.target)
        attempts = self.startup.attempt
        self.startup.done()
        log.info(
            "ready in %.1f s (%s%s)",
            time.monotonic() - self.began,
            where,
            f"; reached at attempt {attempts}" if attempts > 1 else "",
        )

    async def _embedded(self, settings: Settings) -> str:
        """Start (or adopt) the embedded PostgreSQL, run its supervisor; its URI."""
        embedded = EmbeddedPostgres(settings.data_dir)
        loop = asyncio.get_running_loop()
        starts: list[asyncio.Future[str]] = []

        async def stop() -> None:
            # A start still running in its thread cannot be interrupted: it ends first.
            for start in starts:
                with contextlib.suppress(Exception):
                    await start
            await asyncio.to_thread(embedded.stop)

        self.stack.push_async_callback(stop)
        self.startup.attempt = 0
        while True:
            self.startup.attempt += 1
            self.startup.step(Stage.DATABASE, "starting the embedded PostgreSQL")
            starts.append(loop.run_in_executor(None, embedded.start))
            try:
                dsn = await asyncio.shield(starts[-1])
                break
            except Exception as exc:
                if not self.retry:
                    raise
                await self._pause(
                    "embedded_database_failed",
                    f"{type(exc).__name__}: {exc}",
                    f"embedded PostgreSQL in {settings.data_dir} (its log: {embedded.log_path})",
                )
        self.startup.recovered("the embedded PostgreSQL runs")
        supervisor = asyncio.create_task(embedded.supervise(), name="embedded-postgres-supervisor")
        supervisor.add_done_callback(_supervisor_ended)
        self.stack.push_async_callback(_cancel, supervisor)  # before stop(): LIFO
        self.sources.append(embedded)
        return dsn

    async def _database(self, dsn: str, where: str) -> tuple[Engine, EventStore]:
        """Connect, migrate, replay: each attempt from scratch until one succeeds."""
        self.startup.attempt = 0
        while True:
            self.startup.attempt += 1
            attempt = AsyncExitStack()
            try:
                engine, store = await self._open(dsn, attempt)
            except BaseException as exc:
                await attempt.aclose()
                if not self.retry or not isinstance(exc, Exception):
                    raise
                if isinstance(exc, WriterLockHeld):
                    raise StartupFailed(str(exc), code="writer_lock_held") from exc
                if not isinstance(exc, _RETRIED):
                    raise
                await self._pause(*explain(exc, self.startup.stage), where)
            else:
                await self.stack.enter_async_context(attempt)
                return engine, store

    async def _open(self, dsn: str, resources: AsyncExitStack) -> tuple[Engine, EventStore]:
        app = self.app
        self.startup.step(Stage.DATABASE, "connecting to the database")
        try:
            probe = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
        except ValueError as exc:  # asyncpg: a URL it cannot use (options, say)
            raise StartupFailed(f"DATABASE_URL: {exc}", code="database_url_invalid") from None
        await probe.close()
        async with asyncio.timeout(POOL_TIMEOUT):
            pool = await create_pool(dsn)
        resources.push_async_callback(_close_pool, pool)
        self.startup.step(Stage.MIGRATE, "applying the database migrations")
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
        store = EventStore(pool, dsn)
        resources.push_async_callback(store.close)
        self.startup.step(Stage.REPLAY, "taking the writer lock and replaying today's events")
        engine = Engine(app[CONFIG], store, app[CLOCK])
        resources.push_async_callback(engine.stop)  # also undoes a start that failed midway
        await engine.start()
        hub = app[HUB]
        for site_id, state in engine.committed.items():
            hub.seed(site_id, state.last_seq)
        engine.listeners.append(hub.publish)
        resources.callback(hub.close)  # before engine.stop(): LIFO
        exposition = Exposition(engine, hub)
        exposition.sources.extend(self.sources)
        _publish(app, STORE, store)
        _publish(app, ENGINE, engine)
        _publish(app, EXPOSITION, exposition)
        return engine, store

    async def _pause(self, reason: str, detail: str, where: str) -> None:
        """Say why the attempt failed (one log line; /readyz), then wait before the next."""
        attempt = self.startup.attempt
        delay = backoff(attempt)
        self.startup.waiting(reason, detail)
        log.warning(
            "%s (attempt %d, %s): %s; next attempt in %g s",
            reason.replace("_", " "),
            attempt,
            where,
            detail,
            delay,
        )
        await asyncio.sleep(delay)


def _supervisor_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the embedded PostgreSQL's supervisor stopped: %r", task.exception())


def _bring_up_ended(startup: Startup, task: asyncio.Task[None]) -> None:
    """A bring-up in the background that failed for good: say so once, clearly."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    if isinstance(exc, StartupFailed):
        startup.failed(exc.code, exc.message)
        log.error("the service cannot start: %s", exc.message)
    else:
        startup.failed("startup_failed", f"unexpected error: {type(exc).__name__}")
        log.error("the service cannot start: an unexpected error", exc_info=exc)


async def _lifecycle(
    app: web.Application, *, background: bool, sources: list[MetricSource]
) -> AsyncIterator[None]:
    startup = app[STARTUP]
    bring_up = _BringUp(app, retry=background, sources=sources)
    task = asyncio.create_task(bring_up.run(), name="antrian-bring-up")
    startup.task = task
    if background:
        task.add_done_callback(partial(_bring_up_ended, startup))
    else:
        try:
            await task
        except BaseException:
            await bring_up.stack.aclose()
            raise
    yield
    startup.stopping()
    if not task.done():
        log.info("stopping during start-up (%s)", startup.detail)
        task.cancel()
    await asyncio.wait({task})
    await bring_up.stack.aclose()


async def _close_streams(app: web.Application) -> None:
    # Long-lived stream responses end first, so shutdown does not wait for their timeout.
    app[HUB].close()


def create_app(
    settings: Settings,
    config: AppConfig,
    clock: Clock | None = None,
    *,
    serve_while_starting: bool = False,
) -> web.Application:
    middlewares: list[AioMiddleware] = [error_middleware]
    if serve_while_starting:
        middlewares.append(not_ready_gate)
    limiter = None
    if settings.rate_limits is not None:
        limiter = RateLimiter(settings.rate_limits)
        middlewares.append(limiter.middleware)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    install_security_headers(app)
    if limiter is not None:
        app[LIMITER] = limiter
    app[SETTINGS] = settings
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[TOKENS] = config.token_by_hash()
    app[KNOWN_SECRETS] = {}
    app[HUB] = StreamHub()
    app[STARTUP] = Startup()
    online.setup(app)
    # Metric sources that run before the engine: in the start-up /metrics, then in the
    # real exposition.
    sources: list[MetricSource] = [limiter] if limiter is not None else []
    if serve_while_starting:
        # Replaced by the real exposition once the engine is there. Duck-typed: /metrics
        # only calls render().
        app[EXPOSITION] = cast(Exposition, StartupExposition(sources))
    app.cleanup_ctx.append(partial(_lifecycle, background=serve_while_starting, sources=sources))
    app.on_shutdown.append(_close_streams)
    app[OPENAPI] = encoded_document()
    add_routes(app)
    return app
