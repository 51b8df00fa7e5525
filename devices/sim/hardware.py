"""Simulated devices speaking the documented protocols (docs/devices.md) on a SimPort."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from dataclasses import dataclass, field

from devices.framing import FrameParser, encode
from devices.sim.ports import SimPort
from queue_service.errors import AntrianError

DLE, EOT = 0x10, 0x04
CUT = bytes([0x1D, 0x56, 0x42, 0x00])


class _FramedDevice(abc.ABC):
    """A device that speaks frames on its port and has its own timer: every `resend`
    seconds it re-sends what is unanswered, and every `heartbeat` seconds (counted in
    those ticks) it sends its heartbeats. The timer task is kept and cancelled on stop."""

    def __init__(self, port: SimPort, *, heartbeat: float, resend: float) -> None:
        self.port = port
        self.heartbeat = heartbeat
        self.resend = resend
        self.parser = FrameParser()
        self._since_heartbeat = 0.0
        self._task: asyncio.Task[None] | None = None
        port.on_data = self._received

    async def start(self, *, timers: bool = True) -> None:
        """Opens the port; without `timers` it sends nothing by itself (no re-sends or
        heartbeats), so every byte on the line is the caller's own."""
        await self.port.start()
        if timers:
            self._task = asyncio.create_task(self._timer())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.port.close()

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.resend)
            self._tick_now()

    def _tick_now(self) -> None:
        """One tick of the device's own timer: the re-sends, then the heartbeats when due."""
        self._resend_unanswered()
        self._since_heartbeat += self.resend
        if self._since_heartbeat >= self.heartbeat:
            self._since_heartbeat = 0.0
            self._send_heartbeats()

    @abc.abstractmethod
    def _resend_unanswered(self) -> None:
        """Sends again every frame the service has not answered yet."""

    @abc.abstractmethod
    def _send_heartbeats(self) -> None:
        """Sends the heartbeat of every address on this port."""

    @abc.abstractmethod
    def _received(self, data: bytes) -> None:
        """Takes bytes the service sent on the port."""


