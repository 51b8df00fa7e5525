"""Errors of the HTTP layer and the one middleware that turns every error into JSON.

Body: {"code", "message", "details"}. Every error Antrian raises on purpose is an
`AntrianError` (queue_service/errors.py) and carries its status, code, message and details:
the middleware answers it with those, adding `WWW-Authenticate` to a 401 and `Retry-After`
to a 503. An `AnswerFailed` (the command was carried out, its answer could not be made)
brings its own body. Anything unexpected is logged with its traceback and answered 500
without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from queue_service.engine import AnswerFailed
from queue_service.errors import AntrianError
from queue_service.web.keys import SETTINGS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


class ApiError(AntrianError):
    """A request the HTTP layer refuses before any command runs."""

    status, code = 400, "bad_request"


class Malformed(ApiError):
    status, code = 400, "malformed_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class TooLarge(ApiError):
    status, code = 413, "body_too_large"


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "details": details or {}},
        status=status,
        headers=headers,
    )


# A 503's own message may carry the database's words (its address, its error): the answer
# says this instead.
_PUBLIC_MESSAGES = {503: "The database is unavailable; nothing was recorded. Retry shortly."}


def _answer(request: web.Request, exc: AntrianError) -> web.Response:
    """The answer to an error raised on purpose: its status, code, message and details."""
    status, code, message, details = exc.status, exc.code, exc.message, exc.details
    if isinstance(exc, AnswerFailed):  # logged with its traceback by the engine
        return web.Response(text=exc.text, status=status, content_type="application/json")
    message = _PUBLIC_MESSAGES.get(status, message)
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif status == 503:
        log.warning("%s for %s %s", code.replace("_", " "), request.method, request.path)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return error_response(status, code, message, details, headers)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    400: "malformed_request",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AntrianError as exc:
        return _answer(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error_response(
                413,
                "body_too_large",
                "The request body is too large.",
                {"max_bytes": request.app[SETTINGS].max_body_bytes},
            )
        return error_response(
            exc.status,
            _HTTP_CODES.get(exc.status, "http_error"),
            exc.reason,
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "An unexpected error occurred.")
