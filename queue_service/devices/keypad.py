"""Keypad protocol (pure): key frames in, display and error frames out.

Counter keypads share a multi-drop bus (RS-485); each has an address. A key press is a
`K` frame from that address, data `<key>`; the service answers the same address with `D`
`<key>;<ticket number>` (the ticket the action leaves at the counter or acted on; empty
when none) or `E` `<key>;<two-digit code>` for the keypad's display. Keys are not
idempotent and not held while the database is down: the officer sees E07 and presses
again, rather than a call happening minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass

from queue_service.devices.framing import Frame, encode

KEY = "K"
HEARTBEAT = "H"
DISPLAY = "D"
ERROR = "E"

# key letter -> counter action (the same names as the counter page's API actions)
KEYS = {
    "N": "call-next",
    "R": "recall",
    "S": "start",
    "F": "finish",
    "X": "no-show",
    "P": "pause",
    "O": "open",
}

# Domain error code -> what the keypad displays (docs/devices.md).
ERROR_CODES = {
    "queue_empty": "01",
    "counter_not_open": "02",
    "counter_busy": "03",
    "invalid_transition": "04",
    "no_show_too_early": "05",
    "counter_not_allowed": "06",
    "database_unavailable": "07",
    "unknown_key": "08",
    "other": "99",
}


@dataclass(frozen=True, slots=True)
class KeyPress:
    address: int
    key: str

    @property
    def action(self) -> str | None:
        return KEYS.get(self.key)


def decode_key(frame: Frame) -> KeyPress | None:
    if frame.command != KEY or len(frame.data) != 1:
        return None
    return KeyPress(frame.address, frame.data)


def display(address: int, key: str, number: str | None) -> bytes:
    return encode(address, DISPLAY, f"{key};{number or ''}")


def error(address: int, key: str, code: str) -> bytes:
    return encode(address, ERROR, f"{key};{ERROR_CODES.get(code, ERROR_CODES['other'])}")
