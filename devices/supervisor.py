"""One supervised task per device: connect, read, close on error or silence, back off, retry.

In the manner of home-assistant's serial sensors: the loop survives unplugging, logs a
lost link once (not once per retry) and publishes its state; the backoff doubles from
`backoff_initial` to `backoff_max` with jitter, and starts again from the beginning once
a connection has produced a good frame. The device kinds differ only in what they do with
a connection (`_session`) and with a good frame.

A device whose address could not be opened since the service started is "not present"
(state `not_present`): said once at INFO, retried quietly with the same backoff, and
announced when it appears. Once a device has been present, losing it is a warning.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

from devices import dispenser, escpos, keypad
from devices.escpos import PrinterStatus, StatusReplyParser
from devices.framing import Frame, FrameParser
from devices.link import Link, LinkError, SerialLink
from queue_service.domain import commands, errors, online
from queue_service.domain.actions import counter_command
from queue_service.domain.events import Event
from queue_service.domain.site import ButtonConfig, DeviceConfig, Site
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import DeviceKind, EventType, FinishOutcome, Source
from queue_service.engine import Engine
from queue_service.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

CONNECTING, UP, BACKING_OFF, NOT_PRESENT = "connecting", "up", "backing_off", "not_present"
COMMIT_RETRY_INITIAL, COMMIT_RETRY_MAX = 0.2, 5.0
KEY_TIMEOUT = 5.0
CHECK_IN_PATIENCE = 5.0  # a scanned code waits this long for an unavailable database
REPLY_TIMEOUT = 1.0  # one DLE EOT reply
PRINT_TIMEOUT = 8.0  # the whole print: waiting for the printer, status, write, status
PRINT_MEMORY = 1000  # tickets remembered as printed (or sent to the printer)
# A status request the printer did not answer in UNANSWERED_AFTER polls in a row (while it
# answered others) is left out of the polls before and after a print, and asked again
# only every REPROBE_POLLS-th poll. A reply missed once keeps its last value for as long
# as the printer's silence_timeout (REPLY_KEPT when that is 0).
UNANSWERED_AFTER = 2
REPROBE_POLLS = 15
REPLY_KEPT = 10.0
KEYPAD_PAUSE_REASON = "Jeda (keypad)"
# A key carries no body: the fields a keypad action takes are fixed. A pause gives this
# reason; a finish records a served visit (as plain text: the domain interns it).
_KEYPAD_BODY = {"reason": KEYPAD_PAUSE_REASON, "outcome": FinishOutcome.SERVED}
# Changes worth a `device_status` message: an absent device going connecting ->
# backing_off -> connecting all day long is not news.
_NOTIFY_ON = frozenset({"connected", "alive", "printer", "present"})


def backoff_delay(attempt: int, initial: float, maximum: float, u: float) -> float:
    """Exponential backoff with jitter: between half and all of min(max, initial * 2^n)."""
    ceiling: float = min(maximum, initial * 2.0 ** min(attempt, 30))
    return ceiling * (0.5 + 0.5 * u)


@dataclass(slots=True)
class DeviceHealth:
    site: str
    device: str
    kind: DeviceKind
    state: str = CONNECTING
    present: bool = False  # the link has opened at least once since the service started
    connected: bool = False
    alive: bool = False  # connected and a good frame (or status reply) arrived since
    connects: int = 0
    reconnects: int = 0
    last_frame_at: float | None = None  # Unix time of the last good frame / status reply
    good_frames: int = 0
    bad_frames: int = 0
    discarded_bytes: int = 0
    last_error: str | None = None
    held: int = 0  # dispenser tickets waiting for the database
    printer: PrinterStatus | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.device,
            "kind": self.kind,
            "state": self.state,
            "present": self.present,
            "connected": self.connected,
            "up": self.alive,
            "reconnects": self.reconnects,
            "last_frame_at": (
                datetime.fromtimestamp(self.last_frame_at).astimezone().isoformat()
                if self.last_frame_at is not None
                else None
            ),
            "good_frames": self.good_frames,
            "bad_frames": self.bad_frames,
            "discarded_bytes": self.discarded_bytes,
            "last_error": self.last_error,
        }
        if self.kind == DeviceKind.DISPENSER:
            out["held_tickets"] = self.held
        if self.kind == DeviceKind.PRINTER:
            # None while nothing is known (no link, no reply yet); a flag no reply decides
            # is null, and `status` says "unknown" rather than "ok" then.
            p = self.printer
            out["printer"] = (
                None
                if p is None
                else {
                    **p.flags(),
                    "problems": p.problems(),
                    "unknown": p.unknown(),
                    "status": p.summary,
                }
            )
        return out


class DeviceRunner(abc.ABC):
    """The supervised loop shared by every kind of device."""

    kind: ClassVar[DeviceKind]

    def __init__(
        self,
        site: Site,
        device: DeviceConfig,
        engine: Engine,
        notify: Callable[[DeviceRunner], None] = lambda _r: None,
        *,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.device = device
        self.engine = engine
        self.notify = notify
        self.rng = rng
        self.wall_clock = wall_clock
        self.health = DeviceHealth(site.id, device.id, self.kind)
        self.link: Link | None = None
        self._attempt = 0
        self._logged_failure = False
        self._deadline = 0.0
        self.unread_bytes = 0  # received, never parsed: still queued when a link closed

    # -- the supervised loop -----------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for job in self.background():
                    group.create_task(job)
                group.create_task(self._connect_loop())
        finally:
            self._set(connected=False, alive=False)

    def background(self) -> list[Any]:
        """Coroutines that live as long as the device, across reconnections."""
        return []

    async def _connect_loop(self) -> None:
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"link-{self.device.id}")
        try:
            while True:
                await self._connect_once(worker)
                self._set(state=BACKING_OFF if self.health.present else NOT_PRESENT)
                delay = backoff_delay(
                    self._attempt, self.device.backoff_initial, self.device.backoff_max, self.rng()
                )
                self._attempt += 1
                await asyncio.sleep(delay)
        finally:
            worker.shutdown(wait=False, cancel_futures=True)

    async def _connect_once(self, worker: ThreadPoolExecutor) -> None:
        h = self.health
        # A device not present yet stays "not_present" while it is tried again.
        self._set(state=CONNECTING if h.present or h.state != NOT_PRESENT else NOT_PRESENT)
        try:
            link = await SerialLink.open(self.device, worker)
        except LinkError as exc:
            self._failed(f"cannot open {self.device.url}: {exc}")
            return
        h.connects += 1
        if h.connects > 1:
            h.reconnects += 1
        self.link = link
        self._deadline = asyncio.get_running_loop().time() + (self.device.silence_timeout or 1e9)
        if not h.present and self._logged_failure:
            log.info(
                "device %s/%s appeared: connected on %s",
                self.site.id,
                self.device.id,
                self.device.url,
            )
            self._logged_failure = False
        else:
            log.info("device %s/%s connected on %s", self.site.id, self.device.id, self.device.url)
        self._set(connected=True, present=True)
        try:
            await self._session(link)
        except LinkError as exc:
            self._failed(str(exc))
        except Exception as exc:
            log.exception("device %s/%s failed", self.site.id, self.device.id)
            self._failed(f"internal error: {exc}")
        finally:
            self.link = None
            self._lost()
            await link.close()
            # Bytes the reader had queued and nobody parsed are thrown away: counted.
            self.unread_bytes += len(link.drain())
            self._sync_stats()
            self._set(connected=False, alive=False)

    def _sync_stats(self) -> None:
        """Copy the parser's counters (and the bytes discarded beside it) into the health."""
        self.health.discarded_bytes = self.unread_bytes

    def _failed(self, message: str) -> None:
        self.health.last_error = message
        if self._logged_failure:
            log.debug("device %s/%s: %s", self.site.id, self.device.id, message)
        elif not self.health.present:
            # Configured but not there (yet): the example hall without its simulator, a
            # device not installed. Not a failure of something that worked: one line.
            log.info(
                "device %s/%s not present (%s); trying again quietly, will log when it appears",
                self.site.id,
                self.device.id,
                message,
            )
            self._logged_failure = True
        else:
            # Once per outage: a device left unplugged all day must not flood the log.
            log.warning("device %s/%s: %s; retrying", self.site.id, self.device.id, message)
            self._logged_failure = True

    def _good_frame(self) -> None:
        h = self.health
        h.last_frame_at = self.wall_clock()
        self._deadline = asyncio.get_running_loop().time() + (self.device.silence_timeout or 1e9)
        if not h.alive:
            self._attempt = 0  # the backoff starts over after the first good frame
            if self._logged_failure:
                log.info("device %s/%s is back", self.site.id, self.device.id)
            self._logged_failure = False
            h.last_error = None
            self._set(state=UP, alive=True)

    def _set(self, **changes: Any) -> None:
        h = self.health
        changed = False
        for name, value in changes.items():
            if getattr(h, name) != value:
                setattr(h, name, value)
                changed = changed or name in _NOTIFY_ON
        if changed:
            self.notify(self)

    def _lost(self) -> None:  # noqa: B027 - an optional hook; most kinds keep nothing
        """The link went away: forget partial input."""

    @abc.abstractmethod
    async def _session(self, link: Link) -> None:
        """Talk to the device over an open link until it fails (each kind its own way)."""

    async def send(self, data: bytes) -> bool:
        """Write to the device if connected; a reply lost with the link is re-derived later."""
        link = self.link
        if link is None:
            return False
        try:
            await link.write(data)
        except LinkError as exc:
            log.debug("device %s/%s: write failed: %s", self.site.id, self.device.id, exc)
            return False
        return True


