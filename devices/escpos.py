"""ESC/POS (pure): the kiosk ticket as printer bytes, and real-time status decoding.

Status is asked with `DLE EOT n` (n = 1..4); the printer answers one byte per request,
whose fixed bits always read 0xx1xx10 (bit 7 = 0, bit 4 = 1, bit 1 = 1, bit 0 = 0). A
byte that does not match is line noise and is thrown away, never decoded.

A flag is known only from the reply that reports it: a printer that answers `DLE EOT 1`
alone has a known `offline` flag and an unknown paper, cover and error state (None, shown
as null and as NaN on /metrics), never a made-up "no problem".
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

ESC, GS, DLE, EOT = 0x1B, 0x1D, 0x10, 0x04
FIXED_MASK, FIXED_VALUE = 0b1001_0011, 0b0001_0010
STATUS_KINDS = (1, 2, 3, 4)


def status_request(n: int) -> bytes:
    if n not in STATUS_KINDS:
        raise ValueError("DLE EOT n: n must be 1..4")
    return bytes([DLE, EOT, n])


def is_status_byte(value: int) -> bool:
    return value & FIXED_MASK == FIXED_VALUE


def _bit(value: int, n: int) -> bool:
    return bool(value >> n & 1)


# The five flags shown on the board and /metrics; for each, the reply that decides it
# (False needs that reply) and the replies whose bits can only set it.
FLAGS = ("paper_near_end", "paper_end", "cover_open", "offline", "error")
_DECIDED_BY = {"paper_near_end": 4, "paper_end": 4, "cover_open": 2, "offline": 1, "error": 3}


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """Decoded DLE EOT 1..4 replies. The bits of a reply that was not received are False
    here; `flag()` tells known from unknown: use it (or `problems()`, `unknown()`)."""

    # n=1 printer status
    drawer_pin_high: bool = False  # bit 2
    offline: bool = False  # bit 3
    waiting_online_recovery: bool = False  # bit 5
    feed_button_pressed: bool = False  # bit 6
    # n=2 offline cause
    cover_open: bool = False  # bit 2
    feeding_by_button: bool = False  # bit 3
    paper_end_stop: bool = False  # bit 5: printing stopped because the paper ran out
    error_occurred: bool = False  # bit 6
    # n=3 error cause
    recoverable_error: bool = False  # bit 2 (mechanical error, recoverable)
    autocutter_error: bool = False  # bit 3
    unrecoverable_error: bool = False  # bit 5
    auto_recoverable_error: bool = False  # bit 6
    # n=4 paper roll sensor
    paper_near_end: bool = False  # bits 2+3 (0x0C)
    paper_end: bool = False  # bits 5+6 (0x60)
    replies: frozenset[int] = field(default_factory=frozenset)  # which n answered

    @property
    def complete(self) -> bool:
        return self.replies == frozenset(STATUS_KINDS)

    @property
    def out_of_paper(self) -> bool:
        return self.paper_end or self.paper_end_stop

    @property
    def error(self) -> bool:
        return (
            self.error_occurred
            or self.autocutter_error
            or self.unrecoverable_error
            or self.auto_recoverable_error
            or self.recoverable_error
        )

    def _raw(self, name: str) -> bool:
        if name == "paper_end":
            return self.out_of_paper
        value: bool = getattr(self, name)
        return value

    def flag(self, name: str) -> bool | None:
        """One of FLAGS: True when a reply received says so; False when the reply that
        decides it was received and nothing says so; None (unknown) otherwise."""
        if self._raw(name):
            return True  # only a received reply sets a bit
        return False if _DECIDED_BY[name] in self.replies else None

    def flags(self) -> dict[str, bool | None]:
        return {name: self.flag(name) for name in FLAGS}

    def unknown(self) -> list[str]:
        """The flags no received reply decides, in the order of `problems()`."""
        order = ("paper_end", "cover_open", "error", "offline", "paper_near_end")
        return [name for name in order if self.flag(name) is None]

    def problems(self) -> list[str]:
        """What stops printing now, most important first (stable codes for the kiosk); only
        what a received reply says, so an unknown flag is never a problem here."""
        out = []
        if self.out_of_paper:
            out.append("paper_end")
        if self.cover_open:
            out.append("cover_open")
        if self.error:
            out.append("error")
        if self.offline and not out:
            out.append("offline")
        return out

    @property
    def summary(self) -> str:
        """One word: `problem` (something stops printing), `unknown` (nothing known stops
        it, but a flag is unknown) or `ok` (every flag known, none stops printing)."""
        if self.problems():
            return "problem"
        return "unknown" if self.unknown() else "ok"


# The flags of the replies to DLE EOT 1..3, by bit (ESC/POS; DLE EOT 4 is read apart: two
# bits per flag).
_STATUS_BITS: dict[int, tuple[tuple[str, int], ...]] = {
    1: (
        ("drawer_pin_high", 2),
        ("offline", 3),
        ("waiting_online_recovery", 5),
        ("feed_button_pressed", 6),
    ),
    2: (("cover_open", 2), ("feeding_by_button", 3), ("paper_end_stop", 5), ("error_occurred", 6)),
    3: (
        ("recoverable_error", 2),
        ("autocutter_error", 3),
        ("unrecoverable_error", 5),
        ("auto_recoverable_error", 6),
    ),
}


def decode_status(replies: dict[int, int]) -> PrinterStatus:
    """Decode the replies to DLE EOT n by n; a reply failing the fixed pattern is ignored."""
    flags: dict[str, bool] = {}
    answered = set()
    for n, value in replies.items():
        if n not in STATUS_KINDS or not 0 <= value <= 0xFF or not is_status_byte(value):
            continue
        answered.add(n)
        if n in _STATUS_BITS:
            flags.update({name: _bit(value, bit) for name, bit in _STATUS_BITS[n]})
        else:
            flags.update(paper_near_end=value & 0x0C != 0, paper_end=value & 0x60 != 0)
    return PrinterStatus(**flags, replies=frozenset(answered))


_STATUS_BYTE = re.compile(
    b"[" + b"".join(re.escape(bytes([v])) for v in range(256) if is_status_byte(v)) + b"]"
)


class StatusReplyParser:
    """Incremental: bytes in, status bytes out; bytes failing the fixed pattern are counted
    as bad frames and discarded. At most one reply is taken per outstanding request. Noise
    is skipped by a regular expression, not byte by byte in Python."""

    def __init__(self) -> None:
        self.good_frames = 0
        self.bad_frames = 0
        self.discarded_bytes = 0
        self.outstanding = 0

    def expect(self) -> None:
        self.outstanding += 1

    def feed(self, chunk: bytes) -> list[int]:
        out = []
        pos, end = 0, len(chunk)
        while self.outstanding and pos < end:
            found = _STATUS_BYTE.search(chunk, pos)
            if found is None:
                break
            at = found.start()
            self._discard(at - pos)
            self.outstanding -= 1
            self.good_frames += 1
            out.append(chunk[at])
            pos = at + 1
        self._discard(end - pos)
        return out

    def _discard(self, size: int) -> None:
        self.bad_frames += size
        self.discarded_bytes += size

    def cancel(self) -> None:
        """Stop waiting (a request timed out): a late reply is then discarded."""
        self.outstanding = 0


# -- the ticket --------------------------------------------------------------------------

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


@dataclass(frozen=True, slots=True)
class PrintableTicket:
    hall: str
    agency: str
    service: str
    number: str
    issued_at: datetime  # in the site's own timezone
    people_ahead: int
    estimated_wait_seconds: float | None
    status_url: str
    priority: str | None = None
    # [low, high] about the estimate (the ticket status's `estimated_wait_range_seconds`).
    estimated_wait_range: tuple[float, float] | None = None


def _text(value: str) -> bytes:
    """Printer text: code page 437 (every printer's default); accents folded to ASCII."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return "".join(ch if ch.isprintable() else " " for ch in folded).encode("cp437")


def _wrap(value: str, columns: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in value.split():
        while len(word) > columns:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:columns])
            word = word[columns:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= columns:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def qr_code(data: str, module_size: int = 6) -> bytes:
    """GS ( k, model 2: select model, module size, error correction M, store, print."""
    payload = data.encode("ascii")
    if len(payload) > 7089:
        raise ValueError("QR data too long")
    store_len = len(payload) + 3
    return b"".join(
        [
            bytes([GS, 0x28, 0x6B, 4, 0, 0x31, 0x41, 0x32, 0]),  # fn 165: model 2
            bytes([GS, 0x28, 0x6B, 3, 0, 0x31, 0x43, module_size]),  # fn 167: module size
            bytes([GS, 0x28, 0x6B, 3, 0, 0x31, 0x45, 0x31]),  # fn 169: error correction M
            bytes([GS, 0x28, 0x6B, store_len & 0xFF, store_len >> 8, 0x31, 0x50, 0x30]),
            payload,  # fn 180: store
            bytes([GS, 0x28, 0x6B, 3, 0, 0x31, 0x51, 0x30]),  # fn 181: print
        ]
    )


def wait_text(seconds: float | None, span: tuple[float, float] | None = None) -> str:
    """The estimate as printed: "sekitar 20 menit", with its range where there is one
    ("sekitar 20 menit (15-25 menit)")."""
    if seconds is None:
        return "belum dapat diperkirakan"
    out = f"sekitar {_duration(seconds)}"
    if span is not None:
        low, high = (max(0, round(x / 60)) for x in span)
        if high < 90:
            out += f" ({low}-{max(high, low)} menit)"
    return out


def _duration(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 90:
        return f"{minutes} menit"
    return f"{minutes // 60} jam {minutes % 60} menit"


def _size(width: int, height: int) -> bytes:
    """GS ! n: character width and height multipliers, 1..8 each."""
    return bytes([GS, 0x21, (width - 1) << 4 | (height - 1)])


def ticket_bytes(t: PrintableTicket, *, columns: int = 42) -> bytes:
    """The whole ticket as ESC/POS: header, big number, details, QR code, cut."""
    init, center, left = bytes([ESC, 0x40]), bytes([ESC, 0x61, 1]), bytes([ESC, 0x61, 0])
    bold_on, bold_off = bytes([ESC, 0x45, 1]), bytes([ESC, 0x45, 0])
    lf = b"\n"
    at = t.issued_at
    when = (
        f"{_DAYS[at.weekday()]}, {at.day} {_MONTHS[at.month - 1]} {at.year}"
        f"  {at:%H:%M} {at.tzname() or ''}".rstrip()
    )
    out = [init, center, bold_on]
    out += [_text(line) + lf for line in _wrap(t.hall, columns)]
    out += [bold_off]
    out += [_text(line) + lf for line in _wrap(t.agency, columns)]
    out += [b"-" * columns + lf]
    out += [_text(line) + lf for line in _wrap(t.service, columns)]
    out += [lf, _size(1, 1), _text("NOMOR ANTRIAN") + lf]
    out += [_size(6, 6), bold_on, _text(t.number) + lf, bold_off, _size(1, 1)]
    if t.priority:
        # The group's word as printed: "ibu_hamil" -> "PRIORITAS IBU HAMIL".
        shown = f"PRIORITAS {t.priority.replace('_', ' ').upper()}"
        out += [bold_on, _text(shown) + lf, bold_off]
    out += [lf, left]
    out += [_text(f"Tanggal : {when}") + lf]
    out += [_text(f"Antrian di depan Anda: {t.people_ahead} orang") + lf]
    wait = wait_text(t.estimated_wait_seconds, t.estimated_wait_range)
    out += [_text(f"Perkiraan tunggu: {wait}") + lf]
    out += [lf, center, _text("Pindai untuk melihat status antrian:") + lf]
    out += [qr_code(t.status_url), lf]
    out += [_text("Mohon menunggu nomor Anda dipanggil.") + lf]
    out += [lf * 3, bytes([GS, 0x56, 0x42, 0])]  # feed and partial cut
    return b"".join(out)
