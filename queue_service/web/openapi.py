"""The OpenAPI 3.1 description of the JSON API, served at GET /api/v1/openapi.json.

The operations come from the route table (web/routes.py): paths, methods, roles, request
bodies (their fields and limits), answers, rate limits and error codes. This module adds
the prose: descriptions, parameters other than the path's, the answers' schemas (the shapes
of read_models.py), the error-code table and the links between operations. Enums are the
domain's (domain/vocab.py).

The document is built once; every call returns a fresh deep copy, so a caller may change
its copy freely; the app serves it encoded once (`encoded_document`).
"""

from __future__ import annotations

import copy
import functools
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from queue_service.domain import vocab
from queue_service.domain.events import EVENTS, PayloadField
from queue_service.domain.ikm import GRADES, WAIT_BANDS
from queue_service.engine.answers import IDEMPOTENCY_WINDOW
from queue_service.read_models import (
    DIRECTORY_COUNTER_FIELDS,
    DIRECTORY_SERVICE_FIELDS,
    NOW_CALLING,
    RECENT_CALLS,
)
from queue_service.reports.build import MAX_DAYS
from queue_service.web.api import (
    KEEPALIVE_SECONDS,
    MAX_KEY_LENGTH,
    PING_SECONDS,
    RETRY_MS,
    SERVED_WHILE_STARTING,
    Stage,
)
from queue_service.web.reports_api import (
    COMMENT_MAX,
    REPORT_FORMATS,
    REPORT_LOCALES,
    SCORE,
    SURVEY_STATES,
    SURVEY_WINDOW_DAYS,
    TABLET_WINDOW,
)
from queue_service.web.routes import ROUTES
from queue_service.web.spec import Access, Body, CounterIn, Route, TextField

API_VERSION = "0.1.0"

# How a ticket's visit ended: a transfer is not an end (the ticket waits in its new service).
TICKET_OUTCOMES = tuple(o for o in vocab.Outcome if o is not vocab.Outcome.TRANSFERRED)
EVENT_TYPES = (
    *(t for t in vocab.EventType if t.is_ticket_event),
    *(t for t in vocab.EventType if not t.is_ticket_event),
)
# Site, agency and counter ids, and service codes, as the configuration checks them.
ID_PATTERN = rf"^[a-z0-9][a-z0-9_-]{{0,{vocab.MAX_ID - 1}}}$"
SERVICE_CODE_PATTERN = rf"^[A-Z0-9][A-Z0-9_-]{{0,{vocab.MAX_WORD - 1}}}$"

# Published precision: the one place the document states it. Every field below that
# carries a rounded number says so by one of these (views.SECONDS_DIGITS and SHARE_DIGITS;
# reports/build.py and domain/ikm.py for the reports). Rounded once from exact values.
SECONDS_PRECISION = "Seconds, rounded to 0.1 s."
SHARE_PRECISION = "A fraction 0..1 rounded to 4 decimals (0.9512 = 95.12%)."
RATIO_PRECISION = "Rounded to 4 decimals."
REPORT_SECONDS_PRECISION = "Seconds, rounded to 0.001 s."
REPORT_TIME_PRECISION = "Seconds, rounded to 0.1 s."
MEAN_SCORE_PRECISION = "Rounded to 4 decimals."
INDEX_PRECISION = "Rounded to 2 decimals (half up, as PermenPANRB 14/2017 grades it)."
PRECISION_TEXT = f"""\
**Precision.** Counts and target waits are exact. Each other figure is computed from exact \
values and rounded once, when published; each such field's description repeats its precision:

- durations in the snapshot, site directory and ticket status: {SECONDS_PRECISION}
- shares: {SHARE_PRECISION} Ratios (`ratio_to_target`): {RATIO_PRECISION}
- reports: wait, walk, service and estimate-error statistics: {REPORT_SECONDS_PRECISION} \
Counters' open, busy and idle time: {REPORT_TIME_PRECISION}
- SKM element means and perception: {MEAN_SCORE_PRECISION} IKM and quick index: \
{INDEX_PRECISION}
"""

# Every stable error code by HTTP status (0: the status as sent), with its meaning. Clients
# branch on `code`.
_ERRORS: dict[int, dict[str, str]] = {
    400: {
        "malformed_request": "The request could not be read (generic 400).",
        "invalid_json": "The body is not valid JSON, or not a JSON object.",
        "unknown_field": (
            "The body has a field this endpoint does not accept (`details.fields`, "
            "`details.allowed`)."
        ),
        "missing_field": "A required field is absent or null (`details.field`).",
        "invalid_field": "A field has the wrong type or is too long (`details.field`).",
        "invalid_idempotency_key": (
            f"The Idempotency-Key header is not 1 to {MAX_KEY_LENGTH} printable characters, or "
            "starts with `device:` or `keypad:` (the service's own keys for its devices)."
        ),
        "invalid_last_event_id": "Last-Event-ID is not a non-negative integer.",
        "invalid_command": (
            "A field value is not allowed, e.g. an unknown priority kind, source or outcome, an "
            "empty pause reason, or a transfer to the same service (`details.field`)."
        ),
        "invalid_survey": (
            "A survey answer is missing or not allowed: scores not nine integers 1..4, a rating "
            f"outside 1..4, a comment over {COMMENT_MAX} characters, an unknown channel "
            "(`details.field`)."
        ),
        "survey_mode_mismatch": (
            "The survey sent does not match the hall's mode: `scores` where the hall uses the "
            "one-tap rating, or `rating` where it uses the full SKM (`details.mode`)."
        ),
        "invalid_date": "`from` or `to` is not a date (YYYY-MM-DD).",
        "invalid_range": f"`to` is before `from`, or the range is longer than {MAX_DAYS} days.",
        "invalid_format": "The report format or CSV locale is not one offered.",
        "domain_error": "Generic domain error: the base of all domain codes, not sent today.",
    },
    401: {
        "token_required": "The endpoint needs `Authorization: Bearer <token>`.",
        "invalid_token": (
            "The token sent is not configured, or the Authorization header is not a bearer token."
        ),
    },
    403: {
        "role_not_allowed": "The token's role may not do this (`details.allowed_roles`).",
        "site_not_allowed": "The token is limited to other sites.",
        "counter_not_allowed": "A counter token may not act on this counter (loket).",
    },
    404: {
        "not_found": "No such route, or an unknown counter action.",
        "unknown_site": "The site does not exist (`details.site`).",
        "unknown_service": "The service does not exist at the site (`details.service`).",
        "unknown_counter": "The counter does not exist at the site (`details.counter`).",
        "unknown_ticket": "No ticket with this id today (tickets live for one service day).",
    },
    405: {
        "method_not_allowed": "The route exists but not for this method (see `Allow`).",
    },
    409: {
        "invalid_transition": (
            "The ticket or counter is not in a state that allows this (`details.state`)."
        ),
        "ticket_taken": "Another counter already holds the ticket.",
        "queue_empty": "No ticket is waiting for the counter's services.",
        "counter_busy": "The counter still holds a ticket; finish, transfer or no-show it first.",
        "counter_not_open": "The counter is closed or paused; open it first.",
        "service_not_served_here": "The counter does not serve the ticket's service.",
        "no_show_too_early": (
            "The ticket has not been called often enough to be a no-show (`details.calls`, "
            "`details.required`)."
        ),
        "site_closed": (
            "The hall is closed now (outside opening hours; a break is not a closing). "
            "`details.opens_at`: its next opening, site-local ISO 8601 with the site's UTC offset"
            " (`2026-11-30T08:00:00+08:00`)."
        ),
        "cutoff_passed": (
            "Today's last issue time for the service has passed (`details.cutoff`); "
            "`details.opens_at`: when its tickets are issued again, the opening of the next day "
            "whose hours begin before the cutoff (site-local ISO 8601), or null if none within a "
            "week."
        ),
        "quota_reached": (
            "Today's quota (kuota) of tickets for the service is used up (`details.quota`); "
            "`details.opens_at`: when its tickets are issued again, the opening of the next day "
            "that issues them (site-local ISO 8601), or null if none within a week."
        ),
        "idempotency_key_reused": (
            "The Idempotency-Key was already used at this site for a different request."
        ),
        "survey_not_available": (
            "Only a ticket whose visit ended `served` can be rated (`details.outcome`)."
        ),
        "survey_already_submitted": "This ticket's visit has already been rated.",
        "survey_closed": (
            f"The survey closes {SURVEY_WINDOW_DAYS} days after the visit (`details.window_days`)."
        ),
        "conflict": "Generic conflict: the base of the 409 codes, not sent on its own today.",
    },
    413: {
        "body_too_large": "The body is larger than the server accepts (`details.max_bytes`).",
    },
    415: {
        "unsupported_media_type": "The framework rejected the request's media type.",
    },
    429: {
        "rate_limited": (
            "A rate limit of this kiosk token or client address is spent (`details.scope`, "
            "`details.retry_after_seconds`); retry after `Retry-After` seconds."
        ),
    },
    500: {
        "internal_error": "An unexpected error; details are in the server log only.",
        "answer_failed": (
            "The request was carried out and recorded, but its answer could not be made (a fault,"
            " logged); a retry with the same Idempotency-Key gets this answer again instead of a "
            "second ticket or action."
        ),
    },
    503: {
        "database_unavailable": (
            "The database is unavailable and nothing was recorded; retry after `Retry-After` "
            "seconds with the same Idempotency-Key."
        ),
        "starting": (
            "The service is starting (its database, migrations or replay are not done yet) and "
            "nothing was recorded: any /api/v1 operation but this document may answer it. "
            "`details.reason` and `details.stage` say where the start is (as /readyz does); retry"
            " after `Retry-After` seconds."
        ),
    },
    0: {
        "http_error": "Any other HTTP error raised by the framework (status as sent).",
    },
}
ERROR_CODES: tuple[tuple[str, int, str], ...] = tuple(
    (code, status, meaning) for status, codes in _ERRORS.items() for code, meaning in codes.items()
)

_ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request is malformed or a value is not allowed."),
    401: ("Unauthorized", "No bearer token where one is required, or the token is not valid."),
    403: ("Forbidden", "The token is valid but may not do this here."),
    404: ("NotFound", "Something named in the path or body does not exist."),
    409: ("Conflict", "The request is well-formed but the current state does not allow it."),
    413: ("PayloadTooLarge", "The request body is too large."),
    500: ("InternalError", "An unexpected error occurred."),
    503: (
        "ServiceUnavailable",
        "The service is starting, or the database is unavailable; nothing was recorded.",
    ),
    429: (
        "TooManyRequests",
        "A rate limit of this client (its kiosk token or its address) is spent; nothing was "
        "recorded. Retry after `Retry-After` seconds.",
    ),
}

_JSON = "application/json"
_MINUTE = timedelta(minutes=1)
# -- small builders --------------------------------------------------------------------------


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or JSON null (OpenAPI 3.1 has no `nullable`)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _str_or_null(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": description, **extra}


def _time(description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "format": "date-time"}
    if description:
        schema["description"] = description
    return schema


def _time_or_null(description: str) -> dict[str, Any]:
    return _str_or_null(description, format="date-time")


def _seconds_or_null(description: str, precision: str = SECONDS_PRECISION) -> dict[str, Any]:
    return {"type": ["number", "null"], "minimum": 0, "description": f"{description} {precision}"}


def _seconds(description: str, precision: str = SECONDS_PRECISION) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "description": f"{description} {precision}"}


def _share_or_null(description: str) -> dict[str, Any]:
    return {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 1,
        "description": f"{description} {SHARE_PRECISION}",
    }


def _count(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "description": description}


def _array(items: dict[str, Any], description: str = "", **limits: int) -> dict[str, Any]:
    """An array of `items` (`limits`: maxItems, minItems)."""
    schema: dict[str, Any] = {"type": "array", "items": items, **limits}
    if description:
        schema["description"] = description
    return schema


def _extended(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Schema `name` with more properties (a report's counters, the IKM's wait bands)."""
    return {"allOf": [_ref(name), {"type": "object", "properties": properties}]}


def _per_group(name: str) -> dict[str, Any]:
    """A report's (and the IKM's) figures per agency and per service, each a `name`."""
    return {"agencies": _array(_ref(name)), "services": _array(_ref(name))}


def _enum_or_null(values: tuple[str, ...], description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "enum": [*values, None], "description": description}


def _object(
    properties: dict[str, Any], *, description: str = "", optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A response object: every property is always present unless named in `optional`.

    Response objects stay open (no `additionalProperties: false`) so that fields can be
    added without breaking clients.
    """
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema["required"] = [name for name in properties if name not in optional]
    schema["properties"] = properties
    return schema


def _shown(value: Decimal) -> str:
    return f"{value}".removesuffix(".00")


def _grades_text() -> str:
    """The IKM grades with their ranges, `A 88.31-100, B 76.61-88.30, ...` (domain/ikm.py):
    each grade runs from its lowest index to just below the next grade's."""
    tops = [Decimal(100), *(low - Decimal("0.01") for _, low, _, _ in GRADES[:-1])]
    ranges = [
        f"{g} {_shown(low)}-{_shown(top)}" for (g, low, _, _), top in zip(GRADES, tops, strict=True)
    ]
    return ", ".join(ranges) + "."


def _code_list(codes: tuple[str, ...]) -> str:
    return ", ".join(f"`{code}`" for code in codes)


def _errors(spec: dict[int, tuple[str, ...]]) -> dict[str, Any]:
    """Responses for error statuses, each a shared response with this route's codes."""
    out: dict[str, Any] = {}
    for status in sorted({*spec, 500}):
        name, summary = _ERROR_RESPONSES[status]
        codes = spec.get(status, ("internal_error",))
        out[str(status)] = {
            "$ref": f"#/components/responses/{name}",
            "description": f"{summary} Codes: {_code_list(codes)}.",
        }
    return out


def _parameter(
    name: str,
    where: str,
    description: str,
    schema: dict[str, Any],
    *,
    required: bool = False,
    example: str | None = None,
) -> dict[str, Any]:
    """A parameter of an operation: `where` is `path`, `query` or `header`."""
    parameter: dict[str, Any] = {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }
    if example is not None:
        parameter["example"] = example
    return parameter


def _path_param(
    name: str, description: str, example: str, pattern: str | None = None
) -> dict[str, Any]:
    schema = {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}
    return _parameter(name, "path", description, schema, required=True, example=example)


