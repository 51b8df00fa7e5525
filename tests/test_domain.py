"""The pure domain: commands decide from state and time, events change the state.

No database and no event loop: each test drives a site's live state the way the engine
does (roll to today's service day, decide, number the events, apply them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from queue_service.config import AppConfig
from queue_service.domain import commands, errors, estimate
from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.site import Site
from queue_service.domain.state import ReplayError, Ticket
from queue_service.domain.vocab import (
    MAX_REASON,
    CounterStatus,
    EventType,
    FinishOutcome,
    Priority,
    TicketStatus,
)
from queue_service.errors import AntrianError
from queue_service.store.event_store import WriterLockHeld
from queue_service.store.protocol import StoreUnavailable
from tests.conftest import MONDAY_9AM, SITE
from tests.live_site import LiveSite
from tests.state_summary import summary

WITA = ZoneInfo("Asia/Makassar")


def wita(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    """A local (WITA) wall-clock time in 2026 as a UTC instant."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=WITA).astimezone(UTC)


class Hall(LiveSite):
    """One site's live state, driven like the engine drives it, with shorthands for the
    common steps."""

    def issue(self, ticket_id: str, service: str, priority: str | None = None) -> Ticket:
        self.do(commands.issue, ticket_id=ticket_id, service=service, priority=priority)
        return self.state.tickets[ticket_id]

    def open(self, *counter_ids: str) -> None:
        for counter_id in counter_ids:
            self.do(commands.open_counter, counter_id=counter_id)

    def call_next(self, counter_id: str) -> Ticket:
        (event,) = self.do(commands.call_next, counter_id=counter_id)
        assert event.ticket_id is not None
        return self.state.tickets[event.ticket_id]

    def call(self, counter_id: str, ticket_id: str) -> Ticket:
        self.do(commands.call_ticket, counter_id=counter_id, ticket_id=ticket_id)
        return self.state.tickets[ticket_id]

    def finish(self, counter_id: str, outcome: str = "served") -> Ticket:
        (event,) = self.do(commands.finish, counter_id=counter_id, outcome=outcome)
        assert event.ticket_id is not None
        return self.state.tickets[event.ticket_id]

    def serve_next(self, counter_id: str) -> str:
        """Call the next ticket at a counter and finish it at once; its number."""
        number = self.call_next(counter_id).number
        self.finish(counter_id)
        return number

    def ticket_events(self, ticket_id: str) -> list[Event]:
        return [e for e in self.log if e.ticket_id == ticket_id]


@pytest.fixture
def site(config: AppConfig) -> Site:
    return config.sites[SITE]


@pytest.fixture
def hall(site: Site, clock: ManualClock) -> Hall:
    return Hall(site, clock)


# --- numbering ----------------------------------------------------------------------------


def test_numbers_count_up_per_service_from_001(hall: Hall, clock: ManualClock) -> None:
    numbers = []
    for i, service in enumerate(["KTP-EL", "KTP-EL", "KK", "KTP-EL", "KK", "PASPOR"]):
        numbers.append(hall.issue(f"t{i}", service).number)
        clock.advance(30)
    assert numbers == ["A001", "A002", "B001", "A003", "B002", "P001"]
    assert hall.state.queues["KTP-EL"].issued == 3
    assert hall.state.queues["KK"].issued == 2


def test_each_service_numbers_with_its_own_prefix(hall: Hall, site: Site) -> None:
    prefixes = [svc.prefix for svc in site.services.values()]
    assert len(set(prefixes)) == len(prefixes)
    for code, svc in site.services.items():
        assert hall.issue(f"first-{code}", code).number == f"{svc.prefix}001"
    numbers = [t.number for t in hall.state.tickets.values()]
    assert len(set(numbers)) == len(numbers) == len(site.services)


