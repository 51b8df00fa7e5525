"""The board's headline tells the truth: figures against the service standard.

`domain/standard.py` computes them once from plain numbers; the snapshot publishes them
(`headline`, and per service `waiting_over_target` and `within_standard_share`). Tickets
still waiting past their target are breaches, the worst queue is judged against its own
standard, and a queue is in breach while its oldest ticket has waited longer than its target.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from queue_service.domain.clock import ManualClock
from queue_service.domain.standard import (
    QueueFigures,
    headline,
    over_target,
    ratio_to_target,
    within_standard_share,
    worst_queue,
)
from tests.conftest import KIOSK, MANAGER, SITE, counter_auth

BASE = f"/api/v1/sites/{SITE}"

# -- the pure functions ----------------------------------------------------------------------


def test_share_counts_tickets_still_waiting_past_their_target_as_breaches() -> None:
    # The issue's board: 40 called, all within, 59 still waiting past the standard.
    assert within_standard_share(40, 40, 59) == pytest.approx(40 / 99)
    assert within_standard_share(40, 40, 0) == 1.0
    assert within_standard_share(0, 0, 3) == 0.0
    assert within_standard_share(3, 5, 0) == pytest.approx(0.6)
    assert within_standard_share(0, 0, 0) is None  # nothing to judge yet, not 0% or 100%


def test_a_wait_of_exactly_the_target_is_within_as_when_it_is_called() -> None:
    assert not over_target(900.0, 900)
    assert over_target(900.001, 900)
    assert not over_target(None, 900)
    assert ratio_to_target(450.0, 900) == 0.5
    assert ratio_to_target(None, 900) is None


def figures(
    code: str, target_minutes: int, oldest_minutes: float | None, **kw: int
) -> QueueFigures:
    return QueueFigures(
        service=code,
        target_seconds=target_minutes * 60,
        waiting=kw.get("waiting", 0 if oldest_minutes is None else 1),
        oldest_wait_seconds=None if oldest_minutes is None else oldest_minutes * 60,
        called=kw.get("called", 0),
        called_within=kw.get("called_within", 0),
        waiting_over_target=kw.get("over", 0),
    )


def test_the_worst_queue_is_the_one_furthest_past_its_own_standard() -> None:
    # The issue's board: the absolute oldest ticket (15:47 of 20 minutes) is green, while
    # three queues are red past their 15-minute standards.
    queues = [
        figures("KTP-EL", 20, 15 + 47 / 60),
        figures("KK", 15, 16.5, over=2),
        figures("AKTA", 15, 17.0, over=1),
        figures("PINDAH", 15, 15.5, over=1),
        figures("NIB", 15, None),
    ]
    worst = worst_queue(queues)
    assert worst is not None and worst.service == "AKTA"
    head = headline(queues)
    assert head.worst == worst
    assert head.queues_in_breach == 3
    assert head.queues_waiting == 4
    assert head.waiting_over_target == 4
    assert worst_queue([figures("NIB", 15, None)]) is None


def test_site_share_is_one_share_of_the_sums_not_a_mean_of_shares() -> None:
    busy = figures("KTP-EL", 20, None, called=99, called_within=99)
    quiet = figures("NIB", 15, 16.0, waiting=1, over=1)
    head = headline([busy, quiet])
    assert head.share == pytest.approx(99 / 100)  # a mean of shares would say 50%
    assert (head.called, head.called_within, head.waiting) == (99, 99, 1)


# -- the snapshot over HTTP ------------------------------------------------------------------


async def issue(client: TestClient, service: str) -> dict[str, Any]:
    resp = await client.post(f"{BASE}/tickets", json={"service": service}, headers=KIOSK)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def act(client: TestClient, counter: str, action: str) -> dict[str, Any]:
    resp = await client.post(
        f"{BASE}/counters/{counter}/{action}", json={}, headers=counter_auth(counter)
    )
    data = await resp.json()
    assert resp.status == 200, data
    return data  # type: ignore[no-any-return]


async def snapshot(client: TestClient) -> dict[str, Any]:
    resp = await client.get(f"{BASE}/snapshot", headers=MANAGER)
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


def service(snap: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in snap["services"] if s["code"] == code)


def assert_headline_agrees_with_services(snap: dict[str, Any]) -> None:
    """One set of figures: the headline is the services' figures summed and judged alike."""
    head, svcs = snap["headline"], snap["services"]
    assert head["waiting"] == sum(s["waiting"] for s in svcs)
    assert head["called_today"] == sum(s["called_today"] for s in svcs)
    assert head["called_within_target_today"] == sum(s["called_within_target_today"] for s in svcs)
    assert head["waiting_over_target"] == sum(s["waiting_over_target"] for s in svcs)
    assert head["queues_in_breach"] == sum(1 for s in svcs if s["waiting_over_target"] > 0)
    assert head["queues_waiting"] == sum(1 for s in svcs if s["waiting"] > 0)
    for s in svcs:
        share = within_standard_share(
            s["called_within_target_today"], s["called_today"], s["waiting_over_target"]
        )
        assert s["within_standard_share"] == (None if share is None else round(share, 4))
        # in breach <=> its oldest ticket waited longer than its target
        assert (s["waiting_over_target"] > 0) == over_target(
            s["oldest_wait_seconds"], s["target_wait_seconds"]
        )