def _query(
    name: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    return _parameter(name, "query", description, schema, required=required)


def _param(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/parameters/{name}"}


PUBLIC: list[dict[str, Any]] = []
# Anonymous access, or a bearer token (which then must be valid).
OPTIONAL_TOKEN: list[dict[str, Any]] = [{}, {"bearerAuth": []}]


# -- shared parameters and common path parameters ---------------------------------------------

SITE = _path_param("site", "Site (hall, *Mal Pelayanan Publik*) id.", "mpp-banjarmasin", ID_PATTERN)
COUNTER = _path_param("counter", "Counter (*loket*) id at the site.", "loket-01", ID_PATTERN)
TICKET = _path_param(
    "ticket",
    "Ticket id as returned when the ticket was issued: an unguessable random string that is "
    "the citizen's capability to follow or cancel the ticket. It is not the printed number.",
    "q3Jk1v8xN0ZpR2c7WmE5Tg",
)

BOOKING = _path_param(
    "booking",
    "Booking id as returned when it was made: an unguessable random string, the citizen's "
    "capability to follow, move or cancel it. It is not the booking code.",
    "Zr8pQ2wX7nV4kT1mB6yH0a",
)


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": _parameter(
            "Idempotency-Key",
            "header",
            "Makes the command safe to retry. The first request with a key is executed; a later "
            "request with the same key at the same site, method, path and body gets the stored "
            "response (same status and body) without executing again, for at least "
            f"{IDEMPOTENCY_WINDOW // timedelta(hours=1)} hours. The same key with a different "
            "request is answered 409 `idempotency_key_reused`. Use a fresh random value (e.g. a "
            "UUID) per command and resend it when retrying after a timeout or a 503.",
            {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            example="5f0c6a0e-8a8e-4f65-9d1c-3f3b7f0b2a11",
        ),
        "LastEventId": _parameter(
            "Last-Event-ID",
            "header",
            "The `id` of the last message received; browsers' EventSource sends it by itself "
            "when it reconnects. Events after it are replayed, or a `reset` is sent if they are "
            "no longer buffered. Takes precedence over the `last_event_id` query parameter.",
            {"type": "string", "pattern": r"^[0-9]+$"},
            example="1042",
        ),
        "LastEventIdQuery": _query(
            "last_event_id",
            "Same as the Last-Event-ID header, for clients that cannot set it.",
            {"type": "integer", "minimum": 0},
        ),
        "AccessTokenQuery": _query(
            "access_token",
            "A bearer token passed in the URL, because a browser's EventSource cannot send "
            "headers. Accepted on the stream only; the Authorization header wins if both are "
            "sent. An invalid token is rejected with 401 `invalid_token`.",
            {"type": "string", "minLength": 1},
        ),
        "Zone": _parameter(
            "zone",
            "query",
            "Show only the counters of this zone (the `zone` of the counters in the site "
            "configuration), e.g. one TV per floor or wing. Absent or empty: every counter.",
            {"type": "string"},
            example="A",
        ),
    }


# -- schemas ---------------------------------------------------------------------------------


def _error_codes_table() -> str:
    rows = ["| code | status | meaning |", "| --- | --- | --- |"]
    for code, status, meaning in ERROR_CODES:
        rows.append(f"| `{code}` | {status or 'as sent'} | {meaning} |")
    return "\n".join(rows)


def _schemas() -> dict[str, Any]:
    localized = _object(
        {
            "id": {"type": "string", "description": "Name in Bahasa Indonesia."},
            "en": {"type": "string", "description": "Name in English."},
        },
        description="A name in Bahasa Indonesia (`id`, the language code) and English.",
    )
    agency = _object(
        {"id": {"type": "string", "pattern": ID_PATTERN}, "name": {"type": "string"}},
        description="An agency (*instansi*) with counters in the hall.",
    )
    brk = _nullable(
        _object(
            {
                "label": {"type": "string", "description": "Shown to citizens, e.g. `Istirahat`."},
                "until": {
                    "type": "string",
                    "pattern": r"^\d{2}:\d{2}$",
                    "description": "Local end time, HH:MM.",
                },
            },
            description="The break (*istirahat*) in progress.",
        )
    )
    next_opening = _str_or_null(
        "When the hall next opens, site-local ISO 8601 with the site's UTC offset "
        "(`2026-11-30T08:00:00+08:00`: the local wall time and day as written); null while "
        "it is open, a break included (see `break`). Looked up to 7 days ahead over the "
        "weekday hours; a day opening 00:00 after one closing 24:00 continues it. The same "
        "instant as `details.opens_at` of a `site_closed` refusal.",
        format="date-time",
    )
    # The head of the snapshot, the display and the site directory (read_models._hall).
    hall = {
        "site": {"type": "string"},
        "name": {"type": "string"},
        "timezone": {"type": "string", "description": "IANA zone, e.g. `Asia/Makassar`."},
        "now": _time(),
        "open": {"type": "boolean", "description": "Within opening hours now."},
        "next_opening": next_opening,
        "break": brk,
    }
    priority = _enum_or_null(
        tuple(vocab.Priority),
        "Priority kind, or null for a regular ticket: `lansia` (elderly), `disabilitas` "
        "(persons with disabilities), `ibu_hamil` (pregnant women).",
    )
    not_accepting = _enum_or_null(
        ("closed", "cutoff", "quota"),
        "Why tickets are not issued now: the hall is closed, the cutoff time has passed, or "
        "today's quota is used up; null while `accepting`.",
    )
    cutoff = _str_or_null(
        "Local time (HH:MM) after which no tickets are issued, or null.", pattern=r"^\d{2}:\d{2}$"
    )
    service_code = {
        "type": "string",
        "pattern": SERVICE_CODE_PATTERN,
        "description": "Service (*layanan*) code.",
    }
    number = {
        "type": "string",
        "description": "Printed ticket number (*nomor antrian*): the "
        "service prefix and a 3-digit sequence that restarts each service day.",
        "examples": ["A012"],
    }

    ticket_status = _object(
        {
            "id": {"type": "string", "description": "The ticket id (capability)."},
            "site": {"type": "string"},
            "site_name": {"type": "string"},
            "timezone": {"type": "string", "description": "The site's IANA zone."},
            "number": number,
            "service": service_code,
            "service_name": _ref("LocalizedName"),
            "priority": priority,
            "state": _ref("TicketState"),
            "issued_at": _time(),
            "position": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": (
                    "1 = next to be called; `people_ahead` + 1, in the queue's call order; "
                    "null unless waiting."
                ),
            },
            "people_ahead": _count(
                "Tickets that will be called before this one (0 unless waiting), counted in "
                "the queue's call order: the order repeated call-next hands tickets out under "
                "the service's priority policy (`strict`, `interleave`, `fifo`)."
            ),
            "estimated_wait_seconds": _seconds_or_null(
                "Estimate while waiting; null if every counter serving the service is closed "
                "or the ticket is not waiting."
            ),
            "estimated_wait_range_seconds": {
                "type": ["array", "null"],
                "items": {"type": "number", "minimum": 0},
                "minItems": 2,
                "maxItems": 2,
                "description": "[low, high] about the estimate, meant to hold 8 in 10 actual "
                f"waits (docs/estimate.md); null with the estimate. {SECONDS_PRECISION}",
            },
            "waited_seconds": _seconds_or_null(
                "Time waited in the current service so far; null unless waiting."
            ),
            "counter": _str_or_null("Counter (*loket*) id holding the ticket, or null."),
            "counter_name": _str_or_null("Its display name, e.g. `Loket 3`."),
            "calls": _count("Times called at the current counter (call + recalls)."),
            "called_at": _time_or_null("Last call, or null."),
            "finished_at": _time_or_null("When it was finished, no-showed or cancelled."),
            "outcome": _enum_or_null(TICKET_OUTCOMES, "How the visit ended, or null."),
            "now_calling": _array(
                {"type": "string"},
                "Numbers of the ticket's service held by a counter right now (called or "
                "being served), by their last call or recall, newest first; at most "
                f"{NOW_CALLING}. "
                "A ticket leaves the list when its counter releases it (finish, no-show, "
                "transfer).",
                maxItems=NOW_CALLING,
            ),
            "source": {"type": "string", "enum": list(vocab.Source)},
            "booking": _str_or_null("The booking it was issued for (antrian online)."),
            "due_at": _time_or_null(
                "A checked-in booking's ticket: from when it is called ahead of walk-ins "
                "(its queue time starts then)."
            ),
            "confirmed": {
                "type": ["boolean", "null"],
                "description": "A remote join: whether it was confirmed at the kiosk "
                "(null: nothing to confirm).",
            },
            "code": _str_or_null(
                "Only in the answer to a remote join to be confirmed: the code to show at "
                "the kiosk."
            ),
            "near": {
                "type": "boolean",
                "description": "Waiting, of a service with antrian online, and its turn is "
                "near: `near_ahead` or fewer ahead, or an estimate of at most "
                "`near_minutes` (the rule the webhook's `near` notice follows).",
            },
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": (
                    "Sequence number of the event the command produced; present only in the "
                    "responses to issue and cancel."
                ),
            },
        },
        description="A ticket as the citizen's phone and the kiosk confirmation show it.",
        optional=("seq", "code"),
    )

    held = _object(
        {
            "id": {"type": "string"},
            "number": {"type": "string"},
            "service": {"type": "string"},
            "state": _ref("TicketState"),
            "priority": priority,
            "calls": _count("Times called."),
            "called_at": _time_or_null("Last call."),
            "started_at": _time_or_null("When service started, if the counter uses `start`."),
        },
        description="The ticket the counter holds.",
    )

    counter_props: dict[str, Any] = {
        "id": {"type": "string", "pattern": ID_PATTERN},
        "name": {"type": "string"},
        "zone": _str_or_null("Zone of the hall, or null."),
        "services": _array({"type": "string"}, "Service codes this counter serves."),
        "uses_start": {
            "type": "boolean",
            "description": (
                "Whether officers press `start` when the citizen sits down; otherwise a "
                "called ticket is finished directly."
            ),
        },
        "state": _ref("CounterState"),
        "reason": _str_or_null("Pause reason while paused."),
        "since": _time_or_null("When the current state was entered."),
        "ticket": _nullable(held),
        "served_today": _count("Visits finished or transferred here today."),
        "busy_seconds_today": _seconds_or_null(
            "Service time summed over the visits finished or transferred here today."
        ),
        "idle_since": _time_or_null("Open and holding no ticket since."),
        "idle_while_queue_waits": {
            "type": "boolean",
            "description": ("Idle although tickets wait for its services (worth an alert)."),
        },
    }
    counter_view = _object(counter_props, description="A counter (*loket*) with its live state.")

    waiting_ticket = _object(
        {
            "id": {"type": "string"},
            "number": {"type": "string"},
            "priority": priority,
            "issued_at": _time(),
            "enqueued_at": _time("Start of the wait in this service (after a transfer)."),
            "wait_seconds": _seconds("Waited so far in this service."),
        },
        description="A waiting ticket, in the queue's call order.",
    )

    service_props: dict[str, Any] = {
        "code": service_code,
        "agency": {"type": "string", "description": "Agency (*instansi*) id."},
        "name": _ref("LocalizedName"),
        "prefix": {"type": "string", "pattern": r"^[A-Z]{1,2}$"},
        "target_wait_seconds": {
            "type": "integer",
            "minimum": 60,
            "description": "The service standard's target wait (exact, whole seconds).",
        },
        "waiting": _count("Tickets waiting."),
        "estimated_wait_seconds": _seconds_or_null(
            "Estimate for a regular ticket issued now (what its issue would be told); null "
            "if every counter serving it is closed."
        ),
        "accepting": {"type": "boolean", "description": "Whether a ticket can be issued now."},
        "not_accepting_reason": not_accepting,
        "daily_quota": {"type": ["integer", "null"], "minimum": 1},
        "issued_today": _count("Tickets issued today."),
        "cutoff": cutoff,
        "open_counters": _count("Open counters serving it."),
        "priority_waiting": _count("Priority tickets waiting."),
        "oldest_enqueued_at": _time_or_null("Enqueue time of the longest-waiting ticket."),
        "oldest_wait_seconds": _seconds_or_null("How long that ticket has waited."),
        "priority_policy": {
            "type": "string",
            "enum": list(vocab.PriorityPolicy),
            "description": (
                "How priority tickets are called: `strict` (all first), `interleave` (a "
                "regular ticket after a few priority calls in a row), `fifo` (no "
                "priority). A counter serving several services calls, among their "
                "queues' next tickets, a priority one of a non-`fifo` service first, "
                "then the earliest issued."
            ),
        },
        "called_today": _count("Calls (first calls) today."),
        "called_within_target_today": _count("Of those, within the target wait (wait <= target)."),
        "waiting_over_target": _count(
            "Tickets still waiting that have already waited longer than the target: "
            "breaches of the standard before they are called."
        ),
        "within_standard_share": _share_or_null(
            "Within standard so far today: `called_within_target_today` / "
            "(`called_today` + `waiting_over_target`); null when both are 0."
        ),
        "finished_today": _count("Visits finished (or transferred on) today."),
        "no_shows_today": _count("No-shows (*tidak hadir*) today."),
        "cancelled_today": _count("Cancelled tickets today."),
        "average_service_seconds": _seconds(
            "Average handle time today, or the configured default before any."
        ),
        "tickets": _array(
            waiting_ticket,
            "Waiting tickets in the queue's call order: the order repeated call-next "
            "hands them out under `priority_policy` (with `interleave`, counting the "
            "priority calls already made in a row). The first is the next called.",
        ),
    }
    service_view = _object(
        service_props,
        description="A service (*layanan*) and its queue, as staff see it.",
        optional=("tickets",),
    )
    directory_service = _object(
        {name: service_props[name] for name in DIRECTORY_SERVICE_FIELDS},
        description="A service as the kiosk shows it in its menu.",
    )

    worst_queue = _object(
        {
            "service": service_code,
            "prefix": {"type": "string"},
            "name": _ref("LocalizedName"),
            "oldest_enqueued_at": _time("Enqueue time of its longest-waiting ticket."),
            "oldest_wait_seconds": _seconds("How long that ticket has waited."),
            "target_wait_seconds": {
                "type": "integer",
                "minimum": 60,
                "description": "The queue's own target wait (exact).",
            },
            "ratio_to_target": {
                "type": "number",
                "minimum": 0,
                "description": (
                    "`oldest_wait_seconds` / `target_wait_seconds` from the exact wait (1 = "
                    f"exactly the standard). {RATIO_PRECISION}"
                ),
            },
            "in_breach": {
                "type": "boolean",
                "description": "Its oldest ticket has waited longer than the target.",
            },
        },
        description=(
            "The queue furthest past its own standard: the largest oldest wait / target "
            "among queues where a ticket waits (the first in configuration order on a tie). "
            "Not the absolute oldest ticket: 16 minutes is within a 20-minute standard and "
            "past a 15-minute one."
        ),
    )
    headline = _object(
        {
            "waiting": _count("Tickets waiting, all services."),
            "called_today": _count("Calls (first calls) today, all services."),
            "called_within_target_today": _count("Of those, within their service's target."),
            "waiting_over_target": _count(
                "Tickets still waiting past their service's target, all services."
            ),
            "within_standard_share": _share_or_null(
                "Within standard so far today, site-wide: `called_within_target_today` / "
                "(`called_today` + `waiting_over_target`) of the sums (not a mean of the "
                "services' shares); null when both are 0."
            ),
            "queues_waiting": _count("Services with at least one ticket waiting."),
            "queues_in_breach": _count(
                "Services whose oldest waiting ticket has waited longer than the service's "
                "target (those with `waiting_over_target` > 0)."
            ),
            "worst_queue": _nullable(worst_queue),
        },
        description=(
            "The floor board's key figures against the service standards, computed once "
            "from the same figures as each service's (`domain/standard.py`); the board "
            "shows these and computes none of its own."
        ),
    )

    snapshot = _object(
        {
            **hall,
            "no_show_min_calls": {
                "type": "integer",
                "minimum": 1,
                "description": "Calls a ticket needs before it may be marked a no-show.",
            },
            "service_day": _str_or_null("Local service day (*hari layanan*).", format="date"),
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": (
                    "Sequence number of the last event included; resume the stream after it."
                ),
            },
            "agencies": _array(agency),
            "headline": _ref("Headline"),
            "services": _array(_ref("ServiceView")),
            "counters": _array(_ref("CounterView")),
        },
        description="The whole site for the floor board and counter pages (staff only).",
    )

    display = _object(
        {
            **hall,
            "zone": _str_or_null("The zone filter, or null for the whole hall."),
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": "Last event included; resume the stream after it.",
            },
            "serving": _array(
                _object(
                    {
                        "counter": {"type": "string"},
                        "counter_name": {"type": "string"},
                        "state": _ref("CounterState"),
                        "number": _str_or_null(
                            "Number the counter holds now (called or being served), or null."
                        ),
                        "service": _str_or_null("Its service code."),
                        "called_at": _time_or_null("Its last call or recall."),
                    }
                ),
                "One entry per counter (in the zone), in configuration order.",
            ),
            "recent": _array(
                _object(
                    {
                        "number": {"type": "string"},
                        "counter": _str_or_null(
                            "The counter it was last called to; kept after the counter "
                            "releases it (finished, no-show, transferred), so a citizen who "
                            "looked away still sees where to go."
                        ),
                        "counter_name": _str_or_null("Its display name."),
                        "called_at": _time("Its last call or recall."),
                        "state": _ref("TicketState"),
                    }
                ),
                "The last calls and recalls of the zone (the site without a zone), one "
                "entry per ticket at its last call, newest first, whatever the ticket's "
                "state since (finished, no-show, transferred: a ticket sent on to "
                "another service stays where it was called until it is called there).",
                maxItems=RECENT_CALLS,
            ),
            "waiting": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "Tickets waiting, by service code.",
            },
        },
        description=(
            "The public TV display (*layar antrian*): who is called to which counter. Ticket "
            "numbers only, never ticket ids."
        ),
    )

    site_directory = _object(
        {
            **hall,
            "agencies": _array(agency),
            "services": _array(_ref("DirectoryService")),
            "counters": _array(
                _object({name: counter_props[name] for name in DIRECTORY_COUNTER_FIELDS})
            ),
        },
        description="What a kiosk needs to draw its menu: agencies, services, whether each "
        "accepts tickets now.",
    )

    site_list = _object(
        {
            "sites": _array(
                _object(
                    {
                        "id": {"type": "string", "pattern": ID_PATTERN},
                        "name": {"type": "string"},
                        "timezone": {"type": "string"},
                    }
                )
            )
        },
        description="Every configured site (hall).",
    )

    counter_result = _object(
        {
            "counter": _ref("CounterView"),
            "ticket": _nullable(_ref("TicketStatus")),
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "Sequence number of the (last) event the action produced.",
            },
        },
        description=(
            "The counter after the action and the ticket it concerned (null for open, pause "
            "and close). After `transfer` the ticket is shown waiting in its new service."
        ),
    )

    error = {
        "type": "object",
        "description": (
            "Every error answer has this body. `code` is stable and meant for programs; "
            "`message` is English text for people and may change; `details` holds values "
            "that depend on the code (e.g. `field`, `allowed_roles`, `max_bytes`). 401 "
            "answers carry `WWW-Authenticate: Bearer`; 503 answers carry `Retry-After`.\n\n"
            "Error codes:\n\n" + _error_codes_table()
        ),
        "required": ["code", "message", "details"],
        "properties": {
            "code": {
                "type": "string",
                "description": "Stable error code (see the table).",
                "examples": ["queue_empty"],
            },
            "message": {"type": "string"},
            "details": {"type": "object", "additionalProperties": True},
        },
        "example": {
            "code": "queue_empty",
            "message": "no ticket is waiting for this counter's services",
            "details": {"counter": "loket-01"},
        },
    }

    stream_control = {
        "type": "object",
        "description": (
            "`hello`: first message of a fresh connection; `seq` is the last event of the "
            "site so far. `reset`: the events after the client's Last-Event-ID are no longer "
            "available (buffer overrun or service restart); re-read the snapshot or display, "
            "then keep reading: events after `seq` follow."
        ),
        "required": ["type", "seq"],
        "properties": {
            "type": {"type": "string", "enum": ["hello", "reset"]},
            "seq": {"type": "integer", "minimum": 0},
        },
    }
    stream_event = {
        "type": "object",
        "description": (
            "One committed event. Which fields beyond `seq`, `type`, `site` and `ts` appear "
            "depends on the type: ticket events carry `service` and `number`; counter "
            f"events and counter actions carry `counter`; {_payload_text()}. Clients should "
            "treat the SSE `id` as the authoritative sequence number and ignore fields they "
            "do not know."
        ),
        "required": ["seq", "type", "site", "ts"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "site": {"type": "string"},
            "ts": _time(),
            "counter": {"type": "string", "description": "Counter (*loket*) id."},
            "service": {"type": "string", "description": "Service code (before a transfer)."},
            "ticket_id": {
                "type": "string",
                "description": (
                    "Only on streams opened with a valid token; public screens never get ids."
                ),
            },
            **{f.key: _payload_schema(f) for f in _payload_fields()},
        },
    }

    return {
        "LocalizedName": localized,
        "TicketState": {
            "type": "string",
            "enum": list(vocab.TicketStatus),
            "description": (
                "waiting (*menunggu*), called (*dipanggil*), serving (*dilayani*), done "
                "(*selesai*), no_show (*tidak hadir*), cancelled (*dibatalkan*), expired "
                "(*kedaluwarsa*: still open when its service day ended at local midnight)."
            ),
        },
        "CounterState": {
            "type": "string",
            "enum": list(vocab.CounterStatus),
            "description": "closed (*tutup*), open (*buka*), paused (*jeda*).",
        },
        "PriorityKind": {
            "type": "string",
            "enum": list(vocab.Priority),
            "description": (
                "Priority service (*layanan prioritas*): lansia = elderly, disabilitas = "
                "persons with disabilities, ibu_hamil = pregnant women."
            ),
        },
        "Outcome": {
            "type": "string",
            "enum": list(vocab.FinishOutcome),
            "description": "How an officer ends a visit; default `served`.",
        },
        "Source": {
            "type": "string",
            "enum": list(vocab.Source),
            "description": "Where the ticket was issued; default `kiosk`.",
        },
        "TicketStatus": ticket_status,
        **_online_schemas(),
        "ServiceView": service_view,
        "Headline": headline,
        "DirectoryService": directory_service,
        "CounterView": counter_view,
        "Snapshot": snapshot,
        "Display": display,
        "SiteDirectory": site_directory,
        "SiteList": site_list,
        "CounterActionResult": counter_result,
        "Error": error,
        "Health": _object({"status": {"type": "string", "const": "ok"}}),
        "Readiness": _object(
            {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "reason": {
                    "type": "string",
                    "description": (
                        "Not ready: why, a stable code. While the service starts: `starting`, "
                        "or what failed the last attempt and is being waited for "
                        "(`database_unreachable`, `database_missing`, `database_refused`, "
                        "`database_error`, `embedded_database_failed`); what ended the start "
                        "for good (`writer_lock_held`, `database_url_invalid`, "
                        "`startup_failed`); `stopping`. Once started: `engine_stopped`, "
                        "`database_not_writable`, `database_unreachable` (the first of "
                        "`problems`)."
                    ),
                },
                "detail": {"type": "string", "description": "The reason, said for people."},
                "stage": {
                    "type": "string",
                    "enum": list(Stage),
                    "description": (
                        "While the service starts (or stops): the step of the start it is at."
                    ),
                },
                "attempt": _count(
                    "While the service starts: attempts to reach the database so far."
                ),
                "problems": _array(
                    {"type": "string"},
                    "Not ready: what, e.g. `database unreachable`, `engine not running`.",
                ),
            },
            description=(
                "Ready: `status` alone. Not ready: `reason`, `detail` and `problems`; while "
                "the service starts or stops, also `stage` and `attempt`."
            ),
            optional=("reason", "detail", "stage", "attempt", "problems"),
        ),
        "StreamControl": stream_control,
        "StreamEvent": stream_event,
        "StreamMessage": {
            "oneOf": [_ref("StreamControl"), _ref("StreamEvent")],
            "description": "The JSON in each SSE `data:` line.",
        },
    }


