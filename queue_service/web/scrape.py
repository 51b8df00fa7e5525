"""GET /metrics: the Prometheus exposition, optionally behind a bearer token, gzip-compressed
when the scraper accepts it (Prometheus sends `Accept-Encoding: gzip` by default).

At 300 halls the exposition is ~30 MB of highly repetitive text; gzip at level 1 makes it
~20x smaller. The body is compressed in a worker thread: zlib releases the GIL while it
deflates, so the event loop keeps serving while a large body is compressed (figures and the
alternatives measured, level included, in bench/README.md, "/metrics render")."""

from __future__ import annotations

import asyncio
import hmac
import re
import zlib
from collections.abc import Iterable

from aiohttp import web

from queue_service.exposition import CONTENT_TYPE
from queue_service.web.errors import Unauthorized
from queue_service.web.keys import EXPOSITION, SETTINGS

# Level 1 (bench.metrics_render, 300 halls, 33.3 MB): 1.64 MB (20x smaller) for ~0.12 s of
# CPU. The default level 6 takes ~4x the CPU for 1.35 MB; levels 2-3 save at most 1.3% for
# up to 20% more CPU.
GZIP_LEVEL = 1
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip member (header and CRC), not a raw zlib stream
# RFC 9110 qvalue: 0 to 1 with at most three decimals.
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def _weights(accept_encoding: Iterable[str]) -> dict[str, float]:
    """Coding -> weight of Accept-Encoding header values (several headers are one list).

    A malformed weight counts as 0 (not acceptable), as does a coding listed twice with one
    weight 0: plain is always a safe answer, a compressed body the client refused is not.
    """
    weights: dict[str, float] = {}
    for element in ",".join(accept_encoding).split(","):
        coding, *params = element.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.match(value) else 0.0
        weights[coding] = min(weight, weights.get(coding, weight))
    return weights


def accepts_gzip(accept_encoding: Iterable[str]) -> bool:
    """True when gzip may be sent: listed (or `x-gzip`, or `*`) with a weight above 0 and
    not below a weight given to `identity` (an explicit preference for plain is honoured).
    No header at all means plain."""
    weights = _weights(accept_encoding)
    star = weights.get("*")
    gzip = weights.get("gzip", weights.get("x-gzip", star))
    if gzip is None or gzip <= 0:
        return False
    identity = weights.get("identity", star)
    return identity is None or gzip >= identity


def gzip_sync(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    return zlib.compress(body, level, wbits=_GZIP_WBITS)


async def gzip_compress(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    """The body as one gzip member, deflated in the default executor's thread.

    zlib releases the GIL while deflating, so the loop is not held for the compression
    (0.1-0.2 s at 300 halls). On the loop in one go it would be held that long; in 64 KiB
    slices with a yield every 5 ms, ticks were late by ~19 ms each and the compression took
    longer (bench/README.md)."""
    return await asyncio.get_running_loop().run_in_executor(None, gzip_sync, body, level)


async def metrics(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].metrics_token
    if expected is not None:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # Compared as bytes: compare_digest refuses non-ASCII str (a 500 otherwise), and
        # bytes that are not UTF-8 arrive from aiohttp as surrogates.
        given_bytes = given.strip().encode("utf-8", "surrogatepass")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given_bytes, expected.encode("utf-8")
        ):
            raise Unauthorized("/metrics needs the configured bearer token", code="invalid_token")
    body = await request.app[EXPOSITION].render()
    # Vary on both answers: a cache between scraper and service must not hand a gzip body
    # to a client that did not ask for one, nor keep the plain one for every client.
    headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.getall("Accept-Encoding", ())):
        body = await gzip_compress(body)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)
