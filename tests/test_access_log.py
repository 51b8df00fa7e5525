"""The access log never carries a bearer token or a ticket id."""

from queue_service.web.access_log import redact


def test_tokens_and_ticket_ids_are_redacted() -> None:
    assert redact("/api/v1/sites/x/stream?access_token=demo-loket-01&last_event_id=3") == (
        "/api/v1/sites/x/stream?access_token=REDACTED&last_event_id=3"
    )
    assert redact("/api/v1/tickets/Zx9-abc_123/qr.svg") == "/api/v1/tickets/REDACTED/qr.svg"
    assert redact("/api/v1/tickets/Zx9-abc_123") == "/api/v1/tickets/REDACTED"
    assert redact("/api/v1/sites/x/display") == "/api/v1/sites/x/display"
