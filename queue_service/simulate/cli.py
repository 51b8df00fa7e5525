"""`queue-service simulate offline | http`: run simulated hall days (also `python -m
queue_service.simulate`).

  offline   days against the pure domain on a simulated clock (seconds per day); prints
            what happened and how the estimated wait did against the baseline
  http      one day against a running service through its HTTP API, real time or faster

http plays a site of the configuration the service runs with (--config, else
$ANTRIAN_CONFIG, else the checkout's config/example-hall.toml, which `make run` serves):
it asks the service for its sites and plays the first one open now (or --site). The
service stamps tickets with its own clock and issues them only in the hall's opening
hours: when the hall is closed now, it says so and when the hall opens, and exits with
status 3 (`make demo` plays the example hall at any hour). It rides out a restart of the
service (retries with backoff for --retry-for seconds), waits out rate limits, and stops
on Ctrl-C with what it did so far (status 130).

The profiles online and online-overloaded add antrian online where the hall's services
take bookings (the generated hall's KTP, KK, PASPOR and SKCK): bookings made that morning,
cancelled, missed or checked in early, on time or late, and remote joins confirmed at the
kiosk. Offline, the day's report gives the estimate's error per kind of ticket too. Over
HTTP the day is the service's today (unless --date), booked through its public API from
05:00 of the simulated day; the service's slots are times of its own clock, so they meet
the simulated day's only at --speed 1 started before the bookings (else the service
refuses some bookings and check-ins, and the simulator counts what it answered).

--family plays the day in another family of hall behaviour (bursts, surge, shape,
heavy-tail, late-start, pauses, speed, mixed: `simulate/families.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from queue_service.config import AppConfig, ConfigError, hash_token, load_config
from queue_service.domain.site import Site
from queue_service.domain.vocab import Role, Source
from queue_service.simulate.day import HallDay, Summary
from queue_service.simulate.families import FAMILIES, Family
from queue_service.simulate.offline import OfflineDay, Prediction, run_day
from queue_service.simulate.profiles import (
    PROFILES,
    SIM_KIOSK_TOKEN,
    profile,
    sample_hall,
)

if TYPE_CHECKING:
    from queue_service.simulate.http import HttpDriver

# The configuration `make run` serves, in a checkout.
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "example-hall.toml"
CONFIG_ENV = "ANTRIAN_CONFIG"
CLOSED = 3  # exit status of `simulate http` when the hall is closed now
INTERRUPTED = 130  # Ctrl-C, as a shell reports it


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
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (on a terminal, over the bar; the next update redraws it)."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()


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


def _family(args: argparse.Namespace) -> Family | None:
    return None if args.family is None else FAMILIES[args.family]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="typical", choices=sorted(PROFILES))
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same day")
    p.add_argument(
        "--family",
        choices=sorted(FAMILIES),
        help="another family of hall behaviour (default: the calibrated model's)",
    )
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
    off.add_argument(
        "--config",
        help="site configuration (TOML); default: a generated hall of --counters counters",
    )
    off.add_argument("--counters", type=int, default=20, help="counters of the generated hall")
    off.add_argument("--site", help="site id (default: the first site)")
    _common(off)
    off.add_argument("--days", type=int, default=1, help="days in a row, seeds seed, seed+1, …")
    http = modes.add_parser(
        "http",
        help="one day against a running service's HTTP API",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    http.add_argument(
        "--config",
        help=f"the configuration the service runs with (default: ${CONFIG_ENV}, else "
        "config/example-hall.toml of the checkout)",
    )
    http.add_argument(
        "--site", help="site id (default: the first site of the service that is open now)"
    )
    _common(http)
    http.add_argument("--url", default="http://127.0.0.1:8080", help="the service's base URL")
    http.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (1: real time)"
    )
    http.add_argument(
        "--retry-for",
        type=float,
        default=120.0,
        help="seconds without an answer from the service before giving up (default 120)",
    )
    http.add_argument(
        "--kiosk-token",
        help=f"kiosk bearer token (default: demo-kiosk; {SIM_KIOSK_TOKEN} for the generated "
        "hall of `simulate offline`)",
    )
    http.add_argument(
        "--counter-token",
        help="counter token pattern with {counter} (default: demo-{counter}, or "
        "sim-{counter} for the generated hall)",
    )


def main(args: argparse.Namespace) -> int:
    play = HttpRun(args) if args.mode == "http" else None
    try:
        if play is None:
            return _offline(args)
        return asyncio.run(play.run())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if play is not None:
            play.interrupted()
        else:
            print("\nsimulate: interrupted", file=sys.stderr)
        return INTERRUPTED


# -- offline ------------------------------------------------------------------------


def _offline(args: argparse.Namespace) -> int:
    _, site = _site(args)
    for n in range(args.days):
        seed = args.seed + n
        bar = None if args.quiet else ProgressBar(f"{site.id} {args.profile} seed {seed}")
        began = time.perf_counter()
        day = asyncio.run(
            run_day(
                site,
                profile(args.profile),
                seed,
                args.date,
                bar,
                until=args.until,
                family=_family(args),
            )
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
        kinds = {p.source for p in preds}
        for name in day.driver.predictors:
            lines.append(_errors(f"estimate {name:9s}", name, preds))
            if len(kinds) > 1:  # antrian online: walk-ins, booked tickets, remote joins
                for source in (Source.KIOSK, Source.BOOKING, Source.ONLINE):
                    kind = [p for p in preds if p.source == source]
                    if kind:
                        lines.append(_errors(f"  {_KIND[source]:12s}", name, kind))
    return "\n".join(lines)


_KIND = {Source.KIOSK: "walk-ins", Source.BOOKING: "booked", Source.ONLINE: "remote joins"}


def _errors(label: str, name: str, preds: list[Prediction]) -> str:
    """One line of predictor `name`'s error over `preds`."""
    errors = [p.wait - (p.estimates[name] or 0.0) for p in preds if p.wait is not None]
    mae = sum(abs(e) for e in errors) / len(errors)
    bias = -sum(errors) / len(errors)
    within = sum(abs(e) <= 300 for e in errors) / len(errors)
    return (
        f"  {label} MAE {_minutes(mae)}, bias (estimate - actual) "
        f"{bias / 60:+.1f} min, within ±5 min {within:.0%} ({len(errors)} tickets)"
    )


