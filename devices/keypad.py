"""Keypad protocol (pure): key frames in, display and error frames out.

Counter keypads share a multi-drop bus (RS-485); each has an address. A key press is a
`C` frame from that address, data `<key>;<seq>`: `seq` (0..9999) is the keypad's own press
counter, one more (modulo 10000) for every new press. The unnumbered `K` frame (data
`<key>`) of earlier keypads is answered E09 and not acted on. The service answers the same
address with `D` `<key>;<seq>;<ticket number>` (the ticket the action leaves at the
counter or acted on; empty when none) or `E` `<key>;<seq>;<two-digit code>`.

The keypad re-sends a press it got no answer for (the link dropped) with the same `seq`,
in the manner of the dispensers' tickets. The service remembers, per address, the last
press it acted on and the answer it gave (`PressMemory`): a press with that same key and
`seq` is answered again with the same bytes and not acted on again. Only equality with the
last press counts, so wrapping from 9999 to 0 needs nothing special. A press that acts is
committed together with its answer (an idempotency answer under a key unique to that
press): after a restart the service looks up each address's last acted press there before
its first new one, so a re-send that reaches the new process is not acted on twice either.
Keys are not held
while the database is down: the officer sees E07 and presses again (a new `seq`), rather
than a call happening minutes later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.framing import Frame, encode
from queue_service.domain.actions import CounterAction

KEY = "C"  # a numbered key press
OLD_KEY = "K"  # an unnumbered key press (earlier keypads): refused with E09
HEARTBEAT = "H"
DISPLAY = "D"
ERROR = "E"
SEQ_MODULUS = 10_000  # seq is 0..9999; after 9999 comes 0

# key letter -> counter action (domain/actions.py: the counter page's API actions)
KEYS = {
    "N": CounterAction.CALL_NEXT,
    "R": CounterAction.RECALL,
    "S": CounterAction.START,
    "F": CounterAction.FINISH,
    "X": CounterAction.NO_SHOW,
    "P": CounterAction.PAUSE,
    "O": CounterAction.OPEN,
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
    "malformed_key_frame": "09",
    "other": "99",
}

_PRESS_RE = re.compile(r"([A-Z]);([0-9]{1,4})\Z")


@dataclass(frozen=True, slots=True)
class KeyPress:
    address: int
    key: str
    seq: int

    @property
    def action(self) -> CounterAction | None:
        return KEYS.get(self.key)


def decode_key(frame: Frame) -> KeyPress | None:
    """The press a `C` frame reports, or None when it is not a well-formed `<key>;<seq>`."""
    match = frame.match(KEY, _PRESS_RE)
    if match is None:
        return None
    return KeyPress(frame.address, match[1], int(match[2]))


def next_seq(seq: int) -> int:
    """The keypad's sequence number for its next new press."""
    return (seq + 1) % SEQ_MODULUS


def display(address: int, key: str, seq: int, number: str | None) -> bytes:
    return encode(address, DISPLAY, f"{key};{seq};{number or ''}")


def error(address: int, key: str, seq: int, code: str) -> bytes:
    shown = ERROR_CODES.get(code, ERROR_CODES["other"])
    return encode(address, ERROR, f"{key};{seq};{shown}")


def is_key_frame(frame: Frame) -> bool:
    """A key press, numbered or not (a bad one is answered with `malformed`)."""
    return frame.command in (KEY, OLD_KEY)


def malformed(frame: Frame) -> bytes:
    """The answer to a key frame that is not `C` `<key>;<seq>` (E09, empty seq): say what
    was wrong rather than stay silent; an unnumbered `K` frame gets this too."""
    first = frame.data[:1]
    key = first if "A" <= first <= "Z" else ""
    return encode(frame.address, ERROR, f"{key};;{ERROR_CODES['malformed_key_frame']}")


@dataclass(frozen=True, slots=True)
class Answered:
    key: str
    seq: int
    answer: bytes


class PressMemory:
    """Per keypad address: the last press acted on and the frame that answered it."""

    def __init__(self) -> None:
        self._last: dict[int, Answered] = {}

    def repeat(self, press: KeyPress) -> bytes | None:
        """The answer already given when `press` is a re-send of the last press, else None."""
        last = self._last.get(press.address)
        if last is None or last.seq != press.seq or last.key != press.key:
            return None
        return last.answer

    def remember(self, press: KeyPress, answer: bytes) -> None:
        self._last[press.address] = Answered(press.key, press.seq, answer)

    def knows(self, address: int) -> bool:
        return address in self._last

    def __len__(self) -> int:
        return len(self._last)
