"""The access log never carries a bearer token or a ticket id."""

from queue_service.web.access_log import redact


def test_tokens_and_ticket_ids_are_redacted() -> None:
    assert redact("/api/v1/sites/x/stream?access_token=demo-loket-01&last_event_id=3") == (
        "/api/v1/sites/x/stream?access_token=REDACTED&last_event_id=3"
    )
    assert redact("/api/v1/tickets/Zx9-abc_123/qr.svg") == "/api/v1/tickets/REDACTED/qr.svg"
    assert redact("/api/v1/tickets/Zx9-abc_123") == "/api/v1/tickets/REDACTED"
    assert redact("/api/v1/sites/x/display") == "/api/v1/sites/x/display"


def test_malformed_requests_are_not_logged_with_their_bytes() -> None:
    import logging
    import sys

    from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

    from queue_service.web.access_log import DropBadRequests

    def record(exc: Exception | None) -> logging.LogRecord:
        info = None
        if exc is not None:
            try:
                raise exc
            except Exception:
                info = sys.exc_info()
        return logging.LogRecord("aiohttp.server", logging.ERROR, "x", 1, "msg", (), info)

    dropped = DropBadRequests()
    assert not dropped.filter(record(LineTooLong(b"GET /?access_token=secret", 8190)))
    assert not dropped.filter(record(BadHttpMessage("bad")))
    assert dropped.filter(record(RuntimeError("a real error")))  # still logged
    assert dropped.filter(record(None))
