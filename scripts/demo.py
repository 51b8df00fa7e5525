"""A living hall in a minute: start the service and drive it with the simulator.

    .venv/bin/python scripts/demo.py [--speed 30] [--profile typical] [--port 8080]

Starts `queue-service run` with the example hall on a fresh embedded PostgreSQL (in a temp
directory, removed at the end; or the server named by DATABASE_URL), opened round the clock
so the demo works at any hour, then plays a simulated day of MPP Kota Banjarmasin through
the HTTP API `--speed` times faster than real time (30: the day in about 15 minutes).
Watch the board, the TV display and /metrics while it runs; Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example-hall.toml"
SITE = "mpp-banjarmasin"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def demo_config(source: Path, target: Path) -> None:
    """The example hall, open every day 00:00-24:00 and without per-service cut-offs (the
    simulated day's schedule runs at any real hour; its breaks are played by the counters)."""
    out: list[str] = []
    in_hours = False
    for line in source.read_text("utf-8").splitlines():
        if line.strip() == "[sites.hours]":
            in_hours = True
            out.append(line)
            out.extend(f'{day} = ["00:00", "24:00"]' for day in DAYS)
            continue
        if in_hours:
            if re.match(r"^(mon|tue|wed|thu|fri|sat|sun)\s*=", line):
                continue
            in_hours = False
        if re.match(r"^\s*cutoff\s*=", line):
            continue
        out.append(line)
    target.write_text("\n".join(out) + "\n", "utf-8")


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the service exited with status {proc.returncode}")
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
    parser.add_argument("--port", type=int, default=8080)
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
    with log.open("wb") as out:
        # The service's own log (access lines, printer warnings: the demo hall has no
        # printer) goes to a file; the terminal keeps the simulator's progress bar.
        service = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)  # noqa: S603
    try:
        try:
            wait_ready(url, service)
        except SystemExit:
            sys.stderr.write(log.read_text("utf-8", errors="replace")[-4000:])
            raise
        print(
            f"\nAntrian demo at {url}/ui/ : board.html (token demo-manager), "
            f"display.html?site={SITE}, {url}/metrics\n",
            flush=True,
        )
        from queue_service.simulate.cli import run

        return run(
            [
                "http", "--url", url, "--config", str(EXAMPLE), "--site", SITE,
                "--speed", str(args.speed), "--profile", args.profile, "--seed", str(args.seed),
            ]
        )  # fmt: skip
    except KeyboardInterrupt:
        return 0
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