def test_numbering_restarts_on_the_next_service_day_at_wita_midnight(
    hall: Hall, clock: ManualClock
) -> None:
    hall.issue("mon-1", "KTP-EL")
    assert hall.issue("mon-2", "KTP-EL").number == "A002"

    # Asia/Makassar is UTC+8: local midnight is 16:00Z, while the UTC date is unchanged.
    clock.set(datetime(2026, 11, 23, 15, 59, 59, tzinfo=UTC))
    (last_monday,) = hall.do(commands.open_counter, counter_id="loket-01")
    assert last_monday.day == date(2026, 11, 23)
    assert hall.state.tickets["mon-2"].number == "A002"

    clock.set(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    (first_tuesday,) = hall.do(commands.open_counter, counter_id="loket-02")
    assert clock.now().date() == date(2026, 11, 23)
    assert first_tuesday.day == date(2026, 11, 24)
    assert hall.state.day == date(2026, 11, 24)
    assert hall.state.tickets == {}
    assert hall.state.counters["loket-01"].state == CounterStatus.CLOSED  # a new day starts closed

    clock.set(wita(24, 8, 0))
    assert hall.issue("tue-1", "KTP-EL").number == "A001"
    assert hall.issue("tue-2", "KK").number == "B001"
    assert hall.issue("tue-3", "KTP-EL").number == "A002"


# --- issuing refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "service", "error", "code"),
    [
        pytest.param(wita(22, 10), "KTP-EL", errors.SiteClosed, "site_closed", id="sunday"),
        pytest.param(
            wita(23, 7, 59, 59), "KTP-EL", errors.SiteClosed, "site_closed", id="before-0800"
        ),
        pytest.param(
            wita(23, 15, 0), "JKN-INFO", errors.SiteClosed, "site_closed", id="at-closing-time"
        ),
        pytest.param(
            wita(28, 12, 0), "JKN-INFO", errors.SiteClosed, "site_closed", id="saturday-afternoon"
        ),
        pytest.param(
            wita(23, 14, 0), "KTP-EL", errors.CutoffPassed, "cutoff_passed", id="at-cutoff"
        ),
        pytest.param(
            wita(23, 14, 30), "KTP-EL", errors.CutoffPassed, "cutoff_passed", id="after-cutoff"
        ),
        pytest.param(
            wita(23, 13, 30),
            "STNK-5TH",
            errors.CutoffPassed,
            "cutoff_passed",
            id="own-earlier-cutoff",
        ),
    ],
)
def test_issue_is_refused_when_closed_or_after_the_cutoff(
    hall: Hall,
    clock: ManualClock,
    when: datetime,
    service: str,
    error: type[errors.DomainError],
    code: str,
) -> None:
    clock.set(when)
    with pytest.raises(error) as info:
        hall.issue("t1", service)
    assert info.value.code == code
    assert isinstance(info.value, errors.Conflict)
    assert hall.state.tickets == {}
    assert hall.log == []


@pytest.mark.parametrize(
    ("when", "service"),
    [
        pytest.param(wita(23, 8, 0), "KTP-EL", id="at-opening"),
        pytest.param(wita(23, 13, 59, 59), "KTP-EL", id="just-before-cutoff"),
        pytest.param(wita(23, 14, 30), "JKN-INFO", id="service-without-cutoff"),
        pytest.param(wita(28, 11, 59), "JKN-INFO", id="saturday-morning"),
    ],
)
def test_issue_is_accepted_inside_opening_hours_and_before_cutoff(
    hall: Hall, clock: ManualClock, when: datetime, service: str
) -> None:
    clock.set(when)
    assert hall.issue("t1", service).state == TicketStatus.WAITING


