"""`queue-service simulate offline | http`: run simulated hall days (also `python -m
queue_service.simulate`).

  offline   days against the pure domain on a simulated clock (seconds per day); prints
            what happened and how the estimated wait did against the baseline
  http      one day against a running service through its HTTP API, real time or faster
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import date
from datetime import time as dt_time
from typing import TextIO

from queue_service.config import AppConfig, ConfigError, Site, hash_token, load_config
from queue_service.simulate.day import HallDay, Summary
from queue_service.simulate.offline import OfflineDay, run_day
from queue_service.simulate.profiles import (
    PROFILES,
    SIM_COUNTER_TOKEN,
    SIM_KIOSK_TOKEN,
    profile,
    sample_hall,
)


class ProgressBar:
    """A one-line progress bar on stderr (redrawn in place on a terminal, else every 10%)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last_tenth = -1
        self.began = time.perf_counter()

    def __call__(self, done: float, note: str = "") -> None:
        done = min(1.0, max(0.0, done))
        filled = round(done * self.width)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} "
            f"{time.perf_counter() - self.began:5.1f}s {note}"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= 1.0 else ""))
            self.stream.flush()
        elif int(done * 10) != self._last_tenth:
            self._last_tenth = int(done * 10)
            self.stream.write(line + "\n")


def _hhmm(value: str) -> dt_time:
    try:
        return dt_time.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a time HH:MM") from None


def _site(args: argparse.Namespace) -> tuple[AppConfig, Site]:
    config = load_config(args.config) if args.config else sample_hall(args.counters)
    site_id = args.site or next(iter(config.sites))
    try:
        return config, config.sites[site_id]
    except KeyError:
        raise SystemExit(f"simulate: no site {site_id!r} in the configuration") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="site configuration (TOML); default: a generated hall of --counters counters",
    )
    p.add_argument("--counters", type=int, default=20, help="counters of the generated hall")
    p.add_argument("--site", help="site id (default: the first site)")
    p.add_argument("--profile", default="typical", choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same day")
    p.add_argument("--date", type=date.fromisoformat, help="the day (default: by seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--until", type=_hhmm, help="stop the day at this local time (HH:MM; default 16:30)"
    )


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `simulate` (with `offline` and `http`) to a command line's subparsers."""
    sim = subparsers.add_parser(
        "simulate",
        help="run simulated hall days (offline, or against a running service)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _modes(sim)
    return sim


def _modes(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", required=True)
    off = modes.add_parser("offline", help="days against the pure domain, simulated clock")
    _common(off)
    off.add_argument("--days", type=int, default=1, help="days in a row, seeds seed, seed+1, …")
    http = modes.add_parser("http", help="one day against a running service's HTTP API")
    _common(http)
    http.add_argument("--url", default="http://127.0.0.1:8080", help="the service's base URL")
    http.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (1: real time)"
    )
    http.add_argument(
        "--kiosk-token",
        help=f"kiosk bearer token (default: demo-kiosk; {SIM_KIOSK_TOKEN} for the generated hall)",
    )
    http.add_argument(
        "--counter-token",
        help="counter token pattern with {counter} (default: demo-{counter}, or "
        "sim-{counter} for the generated hall)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        if args.mode == "offline":
            return _offline(args)
        return asyncio.run(_http(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1


# -- offline ------------------------------------------------------------------------


def _offline(args: argparse.Namespace) -> int:
    _, site = _site(args)
    for n in range(args.days):
        seed = args.seed + n
        bar = None if args.quiet else ProgressBar(f"{site.id} {args.profile} seed {seed}")
        began = time.perf_counter()
        day = asyncio.run(
            run_day(site, profile(args.profile), seed, args.date, bar, until=args.until)
        )
        elapsed = time.perf_counter() - began
        print(offline_report(day, elapsed))
    return 0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def offline_report(day: OfflineDay, elapsed: float) -> str:
    s = day.summary
    lines = [_summary_head(s), f"  {len(day.events)} events in {elapsed:.2f} s"]
    preds = [
        p
        for p in day.driver.predictions.values()
        if p.wait is not None and None not in p.estimates.values()
    ]
    if preds:
        waits = [p.wait for p in preds if p.wait is not None]
        lines.append(
            f"  wait of first calls: median {_minutes(statistics.median(waits))}, "
            f"max {_minutes(max(waits))}"
        )
        for name in day.driver.predictors:
            errors = [p.wait - (p.estimates[name] or 0.0) for p in preds if p.wait is not None]
            mae = sum(abs(e) for e in errors) / len(errors)
            bias = -sum(errors) / len(errors)
            within = sum(abs(e) <= 300 for e in errors) / len(errors)
            lines.append(
                f"  estimate {name:9s} MAE {_minutes(mae)}, bias (estimate - actual) "
                f"{bias / 60:+.1f} min, within ±5 min {within:.0%} ({len(errors)} tickets)"
            )
    return "\n".join(lines)


def _summary_head(s: Summary) -> str:
    acts = ", ".join(f"{k} {v}" for k, v in sorted(s.actions.items()))
    refused = ", ".join(f"{k} {v}" for k, v in sorted(s.refused.items())) or "none"
    return (
        f"{s.profile} day {s.day} ({s.day:%a}), seed {s.seed}: {acts}; refused: {refused}; "
        f"still waiting at the end: {s.waiting_at_end}"
    )


# -- http ---------------------------------------------------------------------------


def _tokens(args: argparse.Namespace, config: AppConfig, site: Site) -> tuple[str, str]:
    generated = args.config is None
    kiosk = args.kiosk_token or (SIM_KIOSK_TOKEN if generated else "demo-kiosk")
    pattern = args.counter_token or (SIM_COUNTER_TOKEN if generated else "demo-{counter}")
    known = config.token_by_hash()
    problems = []
    token = known.get(hash_token(kiosk))
    if token is None or token.role not in ("kiosk", "manager", "admin"):
        problems.append("the kiosk token is not a kiosk, manager or admin token of the config")
    for cid in site.counters:
        token = known.get(hash_token(pattern.format(counter=cid)))
        if token is None or (token.role == "counter" and cid not in token.counters):
            problems.append(f"no token for counter {cid} from the pattern {pattern!r}")
            break
    if problems:
        raise SystemExit("simulate: " + "; ".join(problems))
    return kiosk, pattern


async def _http(args: argparse.Namespace) -> int:
    import aiohttp

    from queue_service.simulate.http import HttpDriver, ServiceUnavailable

    config, site = _site(args)
    kiosk, pattern = _tokens(args, config, site)
    hall = HallDay(site, profile(args.profile), args.seed, args.date)
    bar = None if args.quiet else ProgressBar(f"{site.id} {args.profile} x{args.speed:g}")
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        driver = HttpDriver(
            session, args.url, site.id, kiosk, pattern, hall.start, speed=args.speed
        )
        began = time.perf_counter()
        try:
            summary = await hall.run(driver, bar, until=args.until)
        except ServiceUnavailable as exc:
            print(f"simulate: {exc}", file=sys.stderr)
            return 1
    print(_summary_head(summary))
    elapsed = time.perf_counter() - began
    print(f"  {len(driver.done)} events done through {args.url} in {elapsed:.0f} s")
    return 0


def run(argv: list[str] | None = None) -> int:
    """`python -m queue_service.simulate ARGS` (the same verbs as `queue-service simulate`)."""
    parser = argparse.ArgumentParser(
        prog="python -m queue_service.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _modes(parser)
    return main(parser.parse_args(sys.argv[1:] if argv is None else argv))
