"""JSON API handlers under /api/v1: tickets, counter actions, snapshots and the stream.

Each handler is declared once in the route table (web/routes.py) with its body type, roles
and limits: a handler of a route with roles runs after the role check (`auth.guarded`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web

from devices.manager import DEVICES, NO_PRINTER
from queue_service import read_models
from queue_service.domain import commands
from queue_service.domain.actions import CounterAction, counter_command
from queue_service.domain.events import Event
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import EventType, Source
from queue_service.stream import Notice, StreamHub, encode_events, format_sse
from queue_service.web.auth import STAFF, TICKET_STAFF, authorize, principal
from queue_service.web.errors import Handler, Malformed, TooLarge, error_response
from queue_service.web.keys import CLOCK, ENGINE, HUB, OPENAPI, SETTINGS, TOKEN
from queue_service.web.spec import ACTION_BODIES, CANCEL_TICKET, ISSUE_TICKET, Body

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 128
# Keys the service gives its own devices' commands (supervisor.py): a client may not use
# them, or it could stand in for a dispenser's ticket or a keypad's press.
RESERVED_KEY_PREFIXES = ("device:", "keypad:")
# The canonical form of a body for the idempotency hash: exactly json.dumps(body,
# sort_keys=True, separators=(",", ":")), with the encoder made once (json.dumps builds one
# per call when given options: ~3% of the issue path's time).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000  # the stream's `retry:`: how long EventSource waits to reconnect
PING_SECONDS = 2  # /readyz: how long the database has to answer its ping


# -- request helpers -----------------------------------------------------------------


async def read_body(request: web.Request, body_type: Body) -> dict[str, Any]:
    """The request's body, of type `body_type`: a JSON object of its fields and no others,
    each text field a string of at most its length, the required ones present (an empty
    body is the empty object). Values are as sent: defaults are the reader's to apply."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body may be at most {limit} bytes", max_bytes=limit)
    raw = await request.read()
    if not raw.strip():
        body: dict[str, Any] = {}
        _check_fields(body, body_type)
        return body
    try:
        # orjson takes UTF-8 only (RFC 8259) and refuses unpaired surrogates itself.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Malformed("the body is not valid JSON", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise Malformed("the body must be a JSON object", code="invalid_json")
    if b"\\u0000" in raw:
        # Only a \u escape can carry U+0000 (raw control bytes are not valid JSON text):
        # bodies without one need no walk.
        _check_storable_text(body)
    _check_fields(body, body_type)
    return body


def _check_storable_text(body: dict[str, Any]) -> None:
    """Refuse text PostgreSQL cannot store (U+0000, unpaired surrogates) before anything is
    decided: an event carrying it would fail its whole commit batch, other clients'
    commands included."""
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                bad = True
            else:
                bad = "\x00" in value
            if bad:
                raise Malformed(
                    "text may not contain NUL characters or unpaired surrogates",
                    code="invalid_json",
                )


def _check_fields(body: dict[str, Any], body_type: Body) -> None:
    allowed = body_type.names
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Malformed(
            f"unknown field(s): {', '.join(unknown)}",
            code="unknown_field",
            fields=unknown,
            allowed=sorted(allowed),
        )
    for field in body_type.fields:
        name = field.name
        value = body.get(name)
        if value is None:  # absent or null
            if field.required:
                raise Malformed(f"field {name!r} is required", code="missing_field", field=name)
        elif not isinstance(value, str):
            raise Malformed(f"field {name!r} must be a string", code="invalid_field", field=name)
        elif len(value) > field.max_length:
            raise Malformed(
                f"field {name!r} is longer than {field.max_length}",
                code="invalid_field",
                field=name,
            )


def idempotency(request: web.Request, body: dict[str, Any]) -> tuple[str | None, str]:
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key or len(key) > MAX_KEY_LENGTH or not key.isprintable()):
        raise Malformed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            code="invalid_idempotency_key",
        )
    if key is None:
        return None, ""  # nothing to compare a retry with
    if key.startswith(RESERVED_KEY_PREFIXES):
        raise Malformed(
            "Idempotency-Keys starting with "
            + " or ".join(repr(p) for p in RESERVED_KEY_PREFIXES)
            + " are the service's own (devices)",
            code="invalid_idempotency_key",
        )
    canonical = _CANONICAL.encode(body)
    digest = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
    return key, digest


