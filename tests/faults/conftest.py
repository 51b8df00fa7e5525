"""Fixtures of the fault suite: a PostgreSQL of the test's own (it gets stopped, filled up or
restarted), the service as a real process on it, and a fresh artifacts/faults.txt per run."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from queue_service.store.db import EmbeddedPostgres
from tests.faults.harness import SUMMARY, write_hall
from tests.service_process import Service


@pytest.fixture(scope="session", autouse=True)
def _fresh_summary() -> None:
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text("")


class OwnPostgres:
    """An embedded PostgreSQL in the test's own directory: stopping it touches nobody else."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedPostgres(data_dir)
        self.dsn = ""

    async def start(self) -> str:
        try:
            self.dsn = await asyncio.to_thread(self.server.start)
        except subprocess.CalledProcessError as exc:
            # Seen once on a loaded machine (4 cores' worth of tests on 2): pg_ctl exited 1
            # with nothing in the server log. The test is about the service, not pg_ctl:
            # once more, and say so.
            print(f"[own_pg] pg_ctl start failed ({exc.returncode}); starting again")
            await asyncio.sleep(1.0)
            self.dsn = await asyncio.to_thread(self.server.start)
        return self.dsn

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)


@pytest.fixture
async def own_pg(tmp_path: Path) -> AsyncIterator[OwnPostgres]:
    pg = OwnPostgres(tmp_path / "pg")
    await pg.start()
    try:
        yield pg
    finally:
        await pg.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[list[Service]]:
    """Services made by a test; each is stopped (SIGINT, then SIGKILL) at the end."""
    made: list[Service] = []
    yield made
    for service in made:
        service.terminate()


def make_service(
    tmp_path: Path, dsn: str, made: list[Service], dispenser_port: int | None = None
) -> Service:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=dsn, ANTRIAN_LOG_LEVEL="WARNING")
    service = Service(write_hall(tmp_path, dispenser_port), env)
    made.append(service)
    return service
