"""What a route is declared with: its body type, its answer, who may call it, its rate limit
and the error codes it may answer. `web/routes.py` holds the table of every route; the
router, the role checks, the rate limiter's routes and the OpenAPI document's paths are all
made from it.

A body is a JSON object with the body type's fields and no others. Text fields are read and
checked by one parser (`api.read_body`: a string of at most `max_length` characters, present
when required); the survey's answers, which are not text, are declared with their JSON
Schema and checked by their handler (`reports_api.parse_answers`). A body type is a frozen
dataclass rather than a msgspec Struct: the bodies are one to four small fields (orjson
decodes them already), and their refusals carry stable codes with structured details
(`unknown_field` with `fields` and `allowed`, `missing_field` with `field`) that a decoder's
message would have to be parsed back into; so no new dependency.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from queue_service.domain.actions import ACTIONS, CounterAction
from queue_service.domain.vocab import MAX_REASON, MAX_WORD, Priority, Role, Source
from queue_service.web.errors import Handler


class TextField(Protocol):
    """A text field of a body (`domain.actions.Field` is one): a string of at most
    `max_length` characters; `default` stands for it when absent (documentation only when
    the handler applies it)."""

    @property
    def name(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def required(self) -> bool: ...
    @property
    def default(self) -> str | None: ...
    @property
    def choices(self) -> tuple[str, ...]: ...
    @property
    def description(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Text:
    """A text field of a body that is not a counter action's (those are `actions.Field`)."""

    name: str
    max_length: int
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Body:
    """A request body type: a JSON object of `fields` (text) and `other` (checked by the
    handler, with their JSON Schema), and no other member."""

    schema: str  # its name under components/schemas
    fields: tuple[TextField, ...] = ()
    other: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    must_send: bool = False  # required although no text field is
    description: str = ""  # of the request body; derived when empty
    example: Mapping[str, Any] | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset({f.name for f in self.fields} | set(self.other))

    @property
    def required(self) -> bool:
        return self.must_send or any(f.required for f in self.fields)


class Limit(StrEnum):
    """The rate limits a route is under (web/security.py)."""

    ISSUE = "issue"  # per kiosk token and per client address
    PUBLIC = "public"  # per client address
    STREAM = "stream"  # per client address, and a cap on the streams open at once


class Access(StrEnum):
    PUBLIC = "public"  # no token; one sent is not read
    OPTIONAL = "optional"  # no token, or one that must then be valid
    ROLES = "roles"  # a token of one of the route's roles, valid for the site


class CounterIn(StrEnum):
    """Where a counter-bound route names its counter (the role check's `counter`)."""

    PATH = "path"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    description: str
    schema: str | None = None  # the JSON body's name under components/schemas; None: not
    # JSON, described with the operation's prose (web/openapi.py)


@dataclass(frozen=True, slots=True)
class Route:
    """One route: the router's entry, its checks and its OpenAPI operation."""

    method: str
    path: str  # aiohttp's pattern
    handler: Handler
    operation_id: str
    tag: str
    summary: str
    answer: Answer
    access: Access = Access.PUBLIC
    roles: Collection[Role] = ()  # with Access.ROLES
    counter: CounterIn | None = None  # counter-bound tokens act only on their counters
    body: Body | None = None
    idempotent: bool = False  # takes an Idempotency-Key, commits events
    limit: Limit | None = None
    # Error codes by status beyond those the declaration implies (see `error_codes`).
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    documented: bool = True  # in the OpenAPI document (the pages' files are not)

    def __post_init__(self) -> None:
        if (self.access is Access.ROLES) != bool(self.roles):
            raise ValueError(f"{self.operation_id}: roles go with Access.ROLES")
        if self.roles and "{site}" not in self.path:
            raise ValueError(f"{self.operation_id}: a role check needs the {{site}}")

    @property
    def canonical(self) -> str:
        """The path as aiohttp's resources and the OpenAPI document name it."""
        return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", self.path)

    def error_codes(self, served_while_starting: frozenset[str]) -> dict[int, tuple[str, ...]]:
        """Every error code the route may answer, by status: those its body, access, path
        parameters and idempotency imply, then its own."""
        codes: dict[int, list[str]] = {500: ["internal_error"]}

        def add(status: int, *names: str) -> None:
            codes.setdefault(status, []).extend(n for n in names if n not in codes[status])

        if self.body is not None:
            add(400, "invalid_json", "unknown_field")
            if any(f.required for f in self.body.fields):
                add(400, "missing_field")
            if self.body.fields:
                add(400, "invalid_field")
            add(413, "body_too_large")
        if self.idempotent:
            add(400, "invalid_idempotency_key")
            add(409, "idempotency_key_reused")
            add(500, "answer_failed")
            add(503, "database_unavailable")
        if self.access is Access.ROLES:
            add(401, "token_required", "invalid_token")
            add(403, "role_not_allowed", "site_not_allowed")
            if self.counter is not None:
                add(403, "counter_not_allowed")
        elif self.access is Access.OPTIONAL:
            add(401, "invalid_token")
        for name, code in (("site", "unknown_site"), ("ticket", "unknown_ticket")):
            if "{" + name + "}" in self.path:
                add(404, code)
        if self.counter is not None:
            add(404, "unknown_counter")
        if self.path.startswith("/api/v1/") and self.path not in served_while_starting:
            add(503, "starting")
        for status, names in self.errors.items():
            add(status, *names)
        return {status: tuple(names) for status, names in sorted(codes.items())}


