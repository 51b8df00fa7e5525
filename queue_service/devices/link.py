"""The link: one small async interface to a port named by a pyserial URL.

pyserial itself, with a reader thread per open link and one worker thread per device for
opening, writing and closing, so no call ever blocks the event loop. Chosen by test over
the asyncio serial libraries: of pyserial-asyncio-fast 0.16, serialx 1.15 and this, only
this one read, wrote and noticed an unplug on a pty, on socket:// and on rfc2217://
alike, with under 10 ms of loop lag (docs/devices.md has the figures). A thread per
device costs little at the tens of devices a hall has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import serial

from queue_service.config import DeviceConfig

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.1  # how often the reader thread looks at its stop flag
WRITE_TIMEOUT = 5.0
# TCP keepalive on network links: a device server that vanished (power, cable) is noticed
# within about IDLE + INTERVAL * COUNT seconds even when nothing is being sent.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3


class LinkError(Exception):
    """The port could not be opened, or the link was lost."""


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


def open_port(device: DeviceConfig) -> Any:
    """Open the pyserial port (blocking: runs in the device's worker thread)."""
    settings = device.serial
    port = serial.serial_for_url(
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


class SerialLink:
    """An open pyserial port; bytes arrive through a reader thread into an asyncio queue."""

    def __init__(self, port: Any, worker: ThreadPoolExecutor, name: str) -> None:
        self.port = port
        self._worker = worker
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._stop = threading.Event()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._reader.start()

    @classmethod
    async def open(cls, device: DeviceConfig, worker: ThreadPoolExecutor) -> SerialLink:
        future: Future[Any] = worker.submit(open_port, device)
        try:
            port = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # Shutdown while the port was opening: close it whenever the open completes.
            future.add_done_callback(_close_when_opened)
            raise
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(str(exc) or type(exc).__name__) from exc
        return cls(port, worker, f"device-{device.id}")

    @property
    def socket(self) -> socket.socket | None:
        sock = getattr(self.port, "_socket", None)
        return sock if isinstance(sock, socket.socket) else None

    def _deliver(self, item: bytes | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _read_loop(self) -> None:
        port = self.port
        try:
            while not self._stop.is_set():
                data = port.read(port.in_waiting or 1)
                if data:
                    self._deliver(bytes(data))
        except Exception as exc:  # pyserial raises SerialException, OSError, TypeError...
            if not self._stop.is_set():
                self._deliver(LinkError(str(exc) or type(exc).__name__))

    async def read(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later read fails the same way
            raise item
        return item

    def drain(self) -> bytes:
        chunks = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                self._queue.put_nowait(item)
                break
            chunks.append(item)
        return b"".join(chunks)

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
        # Shielded: a cancelled supervisor still closes its port before it ends.
        await asyncio.shield(asyncio.wrap_future(self._worker.submit(self._close)))

    def _close(self) -> None:
        self._reader.join(timeout=2 * READ_TIMEOUT + 1)
        _discard(self.port)


def _close_when_opened(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        _discard(future.result())
