"""Soak: simulated days of a hall through the real service at accelerated speed.

`bench.soak.run_soak` plays the simulator's days through the HTTP API of the real app on
the test PostgreSQL, with a manual clock moved by the simulation, and crosses local
midnight (Asia/Makassar) between the days. CI runs 4 days of a 16-counter hall;
ANTRIAN_SOAK_FULL=1 (or `python -m bench.soak`) a week of a 24-counter hall.
"""

from __future__ import annotations

import os
import time

import pytest

from bench.soak import MIB, SoakResult, run_soak
from tests.faults.harness import SUMMARY

FULL = os.environ.get("ANTRIAN_SOAK_FULL", "").strip().lower() not in ("", "0", "false", "no")
DAYS, COUNTERS = (7, 24) if FULL else (4, 16)

# What may fill up over the first two days and then stays: the idempotency keys the engine
# remembers (48 hours' worth) and the stream's replay buffer (the last 4096 events, more
# than a 16-counter hall's day). So day 2 is the reference.
#
# Python's heap, exactly (allocated blocks), right after each midnight, when the day's
# state has been dropped: from the second midnight to the last it may grow by at most half
# of one day's own state (what a midnight drops, ~2 200 blocks for the 16-counter hall):
# a leak of the day's tickets, or of one block per command (~2 800 a day), fails.
HEAP_GROWTH_OF_A_DAY = 0.5
# RSS (the allocator's arenas and what lives outside Python's heap): after the last day
# within 8 MiB of after day 2. Measured: +0.6 MiB over 3 days (16 counters), +1.4 MiB over
# 5 days (24 counters), while the heap stays flat.
RSS_BOUND = 8 * MIB
# The service's own descriptors and tasks: the same after the last day as after the first.
FD_SLACK = 2

pytestmark = pytest.mark.timeout(1800 if FULL else 180)


def _record(result: SoakResult, seconds: float) -> None:
    line = f"soak: simulated {result.summary()}; {seconds:.0f} s"
    print(f"\n[soak] {line}")
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    with SUMMARY.open("a") as out:
        out.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line + "\n")


async def test_simulated_days_keep_memory_fds_and_tasks_flat_and_roll_over_at_local_midnight(
    database_url: str,
) -> None:
    began = time.perf_counter()
    print(
        f"\n[soak] {DAYS} simulated days of a {COUNTERS}-counter hall (ANTRIAN_SOAK_FULL={FULL:d})"
    )
    result = await run_soak(
        database_url, days=DAYS, counters=COUNTERS, report=lambda row: print(f"[soak] {row}")
    )
    _record(result, time.perf_counter() - began)
    days = result.days
    assert len(days) == DAYS

    # The day rollover at local midnight: 23:58:59 and 23:59:59.999 belong to the day,
    # 00:00:00 to the next; numbering restarts; yesterday's tickets are gone.
    assert len(result.midnights) == DAYS - 1
    for midnight in result.midnights:
        assert midnight.ok, midnight.row()
    assert result.numbering_errors == []

    for day in days:
        assert day.issued > 0 and day.commands > 0
        # The committed state holds today's tickets, all of them, and nothing else (the
        # 23:58:59 probe ticket is issued after the figures are taken).
        assert day.live_other_days == 0, day.row()
        assert day.live == day.issued - (0 if day is days[-1] else 1), day.row()
        # What the engine committed for the day is what PostgreSQL holds for it.
        assert day.stored == day.events, day.row()

    # The heap after midnight: flat from the second midnight on.
    after_midnight = [d.blocks_after_midnight for d in days if d.blocks_after_midnight]
    day_state = sorted(d.blocks_end - (d.blocks_after_midnight or 0) for d in days[:-1])
    one_day = day_state[len(day_state) // 2]
    growth = after_midnight[-1] - after_midnight[1]
    print(
        f"[soak] heap after midnight {after_midnight} blocks: {growth:+d} from the second "
        f"midnight to the last; one day's own state {one_day} blocks (median)"
    )
    assert one_day > 0
    assert growth <= HEAP_GROWTH_OF_A_DAY * one_day, (growth, one_day)

    first, reference, last = days[0], days[1], days[-1]
    assert last.rss - reference.rss <= RSS_BOUND, (
        f"RSS grew {(last.rss - reference.rss) / MIB:.1f} MiB from day 2 to day {DAYS}"
    )
    assert last.fds <= first.fds + FD_SLACK
    assert last.tasks <= first.tasks
    assert result.leftover_tasks <= 0  # the app's tasks ended with it
