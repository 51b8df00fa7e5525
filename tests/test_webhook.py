"""The webhook worker (queue_service/webhook.py) against a real receiver on localhost and a
real PostgreSQL: signed deliveries, a receiver that is down or failing, notices made twice,
given up, erased with their visit, a database that goes away mid-delivery, the outcomes
counted on the site's service day; its settings and its place in the app."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest
from aiohttp import web

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.notices import Contact, Erase, Notice
from queue_service.domain.vocab import NoticeKind
from queue_service.settings import Settings, SettingsError, WebhookSettings, webhook_from_env
from queue_service.store.db import create_pool
from queue_service.store.outbox import PgOutbox
from queue_service.web.app import WEBHOOK, create_app
from queue_service.webhook import WebhookWorker, backoff
from tests.conftest import EXAMPLE
from tests.test_outbox import pg_write

SITE = "mpp-banjarmasin"
PHONE = "+6281234567890"
SECRET = "s3cret-of-the-gateway-0123456789"
TS = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


def documented_verify() -> Callable[..., bool]:
    """The `verify` function docs/webhooks.md gives receivers, as written there."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    verify: Callable[..., bool] = namespace["verify"]
    return verify


class Receiver:
    """A webhook receiver on localhost: answers `status` (500 to the notices of the
    subjects in `failing`; runs `on_request` first), and counts the keys it answered 2xx
    to, as a receiver that sends one SMS per key would.

    Its port is bound from the start; until `listen()` nothing listens on it, so a
    connection is refused (and no other process can take the port meanwhile)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/notices"
        self.status = 200
        self.failing: set[str] = set()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[str] = []  # keys answered 2xx, in order
        self.on_request: Callable[[], Awaitable[object]] | None = None
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.read()
        self.requests.append((dict(request.headers), payload))
        if self.on_request is not None:
            await self.on_request()
        status = 500 if orjson.loads(payload)["subject"] in self.failing else self.status
        if 200 <= status < 300:
            self.accepted.append(request.headers["Idempotency-Key"])
        return web.Response(status=status)

    async def listen(self) -> None:
        app = web.Application()
        app.router.add_post("/notices", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.sock.close()

    def delivered(self) -> Counter[str]:
        return Counter(self.accepted)


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Wait for `condition` (checked every 10 ms); fail saying `what` after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not within {timeout} s: {what}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r
    await r.close()


def quick(url: str, **overrides: Any) -> WebhookSettings:
    """Settings for tests: pauses and polls of milliseconds."""
    fields: dict[str, Any] = {
        "timeout_seconds": 5.0,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "poll_seconds": 0.02,
        **overrides,
    }
    return WebhookSettings(url=url, secret=SECRET, **fields)


@pytest.fixture
async def start_worker(
    pool: asyncpg.Pool, config: AppConfig
) -> AsyncIterator[Callable[..., WebhookWorker]]:
    """Start a worker on the test's database (the example hall's site SITE, the wall clock
    unless told); stopped (cleanly) at the end."""
    workers: list[WebhookWorker] = []

    def start(settings: WebhookSettings, clock: ManualClock | None = None) -> WebhookWorker:
        worker = WebhookWorker(
            PgOutbox(pool),
            settings,
            sites={SITE: config.sites[SITE]},
            clock=clock,
            rng=random.Random(17),
        )
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        task = worker._task
        assert task is not None and not task.done(), "the worker stopped on its own"
        await worker.stop()
        assert task.done() and not task.cancelled() and task.exception() is None


def notice(subject: str, kind: NoticeKind, **data: Any) -> Notice:
    return Notice(SITE, subject, kind, f"{subject}:{kind}", TS, data)


async def rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    found = await pool.fetch(
        "SELECT key, state, phone, attempts, last_error FROM outbox ORDER BY id"
    )
    return [dict(r) for r in found]


async def counts(pool: asyncpg.Pool) -> dict[tuple[str, date, str, str, str], int]:
    """The notice_counts table: (site, day, kind, service, outcome) -> n."""
    found = await pool.fetch(
        "SELECT site_id, service_day, kind, service, outcome, n FROM notice_counts"
    )
    return {
        (r["site_id"], r["service_day"], r["kind"], r["service"], r["outcome"]): r["n"]
        for r in found
    }


def samples(text: str, name: str) -> dict[str, float]:
    """`name`'s samples in an exposition, by their label text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) :].rpartition(" ")
            out[labels] = float(value)
    return out