def json_text(text: str, status: int = 200) -> web.Response:
    """A response of already encoded JSON (an answer is encoded once: see
    `Engine.execute_json`)."""
    return web.Response(text=text, status=status, content_type="application/json")


def _with_field(obj_text: str, name: str, value: Any) -> str:
    """The JSON object text `obj_text` with one more member (appended, not re-encoded)."""
    return _with_member(obj_text, f"{json.dumps(name)}: {json.dumps(value)}")


def _with_member(obj_text: str, member: str) -> str:
    if obj_text.rstrip() == "{}":
        return "{" + member + "}"
    return f"{obj_text.rstrip()[:-1]}, {member}}}"


# The "print" member of a ticket issued at a kiosk without a printer (most), encoded once.
_NO_PRINTER_MEMBER = f'"print": {json.dumps(NO_PRINTER)}'


def site_state(request: web.Request) -> SiteState:
    return request.app[ENGINE].site_state(request.match_info["site"])


def request_now(request: web.Request) -> datetime:
    return request.app[CLOCK].now()


# -- health ----------------------------------------------------------------------------


class Stage(StrEnum):
    """Where the bring-up is (/readyz's `stage`)."""

    STARTING = "starting"
    DATABASE = "database"
    MIGRATE = "migrate"
    REPLAY = "replay"
    DEVICES = "devices"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


class Startup:
    """Where the service's bring-up is (web/app.py runs it): for /readyz, the not-ready gate
    and the start-up /metrics. `reason` is a stable code, `detail` says it for people."""

    def __init__(self) -> None:
        self.started = False  # the bring-up finished: the engine and the rest are there
        self.stage = Stage.STARTING  # database, migrate, replay, devices; then ready
        self.reason = "starting"
        self.detail = "the service is starting"
        self.attempt = 0  # attempts to reach the database so far
        self.task: asyncio.Task[None] | None = None  # the bring-up (see web/app.py)

    def step(self, stage: Stage, detail: str) -> None:
        """A step of the bring-up begins. After a failed attempt, its reason and detail stay
        (what keeps the service from being ready) while the next attempt runs."""
        self.stage = stage
        if self.reason == "starting":
            self.detail = detail

    def waiting(self, reason: str, detail: str) -> None:
        """An attempt failed with `reason`; it is tried again after a pause."""
        self.reason, self.detail = reason, detail

    def recovered(self, detail: str) -> None:
        """What failed before works now (the embedded server started, say)."""
        self.reason, self.detail = "starting", detail

    def done(self) -> None:
        self.started, self.stage, self.reason, self.detail = True, Stage.READY, "ready", "ready"

    def failed(self, reason: str, detail: str) -> None:
        """The bring-up ended without success, for good (the command then stops)."""
        self.stage, self.reason, self.detail = Stage.FAILED, reason, detail

    def stopping(self) -> None:
        self.stage, self.reason = Stage.STOPPING, "stopping"
        self.detail = "the service is stopping"

    @property
    def ready(self) -> bool:
        """Started and not stopping (/readyz then checks the engine and the database)."""
        return self.started and self.stage is not Stage.STOPPING


STARTUP = web.AppKey("startup", Startup)
RETRY_AFTER = {"Retry-After": "2"}
# Once started, what can make the service not ready: reason -> (detail, the problem as
# /readyz has always listed it).
_NOT_READY = {
    "engine_stopped": (
        "the engine is not running (stopping, or its writer stopped)",
        "engine not running",
    ),
    "database_not_writable": (
        "the database refused a write in the last minute",
        "the database refused a write in the last minute",
    ),
    "database_unreachable": (
        "the database did not answer a ping within 2 s",
        "database unreachable",
    ),
}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    startup = request.app[STARTUP]
    if not startup.ready:
        # The bring-up has not finished (or the service is stopping): say where it is.
        return web.json_response(
            {
                "status": "not_ready",
                "reason": startup.reason,
                "detail": startup.detail,
                "stage": startup.stage,
                "attempt": startup.attempt,
                "problems": [f"{startup.reason.replace('_', ' ')}: {startup.detail}"],
            },
            status=503,
            headers=RETRY_AFTER,
        )
    engine = request.app[ENGINE]
    reasons = []
    if not engine.ready:
        reasons.append("engine_stopped")
    if not engine.writable:
        reasons.append("database_not_writable")
    try:
        await asyncio.wait_for(engine.store.ping(), timeout=PING_SECONDS)
    except Exception:
        reasons.append("database_unreachable")
    if reasons:
        return web.json_response(
            {
                "status": "not_ready",
                "reason": reasons[0],
                "detail": _NOT_READY[reasons[0]][0],
                "problems": [_NOT_READY[reason][1] for reason in reasons],
            },
            status=503,
            headers=RETRY_AFTER,
        )
    return web.json_response({"status": "ready"})