# The schemas of the event payloads' plain fields by type (domain/events.py); a float is a
# duration, rounded when the event is made (the estimate told at issue).
_PAYLOAD_TYPES: dict[type, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number", "minimum": 0, "description": SECONDS_PRECISION},
    bool: {"type": "boolean"},
}


def _online_schemas() -> dict[str, Any]:
    """The answers of antrian online (web/online.py, read_models)."""
    text = {"type": "string"}
    booking = _object(
        {
            "id": {**text, "description": "The booking's id: the citizen's capability."},
            "code": {**text, "description": "Typed or scanned at the kiosk to check in."},
            "site": text,
            "service": text,
            "service_name": _object({"id": text, "en": text}),
            "day": {"type": "string", "format": "date"},
            "slot": {**text, "description": "Slot start, HH:MM site-local."},
            "slot_end": {**text, "description": "Slot end, HH:MM site-local."},
            "starts_at": _time("The slot's start, site-local ISO 8601."),
            "state": {"type": "string", "enum": list(vocab.BookingStatus)},
            "check_in_from": _time("Check-in opens (site-local)."),
            "check_in_until": _time("Check-in closes (site-local)."),
            "ticket": _str_or_null("The ticket issued at check-in."),
            "number": _str_or_null("That ticket's number."),
            "moves": _count("Times the booking was moved."),
            "entry": {"type": "string", "enum": list(vocab.BookingEntry)},
            "requirements": _object({"id": text, "en": text}),
            "qr_url": text,
            "status_url": text,
        },
        description="A booking (antrian online).",
    )
    slot = _object(
        {
            "start": text,
            "end": text,
            "starts_at": _time("UTC."),
            "capacity": _count("Bookable places of the slot."),
            "booked": _count("Places taken (booked or checked in)."),
            "available": _count("Places left (within the day's share kept from walk-ins)."),
            "bookable": {"type": "boolean"},
        }
    )
    service = _object(
        {
            "code": text,
            "agency": text,
            "name_id": text,
            "name_en": text,
            "slot_minutes": _count("Slot length, minutes."),
            "days_ahead": _count("Days after today that may be booked."),
            "entry": {"type": "string", "enum": list(vocab.BookingEntry)},
            "remote_join": {"type": "boolean"},
            "remote_join_open": {"type": "boolean"},
            "confirm_on_arrival": {"type": "boolean"},
            "early_minutes": _count("Check-in opens this long before the slot."),
            "late_minutes": _count("... and closes this long after its start."),
            "requirements_id": text,
            "requirements_en": text,
        }
    )
    return {
        "Booking": booking,
        "Slots": _object(
            {"site": text, "service": text, "day": text, "slots": _array(slot)},
            description="A service's slots of one day.",
        ),
        "OnlineDirectory": _object(
            {
                "site": text,
                "name": text,
                "timezone": text,
                "today": {"type": "string", "format": "date"},
                "services": _array(service),
                "days": _array(_object({"day": text, "open": {"type": "boolean"}})),
                "limits": _object({"max_active_per_phone": _count("Per phone number.")}),
                "reminders": {
                    "type": "boolean",
                    "description": "Whether a phone number left for reminders is used (the "
                    "hall delivers them by webhook); false: the number is not kept.",
                },
            },
            description="What can be booked or joined from the phone.",
        ),
        "CheckInResult": _object(
            {"ticket": _ref("TicketStatus"), "booking": _nullable(_ref("Booking"))},
            description="The ticket, and the booking it was issued for (null: a remote join).",
        ),
    }