class FramedRunner(DeviceRunner):
    """Dispensers and keypads: read frames until an error or `silence_timeout`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser = FrameParser()
        self.rejected = 0  # frames with a good checksum but data we cannot use
        self.rejected_bytes = 0  # their bytes: discarded too

    def _sync_stats(self) -> None:
        s, h = self.parser.stats, self.health
        h.good_frames = s.good_frames - self.rejected
        h.bad_frames = s.bad_frames + self.rejected
        h.discarded_bytes = s.discarded_bytes + self.rejected_bytes + self.unread_bytes

    def _reject(self, frame: Frame, why: str, *, shown: bool = True) -> None:
        """Count a frame whose contents are unusable; logged whole unless `shown` is False
        (a scanned code is a booking's key to its ticket: never in the log)."""
        self.rejected += 1
        self.rejected_bytes += frame.size
        self._sync_stats()
        if shown:
            log.warning("device %s/%s: %s: %r", self.site.id, self.device.id, why, frame)
        else:
            log.warning(
                "device %s/%s: %s: %s frame of %d data bytes",
                self.site.id,
                self.device.id,
                why,
                frame.command,
                len(frame.data),
            )

    def _lost(self) -> None:
        self.parser.reset()
        self._sync_stats()

    async def _session(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    data = await link.read()
            except TimeoutError:
                raise LinkError(
                    f"no valid frame for {self.device.silence_timeout:g} s; reconnecting"
                ) from None
            frames = self.parser.feed(data)
            self._sync_stats()
            for frame in frames:
                if frame.command == dispenser.HEARTBEAT:  # the same letter on keypads
                    self._good_frame()
                    continue
                if await self.handle(frame):
                    self._good_frame()
            if not frames and loop.time() >= self._deadline:
                raise LinkError(f"no valid frame for {self.device.silence_timeout:g} s")

    @abc.abstractmethod
    async def handle(self, frame: Frame) -> bool:
        """Act on a frame; False when its contents are unusable (counted as bad)."""


class DispenserRunner(FramedRunner):
    kind = DeviceKind.DISPENSER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: asyncio.Queue[dispenser.DispenserTicket] = asyncio.Queue()
        self.pending: dict[int, dispenser.DispenserTicket] = {}
        self.committed = 0
        self.refused = 0
        # Scanned codes (`C` frames), checked in one at a time, apart from the tickets: a
        # check-in is not held while the database is down (the citizen scans again).
        self.scans: asyncio.Queue[dispenser.DispenserScan] = asyncio.Queue()
        self.scanning: set[int] = set()  # seqs queued or being checked in
        self.check_ins = 0
        self.check_ins_refused = 0

    def background(self) -> list[Any]:
        return [self._commit_loop(), self._check_in_loop()]

    async def handle(self, frame: Frame) -> bool:
        if frame.command == dispenser.SCAN:
            return await self._scanned(frame)
        ticket = dispenser.decode_ticket(frame)
        if ticket is None:
            self._reject(frame, "not a dispenser ticket")
            return False
        button = self.device.buttons.get(ticket.button)
        if button is None:
            await self._refuse(ticket, "unknown_button")
            return True
        if not dispenser.number_allowed(button, self.site.services[button.service], ticket.number):
            await self._refuse(ticket, "number_out_of_range")
            return True
        if ticket.seq not in self.pending:  # else a re-send of a ticket already held
            self.pending[ticket.seq] = ticket
            self.queue.put_nowait(ticket)
            self._set(held=len(self.pending))
        return True

    async def _refuse(self, ticket: dispenser.DispenserTicket, reason: str) -> None:
        self.refused += 1
        log.warning(
            "device %s/%s: ticket %s (seq %d) refused: %s",
            self.site.id,
            self.device.id,
            ticket.number,
            ticket.seq,
            reason,
        )
        await self.send(dispenser.nak(ticket.address, ticket.seq, reason))

    async def _commit_loop(self) -> None:
        while True:
            ticket = await self.queue.get()
            try:
                await self._commit(ticket)
            finally:
                self.pending.pop(ticket.seq, None)
                self._set(held=len(self.pending))

    async def _commit(self, ticket: dispenser.DispenserTicket) -> None:
        button = self.device.buttons[ticket.button]
        key = f"device:{self.device.id}:{ticket.seq}"
        digest = hashlib.sha256(f"{ticket.button};{ticket.number}".encode()).hexdigest()
        delay = COMMIT_RETRY_INITIAL
        while True:
            try:
                _, body = await self.engine.execute(
                    self.site.id,
                    partial(_issue_device_ticket, button=button, number=ticket.number),
                    _device_ticket_answer,
                    idempotency_key=key,
                    request_hash=digest,
                )
            except StoreUnavailable:
                # Held, in order: nothing after this ticket is tried before it commits.
                await asyncio.sleep(delay * (0.5 + 0.5 * self.rng()))
                delay = min(COMMIT_RETRY_MAX, delay * 2)
                continue
            except errors.DomainError as exc:
                await self._refuse(ticket, exc.code)
                return
            except Exception:
                log.exception(
                    "device %s/%s: ticket %s failed", self.site.id, self.device.id, ticket.number
                )
                await self._refuse(ticket, "other")
                return
            self.committed += 1
            await self.send(dispenser.ack(ticket.address, ticket.seq, body["number"]))
            return

    # -- check-in by a scanned code ---------------------------------------------------

    async def _scanned(self, frame: Frame) -> bool:
        scan = dispenser.decode_scan(frame)
        if scan is None:
            self._reject(frame, "not a readable check-in code", shown=False)
            seq = dispenser.scan_seq(frame)
            if seq is not None:  # refused under its seq, so the dispenser stops re-sending
                self.check_ins_refused += 1
                await self.send(dispenser.nak(frame.address, seq, "unreadable_code"))
            return False
        if scan.seq not in self.scanning:  # else a re-send of a scan being checked in
            self.scanning.add(scan.seq)
            self.scans.put_nowait(scan)
        return True

    async def _check_in_loop(self) -> None:
        while True:
            scan = await self.scans.get()
            try:
                answer = await self._check_in(scan)
            finally:
                self.scanning.discard(scan.seq)
            await self.send(answer)

    async def _check_in(self, scan: dispenser.DispenserScan) -> bytes:
        """Run the check-in of a scanned code through the engine, as the kiosk's check-in
        does; the frame that answers it. Idempotent per (device, seq), as tickets are: a
        scan re-sent after its answer was lost gets the stored answer, the same number. The
        database being down is waited out for CHECK_IN_PATIENCE (a citizen stands at the
        dispenser), then refused: nothing was printed, and scanning again is a new scan."""
        code = scan.code.upper()
        key = f"device:{self.device.id}:{scan.seq}"
        digest = hashlib.sha256(f"check-in;{code}".encode()).hexdigest()
        decide = partial(
            online.check_in,
            code=code,
            ticket_id=secrets.token_urlsafe(16),
            source=Source.DISPENSER,
        )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + CHECK_IN_PATIENCE
        delay = COMMIT_RETRY_INITIAL
        while True:
            try:
                _, body = await self.engine.execute(
                    self.site.id,
                    decide,
                    _check_in_answer,
                    idempotency_key=key,
                    request_hash=digest,
                )
            except StoreUnavailable:
                wait = delay * (0.5 + 0.5 * self.rng())
                if loop.time() + wait >= give_up:
                    return self._scan_refused(scan, "database_unavailable")
                await asyncio.sleep(wait)
                delay = min(COMMIT_RETRY_MAX, delay * 2)
                continue
            except errors.DomainError as exc:
                return self._scan_refused(scan, exc.code)
            except Exception:
                log.exception(
                    "device %s/%s: check-in (seq %d) failed", self.site.id, self.device.id, scan.seq
                )
                return self._scan_refused(scan, "other")
            self.check_ins += 1
            log.info(
                "device %s/%s: check-in (seq %d): ticket %s",
                self.site.id,
                self.device.id,
                scan.seq,
                body["number"],
            )
            return dispenser.checked_in(scan.address, scan.seq, body["number"])

    def _scan_refused(self, scan: dispenser.DispenserScan, reason: str) -> bytes:
        self.check_ins_refused += 1
        log.info(
            "device %s/%s: check-in (seq %d) refused: %s",
            self.site.id,
            self.device.id,
            scan.seq,
            reason,
        )
        return dispenser.nak(scan.address, scan.seq, reason)


def _check_in_answer(state: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
    """The number the dispenser prints: a booking's new ticket (booking_checked_in, then
    its ticket_issued) or a remote join's own (ticket_confirmed), the last event's ticket."""
    ticket_id = events[-1].ticket_id
    assert ticket_id is not None
    status = 201 if events[0].type == EventType.BOOKING_CHECKED_IN else 200
    return status, {"number": state.tickets[ticket_id].number}


class NumberTaken(errors.Conflict):
    code = "number_taken"


def _issue_device_ticket(
    state: SiteState, now: datetime, *, button: ButtonConfig, number: str
) -> list[Event]:
    if any(t.number == number for t in state.tickets.values()):
        raise NumberTaken(f"number {number} was already issued today", number=number)
    return commands.issue(
        state,
        now,
        ticket_id=secrets.token_urlsafe(16),
        service=button.service,
        priority=button.priority,
        source=Source.DISPENSER,
        number=number,
    )


def _device_ticket_answer(state: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
    event = events[0]
    return 201, {
        "id": event.ticket_id,
        "number": event.data["number"],
        "service": event.service,
        "seq": event.seq,
    }


# How far back a restarted service looks for a keypad address's last acted press.
RECALL_WINDOW = timedelta(minutes=15)
# The part of a keypad press's answer key after "keypad:<device>:<address>:".
_PRESS_KEY = re.compile(r"(?P<key>[A-Z]):(?P<seq>\d{1,4}):[0-9a-f]{8}")


class KeypadRunner(FramedRunner):
    kind = DeviceKind.KEYPAD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys_done = 0
        self.keys_refused = 0
        self.keys_repeated = 0  # re-sent presses answered again without acting
        # Across reconnections (the runner outlives its links); across a restart it is
        # filled from the database, per address before its first press (`_recall`).
        self.memory = keypad.PressMemory()
        self._recalled: set[int] = set()

    async def handle(self, frame: Frame) -> bool:
        press = keypad.decode_key(frame)
        if press is None:
            self._reject(frame, "not a keypad key")
            if keypad.is_key_frame(frame):
                await self.send(keypad.malformed(frame))
            return False
        if press.address not in self._recalled:
            await self._recall(press.address)
        answer = self.memory.repeat(press)
        if answer is None:
            answer = await self._act(press)
            self.memory.remember(press, answer)  # before sending: the answer may be lost
        else:
            self.keys_repeated += 1
            log.info(
                "device %s/%s: key %s (seq %d) from address %d again: answered as before",
                self.site.id,
                self.device.id,
                press.key,
                press.seq,
                press.address,
            )
        await self.send(answer)
        return True

    def _key_prefix(self, address: int) -> str:
        # Device ids are [a-z0-9_-]: the prefix of one device never starts another's.
        return f"keypad:{self.device.id}:{address}:"

    async def _recall(self, address: int) -> None:
        """The last press this address acted on shortly before this process started, from
        its stored answer (looked up until the database has answered once; when it cannot,
        the press acts, as a new one). Only the last RECALL_WINDOW counts: a keypad
        re-sends an unanswered press every second or so, and an older press is more likely
        an unrelated one that a power-cycled keypad numbered alike."""
        if self.memory.knows(address):
            self._recalled.add(address)
            return
        since = self.engine.clock.now() - RECALL_WINDOW
        try:
            async with asyncio.timeout(KEY_TIMEOUT):
                stored = await self.engine.store.latest_answer(
                    self.site.id, self._key_prefix(address), since
                )
        except (StoreUnavailable, TimeoutError):
            log.warning(
                "device %s/%s: last press of address %d not known",
                self.site.id,
                self.device.id,
                address,
            )
            return
        self._recalled.add(address)
        if stored is None:
            return
        found = _PRESS_KEY.fullmatch(stored.key.removeprefix(self._key_prefix(address)))
        try:
            number = json.loads(stored.response)["number"]
        except (ValueError, TypeError, KeyError):
            number = None
        if found is None or not (number is None or isinstance(number, str)):
            log.warning(
                "device %s/%s: stored press %r not understood; not recalled",
                self.site.id,
                self.device.id,
                stored.key,
            )
            return
        key, seq = found["key"], int(found["seq"])
        self.memory.remember(
            keypad.KeyPress(address, key, seq), keypad.display(address, key, seq, number)
        )

    async def _act(self, press: keypad.KeyPress) -> bytes:
        """Carry out a new press; the frame that answers it."""
        counter_id = self.device.addresses.get(press.address)
        if counter_id is None:
            # Like a counter token used on a counter it is not bound to.
            return self._refusal(press, "counter_not_allowed")
        action = press.action
        if action is None:
            return self._refusal(press, "unknown_key")
        # Committed with its answer under a key of this press alone (never matched by a
        # later press: keypads may repeat a seq after a power cycle), for `_recall`.
        key = f"{self._key_prefix(press.address)}{press.key}:{press.seq}:{secrets.token_hex(4)}"
        try:
            async with asyncio.timeout(KEY_TIMEOUT):
                _, body = await self.engine.execute(
                    self.site.id,
                    counter_command(action, counter_id, _KEYPAD_BODY),
                    _keypad_answer,
                    idempotency_key=key,
                )
        except (StoreUnavailable, TimeoutError):
            return self._refusal(press, "database_unavailable")
        except errors.DomainError as exc:
            return self._refusal(press, exc.code)
        self.keys_done += 1
        return keypad.display(press.address, press.key, press.seq, body["number"])

    def _refusal(self, press: keypad.KeyPress, code: str) -> bytes:
        self.keys_refused += 1
        return keypad.error(press.address, press.key, press.seq, code)


def _keypad_answer(state: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
    ticket_id = next((e.ticket_id for e in events if e.ticket_id), None)
    number = state.tickets[ticket_id].number if ticket_id in state.tickets else None
    return 200, {"number": number}


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    # printed: written, and the printer answered afterwards with nothing that stops it;
    # unconfirmed: written, but the printer did not answer afterwards (the paper may well
    # have come out; it is never sent again); failed: nothing written (refused, no link,
    # no answer), or the printer said afterwards that printing stopped.
    status: str
    message: str
    problems: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # flags the printer does not report (printed anyway)


_PROBLEM_TEXT = {
    "paper_end": "the ticket printer is out of paper",
    "cover_open": "the ticket printer's cover is open",
    "error": "the ticket printer reports an error",
    "offline": "the ticket printer is offline",
}


def describe(problems: list[str]) -> str:
    return "; ".join(_PROBLEM_TEXT.get(p, p) for p in problems)


# What stays unknown when a printer does not answer DLE EOT n.
_UNKNOWN_TEXT = {1: "online state", 2: "cover state", 3: "error state", 4: "paper state"}


@dataclass(slots=True)
class PrintJob:
    """One ticket's print attempt: every request for that ticket awaits the same task."""

    sent: bool = False  # bytes of the ticket may have reached the printer
    task: asyncio.Task[PrintOutcome] = field(init=False)


class PrinterRunner(DeviceRunner):
    kind = DeviceKind.PRINTER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser = StatusReplyParser()
        self.lock = asyncio.Lock()
        # Recent tickets by id: in progress, or done after bytes were sent to the printer.
        self.print_jobs: OrderedDict[str, PrintJob] = OrderedDict()
        self.jobs = 0
        self.unanswered: frozenset[int] = frozenset()  # DLE EOT n it did not answer lately
        self.polls = 0
        self._replies: dict[int, tuple[int, float]] = {}  # n -> last reply, when (loop time)
        self._misses: dict[int, int] = {}  # n -> polls in a row it alone went unanswered

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await cancel_and_wait([j.task for j in self.print_jobs.values() if not j.task.done()])

    def _sync_stats(self) -> None:
        h, p = self.health, self.parser
        h.good_frames, h.bad_frames = p.good_frames, p.bad_frames
        h.discarded_bytes = p.discarded_bytes + self.unread_bytes

    def _lost(self) -> None:
        self.parser.cancel()
        self.unanswered = frozenset()  # another printer may be plugged in: ask it all
        self._replies.clear()
        self._misses.clear()
        self._set(printer=None)

    async def _session(self, link: Link) -> None:
        while True:
            async with self.lock:
                await self.poll(link)
            await asyncio.sleep(self.device.poll_interval)

    def _kinds_to_ask(self, for_print: bool) -> list[int]:
        everything = list(escpos.STATUS_KINDS)
        if not for_print and self.polls % REPROBE_POLLS == 0:
            return everything  # now and then: has it started answering them?
        return [n for n in everything if n not in self.unanswered] or everything

    async def poll(self, link: Link, *, for_print: bool = False) -> PrinterStatus | None:
        """Ask DLE EOT n and decode; None when the printer did not answer at all.

        A request the printer keeps leaving unanswered while it answers others (some
        printers answer `DLE EOT 1` only) is asked again only every REPROBE_POLLS-th poll
        and not before or after a print, so each poll does not wait a second for it; the
        flags it would decide are unknown. A reply missed once keeps its last value for
        the silence timeout, as a whole poll missed does."""
        loop = asyncio.get_running_loop()
        self.polls += 1
        self.parser.feed(link.drain())  # nothing was asked: whatever is there is noise
        replies: dict[int, int] = {}
        silence = self.device.silence_timeout
        wait = min(REPLY_TIMEOUT, silence / 4) if silence else REPLY_TIMEOUT
        asked = self._kinds_to_ask(for_print)
        for n in asked:
            self.parser.expect()
            await link.write(escpos.status_request(n))
            try:
                async with asyncio.timeout(wait):
                    while n not in replies:
                        values = self.parser.feed(await link.read())
                        if values:
                            replies[n] = values[0]
            except TimeoutError:
                self.parser.cancel()
                if not replies:
                    break  # not even the first answered: the printer is silent, don't wait 4x
                self.parser.feed(link.drain())  # a late reply must not answer the next one
        self._sync_stats()
        if not replies:
            if loop.time() >= self._deadline:
                raise LinkError(f"no status reply for {self.device.silence_timeout:g} s")
            return None
        now = loop.time()
        for n in asked:
            if n in replies:
                self._replies[n] = (replies[n], now)
                self._misses[n] = 0
            else:
                self._misses[n] = self._misses.get(n, 0) + 1
        self._note_unanswered({n for n, m in self._misses.items() if m >= UNANSWERED_AFTER})
        kept = silence or REPLY_KEPT
        status = escpos.decode_status(
            {n: value for n, (value, at) in self._replies.items() if now - at <= kept}
        )
        self._good_frame()
        if status != self.health.printer:
            problems = status.problems()
            if problems:
                log.warning("printer %s/%s: %s", self.site.id, self.device.id, describe(problems))
            self._set(printer=status)
        return status

    def _note_unanswered(self, kinds: frozenset[int] | set[int]) -> None:
        unanswered = frozenset(kinds)
        if unanswered == self.unanswered:
            return
        if unanswered - self.unanswered:
            log.warning(
                "printer %s/%s does not answer DLE EOT %s: %s unknown (printing goes on)",
                self.site.id,
                self.device.id,
                ", ".join(str(n) for n in sorted(unanswered)),
                "its " + " and ".join(sorted({_UNKNOWN_TEXT[n] for n in unanswered})),
            )
        else:
            log.info(
                "printer %s/%s answers DLE EOT %s again",
                self.site.id,
                self.device.id,
                ", ".join(str(n) for n in sorted(self.unanswered - unanswered)),
            )
        self.unanswered = unanswered

    async def print_ticket(self, data: bytes, ticket_id: str) -> PrintOutcome:
        """Print a ticket at most once, however often (and however concurrently) asked.

        The attempt is recorded before anything is written: a second request for the same
        ticket (a kiosk's retry with the same Idempotency-Key) waits for the first attempt
        and answers with its outcome, and once bytes were sent the ticket is never printed
        again, even when the check after printing failed or timed out. Only an attempt that
        failed before writing anything is forgotten, so a later retry may print.
        """
        job = self.print_jobs.get(ticket_id)
        if job is None:
            link = self.link
            if link is None:
                return PrintOutcome("failed", "the ticket printer is not connected", ("offline",))
            job = PrintJob()
            # A task of its own: the print runs to its end even if the request that
            # started it goes away, and every request for the ticket awaits the same one.
            job.task = asyncio.create_task(
                self._print(link, data, job), name=f"print:{self.device.id}:{ticket_id[:8]}"
            )
            job.task.add_done_callback(partial(self._print_done, ticket_id, job))
            self.print_jobs[ticket_id] = job
            self._trim_print_jobs()
        elif job.task.done() and not job.task.cancelled():
            earlier = job.task.result()
            if earlier.status == "printed":
                return PrintOutcome("printed", "the ticket was already printed")
            return earlier
        try:
            return await asyncio.shield(job.task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not job.task.cancelled() or (current is not None and current.cancelling()):
                raise  # this request was cancelled, not the print
            if job.sent:
                return PrintOutcome("unconfirmed", "printing was interrupted after sending")
            return PrintOutcome("failed", "printing was interrupted", ("offline",))

    def _print_done(self, ticket_id: str, job: PrintJob, task: asyncio.Task[PrintOutcome]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if not failed and task.result().status == "printed":
            self.jobs += 1
        if not job.sent and self.print_jobs.get(ticket_id) is job:
            # Nothing reached the printer: a retry may try again.
            del self.print_jobs[ticket_id]
        elif failed and not task.cancelled():
            log.error(
                "printer %s/%s: print failed",
                self.site.id,
                self.device.id,
                exc_info=task.exception(),
            )

    def _trim_print_jobs(self) -> None:
        excess = len(self.print_jobs) - PRINT_MEMORY
        if excess > 0:
            done = [t for t, j in self.print_jobs.items() if j.task.done()]
            for ticket_id in done[:excess]:
                del self.print_jobs[ticket_id]

    async def _print(self, link: Link, data: bytes, job: PrintJob) -> PrintOutcome:
        """Print, but only on a printer that says (just now) that nothing stops it; then
        check again. A flag the printer does not report does not stop the print (a hall
        would rather print than refuse a ticket): the outcome lists it as unknown."""
        try:
            async with asyncio.timeout(PRINT_TIMEOUT), self.lock:
                before = await self.poll(link, for_print=True)
                if before is None:
                    return PrintOutcome(
                        "failed", "the ticket printer does not answer", ("offline",)
                    )
                problems = before.problems()
                if problems:
                    return PrintOutcome("failed", describe(problems), tuple(problems))
                job.sent = True  # from here on, never again: part of it may come out
                await link.write(data)
                after = await self.poll(link, for_print=True)
                if after is None:
                    return PrintOutcome(
                        "unconfirmed",
                        "the ticket was sent to the printer, which did not answer afterwards",
                    )
                if after.problems():
                    problems = after.problems()
                    return PrintOutcome(
                        "failed",
                        f"printing stopped: {describe(problems)}",
                        tuple(problems),
                    )
        except TimeoutError:
            if job.sent:
                return PrintOutcome(
                    "unconfirmed",
                    "the ticket was sent to the printer, which did not confirm it in time",
                )
            return PrintOutcome("failed", "the ticket printer did not answer in time", ("offline",))
        except LinkError as exc:
            if job.sent:
                return PrintOutcome(
                    "unconfirmed",
                    f"the ticket was sent to the printer, then its link failed: {exc}",
                )
            return PrintOutcome("failed", f"the ticket printer link failed: {exc}", ("offline",))
        unknown = tuple(after.unknown())
        if unknown:
            return PrintOutcome(
                "printed",
                "the ticket was printed (the printer does not report "
                + ", ".join(u.replace("_", " ") for u in unknown)
                + ")",
                unknown=unknown,
            )
        return PrintOutcome("printed", "the ticket was printed")


RUNNERS: dict[str, type[DeviceRunner]] = {
    runner.kind: runner for runner in (DispenserRunner, KeypadRunner, PrinterRunner)
}


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
