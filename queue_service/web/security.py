"""Security headers on every response, and rate limits on ticket issuing and the public
endpoints.

Headers: added in `on_response_prepare` (see `install_security_headers`), not by a
middleware wrapping the handler, because a stream response (SSE) and a file response are
sent before a middleware would see them. A header a handler set itself (the pages' own
Content-Security-Policy, say) is kept.

Rate limits: a token bucket per kiosk token and per client address on ticket issuing, and
per client address on the public endpoints (display, ticket status, cancel, QR code, the
site directory, the stream); and a cap on the streams (SSE) open at once, per address and
in all, so that one client cannot take every file descriptor. Which limit applies to which
route is declared in the route table (web/routes.py, `Route.limit`). Over a limit: 429 with the
stable code `rate_limited` and `Retry-After`. Buckets live in bounded LRU maps (an evicted
bucket was the least recently used, so almost surely full again anyway); tokens are keyed
by their SHA-256, never by the secret. The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from queue_service.config import hash_token
from queue_service.settings import Rate, RateLimits
from queue_service.web.errors import Handler
from queue_service.web.routes import ROUTES
from queue_service.web.spec import Limit

# What the pages need (kiosk/: module scripts and stylesheets from 'self', no inline code,
# styles set through the CSSOM only, the QR code as an <img> from 'self'): nothing inline,
# nothing from elsewhere, no framing, no plugins, no <base> tricks.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """`on_response_prepare` handler: set every security header the response lacks."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def install_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(security_headers)


# -- rate limits -------------------------------------------------------------------------


class TokenBuckets:
    """Token buckets by key, at most `max_keys` of them (least recently used go first)."""

    def __init__(self, rate: Rate, *, max_keys: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def take(self, key: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is there."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + max(0.0, now - at) * self.rate.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate.per_second
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


# The limit of each limited route, by (method, aiohttp canonical path).
LIMITED_ROUTES: Mapping[tuple[str, str], Limit] = {
    (route.method, route.canonical): route.limit for route in ROUTES if route.limit is not None
}


def _route(request: web.Request) -> tuple[str, str] | None:
    info = request.match_info.route.resource
    if info is None:
        return None
    return request.method, info.canonical


def _token_key(request: web.Request) -> str | None:
    """The SHA-256 of the bearer token, if one is sent (the secret itself is not kept)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return hash_token(value.strip())


def _too_many(scope: str, wait: float) -> web.Response:
    seconds = max(1, math.ceil(wait))
    return web.json_response(
        {
            "code": "rate_limited",
            "message": "Too many requests; retry after the time in Retry-After.",
            "details": {"scope": scope, "retry_after_seconds": seconds},
        },
        status=429,
        headers={"Retry-After": str(seconds)},
    )


# The limits a request can be refused by (the `scope` label of the refusals counter).
_SCOPES = ("issue_token", "issue_address", "public_address", "streams_address", "streams_total")


@dataclass
class RateLimiter:
    """The limits' buckets and the middleware that applies them."""

    limits: RateLimits = field(default_factory=RateLimits)
    clock: Callable[[], float] = time.monotonic
    rejected: Counter[str] = field(default_factory=Counter)  # by scope, for metrics
    open_streams: Counter[str] = field(default_factory=Counter)  # by address

    def __post_init__(self) -> None:
        n = self.limits.max_keys
        self.issue_by_token = TokenBuckets(
            self.limits.issue_per_token, max_keys=n, clock=self.clock
        )
        self.issue_by_address = TokenBuckets(
            self.limits.issue_per_address, max_keys=n, clock=self.clock
        )
        self.public_by_address = TokenBuckets(
            self.limits.public_per_address, max_keys=n, clock=self.clock
        )

    def check(self, request: web.Request) -> web.Response | None:
        """None when the request may go on, else the 429 to answer."""
        route = _route(request)
        if route is None:
            return None
        limit = LIMITED_ROUTES.get(route)
        if limit is None:
            return None
        address = request.remote or "unknown"
        if limit is Limit.ISSUE:
            token = _token_key(request)
            # The token's bucket first: one runaway kiosk must not use up its hall's address.
            if token is not None and (wait := self.issue_by_token.take(token)):
                self.rejected["issue_token"] += 1
                return _too_many("token", wait)
            if wait := self.issue_by_address.take(address):
                self.rejected["issue_address"] += 1
                return _too_many("address", wait)
            return None
        if wait := self.public_by_address.take(address):
            self.rejected["public_address"] += 1
            return _too_many("address", wait)
        return None

    @property
    def streams(self) -> int:
        return sum(self.open_streams.values())

    def render_metrics(self, now: float) -> str:
        """The limiter's families in the exposition format (a metrics source, as the
        device links are): refusals by scope, and streams open now."""
        lines = [
            "# HELP qms_http_rate_limited_total Requests refused with 429, by limit.\n",
            "# TYPE qms_http_rate_limited_total counter\n",
        ]
        for scope in _SCOPES:
            lines.append(f'qms_http_rate_limited_total{{scope="{scope}"}} {self.rejected[scope]}\n')
        lines += [
            "# HELP qms_http_streams_open Live-stream (SSE) connections open now.\n",
            "# TYPE qms_http_streams_open gauge\n",
            f"qms_http_streams_open {self.streams}\n",
        ]
        return "".join(lines)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = self.check(request)
        if refused is not None:
            return refused
        route = _route(request)
        if route is None or LIMITED_ROUTES.get(route) is not Limit.STREAM:
            return await handler(request)
        # A stream holds its slot for as long as it is open.
        address = request.remote or "unknown"
        if self.open_streams[address] >= self.limits.streams_per_address:
            self.rejected["streams_address"] += 1
            return _too_many("streams", 5.0)
        if self.streams >= self.limits.streams_total:
            self.rejected["streams_total"] += 1
            return _too_many("streams", 5.0)
        self.open_streams[address] += 1
        try:
            return await handler(request)
        finally:
            self.open_streams[address] -= 1
            if not self.open_streams[address]:
                del self.open_streams[address]


# The app's limiter, when rate limits are on (`Settings.rate_limits`).
LIMITER = web.AppKey("limiter", RateLimiter)
