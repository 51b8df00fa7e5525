"""The link: one small async interface to a port named by a pyserial URL.

pyserial itself, with a reader thread per open link and one worker thread per device for
opening, writing and closing, so no call ever blocks the event loop. Chosen by test over
the asyncio serial libraries: of pyserial-asyncio-fast 0.16, serialx 1.15 and this, only
this one read, wrote and noticed an unplug on a pty, on socket:// and on rfc2217://
alike, with under 10 ms of loop lag (docs/devices.md has the figures). A thread per
device costs little at the tens of devices a hall has.

Reads are chunks on every kind of link, never single bytes: pyserial's `in_waiting` is 0
or 1 on `socket://` (a select), and its RFC 2217 client queues each received byte on its
own, so a noisy network link would otherwise hand the event loop one byte at a time (3 MiB
of line noise took 73 s at 96% of a core). The reader thread stops reading while
`MAX_PENDING` bytes wait for the event loop, so a device that floods is slowed down by its
own TCP window or tty buffer rather than by the service's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import serial
import serial.rfc2217
from serial.urlhandler import protocol_socket

from queue_service.domain.site import DeviceConfig
from queue_service.errors import AntrianError

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.1  # how often the reader thread looks at its stop flag
WRITE_TIMEOUT = 5.0
CHUNK = 65536  # the most one read takes, and the most `read()` hands over at once
MAX_PENDING = 1 << 20  # bytes read and not yet taken by the event loop before reading waits
_RFC2217_MAX_QUEUED = 16  # chunks pyserial's RFC 2217 reader may hold before it waits
# TCP keepalive on network links: a device server that vanished (power, cable) is noticed
# within about IDLE + INTERVAL * COUNT seconds even when nothing is being sent.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3


class LinkError(AntrianError):
    """The port could not be opened, or the link was lost."""

    code = "device_link"


class Link(Protocol):
    async def read(self) -> bytes:
        """The next bytes received (at least one); raises LinkError when the link is lost."""
        ...

    def drain(self) -> bytes:
        """Whatever was received and not read yet, without waiting."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


def enable_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class ChunkedRfc2217Serial(serial.rfc2217.Serial):  # type: ignore[misc]
    """pyserial's RFC 2217 client, whose reader thread queues the data of each receive as
    one chunk instead of byte by byte (about 9 s of CPU per MiB in pyserial 3.5). The
    Telnet state machine is pyserial's own, unchanged; `read()` and `in_waiting` work as
    before (`in_waiting` counts chunks, so `read(in_waiting or 1)` takes at least one)."""

    _held_back = False  # backpressure, only once open: the opening needs the reader

    def open(self) -> None:
        self._held_back = False
        super().open()
        self._held_back = True

    def _telnet_read_loop(self) -> None:
        iac = serial.rfc2217.IAC
        normal, iac_seen, negotiate = (
            serial.rfc2217.M_NORMAL,
            serial.rfc2217.M_IAC_SEEN,
            serial.rfc2217.M_NEGOTIATE,
        )
        mode = normal
        suboption: bytearray | None = None
        telnet_command = b""
        queue = self._read_buffer
        while self.is_open:
            # Backpressure: while the link's reader is behind, leave the data in the socket.
            # Not while opening: the answers to the options it negotiates come this way
            # (and whatever data arrived meanwhile is purged at the end of the opening).
            while self._held_back and self.is_open and queue.qsize() >= _RFC2217_MAX_QUEUED:
                time.sleep(0.005)
            try:
                data = self._socket.recv(CHUNK)
            except TimeoutError:
                continue  # pyserial's socket has a timeout: look at is_open now and then
            except OSError:
                queue.put(None)  # the connection failed
                break
            if not data:
                queue.put(None)  # the connection was closed
                break
            out = bytearray()
            pos, end = 0, len(data)
            while pos < end:
                if mode == normal:
                    stop = data.find(iac, pos)
                    if stop < 0:
                        stop = end
                    run = data[pos:stop]
                    if suboption is not None:
                        suboption += run
                    else:
                        out += run
                    pos = stop
                    if stop < end:
                        mode = iac_seen
                        pos += 1
                    continue
                byte = data[pos : pos + 1]
                pos += 1
                if mode == iac_seen:
                    mode = normal
                    if byte == iac:  # a doubled IAC is one 0xFF of data
                        if suboption is not None:
                            suboption += iac
                        else:
                            out += iac
                    elif byte == serial.rfc2217.SB:
                        suboption = bytearray()
                    elif byte == serial.rfc2217.SE:
                        self._telnet_process_subnegotiation(bytes(suboption or b""))
                        suboption = None
                    elif byte in (
                        serial.rfc2217.DO,
                        serial.rfc2217.DONT,
                        serial.rfc2217.WILL,
                        serial.rfc2217.WONT,
                    ):
                        telnet_command = byte
                        mode = negotiate
                    else:
                        self._telnet_process_command(byte)
                else:  # negotiate: DO, DONT, WILL or WONT was received, the option follows
                    self._telnet_negotiate_option(telnet_command, byte)
                    mode = normal
            if out:
                queue.put(bytes(out))


