"""/metrics equals the truth: every counter, histogram and gauge agrees exactly with the
ticket_visits view in PostgreSQL and with the live snapshot after a scripted day."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE
from tests.conftest import MANAGER, MONDAY_9AM, SITE
from tests.test_scripted_day import Script, run_day

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def pick(samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one name whose labels include `labels`, keyed by their other labels."""
    out = {}
    for (n, lbls), value in samples.items():
        d = dict(lbls)
        if n == name and all(d.get(k) == v for k, v in labels.items()):
            out[tuple((k, v) for k, v in lbls if k not in labels)] = value
    return out


async def scrape(client: TestClient, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def richer_day(client: TestClient, clock: ManualClock) -> None:
    script = await run_day(client, clock)
    # Leave live state worth checking: tickets waiting, a paused counter, one serving.
    await script.issue(1700, "KTP-EL", "disabilitas")
    await script.issue(1710, "SKCK")
    await script.issue(1720, "SKCK")
    await script.act(1730, "loket-13", "open")
    await script.act(1740, "loket-13", "call-next")
    await script.act(1750, "loket-14", "open")
    await script.act(1760, "loket-14", "pause", reason="Istirahat sholat")
    script.at(3000)  # KTP-EL's and SKCK's oldest waits are now past their 20 minutes


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


async def test_metrics_equal_the_visit_view_and_the_snapshot(
    client: TestClient, clock: ManualClock, config: AppConfig
) -> None:
    await richer_day(client, clock)
    samples = await scrape(client)
    rows = await client.app[ENGINE].store.visits(SITE, MONDAY_9AM.date())
    site = config.sites[SITE]
    by_service = _by(rows, "service")

    for code, svc in site.services.items():
        visits = by_service.get(code, [])
        lbl = {"site": SITE, "service": code}

        def value(name: str, _lbl: dict[str, str] = lbl) -> float:
            return pick(samples, name, **_lbl)[()]

        assert value("qms_tickets_issued_total") == sum(1 for r in visits if r["segment"] == 0)
        called = [r for r in visits if r["first_called_at"] is not None]
        assert value("qms_tickets_called_total") == len(called)
        within = [r for r in called if r["wait_seconds"] <= svc.target_wait_seconds]
        assert value("qms_tickets_called_within_target_total") == len(within)
        assert value("qms_tickets_recalled_total") == sum(max(r["calls"] - 1, 0) for r in visits)
        closed = pick(samples, "qms_tickets_closed_total", **lbl)
        outcomes = Counter(r["outcome"] for r in visits if r["outcome"])
        assert {dict(k)["outcome"]: v for k, v in closed.items() if v} == dict(outcomes)
        for family, column in (
            ("qms_ticket_wait_seconds", "wait_seconds"),
            ("qms_ticket_walk_seconds", "walk_seconds"),
            ("qms_ticket_service_seconds", "service_seconds"),
        ):
            observed = [r[column] for r in visits if r[column] is not None]
            assert pick(samples, f"{family}_count", **lbl)[()] == len(observed), family
            assert pick(samples, f"{family}_sum", **lbl)[()] == pytest.approx(sum(observed))
            for key, count in pick(samples, f"{family}_bucket", **lbl).items():
                le = float(dict(key)["le"])
                assert count == sum(1 for v in observed if v <= le), (family, le)

    by_counter = _by([r for r in rows if r["service_seconds"] is not None], "counter_id")
    for cid in site.counters:
        lbl = {"site": SITE, "counter": cid}
        served = by_counter.get(cid, [])
        assert pick(samples, "qms_loket_served_total", **lbl)[()] == len(served)
        assert pick(samples, "qms_loket_busy_seconds_total", **lbl)[()] == pytest.approx(
            sum(r["service_seconds"] for r in served)
        )

    # Gauges against the live snapshot at the same instant.
    snap = await (await client.get(f"/api/v1/sites/{SITE}/snapshot", headers=MANAGER)).json()
    assert snap["now"] == clock.now().isoformat()
    for s in snap["services"]:
        lbl = {"site": SITE, "service": s["code"]}
        assert pick(samples, "qms_queue_waiting_tickets", **lbl)[()] == s["waiting"]
        assert (
            pick(samples, "qms_queue_waiting_priority_tickets", **lbl)[()] == s["priority_waiting"]
        )
        assert pick(samples, "qms_queue_open_counters", **lbl)[()] == s["open_counters"]
        assert (
            pick(samples, "qms_service_target_wait_seconds", **lbl)[()] == s["target_wait_seconds"]
        )
        assert pick(samples, "qms_queue_oldest_wait_seconds", **lbl)[()] == (
            s["oldest_wait_seconds"] or 0
        )
        over = [t for t in s["tickets"] if t["wait_seconds"] > s["target_wait_seconds"]]
        assert pick(samples, "qms_queue_waiting_over_target_tickets", **lbl)[()] == len(over)
        predicted = pick(samples, "qms_queue_predicted_wait_seconds", **lbl)
        if s["estimated_wait_seconds"] is None:
            assert predicted == {}
        else:
            assert predicted[()] == pytest.approx(s["estimated_wait_seconds"], abs=0.05)
        assert pick(samples, "qms_service_accepting", **lbl)[()] == int(s["accepting"])
    for c in snap["counters"]:
        lbl = {"site": SITE, "counter": c["id"]}
        assert pick(samples, "qms_loket_open", **lbl)[()] == int(c["state"] == "open")
        assert pick(samples, "qms_loket_paused", **lbl)[()] == int(c["state"] == "paused")
        assert pick(samples, "qms_loket_serving", **lbl)[()] == int(c["ticket"] is not None)
        assert pick(samples, "qms_loket_idle_while_queue_waits", **lbl)[()] == int(
            c["idle_while_queue_waits"]
        )
    assert pick(samples, "qms_site_open", site=SITE)[()] == int(snap["open"])
    # Spot checks that the scripted day left what it meant to.
    assert pick(samples, "qms_queue_waiting_tickets", site=SITE, service="SKCK")[()] == 1
    assert pick(samples, "qms_loket_paused", site=SITE, counter="loket-14")[()] == 1
    assert pick(samples, "qms_queue_oldest_wait_seconds", site=SITE, service="KTP-EL")[()] == 1300
    assert (
        pick(samples, "qms_queue_waiting_over_target_tickets", site=SITE, service="SKCK")[()] == 1
    )
    assert (
        pick(samples, "qms_events_committed_total")[()] == client.app[ENGINE].stats.events_committed
    )


async def test_counters_survive_a_restart_through_replay(
    aiohttp_client: Any, settings: Any, config: AppConfig, clock: ManualClock
) -> None:
    first = await aiohttp_client(create_app(settings, config, clock))
    await run_day(first, clock)
    before = await scrape(first)
    await first.close()
    second = await aiohttp_client(create_app(settings, config, clock))
    after = await scrape(second)
    for key, value in before.items():
        if key[0].startswith(("qms_tickets_", "qms_ticket_", "qms_loket_", "qms_queue_")):
            assert after[key] == value, key


async def test_wait_buckets_include_every_configured_target(
    client: TestClient, config: AppConfig
) -> None:
    samples = await scrape(client)
    bounds = {
        float(dict(k)["le"])
        for k in pick(samples, "qms_ticket_wait_seconds_bucket", site=SITE, service="KTP-EL")
    }
    for site in config.sites.values():
        for svc in site.services.values():
            assert float(svc.target_wait_seconds) in bounds


async def test_metrics_token_is_required_when_configured(
    aiohttp_client: Any, settings: Any, config: AppConfig, clock: ManualClock
) -> None:
    from dataclasses import replace

    client = await aiohttp_client(
        create_app(replace(settings, metrics_token="s3cret"), config, clock)
    )
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status == 200


async def test_no_personal_or_ticket_ids_in_labels(client: TestClient, clock: ManualClock) -> None:
    script: Script = await run_day(client, clock)
    text = await (await client.get("/metrics")).text()
    for ticket_id in script.tickets.values():
        assert ticket_id not in text
