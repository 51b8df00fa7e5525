"""/metrics equals the truth: every counter, histogram and gauge agrees exactly with the
ticket_visits view in PostgreSQL and with the live snapshot after a scripted day. It is
gzip-compressed exactly when the scraper accepts gzip, and then decompresses to the very
body that was rendered."""

from __future__ import annotations

import gzip
import math
from collections import Counter, defaultdict
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from queue_service.config import AppConfig
from queue_service.domain.clock import ManualClock
from queue_service.web.app import create_app
from queue_service.web.keys import ENGINE, EXPOSITION
from tests.conftest import KIOSK, MANAGER, MONDAY_9AM, SITE
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
    # The test client accepts gzip: these scrapes go through the compressed path.
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
    # Asking for gzip changes nothing about the token.
    gz = {"Accept-Encoding": "gzip"}
    resp = await client.get("/metrics", headers=gz)
    assert resp.status == 401
    assert "Content-Encoding" not in resp.headers
    resp = await client.get(
        "/metrics", headers={**gz, "Authorization": "Bearer s3cret"}, auto_decompress=False
    )
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await resp.read()).startswith(b"# HELP ")


async def test_no_personal_or_ticket_ids_in_labels(client: TestClient, clock: ManualClock) -> None:
    script: Script = await run_day(client, clock)
    text = await (await client.get("/metrics")).text()
    for ticket_id in script.tickets.values():
        assert ticket_id not in text


# -- gzip ------------------------------------------------------------------------------------

# Families that may differ between two scrapes a moment apart: the process's own figures,
# the render's timestamp and duration, and the device links (they keep reconnecting to
# devices the example hall names and the test does not run; printer flags are NaN).
VOLATILE = (
    "process_",
    "qms_snapshot_timestamp_seconds",
    "qms_metrics_render_seconds",
    "qms_device_",
    "qms_printer_",
)


def stable(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if not k[0].startswith(VOLATILE)}


def vary(headers: Any) -> set[str]:
    return {v.strip().lower() for h in headers.getall("Vary", ()) for v in h.split(",")}


async def test_gzip_when_asked_is_the_rendered_body_compressed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in ("KTP-EL", "KTP-EL", "SKCK"):
        resp = await client.post(
            f"/api/v1/sites/{SITE}/tickets", json={"service": service}, headers=KIOSK
        )
        assert resp.status == 201
    exposition = client.app[EXPOSITION]
    rendered: list[bytes] = []
    render = exposition.render

    async def spy() -> bytes:
        body: bytes = await render()
        rendered.append(body)
        return body

    monkeypatch.setattr(exposition, "render", spy)

    resp = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "accept-encoding" in vary(resp.headers)
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    raw = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(raw)
    assert raw[:2] == b"\x1f\x8b"  # a gzip member, not a bare zlib stream
    assert gzip.decompress(raw) == rendered[-1]  # byte for byte what was rendered
    assert len(raw) * 5 < len(rendered[-1])
    gzipped = parse(gzip.decompress(raw).decode())

    resp = await client.get(
        "/metrics", headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    assert "Content-Encoding" not in resp.headers
    plain_raw = await resp.read()
    assert plain_raw == rendered[-1]
    plain = parse(plain_raw.decode())
    # The same families, series and values, bar those that move by themselves.
    assert stable(gzipped) == stable(plain)
    assert gzipped.keys() == plain.keys()
    assert pick(gzipped, "qms_tickets_issued_total", site=SITE, service="KTP-EL")[()] == 2
    assert pick(gzipped, "qms_queue_waiting_tickets", site=SITE, service="SKCK")[()] == 1

    # HEAD: the headers of the GET, no body.
    resp = await client.head("/metrics", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "accept-encoding" in vary(resp.headers)
    assert await resp.read() == b""


async def test_gzip_follows_the_accept_encoding_weights(client: TestClient) -> None:
    gzip_for = [
        "gzip",  # what Prometheus sends
        "GZip",
        "gzip, deflate",  # aiohttp, Go and most HTTP clients
        "deflate, gzip, br, zstd",  # curl --compressed
        "gzip;q=1.0",
        "gzip; q=0.001",
        "br;q=1.0, gzip;q=0.8, *;q=0.1",
        "gzip;q=0.5, identity;q=0.5",
        "x-gzip",
        "*",
        "identity;q=0.2, *;q=0.9",
    ]
    plain_for = [
        None,  # no Accept-Encoding at all
        "",
        "identity",
        "gzip;q=0",
        "gzip;q=0.000",
        "gzip; q=0, deflate",
        "deflate, br",
        "*;q=0",
        "gzip;q=0, *",
        "gzip;q=0.5, identity",  # identity (q=1) is preferred
        "gzip;q=0.5, *;q=0.8",  # ... also when it is only named by *
        "gzip;q=2",  # malformed weights count as 0: plain is always safe
        "gzip;q=abc",
        "gzip;q=-1",
        "gzip;q=nan",
        "gzipx, xgzip",
    ]
    for value, expect_gzip in [(v, True) for v in gzip_for] + [(v, False) for v in plain_for]:
        if value is None:
            resp = await client.get(
                "/metrics", skip_auto_headers=["Accept-Encoding"], auto_decompress=False
            )
        else:
            resp = await client.get(
                "/metrics", headers={"Accept-Encoding": value}, auto_decompress=False
            )
        assert resp.status == 200, value
        raw = await resp.read()
        assert "accept-encoding" in vary(resp.headers), value
        if expect_gzip:
            assert resp.headers.get("Content-Encoding") == "gzip", value
            raw = gzip.decompress(raw)
        else:
            assert "Content-Encoding" not in resp.headers, value
        assert raw.startswith(b"# HELP qms_"), value
        assert parse(raw.decode()), value


async def test_gzip_with_accept_encoding_in_two_header_lines(client: TestClient) -> None:
    from multidict import CIMultiDict

    two = CIMultiDict([("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")])
    resp = await client.get("/metrics", headers=two, auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    refused = CIMultiDict([("Accept-Encoding", "gzip"), ("Accept-Encoding", "gzip;q=0")])
    resp = await client.get("/metrics", headers=refused, auto_decompress=False)
    assert "Content-Encoding" not in resp.headers


def test_printer_flags_unknown_are_nan_in_the_exposition() -> None:
    """What docs/metrics.md says of the printer flags before a status is known: NaN."""
    from devices import metric_families as device_metrics
    from devices.supervisor import DeviceHealth
    from queue_service.domain.vocab import DeviceKind

    text = device_metrics.render([DeviceHealth(site=SITE, device="p1", kind=DeviceKind.PRINTER)])
    samples = parse(text)
    for name in (
        "qms_printer_paper_near_end",
        "qms_printer_paper_end",
        "qms_printer_cover_open",
        "qms_printer_offline",
        "qms_printer_error",
    ):
        assert math.isnan(pick(samples, name, site=SITE, device="p1")[()]), name
    assert pick(samples, "qms_device_up", site=SITE, device="p1", kind="printer")[()] == 0


async def test_no_created_samples(client: TestClient) -> None:
    """No family has a `_created` sample: counters are cumulative over the whole history
    (docs/metrics.md), and the commit histogram's would only repeat the start time."""
    text = await (await client.get("/metrics")).text()
    assert "_created" not in text