# -- delivery ------------------------------------------------------------------------------


async def test_a_notice_is_posted_signed_and_the_signature_checks_out(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    await receiver.listen()
    await pg_write(
        pool,
        [Contact(SITE, "B1", PHONE)],
        [notice("B1", NoticeKind.BOOKED, code="K7Q2MX", slot="09:30")],
    )
    start_worker(quick(receiver.url))
    await until(lambda: holds(receiver.accepted), "the notice arrives")
    headers, payload = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "B1:booked"
    stamp, signed = headers["X-Antrian-Timestamp"], headers["X-Antrian-Signature"]
    # Checked independently of the worker's code: by hand, and by the function the
    # documentation gives receivers.
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    assert signed == f"sha256={mac.hexdigest()}"
    verify = documented_verify()
    assert verify(SECRET.encode(), stamp, payload, signed)
    assert not verify(b"another secret of 32 characters", stamp, payload, signed)
    assert not verify(SECRET.encode(), str(int(stamp) - 3600), payload, signed)
    assert not verify(SECRET.encode(), stamp, payload.replace(b"K7Q2MX", b"K7Q2MY"), signed)
    assert orjson.loads(payload) == {
        "id": "B1:booked",
        "kind": "booked",
        "site": SITE,
        "subject": "B1",
        "phone": PHONE,
        "ts": "2026-11-23T01:00:00+00:00",
        "data": {"code": "K7Q2MX", "slot": "09:30"},
    }
    await until(
        lambda: _equal(pool, [("B1:booked", "delivered", None, 1, None)]),
        "the row is delivered and its number forgotten",
    )


async def holds(value: object) -> bool:
    """`value` as the awaitable `until` polls."""
    return bool(value)


async def _equal(pool: asyncpg.Pool, expected: list[tuple[Any, ...]]) -> bool:
    return [tuple(r.values()) for r in await rows(pool)] == expected


async def test_a_receiver_down_then_failing_gets_every_notice_once_when_it_is_back(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    await pg_write(pool, [Contact(SITE, s, PHONE) for s in ("B1", "B2", "T3")])
    await pg_write(
        pool,
        [],
        [
            notice("B1", NoticeKind.BOOKED),
            notice("B2", NoticeKind.BOOKED),
            notice("T3", NoticeKind.NEAR),
            notice("B1", NoticeKind.RESCHEDULED),
            notice("T3", NoticeKind.CALLED),
        ],
    )
    worker = start_worker(quick(receiver.url))

    async def refused_twice() -> bool:
        first = (await rows(pool))[0]
        refused: bool = first["last_error"] == "cannot connect: Connection refused"
        return refused and first["attempts"] >= 2

    await until(refused_twice, "two attempts refused while nothing listens")
    receiver.status = 500
    await receiver.listen()
    await until(lambda: holds(len(receiver.requests) >= 6), "attempts answered 500")
    assert receiver.accepted == []
    assert {r["state"] for r in await rows(pool)} == {"pending"}
    receiver.status = 200

    async def all_delivered() -> bool:
        return {r["state"] for r in await rows(pool)} == {"delivered"}

    await until(all_delivered, "every notice delivered once the receiver is back")
    assert receiver.delivered() == dict.fromkeys(
        ["B1:booked", "B2:booked", "T3:near", "B1:rescheduled", "T3:called"], 1
    )
    # A subject's notices in the order they were made.
    accepted = receiver.accepted
    assert accepted.index("B1:booked") < accepted.index("B1:rescheduled")
    assert accepted.index("T3:near") < accepted.index("T3:called")
    # Every failed attempt was counted and a later one scheduled; nothing was given up.
    attempts = sum(r["attempts"] for r in await rows(pool))
    counted = samples(worker.render_metrics(0), "qms_notices_total")
    retried = sum(v for k, v in counted.items() if 'outcome="retried"' in k)
    delivered = sum(v for k, v in counted.items() if 'outcome="delivered"' in k)
    assert (delivered, retried + delivered) == (5, attempts)
    assert not any('outcome="failed"' in k for k in counted)


async def test_a_notice_made_twice_is_one_row_and_one_delivery(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    await receiver.listen()
    await pg_write(pool, [Contact(SITE, "T1", PHONE)], [notice("T1", NoticeKind.NEAR, ahead=3)])
    await pg_write(pool, [], [notice("T1", NoticeKind.NEAR, ahead=2)])  # a replayed command
    start_worker(quick(receiver.url))
    await until(lambda: _equal(pool, [("T1:near", "delivered", None, 1, None)]), "delivered")
    # The same key again after its delivery: still nothing new to send.
    await pg_write(pool, [], [notice("T1", NoticeKind.NEAR), notice("T1", NoticeKind.CALLED)])
    await until(lambda: holds("T1:called" in receiver.accepted), "the next notice delivered")
    assert receiver.delivered() == {"T1:near": 1, "T1:called": 1}
    assert orjson.loads(receiver.requests[0][1])["data"] == {"ahead": 3}
    assert len(await rows(pool)) == 2


async def test_a_notice_failing_every_attempt_is_given_up_without_its_number(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    receiver.status = 500
    await receiver.listen()
    await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.CANCELLED)])
    worker = start_worker(quick(receiver.url, max_attempts=3))

    async def given_up() -> bool:
        return [r["state"] for r in await rows(pool)] == ["failed"]

    await until(given_up, "the notice given up")
    assert await rows(pool) == [
        {"key": "B1:cancelled", "state": "failed", "phone": None, "attempts": 3,
         "last_error": "HTTP 500"}
    ]  # fmt: skip
    assert len(receiver.requests) == 3
    labels = f'{{site="{SITE}",kind="cancelled",outcome='
    text = worker.render_metrics(0)
    assert samples(text, "qms_notices_total") == {
        labels + '"failed"}': 1,
        labels + '"retried"}': 2,
    }

    async def gauges_refreshed() -> bool:
        return samples(worker.render_metrics(0), "qms_outbox_failed") == {f'{{site="{SITE}"}}': 1}

    await until(gauges_refreshed, "the failed gauge read from the table")
    assert samples(worker.render_metrics(0), "qms_outbox_pending") == {f'{{site="{SITE}"}}': 0}
    # The reports count the notice once, given up; its retried attempts are no outcome.
    [(key, n)] = (await counts(pool)).items()
    assert (key[0], key[2:], n) == (SITE, ("cancelled", "", "failed"), 1)


async def test_a_visit_erased_with_its_called_notice_still_gets_the_notice(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    await receiver.listen()
    await pg_write(pool, [Contact(SITE, "T1", PHONE)], [notice("T1", NoticeKind.NEAR)])
    # One commit calls the remote-join ticket and ends what its number was kept for.
    await pg_write(
        pool, [], [notice("T1", NoticeKind.CALLED, counter="Loket 3")], [Erase(SITE, "T1")]
    )
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0
    start_worker(quick(receiver.url))
    await until(lambda: holds(len(receiver.accepted) == 2), "both notices delivered")
    called = orjson.loads(receiver.requests[-1][1])
    assert (called["kind"], called["phone"], called["data"]) == (
        "called",
        PHONE,
        {"counter": "Loket 3"},
    )

    async def forgotten() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM outbox WHERE phone IS NOT NULL") == 0)

    await until(forgotten, "no number left anywhere")


async def test_a_database_gone_mid_delivery_is_waited_for_and_the_notice_not_sent_twice(
    pool: asyncpg.Pool,
    receiver: Receiver,
    start_worker: Callable[..., WebhookWorker],
    database_url: str,
    pg_server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver takes the notice, and the database goes away before the worker can
    record it: the worker keeps the outcome, says once that the database is unreachable,
    and records it when the database is back, so the notice is not posted again."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_server)

    async def database_goes_away() -> None:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )

    try:
        await receiver.listen()
        receiver.on_request = database_goes_away
        await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)])
        caplog.set_level(logging.WARNING, logger="queue_service.webhook")
        start_worker(quick(receiver.url))

        async def said_so() -> bool:
            return any("unreachable" in r.getMessage() for r in caplog.records)

        await until(said_so, "the worker says the database is unreachable")
        await asyncio.sleep(0.1)  # polls in the dark: a few attempts to reach the database
        unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1
        receiver.on_request = None
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        async def recorded() -> bool:
            try:
                return [r["state"] for r in await rows(pool)] == ["delivered"]
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                return False  # the test's own pool reconnecting too

        await until(recorded, "the delivery recorded once the database is back")
        assert receiver.delivered() == {"B1:booked": 1}
        assert len(receiver.requests) == 1
        # Recorded late, counted once.
        [(key, n)] = (await counts(pool)).items()
        assert (key[0], key[2:], n) == (SITE, ("booked", "", "delivered"), 1)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_outcomes_count_on_the_sites_service_day(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    """At 23:30 UTC it is 07:30 the next day in Banjarmasin (WITA, UTC+8): the hall's
    reports count the outcome on that day. A site no longer configured counts on the UTC
    date (its timezone is unknown)."""
    soon = datetime.now(UTC) + timedelta(days=2)  # the rows are due: made before it
    clock = ManualClock(soon.replace(hour=23, minute=30, second=0, microsecond=0))
    local_day = clock.now().date() + timedelta(days=1)
    receiver.status = 500
    await receiver.listen()
    await pg_write(
        pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED, service="A")]
    )
    worker = start_worker(quick(receiver.url, max_attempts=1), clock)
    await until(lambda: holds(len(receiver.requests) == 1), "the only attempt")
    await until(lambda: _equal_states(pool, ["failed"]), "the notice given up")
    receiver.status = 200
    gone = Notice("closed-hall", "T9", NoticeKind.CALLED, "T9:called", TS, {"service": "Q"})
    await pg_write(pool, [Contact(SITE, "T2", PHONE), Contact("closed-hall", "T9", PHONE)])
    await pg_write(pool, [], [notice("T2", NoticeKind.CALLED, service="A"), gone])
    worker.wake()
    await until(lambda: _equal_states(pool, ["failed", "delivered", "delivered"]), "delivered")
    assert await counts(pool) == {
        (SITE, local_day, "booked", "A", "failed"): 1,
        (SITE, local_day, "called", "A", "delivered"): 1,
        ("closed-hall", clock.now().date(), "called", "Q", "delivered"): 1,
    }


