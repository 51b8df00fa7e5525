"""The device end of a link: a pseudo-terminal (USB-serial adapter) or a TCP port (device
server). Both can be unplugged and plugged back, as a cable can."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class SimPort(Protocol):
    on_data: Callable[[bytes], None]

    @property
    def url(self) -> str: ...

    @property
    def plugged(self) -> bool: ...

    def send(self, data: bytes) -> bool: ...

    async def start(self) -> None: ...

    async def unplug(self) -> None: ...

    async def replug(self) -> None: ...

    async def close(self) -> None: ...


class PtyPort:
    """A pseudo-terminal whose slave is reached through a stable symlink, as a USB-serial
    adapter is through /dev/serial/by-id/...: unplugging removes the link and the pty,
    plugging back makes a new pty behind the same path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self.on_data: Callable[[bytes], None] = lambda _data: None
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def tty_name(self) -> str | None:
        return os.ttyname(self._slave) if self._slave is not None else None

    async def start(self) -> None:
        master, slave = os.openpty()
        # Raw at once: in cooked mode ETX (0x03) would be ^C and bytes would be echoed.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.path)
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO: nobody has the slave open right now
        if data:
            self.on_data(data)

    def send(self, data: bytes) -> bool:
        if self._master is None:
            return False
        try:
            os.write(self._master, data)
        except OSError:
            return False
        return True

    async def send_all(self, data: bytes) -> bool:
        """Write all of `data`, waiting while the pty's buffer is full (a long burst of
        line noise); False when unplugged before the end."""
        view = memoryview(data)
        while view:
            if self._master is None:
                return False
            try:
                view = view[os.write(self._master, view[:4096]) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError:
                return False
        return True

    async def unplug(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def replug(self) -> None:
        await self.unplug()
        await self.start()

    async def close(self) -> None:
        await self.unplug()


class TcpPort:
    """A device server's TCP port (like a Moxa NPort in TCP server mode): one client at a
    time; unplugging drops the client and stops listening until plugged back."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.on_data: Callable[[bytes], None] = lambda _data: None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    @property
    def plugged(self) -> bool:
        return self._server is not None

    @property
    def client_connected(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        old = self._writer
        if old is not None:
            old.close()
        self._writer = writer
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._readers.add(task)
        try:
            while data := await reader.read(4096):
                self.on_data(data)
        except (ConnectionError, OSError):
            pass
        finally:
            self._readers.discard(task)
            if self._writer is writer:
                self._writer = None
            writer.close()

    def send(self, data: bytes) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        return True

    async def send_all(self, data: bytes) -> bool:
        """Write `data` and wait until the socket has taken it (flow control)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def unplug(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def replug(self) -> None:
        await self.unplug()
        await self.start()

    async def close(self) -> None:
        await self.unplug()
        for task in list(self._readers):
            task.cancel()
