"""Start-up without a database: the real service (`python -m queue_service run`) listens at
once, says on /readyz why it is not ready, waits for its database with backoff (one log
line per attempt), becomes ready within seconds of the database appearing, and stops
cleanly at any point of its bring-up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bench.common import with_database
from queue_service.domain.vocab import Role
from queue_service.store.db import EmbeddedPostgres
from queue_service.store.event_store import WRITER_LOCK_ID
from tests.conftest import ROOT, postmasters
from tests.halls import Bearer, Hall

pytestmark = pytest.mark.timeout(60)

KIOSK_TOKEN = Bearer("startup-kiosk", Role.KIOSK)
KIOSK = KIOSK_TOKEN.headers
ISSUE = "/api/v1/sites/hall/tickets"


class Process:
    """The service as `queue-service run` starts it, its stderr in a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        config = Hall(name="Start-up hall", tokens=(KIOSK_TOKEN,)).write(tmp_path)
        self.stderr_path = tmp_path / "service.err"
        self.stdout_path = tmp_path / "service.out"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("ANTRIAN_") and k != "DATABASE_URL"
            },
            "ANTRIAN_RATE_LIMITS": "off",
            "ANTRIAN_DATA_DIR": str(tmp_path / "pgdata"),  # the data_dir fixture's
            **env,
        }
        self.command = [sys.executable, "-m", "queue_service", "run", "--config", str(config)]
        self.command += ["--port", "0"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    async def start(self) -> None:
        """Start it and wait until it listens (the banner names the port)."""
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=err
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+?)/", self.stdout_path.read_text())
            if found:
                self.url = found.group(1)
                return
            assert self.proc.poll() is None, f"the service exited: {self.stderr}"
            await asyncio.sleep(0.05)
        raise AssertionError(f"the service did not listen within 15 s: {self.stderr}")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any, Any]:
    async with session.get(url, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, resp.headers, body


async def wait_for(
    session: aiohttp.ClientSession, url: str, check: Any, timeout: float, step: float = 0.05
) -> tuple[float, Any]:
    """Poll `url` until check(status, body) holds; (seconds it took, last body)."""
    began = time.monotonic()
    body: Any = None
    while time.monotonic() - began < timeout:
        status, _, body = await get(session, url)
        if check(status, body):
            return time.monotonic() - began, body
        await asyncio.sleep(step)
    raise AssertionError(f"{url}: not as expected within {timeout} s; last answer {body}")


def attempt_lines(log: str, reason: str) -> list[int]:
    """The attempt numbers of the log's `<reason> (attempt N, ...)` lines, in order."""
    return [int(n) for n in re.findall(rf"WARNING .*: {reason} \(attempt (\d+), ", log)]


async def test_an_unreachable_database_is_waited_for_and_ready_within_5_s_of_appearing(
    tmp_path: Path, processes: list[Process], session: aiohttp.ClientSession
) -> None:
    """DATABASE_URL names a server that is not running: the service serves /healthz and a
    503 /readyz with the reason, retries with one log line per attempt, and is ready
    within 5 s of the server starting."""
    server = EmbeddedPostgres(tmp_path / "db")
    dsn = await asyncio.to_thread(server.start)
    await asyncio.to_thread(server.stop)  # initialised, and nothing listens
    service = Process(tmp_path, {"DATABASE_URL": dsn})
    processes.append(service)
    try:
        await service.start()
        status, _, body = await get(session, f"{service.url}/healthz")
        assert (status, body) == (200, {"status": "ok"})
        # Retrying: wait for the 3rd attempt, then read what /readyz says.
        await wait_for(
            session, f"{service.url}/readyz", lambda s, b: b.get("attempt", 0) >= 3, timeout=10
        )
        status, headers, body = await get(session, f"{service.url}/readyz")
        assert status == 503
        assert headers["Retry-After"] == "2"
        assert body["status"] == "not_ready"
        assert body["reason"] == "database_unreachable"
        assert body["stage"] == "database"
        assert body["detail"] == "no server at the socket"
        assert body["attempt"] >= 3

        await asyncio.to_thread(server.start)
        appeared = time.monotonic()
        took, _ = await wait_for(
            session, f"{service.url}/readyz", lambda s, b: s == 200, timeout=10, step=0.02
        )
        took = time.monotonic() - appeared
        print(f"\n[startup] ready {took:.2f} s after the database appeared")
        assert took < 5.0
        async with session.post(f"{service.url}{ISSUE}", json={"service": "Q"}, headers=KIOSK) as r:
            assert r.status == 201, await r.text()
        # Once started, a database that goes away shows as a reason too.
        await asyncio.to_thread(server.stop)
        _, body = await wait_for(session, f"{service.url}/readyz", lambda s, b: s == 503, 10)
        assert (body["reason"], body["problems"]) == (
            "database_unreachable",
            ["database unreachable"],
        )
        assert service.stop() == 0
    finally:
        service.kill()
        await asyncio.to_thread(server.stop)
    log = service.stderr
    attempts = attempt_lines(log, "database unreachable")
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 3, log
    assert "Traceback" not in log
    assert "ready in " in log


async def test_while_the_database_is_missing_pages_health_and_metrics_answer_and_the_api_is_503(
    tmp_path: Path, pg_server: str, processes: list[Process], session: aiohttp.ClientSession
) -> None:
    """The database does not exist yet (created later, as compose's init may): every route
    answers at once, as documented, and the service is ready soon after it is created."""
    name = "t_" + uuid.uuid4().hex[:12]
    service = Process(
        tmp_path,
        {"DATABASE_URL": with_database(pg_server, name), "ANTRIAN_METRICS_TOKEN": "scrape"},
    )
    processes.append(service)
    admin = await asyncpg.connect(pg_server)
    try:
        await service.start()
        url = service.url
        _, body = await wait_for(
            session, f"{url}/readyz", lambda s, b: b.get("attempt", 0) >= 2, timeout=5
        )
        assert (body["status"], body["reason"]) == ("not_ready", "database_missing")
        assert body["detail"] == f'database "{name}" does not exist'

        for method, path in [
            ("POST", ISSUE),
            ("GET", "/api/v1/sites/hall/snapshot"),
            ("GET", "/api/v1/sites/hall/display"),
            ("GET", "/api/v1/tickets/nope/qr.svg"),
            ("GET", "/api/v1/sites"),
        ]:
            async with session.request(
                method, url + path, json={"service": "Q"}, headers=KIOSK
            ) as r:
                assert r.status == 503, (path, await r.text())
                assert r.headers["Retry-After"] == "2"
                answer = await r.json()
            assert answer["code"] == "starting", path
            assert answer["details"] == {"reason": "database_missing", "stage": "database"}
        status, _, answer = await get(session, f"{url}/api/v1/no-such-thing")
        assert (status, answer["code"]) == (404, "not_found")
        status, _, document = await get(session, f"{url}/api/v1/openapi.json")
        assert status == 200 and document["openapi"].startswith("3.1")
        status, _, page = await get(session, f"{url}/ui/")
        assert status == 200 and "<html" in page.lower()
        status, _, _ = await get(session, f"{url}/metrics")
        assert status == 401  # the token is required from the first moment
        status, _, text = await get(
            session, f"{url}/metrics", headers={"Authorization": "Bearer scrape"}
        )
        assert status == 200
        assert "\nqms_database_up 0\n" in text
        assert "process_start_time_seconds" in text

        await admin.execute(f'CREATE DATABASE "{name}"')
        created = time.monotonic()
        await wait_for(session, f"{url}/readyz", lambda s, b: s == 200, timeout=10, step=0.02)
        took = time.monotonic() - created
        print(f"\n[startup] ready {took:.2f} s after the database was created")
        assert took < 5.0
        async with session.post(f"{url}{ISSUE}", json={"service": "Q"}, headers=KIOSK) as r:
            assert r.status == 201, await r.text()
        status, _, text = await get(
            session, f"{url}/metrics", headers={"Authorization": "Bearer scrape"}
        )
        assert "\nqms_database_up 1\n" in text
        assert 'qms_tickets_issued_total{site="hall",service="Q"} 1' in text
        assert service.stop() == 0
    finally:
        service.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert attempt_lines(service.stderr, "database missing")[:1] == [1]
    assert "Traceback" not in service.stderr


async def test_stopping_while_waiting_for_the_database_is_quick_and_clean(
    tmp_path: Path, processes: list[Process], session: aiohttp.ClientSession
) -> None:
    """SIGTERM (compose's stop) in the middle of the backoff: the service ends at once with
    status 0, no traceback."""
    service = Process(tmp_path, {"DATABASE_URL": "postgresql://antrian:pw@127.0.0.1:1/antrian"})
    processes.append(service)
    await service.start()
    _, body = await wait_for(
        session, f"{service.url}/readyz", lambda s, b: b.get("attempt", 0) >= 2, timeout=10
    )
    # Between attempts and during one, the last failure is the reason.
    assert (body["reason"], body["detail"]) == ("database_unreachable", "connection refused")
    began = time.monotonic()
    assert service.stop(signal.SIGTERM) == 0
    took = time.monotonic() - began
    print(f"\n[startup] stopped {took:.2f} s after SIGTERM while waiting for the database")
    assert took < 3.0
    assert "Traceback" not in service.stderr
    assert "stopping during start-up" in service.stderr
    assert "pw@" not in service.stderr  # the password is never logged


async def test_stopping_while_the_embedded_postgres_starts_leaves_no_server_running(
    tmp_path: Path, data_dir: Path, processes: list[Process], session: aiohttp.ClientSession
) -> None:
    """DATABASE_URL unset, a fresh data directory: SIGINT while the embedded server is being
    created. The start (which cannot be interrupted) finishes, the server is stopped, the
    service exits 0: no PostgreSQL is left behind."""
    service = Process(tmp_path, {})
    processes.append(service)
    await service.start()
    status, _, body = await get(session, f"{service.url}/readyz")
    assert status == 503
    assert (body["stage"], body["reason"]) == ("database", "starting")
    assert body["detail"] == "starting the embedded PostgreSQL"
    assert service.stop() == 0
    assert postmasters(data_dir) == []
    assert "Traceback" not in service.stderr


async def test_a_second_writer_stops_with_one_clear_line(
    tmp_path: Path,
    database_url: str,
    processes: list[Process],
    session: aiohttp.ClientSession,
) -> None:
    """Another process holds the database's writer lock past the 15 s a crashed
    predecessor's lock is waited for: waiting longer cannot help (one writer per database),
    so the service says so in one line and exits 1."""
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", WRITER_LOCK_ID)
        service = Process(tmp_path, {"DATABASE_URL": database_url})
        processes.append(service)
        await service.start()
        _, body = await wait_for(
            session, f"{service.url}/readyz", lambda s, b: b.get("stage") == "replay", timeout=10
        )
        assert body["reason"] == "starting"
        assert service.proc is not None
        status = await asyncio.to_thread(service.proc.wait, 30)
    finally:
        await holder.close()
    assert status == 1
    errors = [line for line in service.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, service.stderr
    assert errors[0].endswith(
        "the service cannot start: another Antrian process is writing to this database; "
        "run one writer per database"
    )
    assert "Traceback" not in service.stderr


async def test_the_embedded_postgres_is_supervised_for_the_service_life_and_in_its_metrics(
    tmp_path: Path, data_dir: Path, processes: list[Process], session: aiohttp.ClientSession
) -> None:
    """DATABASE_URL unset: the embedded server's families are on /metrics; killed, it is
    restarted by its supervisor and the service takes tickets again; at shutdown the
    supervisor stops first, so the server is stopped, not restarted."""
    service = Process(tmp_path, {})
    processes.append(service)
    try:
        await service.start()
        await wait_for(session, f"{service.url}/readyz", lambda s, b: s == 200, timeout=30)
        _, _, text = await get(session, f"{service.url}/metrics")
        assert "\nqms_embedded_postgres_up 1\n" in text
        assert "\nqms_embedded_postgres_restarts_total 0\n" in text
        [postmaster] = postmasters(data_dir)
        postmaster.kill()
        await wait_for(
            session,
            f"{service.url}/metrics",
            lambda s, b: (
                "\nqms_embedded_postgres_restarts_total 1\n" in b
                and "\nqms_embedded_postgres_up 1\n" in b
            ),
            timeout=20,
            step=0.2,
        )
        for _ in range(150):  # the pool's connections died with the server: they reconnect
            async with session.post(
                f"{service.url}{ISSUE}", json={"service": "Q"}, headers=KIOSK
            ) as resp:
                if resp.status == 201:
                    break
                assert resp.status == 503, await resp.text()
            await asyncio.sleep(0.1)
        assert resp.status == 201
        assert service.stop() == 0
        assert postmasters(data_dir) == []
    finally:
        service.kill()
    log = service.stderr
    assert log.count("has died; restarting it") == 1, log
    assert "Traceback" not in log  # asyncpg's failed reconnections: one line each