# -- the body types ----------------------------------------------------------------------------

ISSUE_TICKET = Body(
    "IssueTicketRequest",
    (
        Text(
            "service", MAX_WORD, required=True, description="Service (*layanan*) code at the site."
        ),
        Text(
            "priority",
            MAX_WORD,
            choices=tuple(Priority),
            description="Priority kind (*prioritas*), if the citizen qualifies: lansia = "
            "elderly, disabilitas = persons with disabilities, ibu_hamil = pregnant women. "
            "Absent or null: a regular ticket.",
        ),
        Text(
            "source",
            MAX_WORD,
            default=Source.KIOSK,
            choices=tuple(Source),
            description="Where the ticket is issued.",
        ),
    ),
    description="The ticket wanted.",
    example={"service": "KTP-EL", "priority": "lansia"},
)
CANCEL_TICKET = Body(
    "CancelTicketRequest",
    (Text("reason", MAX_REASON, description="Optional reason, kept with the event."),),
    description="Optional; an empty body is fine.",
)
EMPTY = Body("EmptyRequest")
# Antrian online (web/online.py).
_SERVICE = Text("service", MAX_WORD, required=True, description="Service (*layanan*) code.")
_DAY = Text("day", 10, required=True, description="Service day, `YYYY-MM-DD` (site's calendar).")
_SLOT = Text("slot", 5, required=True, description="The slot's start, `HH:MM` site-local.")
BOOK = Body(
    "BookRequest",
    (
        _SERVICE,
        _DAY,
        _SLOT,
        Text(
            "phone",
            20,
            description="Optional mobile number (08..., +628...) for reminders only: never "
            "shown, logged or exported, erased when the visit ends.",
        ),
    ),
    example={"service": "PASPOR", "day": "2026-12-09", "slot": "09:00"},
)
RESCHEDULE = Body("RescheduleRequest", (_DAY, _SLOT))
CANCEL_BOOKING = Body(
    "CancelBookingRequest",
    (Text("reason", MAX_REASON, description="Optional reason, kept with the event."),),
    description="Optional; an empty body is fine.",
)
JOIN = Body(
    "JoinRequest",
    (
        _SERVICE,
        Text("priority", MAX_WORD, choices=tuple(Priority), description="Priority kind, if any."),
        Text("phone", 20, description="Optional mobile number for reminders (as in booking)."),
    ),
)
CHECK_IN = Body(
    "CheckInRequest",
    (
        Text(
            "code",
            16,
            required=True,
            description="The booking's (or remote join's) code, typed or scanned from its QR.",
        ),
    ),
)
# The body of each counter action: its fields in the one table of actions.
_ACTION_SCHEMAS = {
    CounterAction.PAUSE: "PauseCounterRequest",
    CounterAction.CALL: "CallTicketRequest",
    CounterAction.FINISH: "FinishTicketRequest",
    CounterAction.TRANSFER: "TransferTicketRequest",
}
ACTION_BODIES: Mapping[CounterAction, Body] = {
    action: Body(_ACTION_SCHEMAS[action], spec.fields, description="The action's fields.")
    if spec.fields
    else EMPTY
    for action, spec in ACTIONS.items()
}
