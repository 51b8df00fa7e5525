"""Errors of the HTTP layer and the one middleware that turns every error into JSON.

Body: {"code", "message", "details"}. Domain errors map by branch; the database being
unavailable is 503 with Retry-After; anything unexpected is logged with its traceback and
answered 500 without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from queue_service.domain import errors as domain
from queue_service.engine import ANSWER_FAILED_STATUS, AnswerFailed
from queue_service.store.event_store import StoreUnavailable
from queue_service.web.keys import SETTINGS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


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


_DOMAIN_STATUS: tuple[tuple[type[domain.DomainError], int], ...] = (
    (domain.NotFound, 404),
    (domain.Conflict, 409),
    (domain.Invalid, 400),
)

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
    except ApiError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)
    except domain.DomainError as exc:
        status = next((s for kind, s in _DOMAIN_STATUS if isinstance(exc, kind)), 400)
        return error_response(status, exc.code, exc.message, exc.details)
    except AnswerFailed as exc:  # logged with its traceback by the engine
        return web.Response(
            text=exc.text, status=ANSWER_FAILED_STATUS, content_type="application/json"
        )
    except StoreUnavailable:
        log.warning("database unavailable for %s %s", request.method, request.path)
        return error_response(
            503,
            "database_unavailable",
            "The database is unavailable; nothing was recorded. Retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
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
