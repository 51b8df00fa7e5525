"""The floor board's headline tells the truth, in headless Chromium against the real service.

The issue's board: the absolute oldest ticket (KTP-el, 15:47 of a 20-minute standard) was
shown green as "the oldest wait" while three queues were past their 15-minute standards,
and "called within standard" said 100% while tickets waited past the standard. The board
now shows the snapshot's `headline`: the share within standard counting tickets still
waiting past their target, the queue furthest past its own standard, the queues in breach.
"""

from __future__ import annotations

import pytest

from queue_service.domain.clock import ManualClock
from tests.browser.conftest import Api, ConsoleWatch, Screens, screenshot, text, wait_text
from tests.conftest import SITE

pytestmark = pytest.mark.browser


async def test_board_headline_counts_waiting_breaches_and_names_the_worst_queue_by_its_standard(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    board = await screens.open("board", f"?site={SITE}&token=demo-manager", live=True)

    # 09:00: a KTP-el ticket (20-minute standard), then one each of KK, AKTA and PINDAH
    # (15-minute standards), and one PDAM ticket called at once, within its standard.
    snap = await hall_api.snapshot()
    targets = {s["code"]: s["target_wait_seconds"] for s in snap["services"]}
    assert [targets[c] for c in ("KTP-EL", "KK", "AKTA", "PINDAH")] == [1200, 900, 900, 900]
    await hall_api.issue("KTP-EL")
    for code in ("KK", "AKTA", "PINDAH"):
        clock.advance(10)
        await hall_api.issue(code)
    await hall_api.act("loket-23", "open")
    await hall_api.issue("PDAM-BAYAR")
    clock.advance(5)
    await hall_api.act("loket-23", "call-next")
    await hall_api.act("loket-23", "finish", {"outcome": "served"})
    await wait_text(board, "#kpi-within b", "100%")  # nobody past a standard yet
    await wait_text(board, "#kpi-breach b", "0")

    # 09:15:47: KTP-el's ticket is the oldest in the hall but within its 20 minutes; KK's
    # (15:37), AKTA's (15:27) and PINDAH's (15:17) are past their 15. An event (a counter
    # opening) makes the board re-read its snapshot.
    clock.advance(15 * 60 + 47 - 35)
    await hall_api.act("loket-02", "open")
    await wait_text(board, "#kpi-within b", "25%")
    within = await text(board, "#kpi-within b")
    assert within == "25%", within  # 1 called within / (1 called + 3 waiting past)
    assert "1 dari 4" in await text(board, "#kpi-within small")
    assert "3 menunggu lewat standar" in await text(board, "#kpi-within small")
    assert await text(board, "#kpi-breach b") == "3"
    assert "dari 4 layanan" in await text(board, "#kpi-breach small")
    assert "lvl-bad" in (await board.get_attribute("#kpi-breach b", "class") or "")

    # The worst queue against its own standard: KK, not the absolute oldest (KTP-el).
    worst = board.locator("#kpi-worst")
    assert await worst.get_attribute("data-service") == "KK"
    worst_text = await text(board, "#kpi-worst")
    assert "Kartu Keluarga" in worst_text and "standar 15 menit" in worst_text
    assert "KTP-el" not in worst_text
    assert await text(board, "#kpi-worst b") in ("15:37", "15:38")  # the board's clock ticks
    assert "lvl-bad" in (await board.get_attribute("#kpi-worst b", "class") or "")
    assert await board.locator("#kpi-oldest").count() == 0
    # Per service, the same definition: KK has no call yet and one ticket past standard.
    assert (await text(board, "tr[data-service=KK] .js-within")).startswith("0%")
    assert (await text(board, "tr[data-service=KTP-EL] .js-within")).startswith(
        "\u2013"
    )  # no call, none past: nothing to judge
    assert (await text(board, "tr[data-service=PDAM-BAYAR] .js-within")).startswith("100%")

    # The figures are the snapshot's, not the page's own.
    head = (await hall_api.snapshot())["headline"]
    assert head["within_standard_share"] == 0.25
    assert head["queues_in_breach"] == 3
    assert head["worst_queue"]["service"] == "KK"
    await screenshot(board, "board-headline")

    # Bahasa Indonesia first, English on request.
    await board.click("#lang")
    await wait_text(board, "#kpi-within", "Within standard today")
    assert "1 of 4 · 3 waiting past standard" in await text(board, "#kpi-within small")
    assert "Queues past standard" in await text(board, "#kpi-breach")
    assert "Longest wait vs standard" in await text(board, "#kpi-worst")
    assert "standard 15 min" in await text(board, "#kpi-worst small")

    assert console.unexpected() == []


async def test_counter_queue_lists_tickets_in_the_order_call_next_hands_them_out(
    hall_api: Api, clock: ManualClock, screens: Screens, console: ConsoleWatch
) -> None:
    """One order everywhere: loket-04 serves KK (interleave, 3 priority calls in a row) and
    AKTA (interleave, 2). Its queue list is the order its call-next then hands out, not
    "every priority ticket first" as the page once sorted it."""
    kinds = {"KK": ["lansia"] * 4 + [None, None], "AKTA": ["ibu_hamil"] * 3 + [None]}
    for code, priorities in kinds.items():
        for priority in priorities:
            clock.advance(1)
            await hall_api.issue(code, priority)
    await hall_api.act("loket-04", "open")
    counter = await screens.open("counter", f"?site={SITE}&counter=loket-04&token=demo-loket-04")
    await wait_text(counter, "#queue-count", "10")
    shown = await counter.eval_on_selector_all(
        "#queue li", "(items) => items.map((li) => li.dataset.number)"
    )
    snap = await hall_api.snapshot()
    is_priority = {
        t["number"]: t["priority"] is not None
        for s in snap["services"]
        if s["code"] in kinds
        for t in s["tickets"]
    }
    handed_out = []
    for _ in range(10):
        _, data = await hall_api.act("loket-04", "call-next")
        handed_out.append(data["ticket"]["number"])
        await hall_api.act("loket-04", "finish", {"outcome": "served"})
    assert shown == handed_out
    # Not every priority ticket first: regular tickets are called between priority ones.
    flags = [is_priority[n] for n in shown]
    assert flags != sorted(flags, reverse=True), flags
    assert console.unexpected() == []
