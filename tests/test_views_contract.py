"""The read models do what the OpenAPI document says they do.

- Published precision: every duration and share the views publish is rounded as the
  document states (one statement, `openapi.SECONDS_PRECISION` and friends), and every field
  of the document that carries such a number says so.
- `now_calling` of a ticket status lists the service's tickets held by a counter now,
  newest call first; the display's `recent[].counter` is kept after the ticket is released.
- A transferred ticket stays in the display's recent calls, where it was called (the
  state keeps its last call time across the transfer: `Ticket.announced_at`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from queue_service import read_models
from queue_service.config import load_config
from queue_service.domain import commands
from queue_service.domain.clock import ManualClock
from queue_service.web import openapi
from tests.conftest import EXAMPLE, MONDAY_9AM, SITE
from tests.live_site import LiveSite

HALL = load_config(EXAMPLE).sites[SITE]

# Published durations that are exact by nature (configuration), not rounded figures.
EXACT_SECONDS = {"target_wait_seconds", "retry_after_seconds"}
SHARES = ("share", "utilisation")


class Hall(LiveSite):
    """The example hall's live state from Monday 9:00."""

    def __init__(self) -> None:
        super().__init__(HALL, ManualClock(MONDAY_9AM))

    def issue(self, ticket_id: str, service: str = "KTP-EL", priority: str | None = None) -> str:
        self.do(commands.issue, ticket_id=ticket_id, service=service, priority=priority)
        return ticket_id


# -- precision ---------------------------------------------------------------------------------