async def _equal_states(pool: asyncpg.Pool, states: list[str]) -> bool:
    return [r["state"] for r in await rows(pool)] == states


async def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(
    pool: asyncpg.Pool, receiver: Receiver, start_worker: Callable[..., WebhookWorker]
) -> None:
    hang = asyncio.Event()  # the receiver holds every request until the end
    receiver.on_request = hang.wait
    await receiver.listen()
    await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)])
    start_worker(quick(receiver.url, timeout_seconds=0.2))

    async def timed_out_twice() -> bool:
        (row,) = await rows(pool)
        late: bool = row["last_error"] == "no answer within 0.2 s"
        return late and row["attempts"] >= 2 and row["state"] == "pending"

    try:
        await until(timed_out_twice, "two attempts that timed out, a third to come")
    finally:
        hang.set()  # the receiver's shutdown waits for the requests it holds


async def test_stopping_lets_the_attempt_in_flight_end_and_records_it(
    pool: asyncpg.Pool, receiver: Receiver
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        arrived.set()
        await release.wait()

    receiver.on_request = slow
    await receiver.listen()
    await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)])
    worker = WebhookWorker(PgOutbox(pool), quick(receiver.url))
    worker.start()
    await arrived.wait()
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.1)  # the stop waits for the attempt, however long it polls
    assert not stopping.done()
    release.set()
    await stopping
    assert receiver.accepted == ["B1:booked"]
    assert [r["state"] for r in await rows(pool)] == ["delivered"]


