"""The framed protocol shared by dispensers and keypads (documented in docs/devices.md).

    STX | ADDR (2 hex) | CMD (1 letter) | LEN (2 hex) | DATA (LEN printable bytes)
        | CRC (4 hex: CRC-16/MODBUS of ADDR..DATA) | ETX

Everything between STX and ETX is printable ASCII, so STX and ETX never occur inside a
frame: an STX always starts a frame (resynchronisation), an ETX always ends one. The
parser is pure and incremental, in the manner of bellows' ash.py: feed it whatever a read
returned, get the complete valid frames back; its buffer is capped and it counts good
frames, bad frames and every byte it threw away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queue_service.errors import AntrianError

STX = 0x02
ETX = 0x03
HEADER = 6  # STX, ADDR x2, CMD, LEN x2
TRAILER = 5  # CRC x4, ETX
MAX_DATA = 64
MAX_FRAME = HEADER + MAX_DATA + TRAILER
_HEX = frozenset(b"0123456789ABCDEF")


class FrameError(AntrianError, ValueError):
    """A value cannot be put into a frame (encoding side)."""

    code = "invalid_frame"


@dataclass(frozen=True, slots=True)
class Frame:
    address: int
    command: str
    data: str

    @property
    def size(self) -> int:
        """Its length on the line (the data is ASCII: one byte per character)."""
        return HEADER + len(self.data) + TRAILER

    def match(self, command: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The data read by `pattern` when this is a `command` frame, else None: the first
        step of every device protocol's decoder (a frame of another command, or with
        malformed data, reports nothing)."""
        return pattern.match(self.data) if self.command == command else None


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), as RS-485 devices commonly use."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def encode(address: int, command: str, data: str = "") -> bytes:
    """The bytes of one frame."""
    if not 0 <= address <= 0xFF:
        raise FrameError("address must be 0..255")
    if len(command) != 1 or not ("A" <= command <= "Z"):
        raise FrameError("command must be one upper-case letter")
    if not data.isascii():
        raise FrameError("data must be ASCII")
    raw = data.encode("ascii")
    if len(raw) > MAX_DATA or any(not 0x20 <= b <= 0x7E for b in raw):
        raise FrameError(f"data must be at most {MAX_DATA} printable ASCII characters")
    body = f"{address:02X}{command}{len(raw):02X}".encode("ascii") + raw
    return bytes([STX]) + body + f"{crc16_modbus(body):04X}".encode("ascii") + bytes([ETX])


def decode(frame: bytes) -> Frame | None:
    """One complete candidate (STX..ETX) checked field by field; None when invalid."""
    if len(frame) < HEADER + TRAILER or frame[0] != STX or frame[-1] != ETX:
        return None
    body, crc = frame[1:-5], frame[-5:-1]
    if not (_HEX.issuperset(body[0:2]) and _HEX.issuperset(body[3:5]) and _HEX.issuperset(crc)):
        return None
    length = int(body[3:5], 16)
    if length != len(body) - 5 or length > MAX_DATA:
        return None
    command = body[2]
    if not 0x41 <= command <= 0x5A:
        return None
    data = body[5:]
    if any(not 0x20 <= b <= 0x7E for b in data):
        return None
    if int(crc, 16) != crc16_modbus(body):
        return None
    return Frame(int(body[0:2], 16), chr(command), data.decode("ascii"))


@dataclass(slots=True)
class ParserStats:
    good_frames: int = 0
    bad_frames: int = 0
    discarded_bytes: int = 0


class FrameParser:
    """Incremental parser: `feed(chunk)` returns the valid frames completed by the chunk."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.stats = ParserStats()
        self._buf = bytearray()  # empty, or a frame in progress starting with STX

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        """Drop a partial frame (the link was lost mid-frame): it counts as a bad frame."""
        if self._buf:
            self._reject(len(self._buf))
            self._buf.clear()

    def _reject(self, size: int) -> None:
        self.stats.bad_frames += 1
        self.stats.discarded_bytes += size

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        pos, end = 0, len(chunk)
        while pos < end:
            if not buf:
                start = chunk.find(STX, pos)
                if start < 0:
                    self.stats.discarded_bytes += end - pos
                    break
                self.stats.discarded_bytes += start - pos
                buf.append(STX)
                pos = start + 1
                continue
            # Inside a frame: the next STX (restart) or ETX (end), whichever comes first.
            stx = chunk.find(STX, pos)
            etx = chunk.find(ETX, pos)
            stop = min(i for i in (stx, etx, end) if i >= 0)
            room = self.max_frame - len(buf)
            if stop - pos > room or (stop == etx and stop - pos + 1 > room):
                # Oversized: throw the frame away and hunt for the next STX.
                taken = min(stop, end) - pos
                self._reject(len(buf) + taken)
                buf.clear()
                pos += taken
                if stop == etx:
                    self.stats.discarded_bytes += 1
                    pos += 1
                continue
            buf += chunk[pos:stop]
            pos = stop
            if stop == end:
                break
            if stop == stx:
                self._reject(len(buf))  # a new frame began before this one ended
                buf.clear()
                continue
            buf.append(ETX)
            pos += 1
            frame = decode(bytes(buf))
            if frame is None:
                self._reject(len(buf))
            else:
                self.stats.good_frames += 1
                frames.append(frame)
            buf.clear()
        return frames