def _payload_fields() -> list[PayloadField]:
    """Every field of the events' data (domain/events.py), once by key; the data's `seq` (a
    ticket's place in its service) gives way to the event's own."""
    fields = {f.key: f for spec in EVENTS.values() for f in spec.fields if f.key != "seq"}
    return list(fields.values())


def _payload_schema(field: PayloadField) -> dict[str, Any]:
    if issubclass(field.type, StrEnum):
        return {"type": "string", "enum": list(field.type)}
    return dict(_PAYLOAD_TYPES[field.type])


def _payload_text() -> str:
    """Which event type adds which fields beyond the ticket's number (domain/events.py)."""
    adds = []
    for spec in EVENTS.values():
        keys = [
            f"`{f.key}`" + (" (if any)" if f.optional else "")
            for f in spec.fields
            if f.key not in ("number", "seq")
        ]
        if keys:
            adds.append(f"`{spec.type}` adds {', '.join(keys)}")
    return "; ".join(adds)


def _responses() -> dict[str, Any]:
    error_content = {_JSON: {"schema": _ref("Error")}}
    out: dict[str, Any] = {}
    for status, (name, summary) in _ERROR_RESPONSES.items():
        response: dict[str, Any] = {"description": summary, "content": error_content}
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": "Always `Bearer`.",
                    "schema": {"type": "string"},
                }
            }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
        out[name] = response
    return out


# -- reports and surveys ---------------------------------------------------------------------


def _online_report(figures: dict[str, Any]) -> dict[str, Any]:
    """A report's antrian online section (reports/build.py `online_section`)."""
    signed = {
        "type": ["number", "null"],
        "description": f"Check-in minus slot start (negative: early). {REPORT_SECONDS_PRECISION}",
    }
    bookings = _object(
        {
            "made": _count("Bookings whose slot is in the range."),
            **{s.value: _count(f"... {s.value} now.") for s in vocab.BookingStatus},
            "late": _count("Checked in after the window (issued as walk-ins)."),
            "moved": _count("Moved at least once."),
            "show_rate": _share_or_null("checked_in / (checked_in + missed)."),
            "punctuality": _object({"count": _count("Checked in."), "p50": signed, "p90": signed}),
        },
        description="Bookings by slot day, by where they are now.",
    )
    wait = {
        k: v
        for k, v in figures["wait"]["properties"].items()
        if k in ("count", "p50", "p90", "mean")
    }
    entry = _object(
        {
            "visits": _count("Visits."),
            "wait": _object(wait),
            "within_target": figures["within_target"],
        }
    )
    outcomes = {
        "delivered": _count("Delivered: the webhook's receiver answered 2xx."),
        "failed": _count("Given up after the last attempt."),
    }
    reminders = _object(
        {
            **outcomes,
            "by_kind": _object(
                {kind.value: _object(outcomes) for kind in vocab.NoticeKind},
                description="Per notice kind (every kind, 0 when none).",
            ),
        },
        description="Notices to citizens' phones (the webhook) whose final outcome fell on "
        "a service day of the range; retried attempts are not counted. A service's: the "
        "notices naming it.",
    )
    part = {
        "bookings": bookings,
        "waits": _object(
            {"booked": entry, "walk_in": entry},
            description="Queue time of booked citizens (source `booking`) and of everyone "
            "else (walk-ins, remote joins, late check-ins).",
        ),
        "reminders": reminders,
    }
    return _object(
        {
            "totals": _object(part),
            "services": _array(
                _object(
                    {
                        "code": {"type": "string"},
                        "name": _object({"id": {"type": "string"}, "en": {"type": "string"}}),
                        "takes_bookings": {"type": "boolean"},
                        "target_wait_seconds": {"type": ["integer", "null"]},
                        **part,
                    }
                )
            ),
        },
        description="Antrian online: bookings, booked against walk-in waits, reminders.",
    )