# -- backoff, settings, the app ------------------------------------------------------------


def test_the_pause_after_a_failure_is_random_below_a_ceiling_that_doubles_up_to_the_cap() -> None:
    rng = random.Random(4)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (9, 900), (12, 900), (99, 900)]:
        pauses = [backoff(attempt, 5, 900, rng) for _ in range(200)]
        assert all(0 <= p <= ceiling for p in pauses)
        assert max(pauses) > ceiling * 0.8  # the whole range is used: full jitter
        assert min(pauses) < ceiling * 0.2


def test_the_webhook_is_off_without_a_url_and_needs_a_usable_secret_with_one() -> None:
    assert webhook_from_env({}) is None
    url = "https://user:pw@gateway.example.go.id:8443/antrian?token=abc"
    settings = webhook_from_env({"ANTRIAN_WEBHOOK_URL": url, "ANTRIAN_WEBHOOK_SECRET": SECRET})
    assert settings is not None
    assert (settings.url, settings.max_attempts, settings.backoff_base) == (url, 12, 5.0)
    assert settings.target == "https://gateway.example.go.id:8443/antrian"
    assert replace(settings, url="http://u:pw@[::1]:81/n").target == "http://[::1]:81/n"
    assert SECRET not in repr(settings) and "pw" not in repr(settings)
    assert "pw" not in repr(Settings(config_path=EXAMPLE, webhook=settings))
    refused = [
        {"ANTRIAN_WEBHOOK_URL": url},
        {"ANTRIAN_WEBHOOK_URL": url, "ANTRIAN_WEBHOOK_SECRET": "short"},
        {"ANTRIAN_WEBHOOK_SECRET": SECRET},
        {"ANTRIAN_WEBHOOK_URL": "ftp://gateway/x", "ANTRIAN_WEBHOOK_SECRET": SECRET},
        {"ANTRIAN_WEBHOOK_URL": "https://gw:99999/", "ANTRIAN_WEBHOOK_SECRET": SECRET},
        {
            "ANTRIAN_WEBHOOK_URL": url,
            "ANTRIAN_WEBHOOK_SECRET": SECRET,
            "ANTRIAN_WEBHOOK_BACKOFF_CAP_SECONDS": "1",
        },
        {
            "ANTRIAN_WEBHOOK_URL": url,
            "ANTRIAN_WEBHOOK_SECRET": SECRET,
            "ANTRIAN_WEBHOOK_TIMEOUT_SECONDS": "nan",
        },
    ]
    for env in refused:
        with pytest.raises(SettingsError) as error:
            webhook_from_env(env)
        assert SECRET not in str(error.value) and "pw" not in str(error.value)


