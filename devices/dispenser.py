"""Dispenser protocol (pure): ticket, check-in and heartbeat frames in, answers out.

A standalone dispenser prints its own ticket when a button is pressed and then reports
it: `T` frame, data `<button>;<number>;<seq>`. `seq` is the device's own counter (kept
across power cycles); the service acknowledges with `A` `<seq>;<number>` once the ticket
is committed, or refuses with `N` `<seq>;<code>`. A dispenser re-sends a ticket until it
is acknowledged, so a frame re-sent after a reconnect arrives twice: the idempotency key
built from the device and `seq` makes the second one a no-op that is acknowledged again.

A dispenser with a 2D code reader reports a scanned booking or remote-join code: `C`
frame, data `<code>;<seq>` (the same counter). It prints nothing until the service
answers `K` `<seq>;<number>` (the check-in's ticket, printed then) or `N` `<seq>;<code>`;
a re-sent scan is checked in once, by the same idempotency key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.framing import Frame, encode
from queue_service.domain.site import ButtonConfig, Service

TICKET = "T"
SCAN = "C"
HEARTBEAT = "H"
ACK = "A"
CHECKED_IN = "K"
NAK = "N"

_TICKET_RE = re.compile(r"([0-9]{1,2});([A-Z]{1,2}[0-9]{1,4});([0-9]{1,10})\Z")
# A scanned code: letters and digits, 4 to 16 of them (the code reader may give lower case).
_SCAN_RE = re.compile(r"([0-9A-Za-z]{4,16});([0-9]{1,10})\Z")
# The sequence number at the end of a `C` frame whose code is unreadable: it is refused.
_SCAN_SEQ_RE = re.compile(r".*;([0-9]{1,10})\Z")

# Refusal codes shown by the dispenser (two digits; docs/devices.md).
NAK_CODES = {
    "unknown_button": "01",
    "number_out_of_range": "02",
    "number_taken": "03",
    "site_closed": "04",
    "cutoff_passed": "05",
    "quota_reached": "06",
    "idempotency_key_reused": "07",
    # Check-in (`C` frames); 04 and 06 above apply to a check-in's ticket too.
    "booking_not_found": "08",
    "too_early": "09",
    "too_late": "10",
    "already_checked_in": "11",
    "booking_cancelled": "12",
    "unreadable_code": "13",
    "database_unavailable": "14",
    "other": "99",
}


@dataclass(frozen=True, slots=True)
class DispenserTicket:
    address: int
    button: int
    number: str
    seq: int


def decode_ticket(frame: Frame) -> DispenserTicket | None:
    """The ticket a `T` frame reports, or None when its data is malformed."""
    match = frame.match(TICKET, _TICKET_RE)
    if match is None:
        return None
    return DispenserTicket(frame.address, int(match[1]), match[2], int(match[3]))


@dataclass(frozen=True, slots=True)
class DispenserScan:
    """A code the dispenser's reader scanned (as read: the check-in normalises its case)."""

    address: int
    code: str
    seq: int


def decode_scan(frame: Frame) -> DispenserScan | None:
    """The scan a `C` frame reports, or None when its data is malformed."""
    match = frame.match(SCAN, _SCAN_RE)
    if match is None:
        return None
    return DispenserScan(frame.address, match[1], int(match[2]))


def scan_seq(frame: Frame) -> int | None:
    """The sequence number of a malformed `C` frame, when it can still be read: the scan
    is refused under it, so the dispenser stops re-sending it. None for other frames."""
    match = frame.match(SCAN, _SCAN_SEQ_RE)
    return None if match is None else int(match[1])


def number_allowed(button: ButtonConfig, service: Service, number: str) -> bool:
    """Whether a device-printed number fits the button's prefix or range (never a kiosk's)."""
    if button.prefix is not None:
        digits = number[len(button.prefix) :]
        return number.startswith(button.prefix) and digits.isdigit() and 1 <= len(digits) <= 4
    assert button.range is not None
    digits = number[len(service.prefix) :]
    if not (number.startswith(service.prefix) and len(digits) == 3 and digits.isdigit()):
        return False
    low, high = button.range
    return low <= int(digits) <= high


def ack(address: int, seq: int, number: str) -> bytes:
    return encode(address, ACK, f"{seq};{number}")


def checked_in(address: int, seq: int, number: str) -> bytes:
    """Checked in: print `number` (a booking's new ticket, a remote join's own number)."""
    return encode(address, CHECKED_IN, f"{seq};{number}")


def nak(address: int, seq: int, reason: str) -> bytes:
    return encode(address, NAK, f"{seq};{NAK_CODES.get(reason, NAK_CODES['other'])}")