# Served while the service starts: /healthz, /readyz, /metrics (what is known then), this
# document, and the pages (files). Everything else under /api/v1 needs the engine.
SERVED_WHILE_STARTING = frozenset({"/api/v1/openapi.json"})


@web.middleware
async def not_ready_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Until the bring-up is done, the API answers 503 `starting` with Retry-After instead
    of reaching an engine that is not there yet. Installed only on apps that serve before
    they are ready (`create_app(..., serve_while_starting=True)`)."""
    startup = request.app[STARTUP]
    if (
        startup.started  # from then on the engine answers, even while stopping
        or not request.path.startswith("/api/v1/")
        or request.path in SERVED_WHILE_STARTING
        or request.match_info.http_exception is not None  # 404 and 405 as ever
    ):
        return await handler(request)
    return error_response(
        503,
        "starting",
        f"The service is not ready yet ({startup.detail}); nothing was recorded. Retry shortly.",
        {"reason": startup.reason, "stage": startup.stage},
        headers=RETRY_AFTER,
    )


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json", charset="utf-8")


# -- tickets ----------------------------------------------------------------------------


def ticket_response(
    status: int, state: SiteState, events: list[Event], now: datetime
) -> tuple[int, dict[str, Any]]:
    ticket_id = events[0].ticket_id
    assert ticket_id is not None
    body = read_models.ticket_status(
        state, state.tickets[ticket_id], now, just_issued=events[0].type == EventType.TICKET_ISSUED
    )
    body["seq"] = events[-1].seq
    return status, body


async def issue_ticket(request: web.Request) -> web.Response:
    site_id = request.match_info["site"]
    engine = request.app[ENGINE]
    token = request[TOKEN]
    body = await read_body(request, ISSUE_TICKET)
    service: str = body["service"]
    priority: str | None = body.get("priority")
    source: str = body.get("source") or Source.KIOSK.value
    key, digest = idempotency(request, body)
    ticket_id = secrets.token_urlsafe(16)
    status, text, response = await engine.execute_json(
        site_id,
        lambda state, at: commands.issue(
            state, at, ticket_id=ticket_id, service=service, priority=priority, source=source
        ),
        # Shown as of the instant the ticket was issued (its event's time).
        lambda state, events: ticket_response(201, state, events, events[0].ts),
        idempotency_key=key,
        request_hash=digest,
    )
    # After the commit, never before: a ticket is printed only once it exists. The print
    # outcome is not part of the stored (idempotent) answer; a retried request reports
    # "printed" again without a second paper when the first one came out.
    devices = request.app[DEVICES]
    if devices.has_printer(site_id, token.name):
        ticket = response if response is not None else json.loads(text)
        printed = await devices.print_ticket(site_id, token.name, ticket)
        return json_text(_with_field(text, "print", printed), status)
    return json_text(_with_member(text, _NO_PRINTER_MEMBER), status)


# -- sites (public directory, staff snapshot, public display) ------------------------


async def list_sites(request: web.Request) -> web.Response:
    config = request.app[ENGINE].config
    return web.json_response(
        {
            "sites": [
                {"id": s.id, "name": s.name, "timezone": str(s.timezone)}
                for s in config.sites.values()
            ]
        }
    )


async def site_directory(request: web.Request) -> web.Response:
    return web.json_response(read_models.site_directory(site_state(request), request_now(request)))


async def snapshot(request: web.Request) -> web.Response:
    state = site_state(request)
    devices = request.app[DEVICES].health(state.site.id)
    return web.json_response(read_models.snapshot(state, request_now(request), devices=devices))


async def display(request: web.Request) -> web.Response:
    state = site_state(request)
    zone = request.query.get("zone") or None
    return web.json_response(read_models.display(state, request_now(request), zone))


# -- tickets by id ------------------------------------------------------------------


def _find_ticket(request: web.Request) -> tuple[SiteState, str]:
    ticket_id = request.match_info["ticket"]
    return request.app[ENGINE].ticket_site(ticket_id), ticket_id


async def ticket_status(request: web.Request) -> web.Response:
    state, ticket_id = _find_ticket(request)
    return web.json_response(
        read_models.ticket_status(state, state.tickets[ticket_id], request_now(request))
    )


async def cancel_ticket(request: web.Request) -> web.Response:
    # The unguessable ticket id is the citizen's capability; staff may cancel too.
    state, ticket_id = _find_ticket(request)
    principal(request)  # a token, if sent, must be valid
    body = await read_body(request, CANCEL_TICKET)
    reason: str = body.get("reason") or ""
    key, digest = idempotency(request, body)
    now = request_now(request)
    status, text, _ = await request.app[ENGINE].execute_json(
        state.site.id,
        lambda s, at: commands.cancel(s, at, ticket_id=ticket_id, reason=reason),
        lambda s, events: ticket_response(200, s, events, now),
        idempotency_key=key,
        request_hash=digest,
    )
    return json_text(text, status)


# -- counter actions ------------------------------------------------------------------


def _counter_response(
    state: SiteState, events: list[Event], counter_id: str, now: datetime
) -> tuple[int, dict[str, Any]]:
    counter = read_models.counter_view(state, counter_id, now)
    ticket_id = next((e.ticket_id for e in events if e.ticket_id), None)
    ticket = (
        read_models.ticket_status(state, state.tickets[ticket_id], now)
        if ticket_id is not None
        else None
    )
    return 200, {"counter": counter, "ticket": ticket, "seq": events[-1].seq}


def counter_action(action: CounterAction) -> Handler:
    """The handler of `POST /api/v1/sites/{site}/counters/{counter}/<action>`."""
    body_type = ACTION_BODIES[action]

    async def act(request: web.Request) -> web.Response:
        site_id = request.match_info["site"]
        counter_id = request.match_info["counter"]
        body = await read_body(request, body_type)
        command = counter_command(action, counter_id, body)
        key, digest = idempotency(request, body)
        now = request_now(request)
        status, text, _ = await request.app[ENGINE].execute_json(
            site_id,
            command,
            lambda s, events: _counter_response(s, events, counter_id, now),
            idempotency_key=key,
            request_hash=digest,
        )
        return json_text(text, status)

    return act


# -- live stream ------------------------------------------------------------------------


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Malformed("Last-Event-ID must be an integer", code="invalid_last_event_id") from None
    if value < 0:
        raise Malformed("Last-Event-ID must not be negative", code="invalid_last_event_id")
    return value


async def stream(request: web.Request) -> web.StreamResponse:
    state = site_state(request)
    site_id = state.site.id
    token = principal(request, allow_query=True)
    if token is not None and not token.allows_site(site_id):
        authorize(request, STAFF, site=site_id, allow_query=True)
    # Ticket ids are citizens' capabilities: only staff who act on tickets see them. Kiosks
    # and public screens get the public form (numbers, no priority, no device details).
    staff = token is not None and token.role in TICKET_STAFF
    last = _last_event_id(request)
    hub: StreamHub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    sub = hub.subscribe(site_id)
    try:
        await response.prepare(request)
        await response.write(b"retry: %d\n\n" % RETRY_MS)
        sent = hub.last_seq(site_id)
        if last is None:
            await response.write(format_sse(sent, {"type": "hello", "seq": sent}))
        else:
            backlog = hub.backlog(site_id, last)
            if backlog is None or last > sent:
                # Too old for the buffer, or from another database (a restore): re-read.
                await response.write(format_sse(sent, {"type": "reset", "seq": sent}))
            else:
                await response.write(encode_events(backlog, staff=staff))
                sent = backlog[-1].seq if backlog else last
        while True:
            try:
                item = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if StreamHub.is_close(item) or sub.overflowed:
                break
            if isinstance(item, Notice):
                if staff:  # device health is for the floor, not the public screens
                    await response.write(item.encode())
                continue
            if item.seq <= sent:
                continue
            sent = item.seq
            await response.write(encode_events([item], staff=staff))
    except ConnectionResetError:
        pass  # the client went away
    finally:
        hub.unsubscribe(sub)
    return response
