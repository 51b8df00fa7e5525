"""`queue-service report`: one site's report for a range of service days, as CSV, HTML or
JSON, on standard output or into a file.

The configuration is --config, else ANTRIAN_CONFIG, else the checkout's
config/example-hall.toml (the one `make run` serves). It reads the database the service
uses: DATABASE_URL, or the embedded PostgreSQL in ANTRIAN_DATA_DIR (started for the report
and stopped after it, unless the service already runs it). Long ranges show their progress
on standard error while closed days are rolled up for the first time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from queue_service.config import ConfigError, load_config
from queue_service.domain.clock import Clock, SystemClock
from queue_service.reports.build import ReportRangeError, build_report, check_range
from queue_service.reports.render import to_csv, to_html, to_json
from queue_service.settings import Settings, SettingsError
from queue_service.store.db import EmbeddedPostgres, create_pool
from queue_service.store.migrate import migrate
from queue_service.store.protocol import StoreUnavailable

FORMATS = ("csv", "html", "json")
CONFIG_ENV = "ANTRIAN_CONFIG"
# The configuration `make run` serves, in a checkout.
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "example-hall.toml"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", required=True, help="site id")
    parser.add_argument("--from", dest="first", type=_day, required=True, help="first day")
    parser.add_argument("--to", dest="last", type=_day, required=True, help="last day")
    parser.add_argument("--format", choices=FORMATS, default="html")
    parser.add_argument("--output", "-o", help="file to write (default: standard output)")
    parser.add_argument(
        "--config",
        help=f"site configuration (TOML); default ${CONFIG_ENV}, else the checkout's "
        "config/example-hall.toml",
        default=None,
    )
    parser.add_argument(
        "--csv-locale",
        choices=("id", "en"),
        default="id",
        help="CSV for Excel set to Indonesian (';', decimal comma; default) or English",
    )
    parser.add_argument(
        "--data-dir", help="embedded PostgreSQL data directory when DATABASE_URL is unset"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the `queue-service` command line's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="write a site's report (CSV, HTML or JSON)", description=__doc__
    )
    add_arguments(parser)
    return parser


class _Progress:
    """Days rolled up so far, on one rewritten line on a terminal, else every 10%."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if total < 7:  # short ranges finish before a progress line is worth reading
            return
        text = f"menyiapkan hari / preparing days {done}/{total}"
        if self.tty:
            end = "\n" if done == total else ""
            self.stream.write(f"\r{text} ({time.monotonic() - self.started:.0f} s){end}")
            self.stream.flush()
            return
        tenth = done * 10 // total
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(text + "\n")
            self.stream.flush()


def _server_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    import psutil

    return bool(psutil.pid_exists(pid))


async def produce(
    args: argparse.Namespace, dsn: str, clock: Clock, progress_stream: TextIO
) -> bytes:
    """The report's bytes (the database at `dsn`)."""
    config = load_config(args.config)
    site = config.sites.get(args.site)
    if site is None:
        raise LookupError(f"unknown site {args.site!r}; known: {', '.join(config.sites)}")
    check_range(args.first, args.last)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        report = await build_report(
            pool, site, args.first, args.last, clock.now(), progress=_Progress(progress_stream)
        )
    finally:
        await pool.close()
    if args.format == "json":
        return (to_json(report) + "\n").encode()
    if args.format == "csv":
        return to_csv(report, args.csv_locale).encode("utf-8")
    return to_html(report).encode()


def main(args: argparse.Namespace, clock: Clock | None = None) -> int:
    """Run `report` with parsed arguments; 0 on success, 1 on a problem (told on stderr)."""
    args.config = args.config or os.environ.get(CONFIG_ENV)
    if not args.config and EXAMPLE_CONFIG.exists():
        args.config = str(EXAMPLE_CONFIG)
    if not args.config:
        print(f"report: give --config FILE (or set {CONFIG_ENV})", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(
            args.config, data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None
        )
    except SettingsError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    try:
        if dsn is None:
            adopt = _server_running(settings.data_dir.resolve())
            embedded = EmbeddedPostgres(settings.data_dir)
            dsn = embedded.start()
            if adopt:
                embedded = None  # the running service owns it: never stop it
        data = asyncio.run(produce(args, dsn, clock or SystemClock(), sys.stderr))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (LookupError, ReportRangeError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    except (StoreUnavailable, OSError) as exc:
        print(f"report: database unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    if args.output:
        Path(args.output).write_bytes(data)
        print(
            f"report: {args.site} {args.first}..{args.last} {args.format} -> {args.output}"
            f" ({len(data)} bytes, {datetime.now(UTC):%H:%M:%S} UTC)",
            file=sys.stderr,
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