def properties(node: Any, path: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (path, property name, schema) of the document's schemas, recursively."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            if isinstance(schema, dict):
                yield path, name, schema
        for key, value in node.items():
            yield from properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from properties(value, f"{path}/{i}")


def test_every_rounded_number_in_the_document_states_its_precision() -> None:
    doc = openapi.openapi_document()
    assert openapi.PRECISION_TEXT in doc["info"]["description"]
    numbers = 0
    for path, name, schema in properties(doc):
        description = schema.get("description", "")
        types = schema.get("type") or []
        if "number" in ([types] if isinstance(types, str) else types):
            # Every non-integer number published anywhere (views, reports, IKM) says how it
            # is rounded.
            assert "ounded to" in description, f"{path}.{name} does not state its precision"
            numbers += 1
        if "_seconds" in name and name not in EXACT_SECONDS:
            assert "rounded to" in description, f"{path}.{name} does not state its precision"
        if any(word in name for word in SHARES):
            assert openapi.SHARE_PRECISION in description, f"{path}.{name}: no precision"
        if name.startswith("ratio"):
            assert openapi.RATIO_PRECISION in description, f"{path}.{name}: no precision"
    assert numbers >= 35


def busy_hall() -> Hall:
    """A hall with waits, service times and shares that are not round numbers."""
    hall = Hall()
    hall.do(commands.open_counter, counter_id="loket-01")
    hall.do(commands.open_counter, counter_id="loket-02")
    for n in range(6):
        hall.issue(f"t{n}", priority="lansia" if n % 3 == 0 else None)
        hall.clock.advance(61.234567)
    hall.do(commands.call_next, counter_id="loket-01")
    hall.clock.advance(100.987654)
    hall.do(commands.finish, counter_id="loket-01")
    hall.clock.advance(20 * 60 + 0.333333)
    hall.do(commands.call_next, counter_id="loket-02")
    hall.clock.advance(7.777777)
    return hall


def numbers(node: Any, key: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from numbers(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from numbers(v, key)
    elif isinstance(node, float):
        yield key, node


def test_published_durations_are_rounded_to_a_tenth_of_a_second_and_shares_to_4_decimals() -> None:
    hall = busy_hall()
    now = hall.clock.now()
    published = [
        read_models.snapshot(hall.state, now),
        read_models.display(hall.state, now),
        read_models.site_directory(hall.state, now),
        *(read_models.ticket_status(hall.state, t, now) for t in hall.state.tickets.values()),
    ]
    seen: set[str] = set()
    for body in published:
        for key, value in numbers(body):
            if "_seconds" in key:
                assert round(value, read_models.SECONDS_DIGITS) == value, (key, value)
            elif "share" in key or key.startswith("ratio"):
                assert round(value, read_models.SHARE_DIGITS) == value, (key, value)
            else:
                pytest.fail(f"{key} = {value}: a published number of no documented precision")
            seen.add(key)
    assert {
        "waited_seconds",
        "wait_seconds",
        "oldest_wait_seconds",
        "average_service_seconds",
        "busy_seconds_today",
        "within_standard_share",
        "ratio_to_target",
    } <= seen
    # ... and they are rounded from the exact value, not truncated or derived from another
    # rounded figure.
    snap = published[0]
    ktp = next(s for s in snap["services"] if s["code"] == "KTP-EL")
    oldest = hall.state.queues["KTP-EL"].oldest_enqueued_at()
    assert oldest is not None
    assert ktp["oldest_wait_seconds"] == round((now - oldest).total_seconds(), 1)
    assert ktp["within_standard_share"] == round(1 / (2 + ktp["waiting_over_target"]), 4)


def test_the_precision_the_document_states_is_the_one_the_views_use() -> None:
    assert read_models.SECONDS_DIGITS == 1 and "0.1 s" in openapi.SECONDS_PRECISION
    assert read_models.SHARE_DIGITS == 4 and "4 decimals" in openapi.SHARE_PRECISION
    assert "4 decimals" in openapi.RATIO_PRECISION


# -- now_calling -------------------------------------------------------------------------------


def test_now_calling_lists_the_numbers_counters_hold_now_newest_call_first() -> None:
    hall = Hall()
    for counter in ("loket-01", "loket-02", "loket-03"):
        hall.do(commands.open_counter, counter_id=counter)
    for n in range(5):
        hall.issue(f"t{n}")
    mine = hall.state.tickets["t4"]
    hall.do(commands.call_next, counter_id="loket-01")  # A001
    hall.clock.advance(30)
    hall.do(commands.call_next, counter_id="loket-02")  # A002
    hall.clock.advance(30)
    hall.do(commands.call_next, counter_id="loket-03")  # A003
    hall.clock.advance(30)
    status = read_models.ticket_status(hall.state, mine, hall.clock.now())
    assert status["now_calling"] == ["A003", "A002", "A001"]
    hall.do(commands.recall, counter_id="loket-01")  # a recall is the newest call
    hall.clock.advance(30)
    status = read_models.ticket_status(hall.state, mine, hall.clock.now())
    assert status["now_calling"] == ["A001", "A003", "A002"]
    hall.do(commands.finish, counter_id="loket-02")  # released: no longer being called
    status = read_models.ticket_status(hall.state, mine, hall.clock.now())
    assert status["now_calling"] == ["A001", "A003"]
    description = openapi.openapi_document()["components"]["schemas"]["TicketStatus"]["properties"][
        "now_calling"
    ]["description"]
    assert "right now" in description and "newest first" in description


# -- the display's recent calls -----------------------------------------------------------------


def recent(hall: Hall) -> list[dict[str, Any]]:
    return read_models.display(hall.state, hall.clock.now())["recent"]  # type: ignore[no-any-return]


def test_display_recent_keeps_the_counter_a_released_ticket_was_called_to() -> None:
    hall = Hall()
    hall.do(commands.open_counter, counter_id="loket-01")
    hall.issue("a")
    hall.do(commands.call_next, counter_id="loket-01")
    hall.clock.advance(60)
    hall.do(commands.finish, counter_id="loket-01")
    [entry] = recent(hall)
    assert entry["number"] == "A001" and entry["state"] == "done"
    assert (entry["counter"], entry["counter_name"]) == ("loket-01", HALL.counters["loket-01"].name)
    description = openapi.openapi_document()["components"]["schemas"]["Display"]["properties"][
        "recent"
    ]["items"]["properties"]["counter"]["description"]
    assert "kept after" in description and "null once released" not in description


def test_display_recent_lists_calls_and_recalls_newest_first_one_entry_per_ticket() -> None:
    hall = Hall()
    hall.do(commands.open_counter, counter_id="loket-01")
    hall.do(commands.open_counter, counter_id="loket-02")
    hall.issue("a")
    hall.issue("b")
    hall.do(commands.call_next, counter_id="loket-01")
    hall.clock.advance(10)
    hall.do(commands.call_next, counter_id="loket-02")
    hall.clock.advance(10)
    hall.do(commands.recall, counter_id="loket-01")
    assert [e["number"] for e in recent(hall)] == ["A001", "A002"]


def test_a_just_called_number_stays_on_the_display_after_it_is_transferred() -> None:
    """The citizen called to loket 3 and sent on to another service a minute later: the TV
    keeps showing where the number was called, as it does after a finish."""
    hall = Hall()
    hall.do(commands.open_counter, counter_id="loket-03")
    hall.issue("a")
    hall.do(commands.call_next, counter_id="loket-03")
    called_at = hall.clock.now()
    hall.clock.advance(60)
    hall.do(commands.transfer, counter_id="loket-03", to_service="KK")
    entries = recent(hall)
    assert [(e["number"], e["counter"]) for e in entries] == [("A001", "loket-03")]
    assert entries[0]["called_at"] == called_at.isoformat()


def test_the_kiosk_menu_estimate_is_the_one_a_regular_ticket_issued_now_is_told() -> None:
    """Under `interleave` a regular ticket issued now has fewer tickets ahead than wait in
    the queue (priority tickets past the interleave come after it): the menu's estimate
    counts the same tickets ahead as the issue does."""
    hall = Hall()
    hall.do(commands.open_counter, counter_id="loket-04")  # KK (interleave 3) and AKTA
    for n in range(6):
        hall.issue(f"p{n}", "KK", "lansia")
        hall.clock.advance(30)
    now = hall.clock.now()
    menu = read_models.site_directory(hall.state, now)
    kk = next(s for s in menu["services"] if s["code"] == "KK")
    assert kk["waiting"] == 6
    hall.issue("r", "KK")
    answer = read_models.ticket_status(hall.state, hall.state.tickets["r"], now, just_issued=True)
    assert answer["people_ahead"] == 3  # three priority calls, then this regular ticket
    assert answer["estimated_wait_seconds"] == kk["estimated_wait_seconds"]
    assert answer["estimated_wait_seconds"] is not None