def serial_for_url(url: str, **settings: Any) -> Any:
    """pyserial's `serial_for_url`, with the chunked RFC 2217 client for `rfc2217://`."""
    if not url.startswith("rfc2217://"):
        return serial.serial_for_url(url, **settings)
    port = ChunkedRfc2217Serial(None, **{k: v for k, v in settings.items() if k != "do_not_open"})
    port.port = url
    if not settings.get("do_not_open"):
        port.open()
    return port


def open_port(device: DeviceConfig) -> Any:
    """Open the pyserial port (blocking: runs in the device's worker thread)."""
    settings = device.serial
    port = serial_for_url(
        device.url,
        do_not_open=True,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
        timeout=READ_TIMEOUT,
        # pyserial's RFC 2217 client refuses a write timeout (NotImplementedError).
        write_timeout=None if device.url.startswith("rfc2217://") else WRITE_TIMEOUT,
    )
    if device.url.startswith("/"):
        port.exclusive = True  # two processes reading one port would each lose frames
    try:
        port.open()
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            enable_keepalive(sock)
    except BaseException:
        # pyserial can fail after its socket exists (a reset while flushing input).
        _discard(port)
        raise
    return port


def _discard(port: Any) -> None:
    # Taken first: pyserial's socket close() skips socket.close() when shutdown() fails
    # (a connection the peer already reset) and forgets the socket.
    sock = getattr(port, "_socket", None)
    with contextlib.suppress(Exception):
        port.close()
    if isinstance(sock, socket.socket):
        sock.close()


def _socket_reader(port: Any) -> Callable[[], bytes]:
    """What is there on a `socket://` link, up to CHUNK bytes, waiting at most READ_TIMEOUT.

    pyserial's own `read(n)` on a socket waits for all n bytes (or its timeout), and its
    `in_waiting` says 0 or 1: read directly from its (non-blocking) socket instead."""
    sock: socket.socket = port._socket

    def read() -> bytes:
        ready, _, _ = select.select([sock], [], [], READ_TIMEOUT)
        if not ready:
            return b""
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return b""
            raise serial.SerialException(f"read failed: {exc}") from exc
        if not data:
            raise serial.SerialException("socket disconnected")
        return data

    return read


def _port_reader(port: Any) -> Callable[[], bytes]:
    """A tty (or RFC 2217, loop://...): the first byte waits up to READ_TIMEOUT, then
    whatever else is already waiting comes with it, up to CHUNK bytes."""

    def read() -> bytes:
        data: bytes = port.read(min(port.in_waiting, CHUNK) or 1)
        if data and len(data) < CHUNK:
            waiting = min(port.in_waiting, CHUNK - len(data))
            if waiting:
                data += port.read(waiting)
        return data

    return read


