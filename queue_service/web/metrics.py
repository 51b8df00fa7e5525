"""GET /metrics: the Prometheus exposition, optionally behind a bearer token."""

from __future__ import annotations

import hmac

from aiohttp import web

from queue_service.metrics.exposition import CONTENT_TYPE
from queue_service.web.errors import Unauthorized
from queue_service.web.keys import EXPOSITION, SETTINGS

routes = web.RouteTableDef()


@routes.get("/metrics")
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
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
