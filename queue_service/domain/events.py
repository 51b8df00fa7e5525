"""Ticket and counter events: the only thing ever stored, and the only way state changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

TICKET_ISSUED = "ticket_issued"
TICKET_CALLED = "ticket_called"
TICKET_RECALLED = "ticket_recalled"
TICKET_STARTED = "ticket_started"
TICKET_FINISHED = "ticket_finished"
TICKET_NO_SHOW = "ticket_no_show"
TICKET_TRANSFERRED = "ticket_transferred"
TICKET_CANCELLED = "ticket_cancelled"
# Closes a ticket still waiting or held when its service day ended (at local midnight).
TICKET_EXPIRED = "ticket_expired"
COUNTER_OPENED = "counter_opened"
COUNTER_PAUSED = "counter_paused"
COUNTER_CLOSED = "counter_closed"

TICKET_EVENTS = frozenset(
    {
        TICKET_ISSUED,
        TICKET_CALLED,
        TICKET_RECALLED,
        TICKET_STARTED,
        TICKET_FINISHED,
        TICKET_NO_SHOW,
        TICKET_TRANSFERRED,
        TICKET_CANCELLED,
        TICKET_EXPIRED,
    }
)
COUNTER_EVENTS = frozenset({COUNTER_OPENED, COUNTER_PAUSED, COUNTER_CLOSED})
ALL_EVENTS = TICKET_EVENTS | COUNTER_EVENTS


@dataclass(slots=True)
class Event:
    """One fact about a site's day. Treat it as immutable once made.

    Not `frozen`: a frozen dataclass initialises every field through
    `object.__setattr__`, about 6x the cost of a plain slots class, and start-up builds a
    million of them. Nothing mutates an Event; use `dataclasses.replace` to derive one.

    `service` and `segment` locate a ticket event in its visit: a ticket transferred to
    another service starts a new segment, and the transfer event closes the old one.
    `seq` is the store's global, gap-free-per-process order, assigned at commit.
    """

    type: str
    site: str
    ts: datetime
    day: date
    ticket_id: str | None = None
    counter_id: str | None = None
    service: str | None = None
    segment: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0

    def public(self) -> dict[str, Any]:
        """The form sent to clients; ticket ids are capabilities and are added by the caller."""
        out: dict[str, Any] = dict(self.data)
        out.pop("seq", None)  # a ticket's number sequence; the event's own seq wins
        out.update(seq=self.seq, type=self.type, site=self.site, ts=self.ts.isoformat())
        if self.counter_id is not None:
            out["counter"] = self.counter_id
        if self.service is not None:
            out["service"] = self.service
        return out
