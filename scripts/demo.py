"""A living hall in a minute: start the service and drive it with the simulator.

    .venv/bin/python scripts/demo.py [--speed 30] [--profile typical] [--port 8080]
    make demo [SPEED=30]

Starts `queue-service run` with the example hall on a fresh embedded PostgreSQL (in a temp
directory, removed at the end; or the server named by DATABASE_URL), opened round the clock
so the demo works at any hour, then plays a simulated day of MPP Kota Banjarmasin through
the HTTP API `--speed` times faster than real time (30: the day in about 15 minutes).
Watch the board, the TV display and /metrics while it runs; Ctrl-C stops both (status 0).
The port is --port, else ANTRIAN_PORT, else 8080. A restart of the service does not end
the demo: the simulator retries with backoff (two minutes at most) and resumes, and a
service that dies under the demo is started again.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from queue_service.domain.site import WEEKDAYS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example-hall.toml"
SITE = "mpp-banjarmasin"


def demo_config(source: Path, target: Path) -> None:
    """The example hall, open every day 00:00-24:00 and without per-service cut-offs (the
    simulated day's schedule runs at any real hour; its breaks are played by the counters)."""
    out: list[str] = []
    in_hours = False
    for line in source.read_text("utf-8").splitlines():
        if line.strip() == "[sites.hours]":
            in_hours = True
            out.append(line)
            out.extend(f'{day} = ["00:00", "24:00"]' for day in WEEKDAYS)
            continue
        if in_hours:
            if re.match(rf"^({'|'.join(WEEKDAYS)})\s*=", line):
                continue
            in_hours = False
        if re.match(r"^\s*cutoff\s*=", line):
            continue
        out.append(line)
    target.write_text("\n".join(out) + "\n", "utf-8")


class Service:
    """The demo's service process, started again if it dies under the demo (the simulator
    retries meanwhile): a crash or a kill of the service does not end the demo."""

    RESTARTS = 5

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.command = command
        self.env = env
        self.log = log
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.proc = self._spawn()
        self.watcher = threading.Thread(target=self._watch, name="demo-service", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            # The service's own log (access lines, printer warnings: the demo hall has no
            # printer) goes to a file; the terminal keeps the simulator's progress bar. A
            # session of its own: Ctrl-C reaches the demo only, which then stops the service
            # with one signal (a second one during its shutdown would cut the shutdown short
            # and leave its PostgreSQL running).
            return subprocess.Popen(  # noqa: S603
                self.command, cwd=ROOT, env=self.env, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip

    def watch(self) -> None:
        self.watcher.start()

    def _watch(self) -> None:
        restarts = 0
        while not self.stopping.wait(0.5):
            with self.lock:
                code = self.proc.poll()
                if code is None or self.stopping.is_set():
                    continue
                restarts += 1
                if restarts > self.RESTARTS:
                    print(f"demo: the service stopped again (status {code}); see {self.log}")
                    return
                print(
                    f"\ndemo: the service stopped (status {code}); starting it again "
                    "(the simulator retries meanwhile)",
                    flush=True,
                )
                self.proc = self._spawn()

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # as Ctrl-C stops `make run`
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, service: Service, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise SystemExit(f"demo: the service exited with status {service.proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"demo: the service was not ready within {seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--profile", default="typical")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("ANTRIAN_PORT") or 8080),
        help="the service's port (default: ANTRIAN_PORT, else 8080)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="antrian-demo-"))
    config = work / "demo-hall.toml"
    demo_config(EXAMPLE, config)
    url = f"http://127.0.0.1:{args.port}"
    # The simulator plays a whole hall's kiosks through one kiosk token, many times faster
    # than real time: past the per-kiosk rate limit a real kiosk never reaches.
    env = {**os.environ, "ANTRIAN_RATE_LIMITS": "off"}
    command = [
        sys.executable, "-m", "queue_service", "run", "--config", str(config),
        "--port", str(args.port), "--data-dir", str(work / "pgdata"),
    ]  # fmt: skip
    log = work / "service.log"
    print(f"demo: starting the service (data and log in {work}, removed at the end)", flush=True)
    service = Service(command, env, log)
    try:
        try:
            wait_ready(url, service)
        except SystemExit:
            sys.stderr.write(log.read_text("utf-8", errors="replace")[-4000:])
            raise
        service.watch()
        print(
            f"\nAntrian demo at {url}/ui/ : board.html (token demo-manager), "
            f"display.html?site={SITE}, {url}/metrics ; Ctrl-C stops it\n",
            flush=True,
        )
        from queue_service.simulate.cli import INTERRUPTED, run

        status = run(
            [
                "http", "--url", url, "--config", str(config), "--site", SITE,
                "--speed", str(args.speed), "--profile", args.profile, "--seed", str(args.seed),
            ]
        )  # fmt: skip
        # Ctrl-C is how a demo ends: a clean stop.
        return 0 if status == INTERRUPTED else status
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C while the service and its database stop would only leave them
        # half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("demo: stopping the service", flush=True)
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
