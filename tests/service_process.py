"""The real service in a process of its own, for the tests that kill it, stop its database
or fill its disk (tests/test_durability.py, tests/faults/)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import ROOT

VOLATILE = {
    "now",
    "oldest_wait_seconds",
    "wait_seconds",
    "estimated_wait_seconds",
    "ratio_to_target",  # the headline's worst queue: its oldest wait over its target
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stable(value: Any) -> Any:
    """A snapshot without the fields that change with the wall clock."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


class Service:
    """The real service in its own process, as `python -m queue_service run` starts it."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        # The tests drive a hall's worth of kiosks through one kiosk token, far past the
        # per-kiosk rate limit the service applies by default.
        self.env = {"ANTRIAN_RATE_LIMITS": "off", **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.with_suffix(".log")

    async def start(self, session: aiohttp.ClientSession) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "queue_service",
                    "run",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        # The service listens at once and answers /readyz 503 with the reason (the database
        # not reached yet, migrating, replaying) until its bring-up is done.
        last = "no answer"
        for _ in range(300):
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited: {self.log.read_text()}")
            try:
                async with session.get(f"{self.url}/readyz") as resp:
                    if resp.status == 200:
                        return
                    last = await resp.text()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"service did not become ready in 30 s; /readyz said {last}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def issue(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    key: str,
    service: str = "Q",
) -> tuple[int, dict[str, Any]]:
    """Ask the service at `url` for a ticket of `service` in site "hall", `key` its
    Idempotency-Key: the answer's status and body."""
    async with session.post(
        f"{url}/api/v1/sites/hall/tickets",
        json={"service": service},
        headers={**headers, "Idempotency-Key": key},
    ) as resp:
        return resp.status, await resp.json()
