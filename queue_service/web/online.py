"""Antrian online over HTTP: the phone page's bookings and remote joins, and the kiosk's
check-in (the commands are `domain/online.py`; the views `read_models`).

A booking's id, like a ticket's, is a capability: long, random, never listed, and what the
citizen's phone keeps. Its short code is what the kiosk takes (typed, or typed by a 2D
barcode scanner reading the QR code), valid until the booking is checked in.
"""

from __future__ import annotations

import io
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import segno
from aiohttp import web

from queue_service import read_models
from queue_service.domain import errors, online
from queue_service.domain.bookings import BookingRecord
from queue_service.domain.events import Event
from queue_service.domain.notices import Contact, normalise_phone
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import EventType
from queue_service.errors import AntrianError
from queue_service.web.api import (
    idempotency,
    json_text,
    read_body,
    request_now,
    site_state,
    ticket_response,
)
from queue_service.web.keys import ENGINE, SETTINGS
from queue_service.web.spec import (
    BOOK,
    CANCEL_BOOKING,
    CHECK_IN,
    JOIN,
    RESCHEDULE,
)


def new_code() -> str:
    """A booking's or remote join's code: random from an alphabet without look-alikes."""
    return "".join(secrets.choice(online.CODE_ALPHABET) for _ in range(online.CODE_LENGTH))


class AddressQuota:
    """Bookings and remote joins per client address and service day (anti-hoarding, next
    to the per-phone limit the domain checks). Kept in memory: it starts afresh when the
    service restarts, and only today's counts are held."""

    def __init__(self) -> None:
        # Per site (each has its own service day, in its own timezone): the day counted,
        # and each address's count of it.
        self.days: dict[str, date] = {}
        self.counts: dict[str, Counter[str]] = {}

    def take(self, site_id: str, address: str, today: date, limit: int) -> None:
        if self.days.get(site_id) != today:
            self.days[site_id], self.counts[site_id] = today, Counter()
        counts = self.counts[site_id]
        if counts[address] >= limit:
            raise errors.BookingLimit(
                f"this address has made {limit} bookings or remote joins today", limit=limit
            )
        counts[address] += 1

    def give_back(self, site_id: str, address: str) -> None:
        counts = self.counts.get(site_id)
        if counts is not None and counts[address] > 0:
            counts[address] -= 1


ADDRESS_QUOTA = web.AppKey("address_quota", AddressQuota)

Decide = Callable[[SiteState, datetime], list[Event]]


def _within_address_quota(request: web.Request, decide: Decide) -> Decide:
    """`decide`, counted against the client address's bookings and remote joins of the
    day. Counted when it is decided: a retry answered from its Idempotency-Key is not
    decided again and takes no second place; a refused command gives its place back."""
    quota = request.app[ADDRESS_QUOTA]
    address = request.remote or "unknown"

    def counted(state: SiteState, now: datetime) -> list[Event]:
        site = state.site
        quota.take(site.id, address, site.service_day(now), site.online.max_per_address_per_day)
        try:
            return decide(state, now)
        except AntrianError:
            quota.give_back(site.id, address)
            raise

    return counted


def _booking_answer(status: int, state: SiteState, booking_id: str) -> tuple[int, dict[str, Any]]:
    b = state.bookings.get(booking_id)
    assert b is not None  # the events just applied made or changed it
    return status, read_models.booking_view(state, b, state.last_ts or b.made_at)


def _find_booking(request: web.Request) -> tuple[SiteState, BookingRecord]:
    booking_id = request.match_info["booking"]
    state = request.app[ENGINE].booking_site(booking_id)
    b = state.bookings.get(booking_id)
    assert b is not None
    return state, b


async def online_directory(request: web.Request) -> web.Response:
    return web.json_response(
        read_models.online_directory(
            site_state(request),
            request_now(request),
            reminders=request.app[SETTINGS].webhook is not None,
        )
    )


async def slots(request: web.Request) -> web.Response:
    state = site_state(request)
    service = request.query.get("service", "")
    day = request.query.get("day", "")
    if not service or not day:
        raise errors.Invalid(
            "service and day are required", field="service" if not service else "day"
        )
    return web.json_response(read_models.slots_view(state, service, day, request_now(request)))


def _contacts(request: web.Request, site_id: str, subject: str, phone: str | None) -> list[Contact]:
    """The phone number given for reminders, normalised (InvalidPhone otherwise). Kept only
    where a webhook delivers reminders: without one, nothing would ever use or erase it."""
    if not phone:
        return []
    number = normalise_phone(phone)
    if request.app[SETTINGS].webhook is None:
        return []
    return [Contact(site_id, subject, number)]