def _summary_head(s: Summary) -> str:
    acts = ", ".join(f"{k} {v}" for k, v in sorted(s.actions.items()))
    refused = ", ".join(f"{k} {v}" for k, v in sorted(s.refused.items())) or "none"
    return (
        f"{s.profile} day {s.day} ({s.day:%a}), seed {s.seed}: {acts}; refused: {refused}; "
        f"still waiting at the end: {s.waiting_at_end}"
    )


# -- http ---------------------------------------------------------------------------


def _http_config_path(args: argparse.Namespace) -> str:
    path = args.config or os.environ.get(CONFIG_ENV)
    if path:
        return str(path)
    if EXAMPLE_CONFIG.exists():
        return str(EXAMPLE_CONFIG)
    raise SystemExit(
        f"simulate http: give --config FILE (or set {CONFIG_ENV}): the configuration the "
        "service runs with"
    )


def _tokens(args: argparse.Namespace, config: AppConfig, site: Site) -> tuple[str, str]:
    kiosk = args.kiosk_token or "demo-kiosk"
    pattern = args.counter_token or "demo-{counter}"
    known = config.token_by_hash()
    problems = []
    token = known.get(hash_token(kiosk))
    if token is None or token.role not in (Role.KIOSK, Role.MANAGER, Role.ADMIN):
        problems.append("the kiosk token is not a kiosk, manager or admin token of the config")
    for cid in site.counters:
        token = known.get(hash_token(pattern.format(counter=cid)))
        if token is None or (token.role == Role.COUNTER and cid not in token.counters):
            problems.append(f"no token for counter {cid} from the pattern {pattern!r}")
            break
    if problems:
        raise SystemExit("simulate: " + "; ".join(problems))
    return kiosk, pattern


