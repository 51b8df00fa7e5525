"""A scripted day with an injected clock: the ticket_visits view's wait, walk and service
seconds equal the definitions of docs/design.md exactly, for plain, priority, recalled, transferred,
no-show, cancelled tickets, and for a counter that does not use "start"."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from queue_service.domain.clock import ManualClock
from queue_service.web.keys import ENGINE
from tests.conftest import KIOSK, MANAGER, MONDAY_9AM, SITE, counter_auth

BASE = f"/api/v1/sites/{SITE}"


class Script:
    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock
        self.tickets: dict[str, str] = {}  # number -> id

    def at(self, seconds: int) -> None:
        self.clock.set(MONDAY_9AM + timedelta(seconds=seconds))

    async def issue(self, t: int, service: str, priority: str | None = None) -> str:
        self.at(t)
        body: dict[str, Any] = {"service": service}
        if priority:
            body["priority"] = priority
        resp = await self.client.post(f"{BASE}/tickets", json=body, headers=KIOSK)
        assert resp.status == 201, await resp.text()
        data = await resp.json()
        self.tickets[data["number"]] = data["id"]
        return str(data["number"])

    async def act(self, t: int, counter: str, action: str, **body: Any) -> dict[str, Any]:
        self.at(t)
        resp = await self.client.post(
            f"{BASE}/counters/{counter}/{action}", json=body, headers=counter_auth(counter)
        )
        data = await resp.json()
        assert resp.status == 200, data
        return data  # type: ignore[no-any-return]

    async def cancel(self, t: int, number: str) -> None:
        self.at(t)
        resp = await self.client.post(f"/api/v1/tickets/{self.tickets[number]}/cancel", json={})
        assert resp.status == 200


async def run_day(client: TestClient, clock: ManualClock) -> Script:
    s = Script(client, clock)
    await s.issue(0, "KTP-EL")  # A001: recalled, then transferred to KK
    await s.issue(10, "KTP-EL", "lansia")  # A002: priority, called first
    await s.issue(20, "KTP-EL")  # A003: cancelled while waiting
    await s.issue(30, "KK")  # B001: served at a second counter, outcome incomplete
    await s.issue(40, "KTP-EL")  # A004: no-show after two calls
    await s.act(60, "loket-01", "open")
    assert (await s.act(100, "loket-01", "call-next"))["ticket"]["number"] == "A002"
    await s.act(130, "loket-01", "start")
    await s.act(400, "loket-01", "finish", outcome="served")
    assert (await s.act(410, "loket-01", "call-next"))["ticket"]["number"] == "A001"
    await s.act(470, "loket-01", "recall")
    await s.act(500, "loket-01", "start")
    await s.act(700, "loket-01", "transfer", service="KK")
    await s.cancel(720, "A003")
    await s.act(750, "loket-04", "open")
    # The transferred ticket keeps its original issue time: ahead of B001 (issued at 30).
    assert (await s.act(800, "loket-04", "call-next"))["ticket"]["number"] == "A001"
    await s.act(1000, "loket-04", "finish", outcome="served")  # no start: walk 0
    assert (await s.act(1010, "loket-01", "call-next"))["ticket"]["number"] == "A004"
    await s.act(1070, "loket-01", "recall")
    await s.act(1130, "loket-01", "no-show")
    assert (await s.act(1200, "loket-04", "call-next"))["ticket"]["number"] == "B001"
    await s.act(1260, "loket-04", "start")
    await s.act(1500, "loket-04", "finish", outcome="incomplete")
    await s.issue(1510, "BANK-TELLER")  # U001 at a counter that does not use "start"
    await s.act(1510, "loket-15", "open")
    await s.act(1520, "loket-15", "call-next")
    await s.act(1600, "loket-15", "finish")
    return s


# number, segment, service, counter, outcome, calls, wait, walk, service seconds
EXPECTED = [
    ("A001", 0, "KTP-EL", "loket-01", "transferred", 2, 410.0, 30.0, 200.0),
    ("A001", 1, "KK", "loket-04", "served", 1, 100.0, 0.0, 200.0),
    ("A002", 0, "KTP-EL", "loket-01", "served", 1, 90.0, 30.0, 270.0),
    ("A003", 0, "KTP-EL", None, "cancelled", 0, None, None, None),
    ("B001", 0, "KK", "loket-04", "incomplete", 1, 1170.0, 60.0, 240.0),
    ("A004", 0, "KTP-EL", "loket-01", "no_show", 2, 970.0, None, None),
    ("U001", 0, "BANK-TELLER", "loket-15", "served", 1, 10.0, 0.0, 80.0),
]


async def test_visit_view_matches_the_definitions(client: TestClient, clock: ManualClock) -> None:
    await run_day(client, clock)
    engine = client.app[ENGINE]
    rows = await engine.store.visits(SITE, MONDAY_9AM.date())
    got = [
        (
            r["number"],
            r["segment"],
            r["service"],
            r["counter_id"],
            r["outcome"],
            r["calls"],
            r["wait_seconds"],
            r["walk_seconds"],
            r["service_seconds"],
        )
        for r in rows
    ]
    assert got == EXPECTED
    a001 = [r for r in rows if r["number"] == "A001"]
    assert a001[0]["ticket_issued_at"] == a001[1]["ticket_issued_at"] == MONDAY_9AM
    assert a001[1]["enqueued_at"] == MONDAY_9AM + timedelta(seconds=700)
    assert next(r for r in rows if r["number"] == "A002")["priority"] == "lansia"


async def test_live_snapshot_agrees_with_the_visit_view(
    client: TestClient, clock: ManualClock
) -> None:
    await run_day(client, clock)
    snap = await (await client.get(f"{BASE}/snapshot", headers=MANAGER)).json()
    services = {s["code"]: s for s in snap["services"]}
    counters = {c["id"]: c for c in snap["counters"]}
    # KTP-EL: A002 (90 s) and A001 (410 s) and A004 (970 s) were called; target 20 min.
    assert services["KTP-EL"]["called_today"] == 3
    assert services["KTP-EL"]["called_within_target_today"] == 3
    assert services["KTP-EL"]["no_shows_today"] == 1
    assert services["KTP-EL"]["cancelled_today"] == 1
    assert services["KK"]["called_today"] == 2
    # KK's target is 15 min: B001 waited 1170 s > 900 s.
    assert services["KK"]["called_within_target_today"] == 1
    assert counters["loket-01"]["served_today"] == 2  # A002 served, A001 transferred
    assert counters["loket-01"]["busy_seconds_today"] == 470.0
    assert counters["loket-04"]["served_today"] == 2
    assert counters["loket-04"]["busy_seconds_today"] == 440.0
    assert counters["loket-15"]["busy_seconds_today"] == 80.0
    assert all(s["waiting"] == 0 for s in snap["services"])