def _report_schemas() -> dict[str, Any]:
    report_seconds = REPORT_SECONDS_PRECISION
    stats = _object(
        {
            "count": _count("Visits with a value."),
            "p50": _seconds_or_null("Median (linear interpolation).", report_seconds),
            "p90": _seconds_or_null("90th percentile (linear interpolation).", report_seconds),
            "max": _seconds_or_null("Longest (waits only).", report_seconds),
            "mean": _seconds_or_null("Mean.", report_seconds),
        },
        description="Durations of the visits that have one; `max` for waits only.",
        optional=("max",),
    )
    figures_props: dict[str, Any] = {
        "visits": _count("Visits (queue segments); a transfer makes two."),
        "issued": _count("Tickets issued (first visits)."),
        "served": _count("Visits ended `served`."),
        "incomplete": _count("Visits ended `incomplete`."),
        "referred": _count("Visits ended `referred`."),
        "no_show": _count("No-shows."),
        "cancelled": _count("Cancelled by the citizen."),
        "transferred": _count("Transferred to another service."),
        "expired": _count("Visits still open when their service day ended (`expired`)."),
        "open": _count("Visits not ended yet (today)."),
        "wait": stats,
        "walk": stats,
        "service": stats,
        "within_target": _object(
            {
                "count": _count("Waits within the service's target (wait <= target)."),
                "waiting_past_target": _count(
                    "Visits never called that waited longer than the target: expired, or "
                    "still waiting at the report's `generated_at`."
                ),
                "share": _share_or_null(
                    "`count` / (`wait.count` + `waiting_past_target`), the snapshot's "
                    "`within_standard_share` over the period; null when both are 0."
                ),
            },
        ),
        "estimate": _object(
            {
                "count": _count("First visits with an estimate at issue and a wait."),
                "mae": _seconds_or_null("Mean absolute error of the estimate.", report_seconds),
                "bias": {
                    "type": ["number", "null"],
                    "description": "Mean of wait minus estimate (positive: waited longer "
                    f"than told). {report_seconds}",
                },
            },
            description="The estimated wait told at issue against the actual wait.",
        ),
    }
    element_means = {
        "type": ["object", "null"],
        "additionalProperties": {**SCORE, "type": "number"},
        "description": "Mean score of each element u1..u9 (nilai persepsi, 1..4). "
        + MEAN_SCORE_PRECISION,
    }
    ikm_part = _object(
        {
            "respondents": _count("Complete SKM surveys."),
            "element_means": element_means,
            "perception": {
                "type": ["number", "null"],
                "description": f"Mean of the element means (1..4). {MEAN_SCORE_PRECISION}",
            },
            "ikm": {
                "type": ["number", "null"],
                "minimum": 25,
                "maximum": 100,
                "description": f"Mean of the element means x 25. {INDEX_PRECISION}",
            },
            "grade": _enum_or_null(tuple(grade for grade, _, _, _ in GRADES), _grades_text()),
            "grade_name": {"anyOf": [_ref("LocalizedName"), {"type": "null"}]},
            "quick": _object(
                {
                    "respondents": _count("One-tap ratings."),
                    "index": {
                        "type": ["number", "null"],
                        "description": f"Mean rating x 25; not an SKM IKM. {INDEX_PRECISION}",
                    },
                }
            ),
        },
        description="The IKM of a group (SKM, PermenPANRB 14/2017).",
    )
    ikm = _object(
        {
            "elements": _array({"type": "object"}),
            "site": _ref("IkmPart"),
            **_per_group("IkmPart"),
            "by_wait_band": _array(
                _extended(
                    "IkmPart",
                    {
                        "band": {
                            "type": "string",
                            "enum": [band for band, _, _ in WAIT_BANDS],
                        },
                        "wait_mean": _seconds_or_null(
                            "Mean wait of the band's rated visits.",
                            REPORT_SECONDS_PRECISION,
                        ),
                    },
                ),
                "IKM by the ticket's total wait against its service's target.",
            ),
        },
        description="IKM per site, agency, service and wait band over a period.",
    )
    choice = _object(
        {
            "value": SCORE,
            "id": {"type": "string"},
            "en": {"type": "string"},
        }
    )
    survey_config = _object(
        {
            "site": {"type": "string"},
            "mode": {"type": "string", "enum": list(vocab.SurveyMode)},
            "comment_max": {"type": "integer"},
            "complaint_url": {
                "type": "string",
                "description": "SP4N-LAPOR, the national complaint channel; shown as a link.",
            },
            "window_days": {"type": "integer"},
            "questions": _array(
                _object(
                    {
                        "code": {"type": "string"},
                        "element": _ref("LocalizedName"),
                        "text": _ref("LocalizedName"),
                        "choices": _array(choice),
                    }
                ),
                "The nine SKM questions (mode `skm`).",
            ),
            "choices": _array(choice, "The one-tap choices (mode `quick`)."),
        },
        optional=("questions", "choices"),
        description="How the hall surveys: the nine SKM elements, or a one-tap rating.",
    )
    return {
        "Report": _object(
            {
                "version": {
                    "type": "integer",
                    "description": "Layout version of this document (2: `expired` and "
                    "`waiting_past_target`; 3: `online`: bookings, waits, reminders).",
                },
                "site": {"type": "object"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "days": {"type": "integer", "minimum": 1},
                "partial_today": {"type": "boolean"},
                "totals": _ref("ReportFigures"),
                **_per_group("ReportFigures"),
                "online": _online_report(figures_props),
                "counters": _array(
                    _extended(
                        "ReportFigures",
                        {
                            "open_seconds": _seconds("Time open.", REPORT_TIME_PRECISION),
                            "busy_seconds": _seconds("Service time.", REPORT_TIME_PRECISION),
                            "idle_while_queue_seconds": _seconds(
                                "Open, idle, while its services' tickets waited.",
                                REPORT_TIME_PRECISION,
                            ),
                            "utilisation": _share_or_null(
                                "Busy over open time, of their whole seconds; null when never open."
                            ),
                        },
                    )
                ),
                "hours": _array(
                    {
                        "type": "object",
                        "properties": {
                            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
                            "arrivals": _count("Tickets issued in the hour."),
                            "waits": _count("Visits called that were issued in the hour."),
                            "wait_mean": _seconds_or_null("Mean wait.", report_seconds),
                            "wait_p90": _seconds_or_null("90th percentile wait.", report_seconds),
                        },
                    },
                    "By local hour of issue.",
                ),
                "daily": _array(
                    {
                        "type": "object",
                        "properties": {
                            "day": {"type": "string", "format": "date"},
                            "issued": _count("Tickets issued."),
                            "served": _count("Visits ended `served`."),
                            "expired": _count("Visits ended `expired`."),
                            "waits": _count("Visits called (with a wait)."),
                            "within_target_count": _count("Of those, within target."),
                            "waiting_past_target": _count(
                                "Visits never called that waited past the target."
                            ),
                            "within_target_share": _share_or_null(
                                "`within_target_count` / (`waits` + `waiting_past_target`)."
                            ),
                            "wait_p90": _seconds_or_null("90th percentile wait.", report_seconds),
                        },
                    },
                    "One entry per service day with visits.",
                ),
                "ikm": _ref("Ikm"),
                "comments": _array({"type": "object"}),
            },
            description="A site's report over service days `from`..`to` (docs/reports.md).",
        ),
        "ReportFigures": _object(figures_props, description="Visit figures of a group."),
        "IkmPart": ikm_part,
        "Ikm": ikm,
        "SurveyConfig": survey_config,
        "TicketSurvey": _object(
            {
                "ticket": _str_or_null("Ticket number."),
                "site": {"type": "string"},
                "site_name": {"type": "string"},
                "service": {"type": "string"},
                "service_name": {"anyOf": [_ref("LocalizedName"), {"type": "null"}]},
                "status": {"type": "string", "enum": list(SURVEY_STATES)},
                "submitted_at": _time_or_null("When it was rated."),
                "survey": _ref("SurveyConfig"),
            }
        ),
        "SurveySubmitted": _object(
            {
                "ticket": _str_or_null("Ticket number."),
                "site": {"type": "string"},
                "service": {"type": "string"},
                "mode": {"type": "string", "enum": list(vocab.SurveyMode)},
                "status": {"type": "string", "const": "submitted"},
                "submitted_at": _time(),
            }
        ),
        "PendingSurvey": _object(
            {
                "site": {"type": "string"},
                "counter": {"type": "string"},
                "ticket": {
                    "anyOf": [
                        _object(
                            {
                                "id": {"type": "string"},
                                "number": _str_or_null("Ticket number."),
                                "service": {"type": "string"},
                                "service_name": {
                                    "anyOf": [_ref("LocalizedName"), {"type": "null"}]
                                },
                                "finished_at": _time(),
                            }
                        ),
                        {"type": "null"},
                    ]
                },
                "survey": _ref("SurveyConfig"),
            }
        ),
    }


# -- paths: the operations of the route table (web/routes.py), with their prose -------------

PATH_PARAMETERS = {"site": SITE, "counter": COUNTER, "ticket": TICKET, "booking": BOOKING}


_FROM = _query(
    "from",
    "First service day (site timezone); default 29 days before today. Sent, it must be a "
    "date (an empty value is refused with `invalid_date`).",
    {"type": "string", "format": "date"},
)
_TO = _query(
    "to",
    "Last service day; default today. Sent, it must be a date.",
    {"type": "string", "format": "date"},
)

# Parameters beyond the path's and the Idempotency-Key, by operationId.
_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "getDisplay": [_param("Zone")],
    "streamSite": [_param("LastEventId"), _param("LastEventIdQuery"), _param("AccessTokenQuery")],
    "getReport": [
        _FROM,
        _TO,
        _query(
            "format",
            "Output format.",
            {"type": "string", "enum": list(REPORT_FORMATS), "default": "json"},
        ),
        _query(
            "locale",
            "CSV regional format.",
            {"type": "string", "enum": list(REPORT_LOCALES), "default": "id"},
        ),
    ],
    "getIkm": [_FROM, _TO],
    "getSlots": [
        _query("service", "Service (*layanan*) code.", {"type": "string"}, required=True),
        _query(
            "day", "Service day, YYYY-MM-DD.", {"type": "string", "format": "date"}, required=True
        ),
    ],
}
# A route that names its counter in the query (`CounterIn.QUERY`) has this parameter.
_COUNTER_QUERY = _query("counter", "Counter (*loket*) id.", {"type": "string"}, required=True)

_STREAM_EXAMPLE = (
    f"retry: {RETRY_MS}\n\n"
    'id: 1041\ndata: {"type":"hello","seq":1041}\n\n'
    'id: 1042\ndata: {"seq":1042,"type":"ticket_called","site":"mpp-banjarmasin",'
    '"ts":"2025-03-03T01:15:04.120000+00:00","counter":"loket-01","service":"KTP-EL",'
    '"number":"A012"}\n\n'
    ": keepalive\n\n"
)
# The answers that are not a JSON schema of components/schemas: their content (and
# headers), by operationId.
_OTHER_ANSWERS: dict[str, dict[str, Any]] = {
    "metrics": {"content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}},
    "index": {},
    "getOpenApi": {"content": {_JSON: {"schema": {"type": "object"}}}},
    "streamSite": {
        "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-cache"}}},
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": (
                        "SSE messages whose `data` is a StreamMessage "
                        "(#/components/schemas/StreamMessage)."
                    ),
                },
                "example": _STREAM_EXAMPLE,
            }
        },
    },
    "ticketQr": {"content": {"image/svg+xml": {"schema": {"type": "string"}}}},
    "bookingQr": {"content": {"image/svg+xml": {"schema": {"type": "string"}}}},
    "getReport": {
        "content": {
            _JSON: {"schema": _ref("Report")},
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        }
    },
}
_ANSWER_EXAMPLES: dict[str, dict[str, Any]] = {
    "healthz": {"status": "ok"},
    "readyz": {"status": "ready"},
}
# Answers beyond the route's answer and its errors, by operationId.
_MORE_ANSWERS: dict[str, dict[str, Any]] = {
    "readyz": {
        "503": {
            "description": "Not ready (this body is not an Error).",
            "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
            "content": {
                _JSON: {
                    "schema": _ref("Readiness"),
                    "example": {
                        "status": "not_ready",
                        "reason": "database_unreachable",
                        "detail": "connection refused",
                        "stage": "database",
                        "attempt": 3,
                        "problems": ["database unreachable: connection refused"],
                    },
                }
            },
        }
    }
}


def _stream_description() -> str:
    return (
        "Live [server-sent events](https://html.spec.whatwg.org/multipage/"
        "server-sent-events.html) of one site's committed events, for displays, kiosks and "
        "counter pages.\n\n"
        "Access: public screens and kiosks get the public form: seq, type, site, ts, "
        "number, service, counter, to_service, calls (no ticket id, no priority kind, no "
        "reason, no device health). With a counter, manager or admin token for the site "
        "(Authorization header, or `access_token` in the query because EventSource cannot "
        "send headers) events carry every field and `ticket_id`, and `device_status` "
        "notices arrive. A token that is not configured is 401; a token for other sites is "
        "403. A Last-Event-ID the server no longer buffers, or one ahead of it (after a "
        "restore), is answered with a `reset` message.\n\n"
        f"Protocol: the response starts with `retry: {RETRY_MS}`. Every message is\n\n"
        "    id: <seq>\n    data: <one JSON object, see StreamMessage>\n\n"
        "followed by a blank line, where `<seq>` is the event's global sequence number. "
        "Without Last-Event-ID the first message is `hello` with the current `seq`. With "
        "Last-Event-ID every later event of the site is replayed first; if they are no "
        "longer buffered (or the service restarted) a `reset` comes instead, and the client "
        "must re-read the snapshot or display. Then live events follow: "
        f"{_code_list(EVENT_TYPES)}. A comment line "
        f"`: keepalive` is sent after {KEEPALIVE_SECONDS:g} seconds without events. "
        "A client too slow to keep "
        "up is disconnected and should reconnect with Last-Event-ID (EventSource does so "
        "by itself). Ignore unknown `type`s."
    )


