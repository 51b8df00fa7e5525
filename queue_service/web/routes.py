"""The route table: every route of the service, declared once (see web/spec.py for what a
declaration holds). From it come the router (`add_routes`), the role checks
(`auth.guarded`, for the routes with roles), the routes the rate limits apply to
(web/security.py) and the OpenAPI document's operations (web/openapi.py, which adds the
prose: descriptions, parameters, the error-code table, links).

Under /api/v1/sites aiohttp tries the routes in the order they are added: ticket issuing,
the busiest, comes first.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from queue_service.domain.actions import ACTIONS, CounterAction
from queue_service.domain.vocab import Role
from queue_service.web import api, online, pages, reports_api, scrape
from queue_service.web.auth import TICKET_STAFF, guarded
from queue_service.web.spec import (
    ACTION_BODIES,
    BOOK,
    CANCEL_BOOKING,
    CANCEL_TICKET,
    CHECK_IN,
    ISSUE_TICKET,
    JOIN,
    RESCHEDULE,
    Access,
    Answer,
    CounterIn,
    Limit,
    Route,
)

ISSUERS = (Role.KIOSK, Role.MANAGER, Role.ADMIN)
OFFICERS = (Role.COUNTER, Role.MANAGER, Role.ADMIN)
MANAGERS = (Role.MANAGER, Role.ADMIN)
TABLETS = (Role.SURVEY, Role.COUNTER, Role.MANAGER, Role.ADMIN)

_REPORT_ERRORS = {400: ("invalid_date", "invalid_range"), 503: ("database_unavailable",)}
_ACTION_DONE = "Done (or the stored answer to a repeated Idempotency-Key)."

# Each counter action's operation: (operationId, summary, its own error codes).
_ACTION_OPERATIONS: Mapping[CounterAction, tuple[str, str, Mapping[int, tuple[str, ...]]]] = {
    CounterAction.OPEN: (
        "openCounter",
        "Open the counter (buka loket)",
        {409: ("invalid_transition",)},
    ),
    CounterAction.PAUSE: (
        "pauseCounter",
        "Pause the counter (jeda)",
        {400: ("invalid_command",), 409: ("invalid_transition", "counter_busy")},
    ),
    CounterAction.CLOSE: (
        "closeCounter",
        "Close the counter (tutup loket)",
        {409: ("invalid_transition", "counter_busy")},
    ),
    CounterAction.CALL_NEXT: (
        "callNext",
        "Call the next ticket (panggil berikutnya)",
        {409: ("counter_not_open", "counter_busy", "queue_empty")},
    ),
    CounterAction.CALL: (
        "callTicket",
        "Call a particular ticket",
        {
            400: ("invalid_command",),
            404: ("unknown_ticket",),
            409: (
                "counter_not_open",
                "counter_busy",
                "ticket_taken",
                "invalid_transition",
                "service_not_served_here",
            ),
        },
    ),
    CounterAction.RECALL: (
        "recallTicket",
        "Call the held ticket again (panggil ulang)",
        {409: ("invalid_transition",)},
    ),
    CounterAction.START: (
        "startService",
        "Start serving (mulai layani)",
        {409: ("invalid_transition",)},
    ),
    CounterAction.FINISH: (
        "finishTicket",
        "Finish the visit (selesai)",
        {400: ("invalid_command",), 409: ("invalid_transition",)},
    ),
    CounterAction.NO_SHOW: (
        "noShowTicket",
        "Mark a no-show (tidak hadir)",
        {409: ("invalid_transition", "no_show_too_early")},
    ),
    CounterAction.TRANSFER: (
        "transferTicket",
        "Transfer to another service (alihkan)",
        {
            400: ("invalid_command",),
            404: ("unknown_service",),
            409: ("invalid_transition",),
        },
    ),
}


def _action_route(action: CounterAction) -> Route:
    operation_id, summary, errors = _ACTION_OPERATIONS[action]
    return Route(
        "POST",
        f"/api/v1/sites/{{site}}/counters/{{counter}}/{action}",
        api.counter_action(action),
        operation_id,
        "counters",
        summary,
        Answer(200, _ACTION_DONE, "CounterActionResult"),
        access=Access.ROLES,
        roles=OFFICERS,
        counter=CounterIn.PATH,
        body=ACTION_BODIES[action],
        idempotent=True,
        errors=errors,
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/v1/sites/{site}/tickets",
        api.issue_ticket,
        "issueTicket",
        "tickets",
        "Issue a ticket (ambil nomor antrian)",
        Answer(201, "Issued (or the stored answer to a repeated Idempotency-Key).", "TicketStatus"),
        access=Access.ROLES,
        roles=ISSUERS,
        body=ISSUE_TICKET,
        idempotent=True,
        limit=Limit.ISSUE,
        errors={
            400: ("invalid_command",),
            404: ("unknown_service",),
            409: ("site_closed", "cutoff_passed", "quota_reached"),
        },
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/check-in",
        online.check_in,
        "checkIn",
        "online",
        "Check in a booking or confirm a remote join at the kiosk (check-in)",
        Answer(201, "Checked in: its ticket (200: a remote join confirmed).", "CheckInResult"),
        access=Access.ROLES,
        roles=ISSUERS,
        body=CHECK_IN,
        idempotent=True,
        limit=Limit.ISSUE,
        errors={
            404: ("booking_not_found",),
            409: (
                "too_early",
                "too_late",
                "already_checked_in",
                "booking_cancelled",
                "site_closed",
                "quota_reached",
            ),
        },
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/online",
        online.online_directory,
        "getOnline",
        "online",
        "What can be booked or joined from the phone (antrian online)",
        Answer(200, "Bookable services and days.", "OnlineDirectory"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/online/slots",
        online.slots,
        "getSlots",
        "online",
        "A service's slots of one day",
        Answer(200, "The slots with places taken and left.", "Slots"),
        limit=Limit.PUBLIC,
        errors={400: ("invalid_command",), 404: ("unknown_service",), 409: ("not_bookable",)},
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/bookings",
        online.make_booking,
        "makeBooking",
        "online",
        "Book a slot (booking antrian online)",
        Answer(201, "Booked (or the stored answer to a repeated Idempotency-Key).", "Booking"),
        body=BOOK,
        idempotent=True,
        limit=Limit.PUBLIC,
        errors={
            400: ("invalid_command", "invalid_phone"),
            404: ("unknown_service",),
            409: ("slot_full", "booking_closed", "booking_limit", "not_bookable"),
        },
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/join",
        online.join_queue,
        "joinQueue",
        "online",
        "Take today's ticket from the phone (remote join)",
        Answer(201, "Issued (or the stored answer to a repeated Idempotency-Key).", "TicketStatus"),
        body=JOIN,
        idempotent=True,
        limit=Limit.PUBLIC,
        errors={
            400: ("invalid_command", "invalid_phone"),
            404: ("unknown_service",),
            409: (
                "remote_join_off",
                "booking_limit",
                "site_closed",
                "cutoff_passed",
                "quota_reached",
            ),
        },
    ),
    Route(
        "GET",
        "/api/v1/bookings/{booking}",
        online.get_booking,
        "getBooking",
        "online",
        "A booking",
        Answer(200, "The booking.", "Booking"),
        limit=Limit.PUBLIC,
        errors={404: ("booking_not_found",)},
    ),
    Route(
        "POST",
        "/api/v1/bookings/{booking}/cancel",
        online.cancel_booking,
        "cancelBooking",
        "online",
        "Cancel a booking (batalkan)",
        Answer(200, "Cancelled (or the stored answer to a repeated Idempotency-Key).", "Booking"),
        body=CANCEL_BOOKING,
        idempotent=True,
        limit=Limit.PUBLIC,
        errors={404: ("booking_not_found",), 409: ("invalid_transition",)},
    ),
    Route(
        "POST",
        "/api/v1/bookings/{booking}/reschedule",
        online.reschedule_booking,
        "rescheduleBooking",
        "online",
        "Move a booking to another slot (ubah jadwal)",
        Answer(200, "Moved (or the stored answer to a repeated Idempotency-Key).", "Booking"),
        body=RESCHEDULE,
        idempotent=True,
        limit=Limit.PUBLIC,
        errors={
            400: ("invalid_command",),
            404: ("booking_not_found",),
            409: ("invalid_transition", "slot_full", "booking_closed", "not_bookable"),
        },
    ),
    Route(
        "GET",
        "/api/v1/bookings/{booking}/qr.svg",
        online.booking_qr,
        "bookingQr",
        "online",
        "QR code of the booking's code (scanned at the kiosk)",
        Answer(200, "The QR code."),
        limit=Limit.PUBLIC,
        errors={404: ("booking_not_found",)},
    ),
    Route(
        "GET",
        "/healthz",
        api.healthz,
        "healthz",
        "health",
        "Liveness",
        Answer(200, "Alive.", "Health"),
    ),
    Route(
        "GET",
        "/readyz",
        api.readyz,
        "readyz",
        "health",
        "Readiness",
        Answer(200, "Ready.", "Readiness"),
    ),
    Route(
        "GET",
        "/api/v1/openapi.json",
        api.openapi,
        "getOpenApi",
        "health",
        "This document",
        Answer(200, "The document."),
    ),
    Route(
        "GET",
        "/api/v1/sites",
        api.list_sites,
        "listSites",
        "sites",
        "List sites",
        Answer(200, "The sites.", "SiteList"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}",
        api.site_directory,
        "getSiteDirectory",
        "sites",
        "Site directory (kiosk menu)",
        Answer(200, "The directory.", "SiteDirectory"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/snapshot",
        api.snapshot,
        "getSnapshot",
        "sites",
        "Site snapshot (staff)",
        Answer(200, "The snapshot.", "Snapshot"),
        access=Access.ROLES,
        roles=TICKET_STAFF,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/display",
        api.display,
        "getDisplay",
        "sites",
        "Public display (TV)",
        Answer(200, "The display.", "Display"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "GET",
        "/api/v1/tickets/{ticket}",
        api.ticket_status,
        "getTicket",
        "tickets",
        "Ticket status",
        Answer(200, "The ticket.", "TicketStatus"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "POST",
        "/api/v1/tickets/{ticket}/cancel",
        api.cancel_ticket,
        "cancelTicket",
        "tickets",
        "Cancel a waiting ticket (batal)",
        Answer(
            200, "Cancelled (or the stored answer to a repeated Idempotency-Key).", "TicketStatus"
        ),
        access=Access.OPTIONAL,
        body=CANCEL_TICKET,
        idempotent=True,
        limit=Limit.PUBLIC,
        errors={409: ("invalid_transition",)},
    ),
    Route(
        "GET",
        "/api/v1/tickets/{ticket}/qr.svg",
        pages.ticket_qr,
        "ticketQr",
        "tickets",
        "QR code of the ticket's status page",
        Answer(200, "The QR code."),
        limit=Limit.PUBLIC,
    ),
    *(_action_route(action) for action in ACTIONS),
    Route(
        "GET",
        "/api/v1/sites/{site}/stream",
        api.stream,
        "streamSite",
        "stream",
        "Live event stream (SSE)",
        Answer(200, "An endless `text/event-stream`."),
        access=Access.OPTIONAL,
        limit=Limit.STREAM,
        errors={400: ("invalid_last_event_id",), 403: ("site_not_allowed",)},
    ),
    Route(
        "GET",
        "/metrics",
        scrape.metrics,
        "metrics",
        "health",
        "Prometheus metrics",
        Answer(200, "The exposition."),
        access=Access.OPTIONAL,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/report",
        reports_api.report,
        "getReport",
        "reports",
        "Report against the service standards (laporan)",
        Answer(200, "The report."),
        access=Access.ROLES,
        roles=MANAGERS,
        errors={**_REPORT_ERRORS, 400: (*_REPORT_ERRORS[400], "invalid_format")},
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/ikm",
        reports_api.ikm_index,
        "getIkm",
        "reports",
        "IKM (Indeks Kepuasan Masyarakat)",
        Answer(200, "The IKM.", "Ikm"),
        access=Access.ROLES,
        roles=MANAGERS,
        errors=_REPORT_ERRORS,
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/survey",
        reports_api.site_survey,
        "getSurveyConfig",
        "surveys",
        "The hall's survey (SKM questions or one-tap rating)",
        Answer(200, "The survey.", "SurveyConfig"),
        limit=Limit.PUBLIC,
    ),
    Route(
        "GET",
        "/api/v1/tickets/{ticket}/survey",
        reports_api.ticket_survey,
        "getTicketSurvey",
        "surveys",
        "Whether the ticket can be rated, and the survey",
        Answer(200, "The ticket's survey.", "TicketSurvey"),
        limit=Limit.PUBLIC,
        errors={503: ("database_unavailable",)},
    ),
    Route(
        "POST",
        "/api/v1/tickets/{ticket}/survey",
        reports_api.submit_survey,
        "submitSurvey",
        "surveys",
        "Rate the visit (isi survei kepuasan)",
        Answer(201, "Recorded.", "SurveySubmitted"),
        body=reports_api.SUBMIT_SURVEY,
        limit=Limit.PUBLIC,
        errors={
            400: ("invalid_survey", "survey_mode_mismatch"),
            409: ("survey_not_available", "survey_already_submitted", "survey_closed"),
            503: ("database_unavailable",),
        },
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/surveys/pending",
        reports_api.pending_survey,
        "getPendingSurvey",
        "surveys",
        "The counter's last served ticket, for its survey tablet",
        Answer(200, "The pending survey.", "PendingSurvey"),
        access=Access.ROLES,
        roles=TABLETS,
        counter=CounterIn.QUERY,
        errors={503: ("database_unavailable",)},
    ),
    Route(
        "GET", "/", pages.index, "index", "pages", "Front page", Answer(302, "Redirect to /ui/.")
    ),
    Route(
        "GET",
        "/ui",
        pages.ui_no_slash,
        "uiNoSlash",
        "pages",
        "The pages' index",
        Answer(302, "Redirect to /ui/."),
        documented=False,
    ),
    Route(
        "GET",
        "/ui/{path:.*}",
        pages.page,
        "page",
        "pages",
        "A file of the pages",
        Answer(200, "The file."),
        documented=False,
    ),
)


def add_routes(app: web.Application) -> None:
    """The router of the table: each route's handler, behind the role check where it has
    roles (a GET answers HEAD too)."""
    for route in ROUTES:
        handler = route.handler
        if route.access is Access.ROLES:
            handler = guarded(handler, route.roles, route.counter)
        if route.method == "GET":
            app.router.add_get(route.path, handler)
        else:
            app.router.add_route(route.method, route.path, handler)
