"""Hall profiles: how busy a simulated day is, and how its people and counters behave.

A profile is plain data; `queue_service/simulate/day.py` turns it, a site's configuration
and a seed into a day. Demand is set relative to the site's capacity (its counters, the
services each serves and each service's `default_service_minutes`), so one profile fits
any hall.
"""

from __future__ import annotations

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
    extra: dict[str, Any] = field(default_factory=dict)


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
SIM_KIOSK_TOKEN = "sim-kiosk"  # noqa: S105 - tokens of the generated hall (public)
SIM_COUNTER_TOKEN = "sim-{counter}"  # noqa: S105


def sample_hall(counters: int = 20, site_id: str = "mpp-sim") -> AppConfig:
    """A hall of 10 services (fewer with fewer than 10 counters) and `counters` counters
    (some serving two or three services), open 07:30-15:00 Monday to Saturday with a lunch
    break and the Friday prayer break. Tokens: kiosk `sim-kiosk`, counters
    `sim-<counter id>`."""
    chosen = _SERVICES[: max(1, min(len(_SERVICES), counters))]
    services = []
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
    raw_counters = []
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
                }
            ],
            "tokens": tokens,
        },
        "<sample hall>",
    )