async def test_tickets_waiting_past_the_standard_bring_the_headline_share_below_100(
    client: TestClient, clock: ManualClock
) -> None:
    """The issue's board: one ticket called at once, 59 left waiting past the 20-minute
    standard. Counting calls only said 100%."""
    await act(client, "loket-01", "open")
    for _ in range(60):
        await issue(client, "KTP-EL")
    await act(client, "loket-01", "call-next")
    snap = await snapshot(client)
    assert snap["headline"]["within_standard_share"] == 1.0  # nobody past the standard yet
    assert snap["headline"]["queues_in_breach"] == 0

    clock.advance(20 * 60)  # exactly the target: still within
    snap = await snapshot(client)
    assert service(snap, "KTP-EL")["waiting_over_target"] == 0
    assert snap["headline"]["within_standard_share"] == 1.0

    clock.advance(1)
    snap = await snapshot(client)
    ktp = service(snap, "KTP-EL")
    assert (ktp["called_today"], ktp["called_within_target_today"]) == (1, 1)
    assert ktp["waiting_over_target"] == 59
    assert ktp["within_standard_share"] == round(1 / 60, 4)
    head = snap["headline"]
    assert head["within_standard_share"] == round(1 / 60, 4)
    assert head["waiting_over_target"] == 59
    assert head["queues_in_breach"] == 1
    assert head["worst_queue"]["service"] == "KTP-EL"
    assert head["worst_queue"]["in_breach"] is True
    assert_headline_agrees_with_services(snap)


async def test_the_worst_queue_is_judged_against_its_own_standard_not_the_oldest_ticket(
    client: TestClient, clock: ManualClock
) -> None:
    """KTP-EL's ticket is the oldest in the hall (15:47 of a 20-minute standard: within),
    while KK, AKTA and PINDAH have waited past their 15-minute standards."""
    snap = await snapshot(client)
    targets = {
        code: service(snap, code)["target_wait_seconds"]
        for code in ("KTP-EL", "KK", "AKTA", "PINDAH")
    }
    assert targets == {"KTP-EL": 1200, "KK": 900, "AKTA": 900, "PINDAH": 900}
    await issue(client, "KTP-EL")
    for code in ("KK", "AKTA", "PINDAH"):
        clock.advance(10)
        await issue(client, code)
    # One ticket called within its standard, elsewhere.
    await act(client, "loket-23", "open")
    await issue(client, "PDAM-BAYAR")
    clock.advance(5)
    await act(client, "loket-23", "call-next")
    await act(client, "loket-23", "finish")
    clock.advance(15 * 60 + 47 - 35)  # KTP-EL's ticket has now waited 15:47
    snap = await snapshot(client)

    ktp = service(snap, "KTP-EL")
    assert ktp["oldest_wait_seconds"] == 947.0
    assert max(s["oldest_wait_seconds"] or 0 for s in snap["services"]) == 947.0
    head = snap["headline"]
    worst = head["worst_queue"]
    assert worst["service"] == "KK"  # 15:37 of 15 minutes, the largest share of its target
    assert worst["oldest_wait_seconds"] == 937.0
    assert worst["target_wait_seconds"] == 900
    assert worst["ratio_to_target"] == round(937 / 900, 4)
    assert worst["prefix"] == service(snap, "KK")["prefix"]
    assert worst["name"] == service(snap, "KK")["name"]
    assert worst["oldest_enqueued_at"] == service(snap, "KK")["oldest_enqueued_at"]
    assert worst["in_breach"] is True
    assert head["queues_in_breach"] == 3
    assert head["queues_waiting"] == 4
    assert head["waiting_over_target"] == 3
    assert (head["called_today"], head["called_within_target_today"]) == (1, 1)
    assert head["within_standard_share"] == 0.25
    assert_headline_agrees_with_services(snap)


async def test_an_empty_hall_has_no_share_and_no_worst_queue(client: TestClient) -> None:
    head = (await snapshot(client))["headline"]
    assert head == {
        "waiting": 0,
        "called_today": 0,
        "called_within_target_today": 0,
        "waiting_over_target": 0,
        "within_standard_share": None,
        "queues_waiting": 0,
        "queues_in_breach": 0,
        "worst_queue": None,
    }
