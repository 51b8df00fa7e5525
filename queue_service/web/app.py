"""The app factory. Every resource is opened in a cleanup context and closed in reverse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware as AioMiddleware

from queue_service.config import AppConfig
from queue_service.devices.manager import DEVICES, DeviceManager
from queue_service.domain.clock import Clock, SystemClock
from queue_service.engine import Engine
from queue_service.metrics.exposition import Exposition
from queue_service.reports.metrics import ReportsTask
from queue_service.settings import Settings
from queue_service.store.db import EmbeddedPostgres, create_pool
from queue_service.store.event_store import EventStore
from queue_service.store.migrate import migrate
from queue_service.web import api, metrics, pages, reports_api
from queue_service.web.errors import error_middleware
from queue_service.web.keys import (
    CLOCK,
    CONFIG,
    ENGINE,
    EXPOSITION,
    HUB,
    KNOWN_SECRETS,
    SETTINGS,
    STORE,
    TOKENS,
)
from queue_service.web.security import LIMITER, RateLimiter, install_security_headers
from queue_service.web.stream import StreamHub

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        dsn = await asyncio.to_thread(embedded.start)
    pool = await create_pool(dsn)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
        store = EventStore(pool, dsn)
        app[STORE] = store
        yield
        await store.close()
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _engine(app: web.Application) -> AsyncIterator[None]:
    engine = Engine(app[CONFIG], app[STORE], app[CLOCK])
    hub = app[HUB]
    await engine.start()
    for site_id, state in engine.committed.items():
        hub.seed(site_id, state.last_seq)
    engine.listeners.append(hub.publish)
    app[ENGINE] = engine
    app[EXPOSITION] = Exposition(engine, hub)
    if LIMITER in app:
        app[EXPOSITION].sources.append(app[LIMITER])
    yield
    hub.close()
    await engine.stop()


async def _devices(app: web.Application) -> AsyncIterator[None]:
    # After the engine: device tickets and keys are commands. Stopped before the engine,
    # so no device task runs against a stopped engine. Devices that are absent only back
    # off and show as down: the service starts cleanly without them.
    manager = DeviceManager(app[CONFIG], app[ENGINE], app[HUB])
    app[DEVICES] = manager
    app[EXPOSITION].sources.append(manager)
    await manager.start()
    yield
    await manager.stop()


async def _reports(app: web.Application) -> AsyncIterator[None]:
    # IKM gauges on /metrics and warm report rollups: one background task, kept and
    # cancelled here.
    task = ReportsTask(app[STORE].pool, app[CONFIG], app[CLOCK])
    app[reports_api.REPORTS] = task
    app[EXPOSITION].sources.append(task)
    task.start()
    yield
    await task.stop()


async def _close_streams(app: web.Application) -> None:
    # Long-lived stream responses end first, so shutdown does not wait for their timeout.
    app[HUB].close()


def create_app(
    settings: Settings, config: AppConfig, clock: Clock | None = None
) -> web.Application:
    middlewares: list[AioMiddleware] = [error_middleware]
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
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_engine)
    app.cleanup_ctx.append(_devices)
    app.cleanup_ctx.append(_reports)
    app.on_shutdown.append(_close_streams)
    app.add_routes(api.routes)
    app.add_routes(metrics.routes)
    app.add_routes(reports_api.routes)
    app.add_routes(pages.routes)
    pages.add_static(app)
    return app
