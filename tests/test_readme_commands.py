"""The README's commands, run as written: the two commands' code block and every row of
its command table(s), so the README cannot drift from what works.

Substitutions, only for what a reader must choose or what the machine decides:
  - `[...]` optional parts: each command runs without them, and with them filled in;
    `a|b|c` alternatives: each one; the placeholders `N` -> 1 and `TOKEN` -> demo-kiosk.
  - `http://127.0.0.1:8080` -> the URL of the real service this test starts (a free
    port, the example hall, the default rate limits: what `make run` serves).
  - `make demo` listens on ANTRIAN_PORT (a free port) and gets no DATABASE_URL, as on a
    reader's machine.
  - `report` reads the database of the service this test started (DATABASE_URL).
  - `devices.sim` reads its console commands `show` and `quit` from standard input.
Not run, checked as Makefile targets only (`make -n`): `make run`, `make test` and
`make test-fast` (this test runs inside them), `make lint` (.ci/run runs it as its own step before
`make test`; inside the suite it would run twice and report another file's style as a test
failure), `make bench` (minutes of benchmarks) and `make audit` (needs pypi.org).
A command the table gains without a runner here fails the test until it has one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from queue_service.config import hash_token
from tests.conftest import EXAMPLE, ROOT, SITE
from tests.service_process import Service, free_port

README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8080"
PLACEHOLDERS = {"N": "1", "TOKEN": "demo-kiosk"}


def table_commands() -> list[str]:
    """The first cell of each row of every table whose first column is `command`."""
    lines = README.read_text("utf-8").splitlines()
    commands = []
    for i, line in enumerate(lines):
        if not re.match(r"^\|\s*command\s*\|", line):
            continue
        for row in itertools.takewhile(lambda r: r.startswith("|"), lines[i + 2 :]):
            cell = re.split(r"(?<!\\)\|", row)[1].strip()
            match = re.fullmatch(r"`(.+)`", cell)
            assert match, f"a command cell is one code span: {row}"
            commands.append(match.group(1).replace("\\|", "|"))
    return commands


def two_commands() -> list[str]:
    text = README.read_text("utf-8")
    block = re.search(r"## Two commands\n.*?```sh\n(.*?)```", text, re.S)
    assert block, "README: the code block of 'Two commands'"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def variants(command: str) -> list[list[str]]:
    """The command lines a row stands for (see the module's doc)."""
    texts = dict.fromkeys(
        [re.sub(r"\s*\[[^\]]*\]", "", command), re.sub(r"\[([^\]]*)\]", r"\1", command)]
    )
    out: list[list[str]] = []
    for text in texts:
        words = [PLACEHOLDERS.get(w, w).split("|") for w in shlex.split(text)]
        out.extend(list(argv) for argv in itertools.product(*words))
    return out


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a reader's shell: no make of ours around it, no test settings."""
    drop = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DATABASE_URL", "ANTRIAN_CONFIG")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def run(argv: list[str], timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", clean_env())
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def shown(argv: list[str], proc: subprocess.CompletedProcess[str] | Any) -> str:
    return (
        f"$ {shlex.join(argv)}\nstatus {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )


def dry_run(target: str, venv: Path) -> str:
    """What `make -n TARGET` would do on a fresh clone (a .venv not made yet)."""
    proc = run(["make", "-n", target, f"VENV={venv}"])
    assert proc.returncode == 0, shown(["make", "-n", target], proc)
    return proc.stdout


# -- the two commands -------------------------------------------------------------------


def test_the_two_commands_are_make_targets_and_make_run_installs_only_what_running_needs(
    tmp_path: Path,
) -> None:
    assert two_commands() == ["make run", "make test"]
    fresh = tmp_path / "venv"
    run_steps = dry_run("run", fresh)
    assert f"{fresh}/bin/python -m pip install -e .\n" in run_steps
    assert "[dev]" not in run_steps and "queue-service run" in run_steps
    test_steps = dry_run("test", fresh)
    assert f"{fresh}/bin/python -m pip install -e '.[dev]'" in test_steps
    assert f"{fresh}/bin/pytest" in test_steps
    # And on this checkout, whatever it has installed already.
    here = run(["make", "-n", "run"])
    assert here.returncode == 0 and "[dev]" not in here.stdout, here.stdout


# -- the table ----------------------------------------------------------------------------

Check = Callable[[list[str], Path, str], Awaitable[None]]


async def exists_only(argv: list[str], tmp_path: Path, database_url: str) -> None:
    target = argv[1]
    steps = dry_run(target, tmp_path / "venv")
    want = {
        "test-fast": ('pytest -m "not slow"',),
        "lint": ("ruff check", "mypy"),
        "bench": ("-m bench",),
        "audit": ("pip-audit",),
    }
    for word in want[target]:
        assert word in steps, steps


async def in_make_demo_test(argv: list[str], tmp_path: Path, database_url: str) -> None:
    """Run by test_make_demo_plays_rides_out_a_service_crash_and_stops_on_ctrl_c."""


async def plain(argv: list[str], tmp_path: Path, database_url: str) -> None:
    proc = await asyncio.to_thread(run, argv)
    assert proc.returncode == 0, shown(argv, proc)
    assert proc.stdout.strip(), shown(argv, proc)


async def hash_token_check(argv: list[str], tmp_path: Path, database_url: str) -> None:
    proc = await asyncio.to_thread(run, argv)
    assert proc.returncode == 0, shown(argv, proc)
    # The hash of demo-kiosk is the one the example hall configures for it.
    assert proc.stdout.strip() == hash_token("demo-kiosk"), shown(argv, proc)
    assert hash_token("demo-kiosk") in EXAMPLE.read_text("utf-8")


async def report(argv: list[str], tmp_path: Path, database_url: str) -> None:
    proc = await asyncio.to_thread(run, argv, env=clean_env(DATABASE_URL=database_url))
    assert proc.returncode == 0, shown(argv, proc)
    fmt = argv[argv.index("--format") + 1]
    if fmt == "json":
        assert json.loads(proc.stdout)["site"]["id"] == SITE, shown(argv, proc)
    elif fmt == "html":
        assert "<html" in proc.stdout.lower() and SITE in proc.stdout, shown(argv, proc)
    else:
        assert f";{SITE};2026-11-01;2026-11-30;" in proc.stdout, shown(argv, proc)


async def devices_simulate(argv: list[str], tmp_path: Path, database_url: str) -> None:
    proc = await asyncio.to_thread(run, argv, input="show\nquit\n", timeout=30)
    assert proc.returncode == 0, shown(argv, proc)
    for device in ("dispenser-lobby", "keypads-zone-a", "printer-kiosk-1"):
        assert f"{device}: Sim" in proc.stdout, shown(argv, proc)


async def _directory(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/api/v1/sites/{SITE}") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


def _activity(directory: dict[str, Any]) -> int:
    return sum(s["issued_today"] + s["open_counters"] for s in directory["services"])


async def simulate_http(argv: list[str], tmp_path: Path, database_url: str) -> None:
    """Against the example hall as `make run` serves it (its hours, its rate limits): it
    plays while the hall is open (Ctrl-C after the first counters and tickets), and says
    the hall is closed otherwise (status 3); which one the service's own `open` says."""
    config = tmp_path / "example-hall.toml"
    shutil.copy(EXAMPLE, config)
    service = Service(config, clean_env(DATABASE_URL=database_url, ANTRIAN_RATE_LIMITS="on"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await service.start(session)
        try:
            argv = [service.url if w == README_URL else w for w in argv]
            opened = [(await _directory(session, service.url))["open"]]
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            active = 0
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                active = _activity(await _directory(session, service.url))
                if active:
                    break
                await asyncio.sleep(0.5)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
            opened.append((await _directory(session, service.url))["open"])
        finally:
            service.terminate()
    result = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    assert "Traceback" not in result.stderr, shown(argv, result)
    if proc.returncode == 3:
        assert False in opened, shown(argv, result)
        assert "is closed now" in result.stderr and "opens" in result.stderr, shown(argv, result)
    else:
        assert True in opened and active, shown(argv, result)
        assert proc.returncode == 130, shown(argv, result)
        assert "simulate: interrupted" in result.stderr, shown(argv, result)


RUNNERS: dict[str, Check] = {
    "make demo": in_make_demo_test,
    "make test-fast": exists_only,
    "make lint": exists_only,
    "make bench": exists_only,
    "make audit": exists_only,
    "make check-config": plain,
    ".venv/bin/queue-service hash-token": hash_token_check,
    ".venv/bin/queue-service simulate offline": plain,
    ".venv/bin/queue-service simulate http": simulate_http,
    ".venv/bin/queue-service report": report,
    ".venv/bin/python -m devices.sim": devices_simulate,
}


def runner(command: str) -> Check | None:
    for prefix, check in RUNNERS.items():
        if command == prefix or command.startswith(prefix + " "):
            return check
    return None


@pytest.mark.timeout(300)
async def test_every_command_of_the_readme_table_works_as_written(
    tmp_path: Path, database_url: str
) -> None:
    commands = table_commands()
    unknown = [c for c in commands if runner(c) is None]
    assert not unknown, f"README commands without a runner in this test: {unknown}"
    failures = []
    for n, command in enumerate(commands):
        check = runner(command)
        assert check is not None
        for argv in variants(command):
            began = time.monotonic()
            where = tmp_path / str(n)
            where.mkdir(exist_ok=True)
            try:
                await check(argv, where, database_url)
            except AssertionError as exc:
                failures.append(f"{shlex.join(argv)}\n{exc}")
            took = time.monotonic() - began
            print(f"{took:5.1f} s  {shlex.join(argv)}")
    assert not failures, "\n\n".join(failures)
    assert "make demo" in commands


# -- make demo ----------------------------------------------------------------------------


class Output:
    """A process's output, read as it comes (a thread per pipe)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.text = ""
        self.lock = threading.Lock()
        assert proc.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, pipe: Any) -> None:
        for line in iter(pipe.readline, b""):
            with self.lock:
                self.text += line.decode("utf-8", "replace")

    async def wait_for(self, pattern: str, seconds: float, proc: subprocess.Popen[bytes]) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text)
            if match:
                return match.group(0)
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the output of make demo:\n{self.text}")


async def _issued(session: aiohttp.ClientSession, url: str) -> int:
    try:
        directory = await _directory(session, url)
    except (aiohttp.ClientError, AssertionError, TimeoutError):
        return -1
    return sum(s["issued_today"] for s in directory["services"])


async def _issued_above(
    session: aiohttp.ClientSession, url: str, floor: int, seconds: float, out: Output
) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        issued = await _issued(session, url)
        if issued > floor:
            return issued
        await asyncio.sleep(0.5)
    raise AssertionError(f"no ticket issued past {floor} in {seconds:.0f} s:\n{out.text}")


def _service_of(make: subprocess.Popen[bytes]) -> psutil.Process:
    for child in psutil.Process(make.pid).children(recursive=True):
        try:
            words = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "queue_service" in words and "run" in words:
            return child
    raise AssertionError("make demo runs no queue_service process")


def _nothing_left(work: str) -> None:
    """The demo's temp directory is gone, and no process (its database) runs on it."""
    assert not Path(work).exists()
    left = [
        p.pid for p in psutil.process_iter(["cmdline"]) if work in " ".join(p.info["cmdline"] or ())
    ]
    assert not left, f"still running with {work}: {left}"


@pytest.mark.timeout(180)
async def test_make_demo_plays_rides_out_a_service_crash_and_stops_on_ctrl_c() -> None:
    """`make demo` as written (on ANTRIAN_PORT): it plays, a SIGKILL of its service does
    not end it (it starts the service again and the simulator retries, then resumes), and
    Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops everything
    cleanly: status 0 or 130 (make re-raises SIGINT), no traceback, nothing left running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    make = subprocess.Popen(
        ["make", "demo"],
        cwd=ROOT,
        env=clean_env(ANTRIAN_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = Output(make)
    work = ""
    try:
        url = (await out.wait_for(r"Antrian demo at http://[\d.:]+", 120, make)).split()[-1]
        assert url == f"http://127.0.0.1:{port}", out.text
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            before = await _issued_above(session, url, 0, 60, out)
            service = _service_of(make)
            work = str(Path(service.cmdline()[service.cmdline().index("--data-dir") + 1]).parent)
            service.kill()
            await out.wait_for("starting it again", 20, make)
            await out.wait_for("answers again", 60, make)
            await _issued_above(session, url, before, 60, out)
        assert make.poll() is None, out.text
        os.killpg(make.pid, signal.SIGINT)
        await asyncio.to_thread(make.wait, 45)
    finally:
        if make.poll() is None:  # the test failed half-way: stop the demo as Ctrl-C does
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait(10)
        out.thread.join(10)
        assert make.stdout is not None
        make.stdout.close()
    assert make.returncode in (0, 130, -signal.SIGINT), out.text
    assert "Traceback" not in out.text, out.text
    assert "simulate: interrupted" in out.text and "demo: stopping the service" in out.text
    _nothing_left(work)
    assert "make demo" in table_commands()