# What each counter action does, by operationId (its description adds who may do it).
_ACTION_TEXT: dict[str, str] = {
    "openCounter": "Open a closed or paused counter so it can call tickets.",
    "pauseCounter": "Pause an open counter that holds no ticket, with a reason shown to staff.",
    "closeCounter": "Close an open or paused counter that holds no ticket.",
    "callNext": (
        "Call the next waiting ticket among the counter's services: priority tickets first "
        "where the service's policy says so, then by issue time. The counter must be open "
        "and hold no ticket."
    ),
    "callTicket": (
        "Call one waiting ticket out of order (e.g. an appointment). The counter must be "
        "open, hold no ticket and serve the ticket's service."
    ),
    "recallTicket": "Announce the called ticket again; counts towards the no-show minimum.",
    "startService": (
        "The citizen has arrived at the counter: the called ticket becomes `serving`."
    ),
    "finishTicket": "End the visit of the held ticket (called or serving) with an outcome.",
    "noShowTicket": (
        "The called citizen did not come, after at least the site's minimum number of calls."
    ),
    "transferTicket": (
        "Send the held ticket to another service's queue; it keeps its place by original "
        "issue time and the counter is free again."
    ),
}


def _action_description(operation_id: str, action: str) -> str:
    return (
        f"{_ACTION_TEXT[operation_id]}\n\nRoles: counter (only for the counters (*loket*) its "
        "token names), manager, admin, with a token covering the site. Send an "
        "Idempotency-Key so a retried request is not applied twice. This path is the "
        f"`{action}` value of the `{{action}}` segment of "
        "`/api/v1/sites/{site}/counters/{counter}/{action}`; an action not documented here "
        "is answered 404 `not_found`."
    )


def _description(route: Route) -> str:
    if route.operation_id == "streamSite":
        return _stream_description()
    if route.operation_id in _ACTION_TEXT:
        return _action_description(route.operation_id, route.path.rsplit("/", 1)[1])
    return _DESCRIPTIONS[route.operation_id]


def _text_schema(field: TextField) -> dict[str, Any]:
    """A text field's schema: a non-empty string when required, else a string or null."""
    schema: dict[str, Any]
    if field.required:
        schema = {"type": "string", "minLength": 1, "maxLength": field.max_length}
        if field.choices:
            schema["enum"] = list(field.choices)
    else:
        schema = {"type": ["string", "null"], "maxLength": field.max_length}
        if field.choices:
            schema["enum"] = [*field.choices, None]
    if field.description:
        schema["description"] = field.description
    if field.default is not None:
        schema["default"] = field.default
    return schema


def _body_schema(body: Body) -> dict[str, Any]:
    """A request body's schema: the server rejects unknown fields (400 unknown_field)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
    required = [f.name for f in body.fields if f.required]
    if required:
        schema["required"] = required
    properties = {f.name: _text_schema(f) for f in body.fields} | dict(body.other)
    if properties:
        schema["properties"] = properties
    else:
        schema["maxProperties"] = 0
        schema["description"] = "No fields; the body may also be omitted."
    return schema


def _request_body(body: Body) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(body.schema)}
    if body.example is not None:
        media["example"] = dict(body.example)
    return {
        "description": body.description or "No fields; send no body or `{}`.",
        "required": body.required,
        "content": {_JSON: media},
    }


def _answer(route: Route) -> dict[str, Any]:
    answer = route.answer
    response: dict[str, Any] = {"description": answer.description}
    if answer.schema is None:
        response.update(_OTHER_ANSWERS[route.operation_id])
    else:
        media: dict[str, Any] = {"schema": _ref(answer.schema)}
        if route.operation_id in _ANSWER_EXAMPLES:
            media["example"] = _ANSWER_EXAMPLES[route.operation_id]
        response["content"] = {_JSON: media}
    return response


_SECURITY = {Access.PUBLIC: PUBLIC, Access.OPTIONAL: OPTIONAL_TOKEN}


def _operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation of `route`."""
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "description": _description(route),
    }
    parameters = [PATH_PARAMETERS[name] for name in _path_names(route.canonical)]
    parameters += _PARAMETERS.get(route.operation_id, [])
    if route.counter is CounterIn.QUERY:
        parameters.append(_COUNTER_QUERY)
    if route.idempotent:
        parameters.append(_param("IdempotencyKey"))
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = _request_body(route.body)
    responses = {str(route.answer.status): _answer(route)}
    responses |= _MORE_ANSWERS.get(route.operation_id, {})
    responses |= _errors(route.error_codes(SERVED_WHILE_STARTING))
    if route.limit is not None:
        responses["429"] = {
            "$ref": "#/components/responses/TooManyRequests",
            "description": "A rate limit is spent (when the service runs with rate limits). "
            "Codes: `rate_limited`.",
        }
    op["responses"] = responses
    if route.access is Access.ROLES:
        op["x-roles"] = [str(role) for role in vocab.Role if role in route.roles]
    else:
        op["security"] = _SECURITY[route.access]  # otherwise the document-wide bearer
    return op


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        if route.documented:
            paths.setdefault(route.canonical, {})[route.method.lower()] = _operation(route)
    return paths


def _body_schemas() -> dict[str, Any]:
    return {
        route.body.schema: _body_schema(route.body)
        for route in ROUTES
        if route.body is not None and route.documented
    }


_DESCRIPTIONS: dict[str, str] = {
    "index": (
        "Redirects to `/ui/`, the index of the kiosk, counter, floor-board, TV-display and "
        "ticket-status pages (served from the `kiosk/` folder)."
    ),
    "getOpenApi": ("The OpenAPI 3.1 description of the API."),
    "listSites": ("Every configured site (hall, *Mal Pelayanan Publik*)."),
    "getSiteDirectory": (
        "Agencies (*instansi*), services (*layanan*) with whether each accepts tickets now, "
        "and counters (*loket*). Public."
    ),
    "getDisplay": (
        "What the TV screen in the hall shows: the number at each counter, recent calls and "
        "queue lengths. Ticket numbers only. Public."
    ),
    "getIkm": (
        "Element means, IKM and grade per site, agency and service, and by wait band, from "
        "the SKM surveys of the period. Roles manager and admin."
    ),
    "getReport": (
        "Issued, served, no-show, cancelled and transferred; wait, walk and service "
        "percentiles; share called within each service's target; busiest hours in the site's "
        "timezone; counters' open, busy and idle-while-queue time; the IKM. Per agency, "
        "service and counter. `format=json` (default), `csv` (Excel: UTF-8 with BOM; "
        "`locale=id` gives `;` and decimal commas, `locale=en` `,` and points) or `html` "
        "(printable, self-contained, with SVG charts). Roles manager and admin with a token "
        "covering the site."
    ),
    "getSnapshot": (
        "The whole site with waiting tickets (including their ids) and every counter. Roles "
        "counter, manager and admin whose token covers the site (not kiosk: a kiosk stands in "
        "a public place and never learns other citizens' ticket ids). Its `seq` is where to "
        "resume the stream. An unknown site is answered 404 before the token is checked."
    ),
    "getSurveyConfig": (
        "The questions and answers to show, the comment limit and the SP4N-LAPOR link. Public."
    ),
    "getPendingSurvey": (
        f"The most recent visit the counter served in the last {TABLET_WINDOW // _MINUTE} minutes "
        "that has not been "
        "rated, or `ticket: null`. For the tablet facing the citizen at the counter, which "
        "then posts to `/api/v1/tickets/{ticket}/survey`. Roles survey (a token for the "
        "tablet: its own counters, and nothing else), counter (its own counters), manager, "
        "admin."
    ),
    "issueTicket": (
        "Issue a queue ticket for a service. Roles: kiosk, manager, admin, with a token "
        "covering the site. The answer carries the ticket id, which the kiosk shows as a QR "
        "code so the citizen can follow (and cancel) the ticket on a phone. Send an "
        "Idempotency-Key so that a retried request never issues two tickets. A refusal "
        "outside opening hours (`site_closed`), after the service's cutoff (`cutoff_passed`) "
        "or over its quota (`quota_reached`) says in `details.opens_at` when tickets are "
        'issued again: site-local ISO 8601 with the site\'s UTC offset, e.g. `{"site": '
        '"mpp-banjarmasin", "opens_at": "2026-11-30T08:00:00+08:00"}` at night.'
    ),
    "getTicket": (
        "The state of one ticket, for the citizen's phone: position, people ahead, estimated "
        "wait, and the counter once called. The unguessable ticket id is the capability; no "
        "token. Tickets are known for the current service day only."
    ),
    "cancelTicket": (
        "Cancel a ticket that is still waiting. The ticket id is the citizen's capability, so "
        "no token is needed; staff may send theirs, which then must be valid."
    ),
    "getOnline": (
        "The services of the site that take bookings or remote joins (antrian online), each "
        "with its slot length, how its checked-in bookings are called (`entry`: `at_slot`, "
        "ahead of walk-ins from the slot's start; `fifo`, at check-in; `priority`, ahead of "
        "walk-ins from check-in), its check-in window and the requirements (*persyaratan*) "
        "to bring; and the days that may be booked. Public."
    ),
    "getSlots": (
        "A service's slots of one day: capacity, places booked and available (never more "
        "than the day's share kept from walk-ins allows), and whether each can be booked now "
        "(a slot closes `cutoff_minutes` before it starts). Public."
    ),
    "makeBooking": (
        "Book a place in a slot. No account, no NIK, no name: the answer's `id` is the "
        "citizen's capability (keep it), its `code` is what the kiosk takes at check-in. A "
        "slot is never booked beyond its capacity, whatever the concurrency (`slot_full`). "
        "Anti-hoarding: at most `max_active_per_phone` bookings per phone number and "
        "`max_per_address_per_day` bookings and remote joins per client address a day "
        "(`booking_limit`). The optional phone number is kept only for reminders and erased "
        "when the visit ends. Public, rate limited."
    ),
    "joinQueue": (
        "Take today's ticket from the phone where the service allows it (`remote_join`). It "
        "waits like a walk-in's. Where the service asks for it (`confirm_on_arrival`) the "
        "answer carries a `code` to confirm at the kiosk on arrival; a ticket called while "
        "not confirmed follows the no-show rules. Public, rate limited."
    ),
    "getBooking": "A booking, by its id (the capability). Public.",
    "cancelBooking": "Cancel a booking not yet checked in; its place is free again. Public.",
    "rescheduleBooking": (
        "Move a booking not yet checked in to another slot of the same service, if that slot "
        "has a place. Public."
    ),
    "bookingQr": (
        "An SVG QR code of the booking's code, for the kiosk's 2D barcode scanner (which "
        "types the code). Public: the booking id is the capability."
    ),
    "checkIn": (
        "At the kiosk: a booking's code issues its ticket (201; the ticket enters the queue "
        "by the service's `entry`), inside the check-in window (`too_early` names when it "
        "opens; after it, `too_late`, or a walk-in's ticket where the service's `late` policy "
        "is `walk_in`). A remote join's code confirms its arrival (200). Kiosk token."
    ),
    "ticketQr": (
        "An SVG QR code linking to `/ui/status.html#<ticket id>` on this host, for the "
        "kiosk's confirmation screen and printable ticket. Public: the ticket id is the "
        "capability."
    ),
    "getTicketSurvey": (
        "`status`: `open` (served, not rated yet), `submitted`, `not_served` (the visit did "
        f"not end served) or `closed` (over {SURVEY_WINDOW_DAYS} days ago). "
        "Public: the ticket id is the "
        "capability. Works on later days too."
    ),
    "submitSurvey": (
        "Once per ticket, after a visit that ended `served`: the nine SKM scores or the "
        "one-tap rating (as the hall's mode says), an optional comment. Tied to the visit "
        "(and so to its wait and service time), never to a person. Public: the ticket id is "
        "the capability."
    ),
    "healthz": ("Answers 200 while the process runs (no dependencies checked)."),
    "metrics": (
        "The Prometheus text exposition (version 0.0.4) of every qms_* family listed in "
        "docs/metrics.md. When ANTRIAN_METRICS_TOKEN is set, scrapers must send it as a "
        "bearer token; otherwise the endpoint is open."
    ),
    "readyz": (
        f"Ready when today's events are replayed and the database answers a ping within "
        f"{PING_SECONDS} seconds. For load balancers and orchestrators. "
        "Not ready, the answer is 503 with "
        "`reason` (a stable code), `detail` and `problems`; while the service starts, also "
        "the `stage` it is at and the `attempt` to reach the database."
    ),
}


