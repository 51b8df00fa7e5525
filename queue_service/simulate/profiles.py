"""Hall profiles: how busy a simulated day is, and how its people and counters behave.

A profile is plain data; `queue_service/simulate/day.py` turns it, a site's configuration
and a seed into a day. Demand is set relative to the site's capacity (its counters, the
services each serves and each service's `default_service_minutes`), so one profile fits
any hall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import time
from typing import Any

from queue_service.config import AppConfig, hash_token, parse_config
from queue_service.domain.site import WEEKDAYS


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    # Offered load: arriving work / counter capacity, averaged over the issuing hours.
    load: float
    # Relative arrival intensity through the day: (local time, weight), linear in between.
    # The morning peak and the lunch dip are in the shape; a configured break (Friday
    # prayer) multiplies it by `break_factor`.
    shape: tuple[tuple[time, float], ...]
    break_factor: float = 0.35
    # An overload spell: (start, end, factor on arrivals), e.g. another office is down.
    overload: tuple[time, time, float] | None = None
    first_arrival: time = time(7, 55)
    last_arrival: time = time(14, 30)
    counters_open_from: time = time(7, 50)
    # After this the counters close once their queues are empty; at `hard_close`, anyway.
    close_after: time = time(15, 0)
    hard_close: time = time(16, 30)
    # Share of counters staffed today, and of those, the share that leaves early at
    # `early_close` (a meeting, a system going down).
    staffed: float = 1.0
    early_close_share: float = 0.0
    early_close: time = time(13, 30)
    service_sigma: float = 0.55  # lognormal sigma of service times
    officer_sigma: float = 0.2  # lognormal sigma of an officer's speed factor
    walk_seconds: tuple[float, float] = (15.0, 60.0)  # called -> seated
    reaction_seconds: tuple[float, float] = (5.0, 25.0)  # idle officer sees a new ticket
    no_show: float = 0.03  # never comes back when called
    patience_minutes: float = 150.0  # mean patience (exponential): then the citizen leaves
    cancels_when_leaving: float = 0.3  # leavers who cancel on their phone (others no-show)
    priority: float = 0.08
    transfer: float = 0.03
    late: float = 0.07  # called, but needs a recall to come to the counter
    outcomes: tuple[tuple[str, float], ...] = (
        ("served", 0.92),
        ("incomplete", 0.05),
        ("referred", 0.03),
    )
    short_pause_per_hour: float = 0.12  # an officer steps away (5-15 minutes)
    # Antrian online, where a service takes bookings or remote joins (its `booking` table).
    # Off unless a profile sets the shares: a day without them draws nothing for them, so
    # its seed gives the day it gave before bookings existed.
    booking_share: float = 0.0  # of a bookable service's arrivals: booked a slot instead
    remote_share: float = 0.0  # of the other arrivals where remote joins are on: from home
    # When the day's bookings are made (local time, that morning: the book a day starts
    # with, made before the first slot's cut-off).
    booking_window: tuple[time, time] = (time(5, 0), time(6, 25))
    # Slots chosen mornings first: a slot's weight falls by this factor per hour after the
    # day's first slot (a full slot is passed over for the next choice).
    slot_preference: float = 0.75
    booking_cancel: float = 0.07  # bookers who cancel before their slot
    booking_absent: float = 0.08  # bookers who never come (missed at the end of the window)
    # When the others arrive, minutes around their slot's start: (share, from, to); before
    # the check-in window opens they are told to come back then, after it they are missed
    # (or refused) and take a walk-in ticket.
    punctuality: tuple[tuple[float, float, float], ...] = (
        (0.35, -45.0, -5.0),
        (0.45, -5.0, 5.0),
        (0.20, 5.0, 30.0),
    )
    # A remote joiner's trip to the hall; they set off to arrive this margin before the
    # estimate they were told says their turn comes (at once when the trip is longer).
    remote_travel_minutes: tuple[float, float] = (5.0, 30.0)
    remote_margin_minutes: tuple[float, float] = (2.0, 10.0)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def online(self) -> bool:
        """Whether citizens book or join remotely under this profile."""
        return self.booking_share > 0 or self.remote_share > 0


def _t(hhmm: str) -> time:
    hh, mm = hhmm.split(":")
    return time(int(hh), int(mm))


TYPICAL_SHAPE = tuple(
    (_t(a), w)
    for a, w in (
        ("07:55", 0.9),
        ("08:30", 1.5),
        ("09:30", 1.6),
        ("10:30", 1.2),
        ("11:30", 0.9),
        ("12:00", 0.55),
        ("13:00", 0.7),
        ("13:30", 0.9),
        ("14:30", 0.5),
    )
)

_ONLINE_SHARES: dict[str, Any] = {"booking_share": 0.35, "remote_share": 0.4}
PROFILES: dict[str, Profile] = {
    "quiet": Profile("quiet", load=0.45, shape=TYPICAL_SHAPE, staffed=0.8),
    "typical": Profile("typical", load=0.75, shape=TYPICAL_SHAPE),
    "overloaded": Profile(
        "overloaded",
        load=0.95,
        shape=TYPICAL_SHAPE,
        overload=(time(9, 30), time(11, 0), 1.6),
        patience_minutes=120.0,
    ),
    "closing-early": Profile(
        "closing-early",
        load=0.75,
        shape=TYPICAL_SHAPE,
        early_close_share=0.4,
    ),
    # Antrian online: a typical day, and an overloaded one, where about a third of the
    # bookable services' citizens booked a slot, and of the others, where remote joins are
    # on, two in five would join from home (when the wait shown is longer than their trip).
    "online": Profile("online", load=0.75, shape=TYPICAL_SHAPE, **_ONLINE_SHARES),
    "online-overloaded": Profile(
        "online-overloaded",
        load=0.95,
        shape=TYPICAL_SHAPE,
        overload=(time(9, 30), time(11, 0), 1.6),
        patience_minutes=120.0,
        **_ONLINE_SHARES,
    ),
}


def profile(name: str, **changes: Any) -> Profile:
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; one of {', '.join(PROFILES)}") from None
    return replace(base, **changes) if changes else base


# -- a generated hall -------------------------------------------------------------------

# (code, agency, minutes) of a mid-sized MPP's services.
_SERVICES = (
    ("KTP", "dukcapil", 8),
    ("KK", "dukcapil", 6),
    ("AKTA", "dukcapil", 7),
    ("PASPOR", "imigrasi", 12),
    ("JKN", "bpjs", 7),
    ("PKB", "samsat", 4),
    ("SKCK", "polres", 6),
    ("NPWP", "pajak", 6),
    ("PDAM", "pdam", 3),
    ("BANK", "bank", 4),
)
# The generated hall's antrian online: the services citizens book ahead (each entering the
# queue its own way) and those that take remote joins. Slots of 30 minutes.
_ONLINE: dict[str, dict[str, Any]] = {
    "KTP": {"entry": "at_slot", "remote_join": True},
    "KK": {"entry": "fifo"},
    "PASPOR": {"entry": "at_slot", "late": "refuse"},
    "SKCK": {"entry": "priority", "remote_join": True},
}
SIM_KIOSK_TOKEN = "sim-kiosk"  # noqa: S105 - tokens of the generated hall (public)
SIM_COUNTER_TOKEN = "sim-{counter}"  # noqa: S105


def sample_hall(counters: int = 20, site_id: str = "mpp-sim") -> AppConfig:
    """A hall of 10 services (fewer with fewer than 10 counters) and `counters` counters
    (some serving two or three services), open 07:30-15:00 Monday to Saturday with a lunch
    break and the Friday prayer break; KTP, KK, PASPOR and SKCK take bookings, KTP and SKCK
    remote joins too. Tokens: kiosk `sim-kiosk`, counters `sim-<counter id>`."""
    chosen = _SERVICES[: max(1, min(len(_SERVICES), counters))]
    services: list[dict[str, Any]] = []
    for i, (code, agency, minutes) in enumerate(chosen):
        services.append(
            {
                "code": code,
                "agency": agency,
                "name_id": f"Layanan {code}",
                "name_en": f"Service {code}",
                "prefix": "ABCDEFGHJKLMNPQRSTUV"[i],
                "target_wait_minutes": 20 if minutes >= 6 else 15,
                "default_service_minutes": minutes,
                "priority_policy": "strict",
            }
        )
    # Counters are dealt to services by their work (minutes), round-robin over the
    # heaviest first; every third counter also serves its neighbour's service.
    weights = sorted(range(len(chosen)), key=lambda i: -chosen[i][2])
    raw_counters: list[dict[str, Any]] = []
    for n in range(counters):
        main = weights[n % len(weights)]
        served = [chosen[main][0]]
        if n % 3 == 2:
            served.append(chosen[(main + 1) % len(chosen)][0])
        if n % 7 == 6:
            served.append(chosen[(main + 3) % len(chosen)][0])
        raw_counters.append(
            {
                "id": f"loket-{n + 1:02d}",
                "name": f"Loket {n + 1}",
                "services": list(dict.fromkeys(served)),
                "uses_start": chosen[main][2] > 3,
            }
        )
    for svc in services:
        # A slot holds what its counters serve in 30 minutes less the half kept for
        # walk-ins (the configuration's own rule); a service too thinly staffed to keep a
        # place takes no bookings (the configuration would refuse it).
        share = sum(1 / len(c["services"]) for c in raw_counters if svc["code"] in c["services"])
        capacity = math.floor(share * 30 / svc["default_service_minutes"] * 0.5 + 1e-9)
        if svc["code"] in _ONLINE and capacity >= 1:
            svc["booking"] = {**_ONLINE[svc["code"]], "slot_minutes": 30, "capacity": capacity}
    agencies = sorted({a for _, a, _ in chosen})
    tokens: list[dict[str, Any]] = [
        {"name": "sim-kiosk", "role": "kiosk", "sha256": hash_token(SIM_KIOSK_TOKEN)}
    ]
    tokens += [
        {
            "name": f"sim-{c['id']}",
            "role": "counter",
            "sha256": hash_token(SIM_COUNTER_TOKEN.format(counter=c["id"])),
            "sites": [site_id],
            "counters": [c["id"]],
        }
        for c in raw_counters
    ]
    return parse_config(
        {
            "sites": [
                {
                    "id": site_id,
                    "name": "Mal Pelayanan Publik Simulasi",
                    "timezone": "Asia/Makassar",
                    "hours": {d: ["07:30", "15:00"] for d in WEEKDAYS[:6]},
                    "breaks": [
                        {
                            "days": ["mon", "tue", "wed", "thu", "sat"],
                            "start": "12:00",
                            "end": "13:00",
                            "label": "Istirahat",
                        },
                        {"days": ["fri"], "start": "11:30", "end": "13:00", "label": "Jumatan"},
                    ],
                    "agencies": [{"id": a, "name": a.upper()} for a in agencies],
                    "services": services,
                    "counters": raw_counters,
                    # One simulator books and joins for a whole hall from one address.
                    "online": {"max_per_address_per_day": 1000},
                }
            ],
            "tokens": tokens,
        },
        "<sample hall>",
    )