async def make_booking(request: web.Request) -> web.Response:
    state = site_state(request)
    body = await read_body(request, BOOK)
    key, digest = idempotency(request, body)
    booking_id = secrets.token_urlsafe(16)
    engine = request.app[ENGINE]
    contacts = _contacts(request, state.site.id, booking_id, body.get("phone"))
    phone_key = engine.phone_key(contacts[0].phone) if contacts else None
    status, text, _ = await engine.execute_json(
        state.site.id,
        _within_address_quota(
            request,
            lambda s, at: online.book(
                s,
                at,
                booking_id=booking_id,
                service=body["service"],
                day=body["day"],
                slot=body["slot"],
                new_code=new_code,
                phone_key=phone_key,
            ),
        ),
        lambda s, events: _booking_answer(201, s, booking_id),
        idempotency_key=key,
        request_hash=digest,
        contacts=contacts,
    )
    return json_text(text, status)


async def get_booking(request: web.Request) -> web.Response:
    state, b = _find_booking(request)
    return web.json_response(read_models.booking_view(state, b, request_now(request)))


async def cancel_booking(request: web.Request) -> web.Response:
    state, b = _find_booking(request)
    body = await read_body(request, CANCEL_BOOKING)
    key, digest = idempotency(request, body)
    booking_id, reason = b.id, body.get("reason") or ""
    status, text, _ = await request.app[ENGINE].execute_json(
        state.site.id,
        lambda s, at: online.cancel_booking(s, at, booking_id=booking_id, reason=reason),
        lambda s, events: _booking_answer(200, s, booking_id),
        idempotency_key=key,
        request_hash=digest,
    )
    return json_text(text, status)


async def reschedule_booking(request: web.Request) -> web.Response:
    state, b = _find_booking(request)
    body = await read_body(request, RESCHEDULE)
    key, digest = idempotency(request, body)
    booking_id = b.id
    status, text, _ = await request.app[ENGINE].execute_json(
        state.site.id,
        lambda s, at: online.reschedule(
            s, at, booking_id=booking_id, day=body["day"], slot=body["slot"]
        ),
        lambda s, events: _booking_answer(200, s, booking_id),
        idempotency_key=key,
        request_hash=digest,
    )
    return json_text(text, status)


async def booking_qr(request: web.Request) -> web.Response:
    """An SVG QR code of the booking's code: what a kiosk's 2D scanner types."""
    _, b = _find_booking(request)
    out = io.BytesIO()
    # A full QR code (segno.make picks a Micro QR for six characters, which many kiosk
    # scanners and phone cameras do not read).
    segno.make_qr(b.code, error="m").save(
        out, kind="svg", border=2, xmldecl=False, nl=False, omitsize=True, light="#fff"
    )
    return web.Response(
        text=out.getvalue().decode(),
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def join_queue(request: web.Request) -> web.Response:
    state = site_state(request)
    body = await read_body(request, JOIN)
    key, digest = idempotency(request, body)
    ticket_id = secrets.token_urlsafe(16)

    def answer(s: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
        status, view = ticket_response(201, s, events, events[0].ts)
        view["code"] = s.tickets[ticket_id].code  # to show at the kiosk on arrival
        return status, view

    contacts = _contacts(request, state.site.id, ticket_id, body.get("phone"))
    status, text, _ = await request.app[ENGINE].execute_json(
        state.site.id,
        _within_address_quota(
            request,
            lambda s, at: online.join(
                s,
                at,
                ticket_id=ticket_id,
                service=body["service"],
                priority=body.get("priority"),
                new_code=new_code,
            ),
        ),
        answer,
        idempotency_key=key,
        request_hash=digest,
        contacts=contacts,
    )
    return json_text(text, status)


async def check_in(request: web.Request) -> web.Response:
    """At the kiosk: a booking's code issues its ticket (201); a remote join's confirms it
    (200). Answered with the ticket, and the booking where there is one."""
    state = site_state(request)
    body = await read_body(request, CHECK_IN)
    key, digest = idempotency(request, body)
    ticket_id = secrets.token_urlsafe(16)
    code: str = body["code"]

    def answer(s: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
        # A booking's check-in: booking_checked_in, then its ticket_issued. A remote
        # join's: ticket_confirmed alone.
        first, last = events[0], events[-1]
        issued = first.type == EventType.BOOKING_CHECKED_IN
        assert last.ticket_id is not None
        view: dict[str, Any] = {
            "ticket": read_models.ticket_status(
                s, s.tickets[last.ticket_id], last.ts, just_issued=issued
            ),
            "booking": None,
        }
        if issued and first.ticket_id is not None:
            view["booking"] = _booking_answer(201, s, first.ticket_id)[1]
        return (201 if issued else 200), view

    status, text, _ = await request.app[ENGINE].execute_json(
        state.site.id,
        lambda s, at: online.check_in(s, at, code=code, ticket_id=ticket_id),
        answer,
        idempotency_key=key,
        request_hash=digest,
    )
    return json_text(text, status)


def setup(app: web.Application) -> None:
    app[ADDRESS_QUOTA] = AddressQuota()
