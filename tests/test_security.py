"""Security headers and rate limits (queue_service/web/security.py) on a small aiohttp app
of their own: JSON, stream, file and error responses; token buckets with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from queue_service.settings import Rate, RateLimits
from queue_service.web.errors import error_middleware
from queue_service.web.security import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    RateLimiter,
    TokenBuckets,
    install_security_headers,
)


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _json(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _stream(request: web.Request) -> web.StreamResponse:
    """One event; with ?hold=1 a keepalive every 50 ms until the client goes away (as the
    service's stream notices a closed client: by a failing write)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: {}\n\n")
    try:
        while request.query.get("hold"):
            await asyncio.sleep(0.05)
            await response.write(b": keepalive\n\n")
    except ConnectionResetError:
        pass
    return response


async def _own_csp(request: web.Request) -> web.Response:
    return web.Response(text="x", headers={"Content-Security-Policy": "default-src 'none'"})


def _app(tmp_path: Path, limiter: RateLimiter | None = None) -> web.Application:
    middlewares = [error_middleware]
    if limiter is not None:
        middlewares.append(limiter.middleware)
    app = web.Application(middlewares=middlewares)
    install_security_headers(app)
    (tmp_path / "page.html").write_text("<!doctype html><p>hi</p>")
    app.add_routes(
        [
            web.post("/api/v1/sites/{site}/tickets", _json),
            web.get("/api/v1/sites/{site}/display", _json),
            web.get("/api/v1/sites/{site}/snapshot", _json),
            web.get("/api/v1/sites/{site}/stream", _stream),
            web.get("/api/v1/tickets/{ticket}", _json),
            web.get("/own-csp", _own_csp),
            web.static("/ui", tmp_path),
        ]
    )
    return app


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


Limited = Callable[..., Awaitable[tuple[RateLimiter, TestClient[Any, Any]]]]


@pytest.fixture
def limited(tmp_path: Path, aiohttp_client: Any, fake_time: FakeTime) -> Limited:
    """Makes a client of the test app behind a limiter of `RateLimits(**limits)` on the fake
    clock; the limiter and the client."""

    async def make(**limits: Any) -> tuple[RateLimiter, TestClient[Any, Any]]:
        limiter = RateLimiter(RateLimits(**limits), clock=fake_time)
        return limiter, await aiohttp_client(_app(tmp_path, limiter))

    return make


def _assert_secured(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


@pytest.mark.parametrize(
    "path",
    ["/api/v1/sites/hall/display", "/api/v1/sites/hall/stream", "/ui/page.html", "/no/such/path"],
)
async def test_every_kind_of_response_carries_the_security_headers(
    path: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(_app(tmp_path))
    resp = await client.get(path)
    _assert_secured(resp.headers)
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
    await resp.read()


async def test_a_handlers_own_content_security_policy_is_kept(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(_app(tmp_path))
    resp = await client.get("/own-csp")
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_the_policy_loads_nothing_from_elsewhere_and_allows_nothing_inline() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert all("http" not in v and "*" not in v for v in directives.values())


def test_kiosk_pages_have_no_inline_script_style_or_handler() -> None:
    """What lets the policy go without 'unsafe-inline': pages only load files."""
    import re

    root = Path(__file__).resolve().parent.parent / "kiosk"
    pages = sorted(root.glob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert not re.search(r"<style\b", html), page.name
        assert not re.search(r"\sstyle\s*=", html), page.name
        assert not re.search(r"\son[a-z]+\s*=", html), page.name


async def test_ticket_issuing_is_limited_per_token_with_retry_after(
    limited: Limited, fake_time: FakeTime
) -> None:
    limiter, client = await limited(issue_per_token=Rate(0.5, 3), issue_per_address=Rate(100, 100))
    kiosk_a = {"Authorization": "Bearer kiosk-a"}
    kiosk_b = {"Authorization": "Bearer kiosk-b"}
    for _ in range(3):
        assert (await client.post("/api/v1/sites/hall/tickets", headers=kiosk_a)).status == 200
    resp = await client.post("/api/v1/sites/hall/tickets", headers=kiosk_a)
    assert resp.status == 429
    body = await resp.json()
    assert body["code"] == "rate_limited"
    assert body["details"] == {"scope": "token", "retry_after_seconds": 2}
    assert resp.headers["Retry-After"] == "2"
    _assert_secured(resp.headers)
    # Another kiosk has its own bucket; the first one's refills with time.
    assert (await client.post("/api/v1/sites/hall/tickets", headers=kiosk_b)).status == 200
    fake_time.now += 1.9
    assert (await client.post("/api/v1/sites/hall/tickets", headers=kiosk_a)).status == 429
    fake_time.now += 2.0
    assert (await client.post("/api/v1/sites/hall/tickets", headers=kiosk_a)).status == 200
    assert limiter.rejected["issue_token"] == 2
    # The secret is never a key: buckets are keyed by its SHA-256.
    assert "kiosk-a" not in limiter.issue_by_token


async def test_ticket_issuing_is_limited_per_address_across_tokens(limited: Limited) -> None:
    _, client = await limited(issue_per_token=Rate(100, 100), issue_per_address=Rate(1, 4))
    statuses = [
        (
            await client.post(
                "/api/v1/sites/hall/tickets", headers={"Authorization": f"Bearer token-{n}"}
            )
        ).status
        for n in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    resp = await client.post("/api/v1/sites/hall/tickets")  # no token at all: same address
    assert resp.status == 429
    assert (await resp.json())["details"]["scope"] == "address"


async def test_public_endpoints_are_limited_per_address_and_staff_reads_are_not(
    limited: Limited, fake_time: FakeTime
) -> None:
    _, client = await limited(public_per_address=Rate(2, 5))
    public = ["/api/v1/sites/hall/display", "/api/v1/tickets/abc"] * 3
    statuses = [(await client.get(p)).status for p in public]
    assert statuses == [200, 200, 200, 200, 200, 429]
    for _ in range(20):  # the staff snapshot and the pages are not public endpoints here
        assert (await client.get("/api/v1/sites/hall/snapshot")).status == 200
        assert (await client.get("/ui/page.html")).status == 200
    fake_time.now += 0.5
    assert (await client.get("/api/v1/sites/hall/display")).status == 200


def test_buckets_keep_at_most_max_keys_and_forget_the_least_recently_used(
    fake_time: FakeTime,
) -> None:
    buckets = TokenBuckets(Rate(1, 1), max_keys=100, clock=fake_time)
    assert buckets.take("busy") == 0.0
    for n in range(10_000):
        buckets.take(f"address-{n}")
        if n % 50 == 0:
            assert buckets.take("busy") > 0  # kept: used recently, and still empty
    assert len(buckets) == 100
    assert "address-0" not in buckets
    assert "address-9999" in buckets


def test_a_bucket_refills_at_its_rate_up_to_its_burst(fake_time: FakeTime) -> None:
    buckets = TokenBuckets(Rate(4, 2), max_keys=10, clock=fake_time)
    assert [buckets.take("k") for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.25)
    fake_time.now += 100  # long idle: back to the burst, not to 400 tokens
    assert [buckets.take("k") == 0.0 for _ in range(3)] == [True, True, False]


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Rate(0, 1)
    with pytest.raises(ValueError, match="burst"):
        Rate(1, 0)


async def test_a_token_that_is_not_utf8_is_limited_like_any_other(limited: Limited) -> None:
    _, client = await limited(issue_per_token=Rate(1, 1))
    assert client.server.host is not None and client.server.port is not None
    statuses = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(
            b"POST /api/v1/sites/hall/tickets HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer \xff\xfe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        statuses.append(int((await reader.read(100)).split(b" ", 2)[1]))
        writer.close()
    assert statuses == [200, 429]


async def _open_stream(client: TestClient[Any, Any]) -> tuple[int, asyncio.StreamWriter]:
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/v1/sites/hall/stream?hold=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), writer


async def test_open_streams_are_capped_per_address_and_a_closed_one_frees_its_slot(
    limited: Limited,
) -> None:
    limiter, client = await limited(streams_per_address=3)
    opened = [await _open_stream(client) for _ in range(4)]
    assert [status for status, _ in opened] == [200, 200, 200, 429]
    assert limiter.streams == 3
    # Other endpoints are not affected by the cap.
    assert (await client.get("/api/v1/sites/hall/display")).status == 200
    opened[0][1].close()
    async with asyncio.timeout(5):
        while limiter.streams != 2:
            await asyncio.sleep(0.01)
    status, writer = await _open_stream(client)
    assert status == 200
    for _, w in [*opened[1:], (status, writer)]:
        w.close()


async def test_open_streams_are_capped_in_all(limited: Limited) -> None:
    limiter, client = await limited(streams_per_address=100, streams_total=2)
    opened = [await _open_stream(client) for _ in range(3)]
    assert [status for status, _ in opened] == [200, 200, 429]
    assert limiter.rejected["streams_total"] == 1
    for _, w in opened:
        w.close()


async def test_on_the_real_app_the_limits_match_its_routes_and_pages_keep_their_policy(
    settings: Any, config: Any, clock: Any, aiohttp_client: Any, fake_time: FakeTime
) -> None:
    """The wiring app.py needs (two lines), on the real routes and pages."""
    from queue_service.web.app import create_app
    from tests.conftest import KIOSK, SITE

    app = create_app(settings, config, clock)
    limiter = RateLimiter(
        RateLimits(issue_per_token=Rate(1, 2), public_per_address=Rate(1, 3)), clock=fake_time
    )
    app.middlewares.append(limiter.middleware)
    install_security_headers(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    directory = await (await client.get(f"/api/v1/sites/{SITE}")).json()
    service = directory["services"][0]["code"]
    statuses = [
        (
            await client.post(
                f"/api/v1/sites/{SITE}/tickets", json={"service": service}, headers=KIOSK
            )
        ).status
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    statuses = [(await client.get(f"/api/v1/sites/{SITE}/display")).status for _ in range(3)]
    assert statuses == [200, 200, 429]  # the directory read above took the first token
    page = await client.get("/ui/kiosk.html")
    assert page.status == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    _assert_secured((await client.get("/healthz")).headers)


async def test_the_service_with_rate_limits_on_refuses_a_runaway_kiosk_and_counts_it(
    database_url: str, config: Any, clock: Any, aiohttp_client: Any
) -> None:
    """`ANTRIAN_RATE_LIMITS` on (the service's default): create_app wires the limiter, the
    security headers and the limiter's metrics."""
    from dataclasses import replace

    from queue_service.settings import Settings
    from queue_service.web.app import create_app
    from tests.conftest import KIOSK, SITE

    settings = replace(
        Settings(config_path=Path("<test>"), database_url=database_url), rate_limits=RateLimits()
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, config, clock))
    directory = await (await client.get(f"/api/v1/sites/{SITE}")).json()
    service = directory["services"][0]["code"]
    answers = []
    for _ in range(RateLimits().issue_per_token.burst + 5):
        resp = await client.post(
            f"/api/v1/sites/{SITE}/tickets", json={"service": service}, headers=KIOSK
        )
        answers.append((resp.status, (await resp.json()).get("code")))
    assert answers[0][0] == 201
    assert (429, "rate_limited") in answers  # the burst is spent long before the refill
    metrics = await (await client.get("/metrics")).text()
    refused = [
        line
        for line in metrics.splitlines()
        if line.startswith('qms_http_rate_limited_total{scope="issue_token"}')
    ]
    assert refused and float(refused[0].split()[1]) >= 1
    _assert_secured((await client.get("/ui/board.html")).headers)


def test_every_limited_operation_documents_its_429() -> None:
    from queue_service.web.openapi import openapi_document
    from queue_service.web.security import LIMITED_ROUTES

    document = openapi_document()
    for method, path in LIMITED_ROUTES:
        responses = document["paths"][path][method.lower()]["responses"]
        assert responses["429"]["$ref"] == "#/components/responses/TooManyRequests"
    assert "Retry-After" in document["components"]["responses"]["TooManyRequests"]["headers"]
    assert any(c["code"] == "rate_limited" for c in document["x-error-codes"])


def test_rate_limits_come_from_the_environment_and_bad_values_are_named() -> None:
    from queue_service.settings import SettingsError, rate_limits_from_env

    assert rate_limits_from_env({}) == RateLimits()  # on by default, the documented numbers
    assert rate_limits_from_env({"ANTRIAN_RATE_LIMITS": "off"}) is None
    limits = rate_limits_from_env(
        {
            "ANTRIAN_RATE_ISSUE_PER_KIOSK": "2/20",
            "ANTRIAN_RATE_PUBLIC_PER_ADDRESS": "50/200",
            "ANTRIAN_STREAMS_PER_ADDRESS": "400",
        }
    )
    assert limits is not None
    assert limits.issue_per_token == Rate(2.0, 20)
    assert limits.public_per_address == Rate(50.0, 200)
    assert limits.streams_per_address == 400
    assert limits.issue_per_address == RateLimits().issue_per_address  # untouched
    for name, value in (
        ("ANTRIAN_RATE_ISSUE_PER_KIOSK", "fast"),
        ("ANTRIAN_RATE_ISSUE_PER_KIOSK", "0/10"),
        ("ANTRIAN_RATE_PUBLIC_PER_ADDRESS", "5"),
        ("ANTRIAN_STREAMS_TOTAL", "-1"),
        ("ANTRIAN_RATE_LIMITS", "maybe"),
    ):
        with pytest.raises(SettingsError, match=name):
            rate_limits_from_env({name: value})
