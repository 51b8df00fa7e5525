"""The domain's branch of Antrian's exception tree (`queue_service.errors`). Each error
carries a stable `code` clients can rely on and the HTTP `status` the API answers it with:
Invalid 400, NotFound 404, Conflict 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from queue_service.errors import AntrianError


class DomainError(AntrianError, code="domain_error", status=400):
    """A command the domain refuses."""


class Invalid(DomainError, code="invalid_command"):
    """The command itself is malformed (bad value), whatever the state."""


class NotFound(DomainError, code="not_found", status=404):
    """The command names a site, service, counter or ticket that does not exist (today)."""


class UnknownSite(NotFound, code="unknown_site"): ...


class UnknownService(NotFound, code="unknown_service"): ...


class UnknownCounter(NotFound, code="unknown_counter"): ...


class UnknownTicket(NotFound, code="unknown_ticket"): ...


class Conflict(DomainError, code="conflict", status=409):
    """The command is well-formed but the current state does not allow it."""


class InvalidTransition(Conflict, code="invalid_transition"): ...


class TicketTaken(Conflict, code="ticket_taken"):
    """Another counter already holds the ticket."""


class QueueEmpty(Conflict, code="queue_empty"): ...


class CounterBusy(Conflict, code="counter_busy"):
    """The counter already holds a ticket and must finish, transfer or no-show it first."""


class CounterNotOpen(Conflict, code="counter_not_open"): ...


class NotServedHere(Conflict, code="service_not_served_here"): ...


class NoShowTooEarly(Conflict, code="no_show_too_early"): ...


class NotIssuing(Conflict):
    """No ticket is issued now, and `details.opens_at` says when tickets are issued again:
    an instant written site-local in ISO 8601 with the site's UTC offset
    (`2026-11-30T08:00:00+08:00`), or null where the hours give none within a week."""

    def __init__(self, message: str, *, opens_at: datetime | None, **details: Any) -> None:
        super().__init__(
            message, **details, opens_at=opens_at.isoformat() if opens_at is not None else None
        )


class SiteClosed(NotIssuing, code="site_closed"):
    """The hall is outside its opening hours; `opens_at` is its next opening."""


class CutoffPassed(NotIssuing, code="cutoff_passed"):
    """The service's last issue time today has passed; `opens_at` is the opening of the next
    day whose hours begin before the cutoff."""


class QuotaReached(NotIssuing, code="quota_reached"):
    """Today's quota (or ticket numbers) of the service are used up; `opens_at` is the
    opening of the next day that issues its tickets."""


class NotBookable(Conflict, code="not_bookable"):
    """The service takes no bookings (antrian online), or that day has no slots."""


class RemoteJoinOff(Conflict, code="remote_join_off"):
    """The service does not issue today's tickets from the phone."""


class SlotFull(Conflict, code="slot_full"):
    """Every bookable place of the slot (or of its day) is taken; walk-ins still get
    tickets, from the share of the counters' time kept for them."""


class BookingClosed(Conflict, code="booking_closed"):
    """The slot can no longer be booked (its cut-off passed) or the day is outside the
    days that may be booked."""


class BookingLimit(Conflict, code="booking_limit"):
    """The phone number already holds as many bookings as a citizen may (anti-hoarding)."""


class BookingNotFound(NotFound, code="booking_not_found"):
    """No booking with that id or code (a code is only valid until its check-in)."""


class CheckInRefused(Conflict):
    """The booking cannot be checked in now."""


class TooEarly(CheckInRefused, code="too_early"):
    """The check-in window has not opened; `details.opens_at` is when it does (site-local
    ISO 8601)."""


class TooLate(CheckInRefused, code="too_late"):
    """The check-in window closed (the service refuses late bookings), or the booking was
    missed."""


class BookingCancelled(CheckInRefused, code="booking_cancelled"):
    """The booking was cancelled."""


class AlreadyCheckedIn(CheckInRefused, code="already_checked_in"):
    """The booking (or remote join) was checked in already: its ticket is in the queue."""