def chunk_reader(port: Any) -> Callable[[], bytes]:
    """A blocking read for the port's reader thread: some bytes, or b"" after READ_TIMEOUT."""
    if isinstance(port, protocol_socket.Serial):
        return _socket_reader(port)
    return _port_reader(port)


class SerialLink:
    """An open pyserial port; chunks arrive through a reader thread into a buffer that the
    event loop reads from."""

    def __init__(self, port: Any, worker: ThreadPoolExecutor, name: str) -> None:
        self.port = port
        self._worker = worker
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._pending = 0  # bytes read by the thread and not yet taken by the loop
        self._room = threading.Condition()
        self._stop = threading.Event()
        self._closed = False
        self.received = 0  # bytes received on this link
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._reader.start()

    @classmethod
    async def open(cls, device: DeviceConfig, worker: ThreadPoolExecutor) -> SerialLink:
        future: Future[Any] = worker.submit(cls.open_port, device)
        try:
            port = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # Shutdown while the port was opening: close it whenever the open completes.
            future.add_done_callback(_close_when_opened)
            raise
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(str(exc) or type(exc).__name__) from exc
        return cls(port, worker, f"device-{device.id}")

    open_port = staticmethod(open_port)

    @property
    def socket(self) -> socket.socket | None:
        sock = getattr(self.port, "_socket", None)
        return sock if isinstance(sock, socket.socket) else None

    def reader(self) -> Callable[[], bytes]:
        """The blocking read the reader thread repeats (one per kind of port)."""
        return chunk_reader(self.port)

    # -- the reader thread ---------------------------------------------------------------

    def _deliver(self, item: bytes | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(self._arrived, item)

    def _read_loop(self) -> None:
        try:
            read = self.reader()
            while not self._stop.is_set():
                with self._room:
                    while self._pending >= MAX_PENDING and not self._stop.is_set():
                        self._room.wait(READ_TIMEOUT)
                if self._stop.is_set():
                    break
                data = read()
                if data:
                    with self._room:
                        self._pending += len(data)
                    self._deliver(bytes(data))
        except Exception as exc:  # pyserial raises SerialException, OSError, TypeError...
            if not self._stop.is_set():
                self._deliver(LinkError(str(exc) or type(exc).__name__))

    # -- the event loop's side -----------------------------------------------------------

    def _arrived(self, item: bytes | BaseException) -> None:
        if isinstance(item, BaseException):
            if self._error is None:
                self._error = item
        else:
            self._chunks.append(item)
            self.received += len(item)
        self._ready.set()

    def _take(self, limit: int) -> bytes:
        """Queued chunks, joined, up to about `limit` bytes (at least one chunk)."""
        chunks = [self._chunks.popleft()]
        size = len(chunks[0])
        while self._chunks and size + len(self._chunks[0]) <= limit:
            chunk = self._chunks.popleft()
            chunks.append(chunk)
            size += len(chunk)
        if not self._chunks:
            self._ready.clear()
        with self._room:
            self._pending -= size
            self._room.notify()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read(self) -> bytes:
        """The next bytes received, up to about CHUNK at once; everything received before a
        failure is read before the failure is raised (and raised again on every later read)."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            await self._ready.wait()
        return self._take(CHUNK)

    def drain(self) -> bytes:
        if not self._chunks:
            return b""
        return self._take(1 << 62)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkError("link is closed")
        try:
            await asyncio.wrap_future(self._worker.submit(self._write, data))
        except (serial.SerialException, OSError) as exc:
            raise LinkError(str(exc) or type(exc).__name__) from exc

    def _write(self, data: bytes) -> None:
        # No flush(): tcdrain() on a pty whose reader is gone could block the worker.
        self.port.write(data)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._room:
            self._room.notify()
        # Shielded: a cancelled supervisor still closes its port before it ends.
        await asyncio.shield(asyncio.wrap_future(self._worker.submit(self._close)))

    def _close(self) -> None:
        self._reader.join(timeout=2 * READ_TIMEOUT + 1)
        _discard(self.port)


def _close_when_opened(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        _discard(future.result())
