"""A busy Monday morning in the example hall, played through the API, for screenshots."""

from __future__ import annotations

import random
from datetime import timedelta

from queue_service.domain.clock import ManualClock
from tests.browser.conftest import Api
from tests.conftest import MONDAY_9AM

# Roughly how often each service is asked for in a morning (tickets per hour).
DEMAND = {
    "KTP-EL": 16,
    "KK": 10,
    "AKTA": 6,
    "PINDAH": 3,
    "PASPOR": 6,
    "PASPOR-AMBIL": 4,
    "JKN-ADM": 10,
    "JKN-INFO": 4,
    "JHT": 4,
    "BPJSTK-PESERTA": 3,
    "PKB": 14,
    "STNK-5TH": 3,
    "SKCK": 9,
    "NPWP": 4,
    "SPT": 3,
    "PDAM-BAYAR": 6,
    "PDAM-SAMBUNG": 2,
    "BANK-TELLER": 6,
    "BANK-CS": 3,
    "NIB": 3,
}
STAFFED = [
    "loket-01",
    "loket-02",
    "loket-03",
    "loket-04",
    "loket-05",
    "loket-07",
    "loket-09",
    "loket-10",
    "loket-11",
    "loket-13",
    "loket-15",
    "loket-17",
    "loket-19",
    "loket-21",
    "loket-23",
    "loket-24",
]
PRIORITIES = [None] * 12 + ["lansia", "lansia", "disabilitas", "ibu_hamil"]


async def busy_morning(api: Api, clock: ManualClock, *, seed: int = 7) -> None:
    """08:00 to 09:00: arrivals at the kiosks, counters calling, serving and finishing."""
    rng = random.Random(seed)
    clock.set(MONDAY_9AM - timedelta(hours=1))
    for counter in STAFFED:
        await api.act(counter, "open")
    busy_until: dict[str, float] = {}
    services = list(DEMAND)
    weights = [DEMAND[s] for s in services]
    for minute in range(60):
        for _ in range(rng.choice((1, 2, 2, 3))):
            await api.issue(rng.choices(services, weights)[0], rng.choice(PRIORITIES))
        for counter in STAFFED:
            until = busy_until.get(counter)
            if until is not None and minute >= until:
                await api.act(counter, "finish", {"outcome": "served"})
                busy_until.pop(counter)
            if counter not in busy_until and rng.random() < 0.55:
                status, _ = await api.act(counter, "call-next", ok=False)
                if status == 200:
                    if counter not in ("loket-15", "loket-23"):  # tellers do not "start"
                        await api.act(counter, "start")
                    busy_until[counter] = minute + rng.randint(4, 14)
        clock.advance(60)
    await api.act("loket-05", "finish", ok=False)
    await api.act("loket-05", "pause", {"reason": "Istirahat"}, ok=False)