class SimDispenser(_FramedDevice):
    """Prints its own ticket on a button press, reports it, re-sends until acknowledged.

    `numbering` maps button -> (letters, first number): ("X", 1) prints X001, X002...;
    ("A", 501) prints A501, A502... (a block of service A's numbers).

    Its code reader: `scan(code)` reports a booking's or remote join's code (`C` frame),
    re-sent until answered; a `K` answer prints the number it carries."""

    def __init__(
        self,
        port: SimPort,
        numbering: dict[int, tuple[str, int]],
        *,
        address: int = 1,
        heartbeat: float = 1.0,
        resend: float = 0.5,
        first_seq: int = 1,
    ) -> None:
        super().__init__(port, heartbeat=heartbeat, resend=resend)
        self.numbering = numbering
        self.address = address
        self.seq = first_seq - 1
        self.next_number = {b: first for b, (_, first) in numbering.items()}
        self.unacked: dict[int, bytes] = {}
        self.printed: list[tuple[int, str]] = []  # (seq, number) in press order
        self.acked: dict[int, str] = {}
        self.checked_in: dict[int, str] = {}  # scan seq -> the number printed for it
        self.refused: dict[int, str] = {}
        self.ignore_acks = False  # as if every acknowledgement were lost on the line
        self.lost: list[tuple[str, int, str]] = []  # answers ignored: (command, seq, data)
        self.answered = asyncio.Event()

    def press(self, button: int) -> tuple[int, str]:
        letters, _ = self.numbering[button]
        number = f"{letters}{self.next_number[button]:03d}"
        self.next_number[button] += 1
        self.seq += 1
        frame = encode(self.address, "T", f"{button};{number};{self.seq}")
        self.unacked[self.seq] = frame
        self.printed.append((self.seq, number))
        self.port.send(frame)
        return self.seq, number

    def scan(self, code: str) -> int:
        """The reader scanned `code`: reported under the next seq (nothing printed yet)."""
        self.seq += 1
        frame = encode(self.address, "C", f"{code};{self.seq}")
        self.unacked[self.seq] = frame
        self.port.send(frame)
        return self.seq

    async def scan_and_wait(self, code: str, timeout: float = 5.0) -> tuple[str, str]:
        """Scan `code` and wait for the answer: ("K", number printed) or ("N", code)."""
        seq = self.scan(code)
        async with asyncio.timeout(timeout):
            while seq in self.unacked:
                self.answered.clear()
                await self.answered.wait()
        if seq in self.checked_in:
            return "K", self.checked_in[seq]
        return "N", self.refused[seq]

    def _resend_unanswered(self) -> None:
        for seq in sorted(self.unacked):
            self.port.send(self.unacked[seq])

    def _send_heartbeats(self) -> None:
        self.port.send(encode(self.address, "H"))

    def _received(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            seq_text, _, value = frame.data.partition(";")
            if not seq_text.isdigit():
                continue
            seq = int(seq_text)
            if self.ignore_acks:
                self.lost.append((frame.command, seq, value))
                continue
            if frame.command == "A":
                self.acked[seq] = value
            elif frame.command == "K":
                if seq in self.unacked:  # printed once, however often answered
                    self.printed.append((seq, value))
                self.checked_in[seq] = value
            elif frame.command == "N":
                self.refused[seq] = value
            else:
                continue
            self.unacked.pop(seq, None)
            self.answered.set()


@dataclass
class KeypadDisplay:
    """One keypad: what it shows (the last answer), every answer in order, and its press
    counter (kept across power cycles, as docs/devices.md asks of keypads)."""

    kind: str = ""  # "D" number or "E" error
    text: str = ""
    answers: list[tuple[str, str, int | None, str]] = field(
        default_factory=list
    )  # (kind, key, seq or None, text)
    lost: list[tuple[str, str, int | None, str]] = field(default_factory=list)  # ignored
    seq: int = -1  # the last press's sequence number
    waiting: bytes | None = None  # the press sent and not answered yet


class KeypadBusy(AntrianError, ValueError):
    """A keypad takes one press at a time: the last one is not answered yet."""

    code = "keypad_busy"


class SimKeypadBus(_FramedDevice):
    """Several keypads on one multi-drop line; each answer goes to its keypad's display.

    Each keypad numbers its presses (0..9999, then 0 again) and re-sends an unanswered press,
    same number, every `resend` seconds until the service answers it."""

    def __init__(
        self,
        port: SimPort,
        addresses: list[int],
        *,
        heartbeat: float = 1.0,
        resend: float = 0.5,
        first_seq: int = 0,
    ) -> None:
        super().__init__(port, heartbeat=heartbeat, resend=resend)
        self.addresses = addresses
        self.displays = {a: KeypadDisplay(seq=(first_seq - 1) % 10_000) for a in addresses}
        self.answered = asyncio.Event()
        self.ignore_answers = False  # as if every answer were lost on the line

    def press(self, address: int, key: str) -> int:
        """A new press: the next sequence number; refused while the last is unanswered."""
        display = self.displays[address]
        if display.waiting is not None:
            raise KeypadBusy(f"keypad {address} still waits for the answer to seq {display.seq}")
        display.seq = (display.seq + 1) % 10_000
        display.waiting = encode(address, "C", f"{key};{display.seq}")
        self.port.send(display.waiting)
        return display.seq

    async def press_and_wait(self, address: int, key: str, timeout: float = 5.0) -> tuple[str, str]:
        seq = self.press(address, key)
        return await self.wait_answer(address, seq, timeout)

    async def wait_answer(self, address: int, seq: int, timeout: float = 5.0) -> tuple[str, str]:
        """(kind, text) of the first answer to press `seq` of that keypad."""
        display = self.displays[address]
        async with asyncio.timeout(timeout):
            while True:
                for kind, _, got, text in display.answers:
                    if got == seq:
                        return kind, text
                self.answered.clear()
                await self.answered.wait()

    def _resend_unanswered(self) -> None:
        for display in self.displays.values():
            if display.waiting is not None:
                self.port.send(display.waiting)

    def _send_heartbeats(self) -> None:
        for address in self.addresses:
            self.port.send(encode(address, "H"))

    def _received(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            display = self.displays.get(frame.address)
            if display is None or frame.command not in ("D", "E"):
                continue
            key, _, rest = frame.data.partition(";")
            seq_text, _, text = rest.partition(";")
            seq = int(seq_text) if seq_text.isdigit() else None
            answer = (frame.command, key, seq, text)
            if self.ignore_answers:
                display.lost.append(answer)
                continue
            display.answers.append(answer)
            if seq is None or seq == display.seq:
                # An answer to an older press (a late duplicate) does not change the display.
                display.kind, display.text = frame.command, text
                display.waiting = None
            self.answered.set()


class SimPrinter:
    """An ESC/POS printer: answers DLE EOT 1..4 from switchable states, keeps what it
    printed (one entry per cut), and prints nothing while out of paper or open."""

    def __init__(self, port: SimPort) -> None:
        self.port = port
        self.paper_near_end = False
        self.paper_end = False
        self.cover_open = False
        self.autocutter_error = False
        self.unrecoverable_error = False
        self.auto_recoverable_error = False
        self.mute = False  # powered off behind a live device server: no answers
        # Which DLE EOT n it answers (some printers answer n=1 only); others get no reply.
        self.answers: frozenset[int] = frozenset({1, 2, 3, 4})
        self.status_requests = 0
        self.tickets: list[bytes] = []
        self.lost: list[bytes] = []  # data sent while it could not print
        self._job = bytearray()
        self._pending_dle = 0  # bytes of a DLE EOT n seen so far
        port.on_data = self._received

    async def start(self) -> None:
        await self.port.start()

    async def stop(self) -> None:
        await self.port.close()

    @property
    def offline(self) -> bool:
        return self.paper_end or self.cover_open or self.error

    @property
    def error(self) -> bool:
        return self.autocutter_error or self.unrecoverable_error or self.auto_recoverable_error

    def status_byte(self, n: int) -> int:
        value = 0b0001_0010
        if n == 1:
            value |= self.offline << 3
        elif n == 2:
            value |= self.cover_open << 2 | self.paper_end << 5 | self.error << 6
        elif n == 3:
            value |= (
                self.autocutter_error << 3
                | self.unrecoverable_error << 5
                | self.auto_recoverable_error << 6
            )
        elif n == 4:
            value |= (0x0C if self.paper_near_end or self.paper_end else 0) | (
                0x60 if self.paper_end else 0
            )
        return value

    def _received(self, data: bytes) -> None:
        for byte in data:
            if self._pending_dle == 0 and byte == DLE:
                self._pending_dle = 1
                continue
            if self._pending_dle == 1:
                if byte == EOT:
                    self._pending_dle = 2
                    continue
                self._pending_dle = 0
                self._job.append(DLE)
            elif self._pending_dle == 2:
                self._pending_dle = 0
                if 1 <= byte <= 4:
                    self.status_requests += 1
                    if not self.mute and byte in self.answers:
                        self.port.send(bytes([self.status_byte(byte)]))
                    continue
                self._job += bytes([DLE, EOT])
            self._job.append(byte)
            if self._job.endswith(CUT):
                job, self._job = bytes(self._job), bytearray()
                if self.offline or self.mute:
                    self.lost.append(job)
                else:
                    self.tickets.append(job)
