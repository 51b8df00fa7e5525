"""Families of hall behaviour: models of a hall other than the one the estimate was tuned on.

A profile (`profiles.py`) sets how busy a day is; a family changes *how* the hall behaves,
each by a model of its own rather than other parameters of the calibrated one:

- arrivals: `bursts` (groups arriving together), `surge` (an hour in which one service's
  arrivals exceed what its counters serve), `shape` (another daily shape: a queue at the
  door at opening, a quiet late morning, the peak after lunch);
- service times: `heavy-tail` (a mixture: most visits short, one in five long, with a long
  lognormal tail; the mean kept);
- officers: `late-start` (each counter opens on time or 10-40 minutes late, and comes back
  late from the configured break), `pauses` (half the officers work through the configured
  break and take a staggered lunch of 30-60 minutes of their own; short meetings), `speed`
  (slow and fast officers, 40% either way);
- `mixed`: all of them at once.

Everything a family draws comes from a random generator of its own (`HallDay.family_rng`),
so a day without a family is, seed for seed, the day it was before families existed, and a
family's day keeps the calibrated model's draws where the family does not change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    # -- arrivals
    # Groups: (mean size, seconds over which a group's members arrive, share of a group's
    # members who come for the group's service; the others for any, as arrivals do).
    bursts: tuple[float, float, float] | None = None
    # An hour-long surge on one service: (earliest start, latest start, minutes, extra
    # arrivals as a multiple of what that service's counters serve).
    surge: tuple[time, time, float, float] | None = None
    # A daily shape replacing the profile's (local time, weight), linear in between.
    shape: tuple[tuple[time, float], ...] | None = None
    # -- service times: a mixture with a long tail, the mean kept: (share of long visits,
    # their mean as a multiple of the service's, the long visits' lognormal sigma, the
    # others' lognormal sigma).
    long_tail: tuple[float, float, float, float] | None = None
    # -- officers
    # Per counter: the share that opens on time (0-5 minutes after the hall), the others
    # (from, to) minutes late; and (from, to) minutes late back from a configured break.
    late_start: tuple[float, tuple[float, float], tuple[float, float]] | None = None
    # The share of officers who work through the configured breaks and take a lunch of
    # their own instead: (share, earliest start, latest start, (from, to) minutes).
    staggered_lunch: tuple[float, time, time, tuple[float, float]] | None = None
    # Short meetings: (per hour, (from, to) minutes).
    meetings: tuple[float, tuple[float, float]] | None = None
    # Each officer's time per visit multiplied by one of these, equally likely.
    speeds: tuple[float, ...] | None = None


def _t(hhmm: str) -> time:
    hh, mm = hhmm.split(":")
    return time(int(hh), int(mm))


# A queue at the door at opening, a quiet late morning, the peak after lunch.
AFTERNOON_SHAPE = tuple(
    (_t(a), w)
    for a, w in (
        ("07:55", 2.0),
        ("08:20", 1.2),
        ("09:30", 0.6),
        ("11:00", 0.7),
        ("12:00", 0.8),
        ("13:00", 1.7),
        ("14:00", 1.6),
        ("14:30", 1.0),
    )
)

_BURSTS = (2.5, 120.0, 0.7)
_SURGE = (_t("09:00"), _t("12:00"), 60.0, 1.5)
_LONG_TAIL = (0.2, 2.6, 0.8, 0.5)
_LATE_START = (0.4, (10.0, 40.0), (5.0, 20.0))
_LUNCH = (0.5, _t("10:45"), _t("13:45"), (30.0, 60.0))
_MEETINGS = (0.1, (15.0, 30.0))
_SPEEDS = (0.6, 1.0, 1.4)

FAMILIES: dict[str, Family] = {
    "bursts": Family("bursts", bursts=_BURSTS),
    "surge": Family("surge", surge=_SURGE),
    "shape": Family("shape", shape=AFTERNOON_SHAPE),
    "heavy-tail": Family("heavy-tail", long_tail=_LONG_TAIL),
    "late-start": Family("late-start", late_start=_LATE_START),
    "pauses": Family("pauses", staggered_lunch=_LUNCH, meetings=_MEETINGS),
    "speed": Family("speed", speeds=_SPEEDS),
    "mixed": Family(
        "mixed",
        bursts=_BURSTS,
        surge=_SURGE,
        shape=AFTERNOON_SHAPE,
        long_tail=_LONG_TAIL,
        late_start=_LATE_START,
        staggered_lunch=_LUNCH,
        meetings=_MEETINGS,
        speeds=_SPEEDS,
    ),
}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; one of {', '.join(FAMILIES)}") from None
