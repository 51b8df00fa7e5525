"""The end of a service day: tickets still open at local midnight close with a
`ticket_expired` event (outcome `expired`), and the exported counters never go back,
across the midnight and across a restart after it (issue 14, items 1, 2 and 7).

A restart of the real service process, scraped by a real Prometheus, is in
tests/test_counter_restart.py; these run the app in-process on a manual clock."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.domain.vocab import EventType, Outcome
from queue_service.settings import Settings
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE
from tests.conftest import KIOSK, SITE, counter_auth, fetch
from tests.test_engine import _close, _engine

# Tuesday 24 November 2026, 00:00 WITA: the end of Monday's service day.
MONDAY_MIDNIGHT = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
EXAMPLE_SERVICES = ("KTP-EL", "KK", "SKCK")


async def post(client: TestClient, path: str, headers: dict[str, str], **body: Any) -> Any:
    resp = await client.post(f"/api/v1/sites/{SITE}{path}", json=body, headers=headers)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics of the site, keyed by (sample name, sorted labels)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            if s.labels.get("site") == SITE:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def cumulative(samples: dict[tuple[str, Any], float]) -> dict[tuple[str, Any], float]:
    """The counter and histogram samples (those that must never decrease)."""
    return {
        k: v
        for k, v in samples.items()
        if k[0].endswith(("_total", "_bucket", "_count", "_sum"))
        and not k[0].startswith(("qms_ikm", "qms_device"))
    }


def reconciles(samples: dict[tuple[str, Any], float], held: dict[str, int]) -> None:
    """issued = closed (every outcome) + waiting + held, per service, at this moment."""
    by: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (name, labels), value in samples.items():
        service = dict(labels).get("service")
        if service is None:
            continue
        if name == "qms_tickets_issued_total":
            by[service]["issued"] += value
        elif name == "qms_tickets_closed_total" and dict(labels)["outcome"] != "transferred":
            by[service]["closed"] += value
        elif name == "qms_queue_waiting_tickets":
            by[service]["waiting"] += value
    for service, f in by.items():
        assert f["issued"] == f["closed"] + f["waiting"] + held.get(service, 0), (service, f)


async def held_by_service(client: TestClient) -> dict[str, int]:
    resp = await client.get(
        f"/api/v1/sites/{SITE}/snapshot", headers={"Authorization": "Bearer demo-manager"}
    )
    snap = await resp.json()
    out: dict[str, int] = defaultdict(int)
    for c in snap["counters"]:
        if c["ticket"] is not None:
            out[c["ticket"]["service"]] += 1
    return out


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def monday(client: TestClient, clock: ManualClock) -> None:
    """Monday: 7 tickets; one served, one being served, one called, four waiting."""
    for service in ("KTP-EL",) * 5 + ("KK", "SKCK"):
        await post(client, "/tickets", KIOSK, service=service)
    for n in (1, 2, 3):
        await post(client, f"/counters/loket-0{n}/open", counter_auth(f"loket-0{n}"))
    clock.advance(minutes=5)
    await post(client, "/counters/loket-01/call-next", counter_auth("loket-01"))
    await post(client, "/counters/loket-01/start", counter_auth("loket-01"))
    clock.advance(minutes=4)
    await post(client, "/counters/loket-01/finish", counter_auth("loket-01"), outcome="served")
    await post(client, "/counters/loket-01/call-next", counter_auth("loket-01"))
    await post(client, "/counters/loket-01/start", counter_auth("loket-01"))
    await post(client, "/counters/loket-02/call-next", counter_auth("loket-02"))
    clock.advance(hours=2)


async def test_tickets_open_at_midnight_expire_and_issued_reconciles(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    await monday(client, clock)
    before = await scrape(client)
    reconciles(before, await held_by_service(client))
    assert sum(v for (n, _), v in before.items() if n == "qms_queue_waiting_tickets") == 4

    clock.set(MONDAY_MIDNIGHT + timedelta(seconds=5))

    async def closed() -> bool:
        samples = await scrape(client)
        return any(
            n == "qms_tickets_closed_total" and ("outcome", "expired") in lbl and v
            for (n, lbl), v in samples.items()
        )

    await wait_for(closed)  # the day closer looks at the clock every second
    after = await scrape(client)
    reconciles(after, await held_by_service(client))
    expired = {
        dict(lbl)["service"]: v
        for (n, lbl), v in after.items()
        if n == "qms_tickets_closed_total" and ("outcome", "expired") in lbl and v
    }
    # Waiting (4) and held (2: one called, one being served) tickets all expired.
    assert expired == {"KTP-EL": 4.0, "KK": 1.0, "SKCK": 1.0}
    assert sum(v for (n, _), v in after.items() if n == "qms_queue_waiting_tickets") == 0
    for key, value in cumulative(before).items():
        assert after[key] >= value, key

    rows = await fetch(
        database_url,
        "SELECT type, ts, service_day, counter_id FROM ticket_events WHERE type = $1",
        EventType.TICKET_EXPIRED,
    )
    assert len(rows) == 6
    assert {r["ts"] for r in rows} == {MONDAY_MIDNIGHT}
    assert {r["service_day"].isoformat() for r in rows} == {"2026-11-23"}
    assert sorted(r["counter_id"] for r in rows if r["counter_id"]) == ["loket-01", "loket-02"]
    visits = await fetch(
        database_url,
        "SELECT outcome, finished_at, walk_seconds, service_seconds FROM ticket_visits"
        " WHERE service_day = '2026-11-23' ORDER BY number",
    )
    outcomes = sorted(v["outcome"] for v in visits)
    assert outcomes == ["expired"] * 6 + ["served"]
    for v in visits:
        if v["outcome"] == "expired":
            assert v["finished_at"] == MONDAY_MIDNIGHT
            assert v["service_seconds"] is None
    # Idle while a queue waited: the counter of /metrics (the domain's intervals) and the
    # report's figure (the SQL over the visits) are one definition and agree.
    resp = await client.get(
        f"/api/v1/sites/{SITE}/report",
        params={"from": "2026-11-23", "to": "2026-11-23", "format": "json"},
        headers={"Authorization": "Bearer demo-manager"},
    )
    assert resp.status == 200, await resp.text()
    report = {c["id"]: c["idle_while_queue_seconds"] for c in (await resp.json())["counters"]}
    idle = {
        dict(lbl)["counter"]: v
        for (n, lbl), v in after.items()
        if n == "qms_loket_idle_while_queue_waits_seconds_total"
    }
    assert idle["loket-03"] > 0  # opened with KK and SKCK waiting, never called
    for counter, seconds in idle.items():
        assert round(seconds, 1) == report.get(counter, 0.0), counter
    # Numbering starts again on Tuesday.
    clock.set(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))  # Tuesday 09:00: open
    ticket = await post(client, "/tickets", KIOSK, service="KTP-EL")
    assert ticket["number"].endswith("001")


async def test_first_command_after_midnight_expires_the_day_before_it(
    config: AppConfig, database_url: str
) -> None:
    """Before the day closer looks, the first command of the new day commits the expiry of
    the day before ahead of its own events."""
    clock = ManualClock(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))  # Monday 13:00 WITA
    engine = await _engine(config, clock, database_url, day_check_seconds=3600)
    try:
        from queue_service.domain import commands

        for _ in range(3):
            await engine.execute(
                SITE,
                lambda st, now: commands.issue(st, now, ticket_id=uuid4().hex, service="KTP-EL"),
                lambda st, events: (201, {}),
            )
        clock.set(datetime(2026, 11, 24, 0, 30, tzinfo=UTC))  # Tuesday 08:30
        await engine.execute(
            SITE,
            lambda st, now: commands.issue(st, now, ticket_id=uuid4().hex, service="KTP-EL"),
            lambda st, events: (201, {}),
        )
        state = engine.site_state(SITE)
        assert state.day is not None and state.day.isoformat() == "2026-11-24"
        assert state.totals is not None
        assert state.totals.closed[("KTP-EL", Outcome.EXPIRED)] == 3
        assert state.totals.issued["KTP-EL"] == 4
        assert len(state.queues["KTP-EL"]) == 1
    finally:
        await _close(engine)
    rows = await fetch(
        database_url, "SELECT seq, type, service_day FROM ticket_events ORDER BY seq"
    )
    assert [r["type"] for r in rows] == [EventType.TICKET_ISSUED] * 3 + [
        EventType.TICKET_EXPIRED
    ] * 3 + [EventType.TICKET_ISSUED]
    assert [r["service_day"].day for r in rows] == [23] * 6 + [24]


async def test_a_restart_after_midnight_keeps_every_counter(
    settings: Settings, config: AppConfig, clock: ManualClock, aiohttp_client: Any
) -> None:
    """The process started on Monday, ran past midnight into Tuesday and restarts: every
    counter and histogram of /metrics goes on from where it was (today's code restarted
    them from Tuesday's replay: lower, a reset to Prometheus)."""
    client = await aiohttp_client(create_app(settings, config, clock))
    await monday(client, clock)
    clock.set(datetime(2026, 11, 24, 0, 30, tzinfo=UTC))  # Tuesday 08:30 WITA
    for _ in range(3):
        await post(client, "/tickets", KIOSK, service="KK")
    await post(client, "/counters/loket-03/open", counter_auth("loket-03"))
    clock.advance(minutes=2)
    await post(client, "/counters/loket-03/call-next", counter_auth("loket-03"))
    clock.advance(minutes=1)
    before = cumulative(await scrape(client))
    engine = client.app[ENGINE]
    assert engine.site_state(SITE).day.isoformat() == "2026-11-24"
    await client.close()

    client = await aiohttp_client(create_app(settings, config, clock))
    after = cumulative(await scrape(client))
    assert before.keys() <= after.keys()
    lower = {k: (v, after[k]) for k, v in before.items() if after[k] < v}
    assert not lower
    # Exactly as before: nothing was counted twice either.
    assert {k: after[k] for k in before} == before
    issued = sum(v for (n, _), v in after.items() if n == "qms_tickets_issued_total")
    assert issued == 10
    reconciles(await scrape(client), await held_by_service(client))
    await client.close()


async def test_idle_seconds_never_run_ahead_of_a_commit_in_flight(
    config: AppConfig, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scrape while a call is being committed counts the counter's idleness only up to
    the call's own time: the commit cannot take back what the scrape showed."""
    from queue_service.domain import commands
    from queue_service.exposition import Exposition
    from queue_service.stream import StreamHub

    clock = ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # Monday 10:00 WITA
    engine = await _engine(config, clock, database_url)
    exposition = Exposition(engine, StreamHub())

    def respond(st: Any, events: Any) -> tuple[int, dict[str, Any]]:
        return 200, {}

    async def idle_seconds() -> float:
        body = (await exposition.render()).decode()
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                if (
                    s.name == "qms_loket_idle_while_queue_waits_seconds_total"
                    and s.labels["counter"] == "loket-03"
                ):
                    return float(s.value)
        raise AssertionError("no idle counter for loket-03")

    try:
        await engine.execute(
            SITE, lambda st, now: commands.open_counter(st, now, counter_id="loket-03"), respond
        )
        await engine.execute(
            SITE,
            lambda st, now: commands.issue(st, now, ticket_id=uuid4().hex, service="KK"),
            respond,
        )
        clock.advance(10)
        gate = asyncio.Event()
        append = engine.store.append

        async def held_append(*args: Any) -> None:
            await gate.wait()
            await append(*args)

        monkeypatch.setattr(engine.store, "append", held_append)
        call = asyncio.create_task(
            engine.execute(
                SITE, lambda st, now: commands.call_next(st, now, counter_id="loket-03"), respond
            )
        )
        await asyncio.sleep(0.05)  # decided at +10 s, its commit held
        clock.advance(5)
        during = await idle_seconds()
        assert during == 10.0
        gate.set()
        await call
        after = await idle_seconds()
        assert after == 10.0
        assert after >= during
    finally:
        await _close(engine)
