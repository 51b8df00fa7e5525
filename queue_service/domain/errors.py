"""The domain's one exception tree. Each error carries a stable `code` clients can rely on.

The web layer maps the branches to HTTP statuses: NotFound 404, Conflict 409, Invalid 400.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(DomainError):
    """The command itself is malformed (bad value), whatever the state."""

    code = "invalid_command"


class NotFound(DomainError):
    code = "not_found"


class UnknownSite(NotFound):
    code = "unknown_site"


class UnknownService(NotFound):
    code = "unknown_service"


class UnknownCounter(NotFound):
    code = "unknown_counter"


class UnknownTicket(NotFound):
    code = "unknown_ticket"


class Conflict(DomainError):
    """The command is well-formed but the current state does not allow it."""

    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class TicketTaken(Conflict):
    """Another counter already holds the ticket."""

    code = "ticket_taken"


class QueueEmpty(Conflict):
    code = "queue_empty"


class CounterBusy(Conflict):
    """The counter already holds a ticket and must finish, transfer or no-show it first."""

    code = "counter_busy"


class CounterNotOpen(Conflict):
    code = "counter_not_open"


class NotServedHere(Conflict):
    code = "service_not_served_here"


class NoShowTooEarly(Conflict):
    code = "no_show_too_early"


class SiteClosed(Conflict):
    code = "site_closed"


class CutoffPassed(Conflict):
    code = "cutoff_passed"


class QuotaReached(Conflict):
    code = "quota_reached"