def _in(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def closed_message(site: Site, now: datetime) -> str:
    """What `simulate http` says when `site` is closed at `now`."""
    local = now.astimezone(site.timezone)
    opens = site.next_opening(now)
    when = (
        "it has no opening hours"
        if opens is None
        else f"it opens {opens:%a %d %b %H:%M %Z} (in {_in((opens - now).total_seconds())})"
    )
    return (
        f"simulate: {site.name} ({site.id}) is closed now ({local:%a %H:%M %Z}); {when}. "
        "The service issues tickets only in the hall's opening hours, so a day played now "
        "would be refused ticket by ticket. `make demo` plays the example hall at any hour "
        "(its own service, open round the clock)."
    )


class HttpRun:
    """`simulate http`: find the site on the service, play its day, report (also when
    interrupted)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.hall: HallDay | None = None
        self.driver: HttpDriver | None = None
        self.bar: ProgressBar | None = None
        self.began = time.perf_counter()

    def notice(self, text: str) -> None:
        if self.bar is not None:
            self.bar.note(text)
        else:
            print(text, file=sys.stderr, flush=True)

    async def run(self) -> int:
        import aiohttp

        from queue_service.simulate.http import HttpDriver, ServiceUnavailable

        args = self.args
        path = _http_config_path(args)
        config = load_config(path)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            # The driver's retries serve the questions below too; its clock starts later.
            probe = HttpDriver(
                session,
                args.url,
                "",
                "",
                "",
                datetime.now(UTC),
                retry_for=args.retry_for,
                notice=self.notice,
            )
            try:
                site, now, is_open = await self._site(probe, config, path)
            except ServiceUnavailable as exc:
                print(f"simulate: {exc}", file=sys.stderr)
                return 1
            if not is_open:
                print(closed_message(site, now), file=sys.stderr)
                return CLOSED
            kiosk, pattern = _tokens(args, config, site)
            played = profile(args.profile)
            # Bookings can be made for the service's today, not for a day by seed.
            day = args.date or (site.service_day(now) if played.online else None)
            hall = self.hall = HallDay(site, played, args.seed, day, _family(args))
            hours = site.opening(now)
            until = f"until {hours[1]:%H:%M} {now.astimezone(site.timezone):%Z}" if hours else ""
            span = (hall.end - hall.start).total_seconds() / args.speed
            print(
                f"simulate: {site.id} ({site.name}) of {path} through {args.url}, open now "
                f"{until}; {args.profile} day, seed {args.seed}, x{args.speed:g} "
                f"(the day's {hall.start.astimezone(site.timezone):%H:%M}-"
                f"{hall.end.astimezone(site.timezone):%H:%M} in about {_in(span)})",
                file=sys.stderr,
                flush=True,
            )
            if not args.quiet:
                self.bar = ProgressBar(f"{site.id} {args.profile} x{args.speed:g}")
            driver = self.driver = HttpDriver(
                session,
                args.url,
                site.id,
                kiosk,
                pattern,
                hall.start,
                speed=args.speed,
                retry_for=args.retry_for,
                notice=self.notice,
            )
            self.began = time.perf_counter()
            try:
                summary = await hall.run(driver, self.bar, until=args.until)
            except ServiceUnavailable as exc:
                self.notice(f"simulate: {exc}")
                self._report("gave up")
                return 1
        print(_summary_head(summary))
        self._report("done")
        return 0

    async def _site(
        self, probe: HttpDriver, config: AppConfig, path: str
    ) -> tuple[Site, datetime, bool]:
        """The site to play (the service has it, with the same services and counters as
        the configuration), the service's time and whether the site is open then."""
        status, data = await probe.request("GET", "/api/v1/sites", None)
        if status != 200:
            raise SystemExit(f"simulate: {self.args.url} answered {status} for /api/v1/sites")
        served = [s["id"] for s in data.get("sites", [])]
        wanted = [self.args.site] if self.args.site else list(config.sites)
        both = [s for s in wanted if s in served and s in config.sites]
        if not both:
            raise SystemExit(
                f"simulate: the service at {self.args.url} has the sites "
                f"{', '.join(served) or 'none'}; {path} has {', '.join(config.sites)}"
                + (f" (asked for {self.args.site})" if self.args.site else "")
                + ": give --config the file the service runs with"
            )
        first: tuple[Site, datetime, bool] | None = None
        for site_id in both:
            status, directory = await probe.request("GET", f"/api/v1/sites/{site_id}", None)
            if status != 200:
                raise SystemExit(f"simulate: {self.args.url} answered {status} for {site_id}")
            site = config.sites[site_id]
            _same_site(site, directory, path, self.args.url)
            now = datetime.fromisoformat(directory["now"])
            if directory.get("open"):
                return site, now, True
            first = first or (site, now, False)
        assert first is not None
        return first

    def _report(self, how: str) -> None:
        driver = self.driver
        if driver is None:
            return
        elapsed = time.perf_counter() - self.began
        notes = [f"{len(driver.done)} events done through {self.args.url} in {elapsed:.0f} s"]
        if driver.retries:
            notes.append(f"{driver.retries} retries while the service did not answer")
        if driver.rate_limited:
            notes.append(
                f"rate limited {driver.rate_limited} times ({driver.rate_limited_seconds:.0f} s"
                " waited)"
            )
        print(f"  {how}: " + "; ".join(notes), flush=True)

    def interrupted(self) -> None:
        """Ctrl-C: what was done so far."""
        print(file=sys.stderr)
        if self.hall is None:
            print("simulate: interrupted", file=sys.stderr)
            return
        print("simulate: interrupted; the day so far:", file=sys.stderr)
        print(_summary_head(self.hall.summary), flush=True)
        self._report("interrupted")


def _same_site(site: Site, directory: dict[str, Any], path: str, url: str) -> None:
    services = {s["code"] for s in directory.get("services", [])}
    counters = {c["id"] for c in directory.get("counters", [])}
    if services != set(site.services) or counters != set(site.counters):
        raise SystemExit(
            f"simulate: the service at {url} runs site {site.id} with other services or "
            f"counters than {path}: give --config the file the service runs with"
        )


def run(argv: list[str] | None = None) -> int:
    """`python -m queue_service.simulate ARGS` (the same verbs as `queue-service simulate`)."""
    parser = argparse.ArgumentParser(
        prog="python -m queue_service.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _modes(parser)
    return main(parser.parse_args(sys.argv[1:] if argv is None else argv))
