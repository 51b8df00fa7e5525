"""`python -m bench` runs every benchmark; `python -m bench
issue|booking|replay|report|ewt|simday` runs one.

One embedded PostgreSQL (or the server named by DATABASE_URL) serves the whole run and is
stopped at the end (`ewt` and `simday` need none: they simulate in memory). Benchmarks
print figures; they never assert a timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime

from bench import booking, ewt, issue, replay, report, simday
from bench.common import database_server


def _load() -> str:
    """The 1/5/15-minute load average: how noisy the machine was (2 cores here)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="which")
    issue.add_arguments(sub.add_parser("issue", help="issue-ticket throughput and latency"))
    booking.add_arguments(
        sub.add_parser("booking", help="the 07:00 rush of bookings beside ticket issuing")
    )
    replay.add_arguments(sub.add_parser("replay", help="start-up replay of a 1M-event day"))
    ewt.add_arguments(sub.add_parser("ewt", help="estimated wait vs actual over simulated days"))
    simday.add_arguments(sub.add_parser("simday", help="one offline day of a 20-counter hall"))
    report.add_arguments(sub.add_parser("report", help="one site's 90-day report"))
    sub.add_parser("all", help="every benchmark with its defaults (the default)")
    args = parser.parse_args(argv)
    which = args.which or "all"
    print(
        f"bench {which}: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {_load()}",
        flush=True,
    )
    began = time.perf_counter()
    if which in ("issue", "booking", "replay", "report", "all"):
        with database_server() as url:
            if which in ("issue", "all"):
                issue.main(args if which == "issue" else sub.choices["issue"].parse_args([]), url)
            if which in ("booking", "all"):
                booking.main(
                    args if which == "booking" else sub.choices["booking"].parse_args([]), url
                )
            if which in ("replay", "all"):
                replay.main(
                    args if which == "replay" else sub.choices["replay"].parse_args([]), url
                )
            if which in ("report", "all"):
                report.main(
                    args if which == "report" else sub.choices["report"].parse_args([]), url
                )
    if which in ("simday", "all"):
        simday.main(args if which == "simday" else sub.choices["simday"].parse_args([]))
    if which in ("ewt", "all"):
        ewt.main(args if which == "ewt" else sub.choices["ewt"].parse_args([]))
    print(
        f"\nbench {which} finished in {time.perf_counter() - began:.0f} s (load average {_load()})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