# -- the document ----------------------------------------------------------------------------

_DESCRIPTION = """\
Antrian is the queue-management (*sistem antrian*) service of Indonesian public service \
halls (*Mal Pelayanan Publik*, MPP). A hall (site) hosts agencies (*instansi*) offering \
services (*layanan*) at counters (*loket*). Citizens take a numbered ticket (*nomor \
antrian*) at a kiosk; officers call tickets to their counter; a TV display and the \
citizen's phone follow along live.

**Access.** Staff endpoints take `Authorization: Bearer <token>`. Token roles: `kiosk` \
(issue tickets), `counter` (act on the counters its token names), `manager` and `admin` \
(everything); a token may be limited to some sites. Public endpoints say so \
(`security: []`); the ticket id returned on issue is the citizen's capability to follow \
and cancel that one ticket.

**Commands** (issue, cancel, counter actions) are answered once their events are \
committed to the database. Send an `Idempotency-Key` header and retry with the same key \
after a timeout or a 503: the command is applied at most once. Bodies are JSON objects; \
unknown fields are rejected.

**Errors** all have the body `{"code", "message", "details"}`; the stable codes are listed \
with the `Error` schema. Any path answers 405 `method_not_allowed` for a method it does not \
support and unknown paths 404 `not_found`.

**Live updates** come as server-sent events from `/api/v1/sites/{site}/stream`; every \
event has a global sequence number `seq`, and the snapshot and display tell the `seq` they \
include.

"""


@functools.cache
def _document() -> dict[str, Any]:
    return _with_links(_build())


def _build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Antrian: queue management for public service halls",
            "version": API_VERSION,
            "summary": "Tickets, counters (loket), displays and live events.",
            "description": _DESCRIPTION + PRECISION_TEXT,
        },
        "servers": [{"url": "/", "description": "This server."}],
        "tags": [
            {"name": "health", "description": "Liveness, readiness and this document."},
            {"name": "sites", "description": "Sites (halls): directory, snapshot, display."},
            {"name": "tickets", "description": "Tickets (*nomor antrian*)."},
            {
                "name": "online",
                "description": "Antrian online: bookings, remote joins, kiosk check-in.",
            },
            {"name": "counters", "description": "Counter (*loket*) actions by officers."},
            {"name": "stream", "description": "Live server-sent events."},
            {"name": "pages", "description": "The front-end pages."},
            {
                "name": "reports",
                "description": "Reports against the service standards and the IKM (staff).",
            },
            {
                "name": "surveys",
                "description": "The citizen's satisfaction survey (SKM) after a served visit.",
            },
        ],
        "security": [{"bearerAuth": []}],
        "paths": {
            **_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A configured staff token (stored server-side as its SHA-256). Roles: "
                        + ", ".join(vocab.Role)
                        + "."
                    ),
                }
            },
            "schemas": {**_schemas(), **_report_schemas(), **_body_schemas()},
            "responses": _responses(),
            "parameters": _parameters(),
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
        },
        "x-error-codes": [
            {"code": code, "status": status or None, "description": meaning}
            for code, status, meaning in ERROR_CODES
        ],
    }


# -- links: how one answer feeds the next request ----------------------------------------------

_SAME_SITE = {"path.site": "$request.path.site"}
_SAME_COUNTER = {**_SAME_SITE, "path.counter": "$request.path.counter"}
_ISSUED = {"path.ticket": "$response.body#/id"}
_HELD = {"path.ticket": "$response.body#/ticket/id"}  # the ticket a counter action concerned


def _link(
    operation_id: str, description: str, parameters: dict[str, str], **extra: Any
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "description": description,
        "parameters": parameters,
        **extra,
    }


# operationId -> (status, {link name: link}). The chains a ticket and a counter go through:
# issue -> follow / cancel / call it / rate it; open -> call next -> recall / start / finish /
# no-show / transfer -> call next; finish -> rate the visit. Clients (and schemathesis'
# stateful tests) follow these to act on what an earlier answer returned.
_HELD_TICKET_NEXT = {
    "RecallTicket": _link("recallTicket", "Call the held ticket again.", _SAME_COUNTER),
    "StartService": _link("startService", "The citizen sat down.", _SAME_COUNTER),
    "FinishTicket": _link("finishTicket", "Finish the held ticket.", _SAME_COUNTER),
    "NoShowTicket": _link("noShowTicket", "The citizen did not come.", _SAME_COUNTER),
    "TransferTicket": _link("transferTicket", "Send it to another service.", _SAME_COUNTER),
    "GetTicket": _link("getTicket", "The called ticket's status.", _HELD),
}
_COUNTER_FREE_NEXT = {
    "CallNext": _link("callNext", "Call the next ticket at the same counter.", _SAME_COUNTER),
}
LINKS: dict[str, tuple[str, dict[str, Any]]] = {
    "issueTicket": (
        "201",
        {
            "GetTicket": _link("getTicket", "Follow the issued ticket.", _ISSUED),
            "TicketQr": _link("ticketQr", "The issued ticket's QR code.", _ISSUED),
            "CancelTicket": _link("cancelTicket", "Cancel the issued ticket.", _ISSUED),
            "GetTicketSurvey": _link(
                "getTicketSurvey", "Whether the issued ticket can be rated yet.", _ISSUED
            ),
            "SubmitSurvey": _link(
                "submitSurvey", "Rate the visit (refused until it ends served).", _ISSUED
            ),
            "CallTicket": _link(
                "callTicket",
                "Call the issued ticket out of order at a counter of the site.",
                _SAME_SITE,
                requestBody={"ticket_id": "$response.body#/id"},
            ),
        },
    ),
    "cancelTicket": (
        "200",
        {
            "GetTicket": _link(
                "getTicket", "The cancelled ticket.", {"path.ticket": "$request.path.ticket"}
            )
        },
    ),
    "openCounter": (
        "200",
        {
            **_COUNTER_FREE_NEXT,
            "PauseCounter": _link("pauseCounter", "Pause the counter.", _SAME_COUNTER),
            "CloseCounter": _link("closeCounter", "Close the counter.", _SAME_COUNTER),
        },
    ),
    "pauseCounter": (
        "200",
        {"OpenCounter": _link("openCounter", "Open the counter again.", _SAME_COUNTER)},
    ),
    "closeCounter": (
        "200",
        {"OpenCounter": _link("openCounter", "Open the counter again.", _SAME_COUNTER)},
    ),
    "callNext": ("200", _HELD_TICKET_NEXT),
    "callTicket": ("200", _HELD_TICKET_NEXT),
    "recallTicket": ("200", _HELD_TICKET_NEXT),
    "startService": (
        "200",
        {
            "FinishTicket": _HELD_TICKET_NEXT["FinishTicket"],
            "TransferTicket": _HELD_TICKET_NEXT["TransferTicket"],
            "GetTicket": _HELD_TICKET_NEXT["GetTicket"],
        },
    ),
    "finishTicket": (
        "200",
        {
            **_COUNTER_FREE_NEXT,
            "SubmitSurvey": _link("submitSurvey", "Rate the finished visit.", _HELD),
            "GetTicketSurvey": _link("getTicketSurvey", "The finished visit's survey.", _HELD),
        },
    ),
    "noShowTicket": ("200", _COUNTER_FREE_NEXT),
    "transferTicket": (
        "200",
        {**_COUNTER_FREE_NEXT, "GetTicket": _HELD_TICKET_NEXT["GetTicket"]},
    ),
}


def _with_links(document: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links on the answers whose ids feed a next request (see LINKS)."""
    by_id = {
        op["operationId"]: op
        for ops in document["paths"].values()
        for op in ops.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for operation_id, (status, links) in LINKS.items():
        by_id[operation_id]["responses"][status]["links"] = copy.deepcopy(links)
    return document


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API (a fresh copy on every call)."""
    return copy.deepcopy(_document())


@functools.cache
def encoded_document() -> bytes:
    """The document as JSON, encoded once (what GET /api/v1/openapi.json sends)."""
    return orjson.dumps(_document())
