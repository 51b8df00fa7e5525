"""An access log that never writes a secret: bearer tokens in the query string and ticket
ids in paths (a ticket id is the citizen's capability) are redacted; malformed requests
are not logged with their bytes."""

from __future__ import annotations

import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web import BaseRequest, StreamResponse

_TICKET_PATH = re.compile(r"(/api/v1/tickets/)[^/?]+")
_TOKEN_QUERY = re.compile(r"(access_token=)[^&]*")


def redact(path_qs: str) -> str:
    return _TOKEN_QUERY.sub(r"\1REDACTED", _TICKET_PATH.sub(r"\1REDACTED", path_qs))


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time * 1000,
        )


class DropBadRequests(logging.Filter):
    """aiohttp logs every malformed request at ERROR with a traceback and the start of the
    offending line (which may hold an `access_token`): anyone on the hall's network could
    flood the log with them. The client got its 400; nothing is lost by not logging it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, BadHttpMessage)
