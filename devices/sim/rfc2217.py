"""A small RFC 2217 server: a serial port shared over TCP, like a Moxa NPort or ser2net.

Built on pyserial's own `serial.rfc2217.PortManager`, as pyserial's example
`examples/rfc2217_server.py` does (the example is not shipped in the wheel). The port
behind it is any pyserial URL: a pseudo-terminal's slave (a simulated device drives the
master) or `loop://` (everything written comes back). One client at a time; the server
runs in threads so tests and demos can use it beside an asyncio loop.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

import serial
import serial.rfc2217

log = logging.getLogger(__name__)

IAC = serial.rfc2217.IAC  # Telnet's "interpret as command"; doubled when it is data


def _modem_line(name: str) -> property:
    """serial.Serial's property `name` (a modem line), read as off where the port has none."""

    def read(port: serial.Serial) -> bool:
        try:
            return bool(getattr(serial.Serial, name).fget(port))
        except OSError:
            return False

    return property(read)


class _PtyTolerantSerial(serial.Serial):  # type: ignore[misc]
    """A posix port whose modem lines may not exist (a pseudo-terminal has none).

    RFC 2217 clients set RTS/DTR and the server reports CTS/DSR/RI/CD; on a pty those
    ioctls fail with ENOTTY, which would kill the connection, so they read as "off".
    """

    def _update_rts_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_rts_state()

    def _update_dtr_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_dtr_state()

    def _update_break_state(self) -> None:
        with contextlib.suppress(OSError):
            super()._update_break_state()

    cts = _modem_line("cts")
    dsr = _modem_line("dsr")
    ri = _modem_line("ri")
    cd = _modem_line("cd")


def _open(url: str) -> Any:
    port = (
        _PtyTolerantSerial()
        if url.startswith("/")
        else serial.serial_for_url(url, do_not_open=True)
    )
    if url.startswith("/"):
        port.port = url
    port.timeout = 0.05
    port.open()
    return port


class _Connection:
    """What PortManager writes its Telnet answers to: the client's socket, thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)


class Rfc2217Server:
    def __init__(self, serial_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.serial_url = serial_url
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self.url = f"rfc2217://{self.host}:{self.port}"
        self._serial: Any = None
        self._client: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def start(self) -> Rfc2217Server:
        self._serial = _open(self.serial_url)
        self._listener.settimeout(0.1)
        self._spawn(self._accept_loop, "rfc2217-accept")
        return self

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.drop_client()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = client
            self.connections += 1
            manager = serial.rfc2217.PortManager(self._serial, _Connection(client))
            self._spawn(self._serial_to_net, "rfc2217-s2n", client, manager)
            self._spawn(self._net_to_serial, "rfc2217-n2s", client, manager)

    def _serial_to_net(self, client: socket.socket, manager: Any) -> None:
        while not self._stop.is_set() and self._client is client:
            try:
                data = self._serial.read(self._serial.in_waiting or 1)
                if data:
                    # What PortManager.escape() does, at once rather than byte by byte.
                    client.sendall(data.replace(IAC, IAC + IAC))
                manager.check_modem_lines()
            except (OSError, serial.SerialException):
                break
        self._close_client(client)

    def _net_to_serial(self, client: socket.socket, manager: Any) -> None:
        while not self._stop.is_set() and self._client is client:
            try:
                data = client.recv(1024)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            with contextlib.suppress(serial.SerialException):
                self._serial.write(b"".join(manager.filter(data)))
        self._close_client(client)

    def _close_client(self, client: socket.socket) -> None:
        if self._client is client:
            self._client = None
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()

    def drop_client(self) -> None:
        """Cut the current client off, as a device server's network cable being pulled."""
        client = self._client
        if client is not None:
            self._close_client(client)

    def stop(self) -> None:
        self._stop.set()
        self.drop_client()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._serial is not None:
            self._serial.close()

    def __enter__(self) -> Rfc2217Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