def test_issue_is_refused_once_the_daily_quota_is_reached(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    quota = site.services["KTP-EL"].daily_quota
    assert quota is not None
    for i in range(quota):
        hall.issue(f"t{i}", "KTP-EL")
        clock.advance(1)
    assert hall.state.tickets[f"t{quota - 1}"].number == f"A{quota:03d}"
    with pytest.raises(errors.QuotaReached) as info:
        hall.issue("one-too-many", "KTP-EL")
    assert info.value.code == "quota_reached"
    # The quota counts tickets issued, not tickets waiting: cancelling frees nothing.
    hall.do(commands.cancel, ticket_id="t0")
    with pytest.raises(errors.QuotaReached):
        hall.issue("one-too-many", "KTP-EL")
    # Other services have their own quota.
    assert hall.issue("k1", "KK").number == "B001"


def test_issue_for_an_unknown_service_is_not_found(hall: Hall) -> None:
    with pytest.raises(errors.UnknownService) as info:
        hall.issue("t1", "KTP")
    assert info.value.code == "unknown_service"
    assert isinstance(info.value, errors.NotFound)


@pytest.mark.parametrize("priority", ["vip", "LANSIA", ""])
def test_issue_with_an_unknown_priority_is_invalid(hall: Hall, priority: str) -> None:
    with pytest.raises(errors.Invalid) as info:
        hall.issue("t1", "KTP-EL", priority=priority)
    assert info.value.code == "invalid_command"
    assert hall.state.tickets == {}


@pytest.mark.parametrize("priority", list(Priority))
def test_issue_accepts_each_priority_kind(hall: Hall, priority: str) -> None:
    ticket = hall.issue("t1", "KTP-EL", priority=priority)
    assert ticket.priority == priority
    assert ticket.id in hall.state.queues["KTP-EL"].priority


def test_issue_with_an_unknown_source_is_invalid(hall: Hall) -> None:
    with pytest.raises(errors.Invalid):
        hall.do(commands.issue, ticket_id="t1", service="KTP-EL", source="telepathy")


# --- priority policies --------------------------------------------------------------------


def test_strict_policy_calls_a_later_priority_ticket_first(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    assert site.services["KTP-EL"].priority_policy == "strict"
    hall.open("loket-01")
    hall.issue("r1", "KTP-EL")
    clock.advance(60)
    hall.issue("r2", "KTP-EL")
    clock.advance(60)
    hall.issue("p1", "KTP-EL", priority="lansia")
    assert hall.state.people_ahead(hall.state.tickets["p1"]) == 0
    assert hall.state.people_ahead(hall.state.tickets["r1"]) == 1
    clock.advance(60)
    assert [hall.serve_next("loket-01") for _ in range(3)] == ["A003", "A001", "A002"]


def test_fifo_policy_ignores_priority(hall: Hall, clock: ManualClock, site: Site) -> None:
    assert site.services["PDAM-BAYAR"].priority_policy == "fifo"
    hall.open("loket-23")  # serves PDAM-BAYAR only
    hall.issue("r1", "PDAM-BAYAR")
    clock.advance(60)
    hall.issue("p1", "PDAM-BAYAR", priority="lansia")
    clock.advance(60)
    hall.issue("r2", "PDAM-BAYAR")
    assert hall.state.people_ahead(hall.state.tickets["p1"]) == 1
    clock.advance(60)
    assert [hall.serve_next("loket-23") for _ in range(3)] == ["R001", "R002", "R003"]


def test_interleave_policy_calls_one_regular_after_n_priority_calls(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    kk = site.services["KK"]
    assert kk.priority_policy == "interleave"
    n = kk.priority_interleave
    hall.open("loket-04")  # serves KK and AKTA; AKTA stays empty
    hall.issue("r1", "KK")
    clock.advance(60)
    hall.issue("r2", "KK")
    for i in range(n + 2):
        clock.advance(60)
        hall.issue(f"p{i}", "KK", priority="ibu_hamil")
    clock.advance(60)
    called = []
    for _ in range(n + 4):
        called.append(hall.call_next("loket-04").id)
        hall.finish("loket-04")
    expected = [f"p{i}" for i in range(n)] + ["r1", "p" + str(n), "p" + str(n + 1), "r2"]
    assert called == expected


def test_interleave_policy_keeps_calling_priority_when_no_regular_waits(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    n = site.services["KK"].priority_interleave
    hall.open("loket-04")
    for i in range(n + 2):
        hall.issue(f"p{i}", "KK", priority="lansia")
        clock.advance(10)
    for i in range(n + 2):
        assert hall.call_next("loket-04").id == f"p{i}"
        hall.finish("loket-04")


# --- call next across services ------------------------------------------------------------


def test_call_next_across_services_takes_the_oldest_waiting_ticket(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    assert site.counters["loket-03"].services == ("KTP-EL", "KK")
    hall.open("loket-03")
    hall.issue("kk-1", "KK")
    clock.advance(60)
    hall.issue("ktp-1", "KTP-EL")
    clock.advance(60)
    hall.issue("kk-2", "KK")
    clock.advance(60)
    assert [hall.serve_next("loket-03") for _ in range(3)] == ["B001", "A001", "B002"]
    with pytest.raises(errors.QueueEmpty):
        hall.call_next("loket-03")


def test_call_next_across_services_takes_priority_first(hall: Hall, clock: ManualClock) -> None:
    hall.open("loket-03")
    hall.issue("ktp-old", "KTP-EL")
    clock.advance(60)
    hall.issue("kk-old", "KK")
    clock.advance(60)
    hall.issue("kk-prio", "KK", priority="disabilitas")
    clock.advance(60)
    hall.issue("ktp-prio", "KTP-EL", priority="lansia")
    clock.advance(60)
    called = [hall.call_next("loket-03").id]
    hall.finish("loket-03")
    called.append(hall.call_next("loket-03").id)
    hall.finish("loket-03")
    called.append(hall.call_next("loket-03").id)
    assert called == ["kk-prio", "ktp-prio", "ktp-old"]


def test_call_next_treats_priority_in_a_fifo_service_as_regular(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    # loket-16 serves BANK-CS (interleave) and BANK-TELLER (fifo).
    assert site.services["BANK-TELLER"].priority_policy == "fifo"
    hall.open("loket-16")
    hall.issue("cs-1", "BANK-CS")
    clock.advance(60)
    hall.issue("teller-prio", "BANK-TELLER", priority="lansia")
    clock.advance(60)
    assert hall.call_next("loket-16").id == "cs-1"


# --- counter rules ------------------------------------------------------------------------


def test_calling_needs_an_open_counter(hall: Hall) -> None:
    hall.issue("t1", "KTP-EL")
    with pytest.raises(errors.CounterNotOpen) as info:
        hall.call_next("loket-01")
    assert info.value.code == "counter_not_open"
    with pytest.raises(errors.CounterNotOpen):
        hall.call("loket-01", "t1")
    hall.open("loket-01")
    hall.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    with pytest.raises(errors.CounterNotOpen):
        hall.call_next("loket-01")
    assert hall.state.tickets["t1"].state == TicketStatus.WAITING


def test_a_counter_holding_a_ticket_cannot_call_again(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.issue("t2", "KTP-EL")
    hall.call_next("loket-01")
    with pytest.raises(errors.CounterBusy) as info:
        hall.call_next("loket-01")
    assert info.value.code == "counter_busy"
    with pytest.raises(errors.CounterBusy):
        hall.call("loket-01", "t2")
    hall.do(commands.start, counter_id="loket-01")
    with pytest.raises(errors.CounterBusy):
        hall.call_next("loket-01")
    assert hall.state.tickets["t2"].state == TicketStatus.WAITING


def test_call_next_on_an_empty_queue_is_refused(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("other-service", "KK")  # loket-01 serves KTP-EL only
    with pytest.raises(errors.QueueEmpty) as info:
        hall.call_next("loket-01")
    assert info.value.code == "queue_empty"


def test_unknown_counter_is_not_found(hall: Hall) -> None:
    with pytest.raises(errors.UnknownCounter):
        hall.open("loket-99")


def test_pause_needs_a_reason(hall: Hall) -> None:
    hall.open("loket-01")
    for reason in ["", "   ", "x" * (MAX_REASON + 1)]:
        with pytest.raises(errors.Invalid):
            hall.do(commands.pause_counter, counter_id="loket-01", reason=reason)
    assert hall.state.counters["loket-01"].state == CounterStatus.OPEN
    hall.do(commands.pause_counter, counter_id="loket-01", reason="  salat  ")
    counter = hall.state.counters["loket-01"]
    assert (counter.state, counter.reason, counter.idle_since) == (
        CounterStatus.PAUSED,
        "salat",
        None,
    )


def test_pause_needs_an_idle_open_counter(hall: Hall) -> None:
    with pytest.raises(errors.InvalidTransition):  # closed
        hall.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    with pytest.raises(errors.CounterBusy):
        hall.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    hall.finish("loket-01")
    hall.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    with pytest.raises(errors.InvalidTransition):  # already paused
        hall.do(commands.pause_counter, counter_id="loket-01", reason="lagi")


def test_close_is_refused_while_the_counter_holds_a_ticket(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    with pytest.raises(errors.CounterBusy):
        hall.do(commands.close_counter, counter_id="loket-01")
    hall.do(commands.start, counter_id="loket-01")
    with pytest.raises(errors.CounterBusy):
        hall.do(commands.close_counter, counter_id="loket-01")
    hall.finish("loket-01")
    hall.do(commands.close_counter, counter_id="loket-01")
    assert hall.state.counters["loket-01"].state == CounterStatus.CLOSED
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.close_counter, counter_id="loket-01")


def test_open_when_already_open_is_an_invalid_transition(hall: Hall) -> None:
    hall.open("loket-01")
    with pytest.raises(errors.InvalidTransition) as info:
        hall.open("loket-01")
    assert info.value.code == "invalid_transition"
    # paused and closed counters can be opened again
    hall.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    hall.open("loket-01")
    hall.do(commands.close_counter, counter_id="loket-01")
    hall.open("loket-01")
    assert hall.state.counters["loket-01"].state == CounterStatus.OPEN


def test_counter_steps_without_a_held_ticket_are_invalid_transitions(hall: Hall) -> None:
    hall.open("loket-01")
    for command in (commands.recall, commands.start, commands.finish, commands.no_show):
        with pytest.raises(errors.InvalidTransition):
            hall.do(command, counter_id="loket-01")
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.transfer, counter_id="loket-01", to_service="KK")


# --- calling a specific ticket ------------------------------------------------------------


def test_call_ticket_calls_a_waiting_ticket_out_of_order(hall: Hall, clock: ManualClock) -> None:
    hall.open("loket-01")
    for i in range(3):
        hall.issue(f"t{i}", "KTP-EL")
        clock.advance(60)
    ticket = hall.call("loket-01", "t2")
    assert (ticket.state, ticket.counter, ticket.calls) == (TicketStatus.CALLED, "loket-01", 1)
    assert hall.state.counters["loket-01"].ticket_id == "t2"
    assert "t2" not in hall.state.queues["KTP-EL"].regular
    assert list(hall.state.queues["KTP-EL"].regular) == ["t0", "t1"]


def test_call_ticket_held_by_another_counter_is_taken(hall: Hall) -> None:
    hall.open("loket-01", "loket-02")
    hall.issue("t1", "KTP-EL")
    hall.call("loket-01", "t1")
    with pytest.raises(errors.TicketTaken) as info:
        hall.call("loket-02", "t1")
    assert info.value.code == "ticket_taken"
    hall.do(commands.start, counter_id="loket-01")
    with pytest.raises(errors.TicketTaken):
        hall.call("loket-02", "t1")
    assert hall.state.counters["loket-02"].ticket_id is None


def test_call_ticket_of_a_service_the_counter_does_not_serve(hall: Hall) -> None:
    hall.open("loket-04")  # KK, AKTA
    hall.issue("t1", "KTP-EL")
    with pytest.raises(errors.NotServedHere) as info:
        hall.call("loket-04", "t1")
    assert info.value.code == "service_not_served_here"
    assert hall.state.tickets["t1"].state == TicketStatus.WAITING


def test_call_ticket_unknown_or_closed(hall: Hall) -> None:
    hall.open("loket-01")
    with pytest.raises(errors.UnknownTicket):
        hall.call("loket-01", "nope")
    hall.issue("t1", "KTP-EL")
    hall.call("loket-01", "t1")
    hall.finish("loket-01")
    with pytest.raises(errors.InvalidTransition):
        hall.call("loket-01", "t1")


# --- never two counters on one ticket -----------------------------------------------------


def test_two_counters_never_hold_the_same_ticket(hall: Hall, clock: ManualClock) -> None:
    hall.open("loket-01", "loket-02", "loket-03")
    hall.issue("x", "KTP-EL")
    clock.advance(60)
    hall.issue("y", "KTP-EL")
    clock.advance(60)
    assert hall.call_next("loket-01").id == "x"
    with pytest.raises(errors.TicketTaken):
        hall.call("loket-02", "x")
    assert hall.call_next("loket-02").id == "y"
    with pytest.raises(errors.QueueEmpty):  # x is held, y is held: nothing for loket-03
        hall.call_next("loket-03")
    held = [c.ticket_id for c in hall.state.counters.values() if c.ticket_id is not None]
    assert sorted(held) == ["x", "y"]


# --- recall and no-show -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site_id", "counter_id"),
    [("mpp-banjarmasin", "loket-01"), ("mpp-banjarbaru", "bjb-loket-01")],
)
def test_no_show_only_after_the_sites_minimum_calls(
    config: AppConfig, clock: ManualClock, site_id: str, counter_id: str
) -> None:
    hall = Hall(config.sites[site_id], clock)
    needed = hall.site.no_show_min_calls
    assert needed >= 2
    hall.open(counter_id)
    hall.issue("t1", "KTP-EL")
    clock.advance(60)
    first = hall.call_next(counter_id)
    first_called_at = first.first_called_at
    for calls in range(1, needed):
        assert hall.state.tickets["t1"].calls == calls
        with pytest.raises(errors.NoShowTooEarly) as info:
            hall.do(commands.no_show, counter_id=counter_id)
        assert info.value.code == "no_show_too_early"
        clock.advance(30)
        (recalled,) = hall.do(commands.recall, counter_id=counter_id)
        assert recalled.type == EventType.TICKET_RECALLED
        assert recalled.data["calls"] == calls + 1
    ticket = hall.state.tickets["t1"]
    assert ticket.calls == needed
    assert ticket.first_called_at == first_called_at
    assert ticket.last_called_at == clock.now()
    clock.advance(30)
    hall.do(commands.no_show, counter_id=counter_id)
    assert (ticket.state, ticket.outcome, ticket.counter) == (TicketStatus.NO_SHOW, "no_show", None)
    counter = hall.state.counters[counter_id]
    assert (counter.ticket_id, counter.idle_since, counter.served) == (None, clock.now(), 0)
    assert hall.state.queues["KTP-EL"].no_shows == 1
    assert hall.state.queues["KTP-EL"].called == 1  # a no-show's wait still counts


def test_recall_and_no_show_refused_once_serving(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    hall.do(commands.recall, counter_id="loket-01")
    hall.do(commands.start, counter_id="loket-01")
    assert hall.state.tickets["t1"].state == TicketStatus.SERVING
    for command in (commands.recall, commands.no_show, commands.start):
        with pytest.raises(errors.InvalidTransition):
            hall.do(command, counter_id="loket-01")


# --- transfer -----------------------------------------------------------------------------


def test_transfer_requeues_in_the_new_service_by_original_issue_time(
    hall: Hall, clock: ManualClock
) -> None:
    issued_kk_before = hall.issue("kk-before", "KK").issued_at
    clock.advance(minutes=5)
    x = hall.issue("x", "KTP-EL")
    issued_at = x.issued_at
    clock.advance(minutes=5)
    hall.issue("kk-after", "KK")
    clock.advance(minutes=5)
    hall.open("loket-01")
    hall.call_next("loket-01")
    clock.advance(minutes=1)
    hall.do(commands.start, counter_id="loket-01")
    clock.advance(minutes=9)
    (transferred,) = hall.do(commands.transfer, counter_id="loket-01", to_service="KK")
    transfer_time = clock.now()

    assert transferred.type == EventType.TICKET_TRANSFERRED
    assert (transferred.service, transferred.segment) == ("KTP-EL", 0)
    assert transferred.data["to_service"] == "KK"
    assert (x.state, x.service, x.segment, x.counter, x.calls) == (
        TicketStatus.WAITING,
        "KK",
        1,
        None,
        0,
    )
    assert x.issued_at == issued_at
    assert x.enqueued_at == transfer_time
    assert x.queue_key == issued_at
    assert (x.first_called_at, x.started_at) == (None, None)
    assert x.number == "A001"  # the citizen keeps the printed number
    assert hall.state.counters["loket-01"].ticket_id is None
    assert hall.state.counters["loket-01"].served == 1
    assert hall.state.queues["KTP-EL"].finished == 1
    assert x.id in hall.state.queues["KK"].regular
    assert x.id not in hall.state.queues["KTP-EL"].regular
    assert hall.state.people_ahead(x) == 1  # only the KK ticket issued before it
    assert issued_kk_before < issued_at

    clock.advance(minutes=1)
    hall.open("loket-04")
    assert hall.call_next("loket-04").id == "kk-before"
    hall.finish("loket-04")
    (called,) = hall.do(commands.call_next, counter_id="loket-04")
    assert (called.ticket_id, called.service, called.segment) == ("x", "KK", 1)
    hall.finish("loket-04")
    assert hall.call_next("loket-04").id == "kk-after"


def test_transfer_to_the_same_service_is_invalid(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    with pytest.raises(errors.Invalid) as info:
        hall.do(commands.transfer, counter_id="loket-01", to_service="KTP-EL")
    assert info.value.code == "invalid_command"
    with pytest.raises(errors.UnknownService):
        hall.do(commands.transfer, counter_id="loket-01", to_service="NOPE")
    assert hall.state.tickets["t1"].state == TicketStatus.CALLED
    assert hall.state.counters["loket-01"].ticket_id == "t1"


# --- cancel -------------------------------------------------------------------------------


def test_cancel_only_a_waiting_ticket(hall: Hall) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.issue("t2", "KTP-EL")
    hall.do(commands.cancel, ticket_id="t2", reason="pulang")
    t2 = hall.state.tickets["t2"]
    assert (t2.state, t2.outcome) == (TicketStatus.CANCELLED, "cancelled")
    assert "t2" not in hall.state.queues["KTP-EL"].regular
    assert hall.state.queues["KTP-EL"].cancelled == 1
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.cancel, ticket_id="t2")

    hall.call_next("loket-01")
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.cancel, ticket_id="t1")
    hall.do(commands.start, counter_id="loket-01")
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.cancel, ticket_id="t1")
    hall.finish("loket-01")
    with pytest.raises(errors.InvalidTransition):
        hall.do(commands.cancel, ticket_id="t1")
    with pytest.raises(errors.UnknownTicket):
        hall.do(commands.cancel, ticket_id="nope")


# --- finish and statistics ----------------------------------------------------------------


@pytest.mark.parametrize("outcome", list(FinishOutcome))
def test_finish_accepts_each_outcome(hall: Hall, outcome: str) -> None:
    assert set(FinishOutcome) == {"served", "incomplete", "referred"}
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    ticket = hall.finish("loket-01", outcome)
    assert (ticket.state, ticket.outcome, ticket.counter) == (TicketStatus.DONE, outcome, None)


@pytest.mark.parametrize("outcome", ["no_show", "cancelled", "done", "", "SERVED"])
def test_finish_with_any_other_outcome_is_invalid(hall: Hall, outcome: str) -> None:
    hall.open("loket-01")
    hall.issue("t1", "KTP-EL")
    hall.call_next("loket-01")
    with pytest.raises(errors.Invalid):
        hall.finish("loket-01", outcome)
    assert hall.state.tickets["t1"].state == TicketStatus.CALLED


def test_counter_and_queue_statistics_on_a_known_timeline(
    hall: Hall, clock: ManualClock, site: Site
) -> None:
    target = site.services["KTP-EL"].target_wait_seconds
    assert target == 20 * 60
    t0 = clock.now()
    assert t0 == MONDAY_9AM == wita(23, 9, 0)
    hall.open("loket-01")
    assert hall.state.counters["loket-01"].idle_since == t0
    hall.issue("t1", "KTP-EL")
    clock.advance(minutes=1)
    hall.issue("t2", "KTP-EL")
    clock.advance(minutes=1)
    hall.issue("t3", "KTP-EL")

    clock.set(wita(23, 9, 5))  # t1 waited 5 min: within
    hall.call_next("loket-01")
    assert hall.state.counters["loket-01"].idle_since is None
    clock.set(wita(23, 9, 7))
    hall.do(commands.start, counter_id="loket-01")
    clock.set(wita(23, 9, 17))  # service 10 min from start
    hall.finish("loket-01")
    assert hall.state.counters["loket-01"].idle_since == clock.now()

    clock.set(wita(23, 9, 21))  # t2 waited exactly 20 min: still within
    assert hall.call_next("loket-01").id == "t2"
    clock.set(wita(23, 9, 22))
    hall.do(commands.recall, counter_id="loket-01")
    clock.set(wita(23, 9, 30))  # no start: service from the last call, 8 min
    hall.finish("loket-01", "incomplete")

    clock.set(wita(23, 9, 40))  # t3 waited 38 min: not within
    assert hall.call_next("loket-01").id == "t3"
    clock.set(wita(23, 9, 41))
    hall.do(commands.start, counter_id="loket-01")
    clock.set(wita(23, 9, 46))  # 5 min, then sent on to KK
    hall.do(commands.transfer, counter_id="loket-01", to_service="KK")

    counter = hall.state.counters["loket-01"]
    assert counter.served == 3
    assert counter.busy_seconds == 600 + 480 + 300
    assert counter.idle_since == wita(23, 9, 46)
    q = hall.state.queues["KTP-EL"]
    assert (q.called, q.called_within, q.finished) == (3, 2, 3)
    assert q.service_seconds == 1380
    assert hall.state.average_service_seconds("KTP-EL") == 460
    assert (q.no_shows, q.cancelled, q.issued, len(q)) == (0, 0, 3, 0)
    kk = hall.state.queues["KK"]
    assert (kk.called, kk.finished, len(kk)) == (0, 0, 1)
    default_kk = site.services["KK"].default_service_minutes * 60
    assert hall.state.average_service_seconds("KK") == default_kk

    t1 = hall.state.tickets["t1"]
    assert (t1.first_called_at, t1.started_at, t1.finished_at) == (
        wita(23, 9, 5),
        wita(23, 9, 7),
        wita(23, 9, 17),
    )
    t2 = hall.state.tickets["t2"]
    assert (t2.first_called_at, t2.last_called_at, t2.started_at, t2.calls) == (
        wita(23, 9, 21),
        wita(23, 9, 22),
        None,
        2,
    )

    # The third segment, in KK, waits from the transfer, not from the original issue.
    hall.open("loket-04")
    clock.set(wita(23, 10, 0))
    assert hall.call_next("loket-04").id == "t3"
    assert (kk.called, kk.called_within) == (1, 1)


def test_estimated_wait_expects_the_counters_not_opened_yet(hall: Hall, site: Site) -> None:
    p = estimate.DEFAULT
    w = p.handling_weight
    per_ticket = site.services["KTP-EL"].default_service_minutes * 60
    # No call observed yet: per counter, a blend of one ticket per configured handle time
    # and one per handle time plus a walk, less the margin.
    per_counter = ((1 - w) / per_ticket + w / (per_ticket + p.walk_seconds)) / (1 + p.margin)
    floor = p.return_floor_seconds
    ticket = hall.issue("t1", "KTP-EL")
    # 09:00, an hour after the 08:00 opening, no counter open: the three KTP-EL counters
    # (loket-01 to 03) are overdue against the prior's 30 minutes, expected after the
    # floor, each as half a counter. Then the one call.
    rate = 3 * p.unopened_weight * per_counter
    expected = floor + 1 / rate + p.reaction_seconds
    got = hall.state.estimated_wait_seconds("KTP-EL", hall.state.people_ahead(ticket))
    assert got == pytest.approx(expected)
    hall.open("loket-01", "loket-02")
    # Position 4, less the two idle counters that call at once: 2 calls, at two counters'
    # rate until loket-03 (not opened yet, overdue: the usual delay is now (2 x 3600 +
    # 3 x 1800) / 5 = 2520 s) is expected, after the floor, as half a counter.
    rate2 = 2 * per_counter
    rate25 = (2 + p.unopened_weight) * per_counter
    assert 2 / rate2 > floor
    expected = floor + (2 - floor * rate2) / rate25 + p.reaction_seconds
    assert hall.state.estimated_wait_seconds("KTP-EL", 3) == pytest.approx(expected)


# --- clock stepping backwards -------------------------------------------------------------


def test_clock_stepping_back_never_makes_a_tickets_history_run_backwards(
    hall: Hall, clock: ManualClock
) -> None:
    hall.open("loket-01", "loket-04")
    clock.set(wita(23, 9, 10))
    hall.issue("t1", "KTP-EL")
    clock.set(wita(23, 9, 5))  # NTP step back
    hall.call_next("loket-01")
    clock.set(wita(23, 9, 20))
    hall.do(commands.recall, counter_id="loket-01")
    clock.set(wita(23, 9, 15))
    hall.do(commands.start, counter_id="loket-01")
    clock.set(wita(23, 9, 0))
    hall.do(commands.transfer, counter_id="loket-01", to_service="KK")
    clock.set(wita(23, 8, 59))
    hall.call_next("loket-04")
    clock.set(wita(23, 9, 1))
    hall.finish("loket-04")

    stamps = [e.ts for e in hall.ticket_events("t1")]
    assert len(stamps) == 7
    assert stamps == sorted(stamps)
    assert stamps[1] == wita(23, 9, 10)  # the call is stamped no earlier than the issue
    assert stamps[-1] == wita(23, 9, 20)
    for q in hall.state.queues.values():
        assert q.service_seconds >= 0
    for c in hall.state.counters.values():
        assert c.busy_seconds >= 0
    assert hall.state.queues["KTP-EL"].called_within == 1
    assert hall.state.queues["KK"].called_within == 1


# --- clone --------------------------------------------------------------------------------


def _busy_morning(hall: Hall, clock: ManualClock) -> None:
    hall.open("loket-01", "loket-03", "loket-04")
    for i, (service, priority) in enumerate(
        [
            ("KTP-EL", None),
            ("KK", None),
            ("KTP-EL", "lansia"),
            ("KK", "ibu_hamil"),
            ("AKTA", None),
            ("KTP-EL", None),
            ("KK", None),
        ]
    ):
        hall.issue(f"t{i}", service, priority)
        clock.advance(45)
    hall.call_next("loket-01")
    hall.do(commands.start, counter_id="loket-01")
    hall.call_next("loket-03")
    clock.advance(300)
    hall.finish("loket-01")
    hall.call_next("loket-04")
    hall.do(commands.transfer, counter_id="loket-04", to_service="KTP-EL")
    hall.do(commands.cancel, ticket_id="t6")


def test_clone_is_equal_in_content(hall: Hall, clock: ManualClock) -> None:
    _busy_morning(hall, clock)
    copy = hall.state.clone()
    assert summary(copy, totals=False) == summary(hall.state, totals=False)
    for tid, ticket in copy.tickets.items():
        assert ticket is not hall.state.tickets[tid]
    for q in copy.queues.values():
        for tid, ticket in [*q.priority.items(), *q.regular.items()]:
            assert ticket is copy.tickets[tid]  # queues hold the clone's own tickets
    for cid, counter in copy.counters.items():
        assert counter is not hall.state.counters[cid]


def test_clone_is_independent_of_the_original(hall: Hall, clock: ManualClock) -> None:
    _busy_morning(hall, clock)
    before = summary(hall.state, totals=False)
    copy = hall.state.clone()

    # Drive the copy on: new tickets, calls, finishes, pauses.
    other = Hall(hall.site, clock)
    other.state, other.log = copy, list(hall.log)
    clock.advance(60)
    other.issue("new", "KK")
    other.finish("loket-03")
    other.call_next("loket-03")
    other.do(commands.pause_counter, counter_id="loket-01", reason="istirahat")
    other.do(commands.cancel, ticket_id="t5")
    copy.tickets["t4"].calls = 99
    copy.queues["KTP-EL"].regular.clear()
    copy.counters["loket-04"].served = 42

    assert summary(hall.state, totals=False) == before
    assert "new" not in hall.state.tickets
    assert summary(copy, totals=False) != before


def test_every_error_of_the_domain_and_store_is_an_antrian_error_with_its_status() -> None:
    """The web layer's middleware answers any AntrianError with its own `status` and
    `code`: the domain's branches say which."""
    assert (errors.Invalid.status, errors.NotFound.status, errors.Conflict.status) == (
        400,
        404,
        409,
    )
    assert (errors.UnknownTicket.status, errors.QuotaReached.status) == (404, 409)
    for cls in (errors.DomainError, ReplayError, StoreUnavailable, WriterLockHeld):
        assert issubclass(cls, AntrianError)
    assert (ReplayError.code, StoreUnavailable.code, StoreUnavailable.status) == (
        "replay_failed",
        "database_unavailable",
        503,
    )
    refused = errors.SiteClosed("closed", site="x", opens_at=None)
    assert (refused.code, refused.status, refused.details) == (
        "site_closed",
        409,
        {"site": "x", "opens_at": None},
    )