async def test_the_app_runs_the_worker_and_exports_its_metrics_when_a_url_is_set(
    database_url: str, config: AppConfig, receiver: Receiver, aiohttp_client: Any
) -> None:
    await receiver.listen()
    settings = Settings(config_path=EXAMPLE, database_url=database_url, webhook=quick(receiver.url))
    client = await aiohttp_client(create_app(settings, config))
    worker = client.app[WEBHOOK]
    pool = await create_pool(database_url)
    try:
        await pg_write(pool, [Contact(SITE, "B1", PHONE)], [notice("B1", NoticeKind.BOOKED)])
        worker.wake()
        await until(lambda: holds(receiver.accepted == ["B1:booked"]), "delivered by the app")
    finally:
        await pool.close()
    text = await (await client.get("/metrics")).text()
    assert f'qms_outbox_pending{{site="{SITE}"}} ' in text
    assert f'qms_notices_total{{site="{SITE}",kind="booked",outcome="delivered"}} 1' in text
    assert PHONE not in text


async def test_the_app_has_no_worker_without_a_url(client: Any) -> None:
    assert WEBHOOK not in client.app
    assert "qms_outbox_pending" not in await (await client.get("/metrics")).text()


def test_settings_fields_have_defaults_the_documentation_gives() -> None:
    d = WebhookSettings(url="http://x", secret=SECRET)
    text = DOCS.read_text()
    for variable, value in [
        ("ANTRIAN_WEBHOOK_TIMEOUT_SECONDS", d.timeout_seconds),
        ("ANTRIAN_WEBHOOK_BACKOFF_BASE_SECONDS", d.backoff_base),
        ("ANTRIAN_WEBHOOK_BACKOFF_CAP_SECONDS", d.backoff_cap),
        ("ANTRIAN_WEBHOOK_MAX_ATTEMPTS", d.max_attempts),
    ]:
        assert re.search(rf"`{variable}` \| {value:g} \|", text), variable
