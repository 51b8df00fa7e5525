"""Mode (b): a simulated day through the engine itself, on a manual clock, in memory.

Every command goes through `queue_service.engine.Engine` on a `MemoryStore`: decided by
`queue_service.domain.commands`, numbered, applied and committed as the service does it, so
the log is valid by construction and the state keeps its invariants. At each issue the
driver also asks every predictor of `queue_service.domain.estimate` what it would have told
the citizen (the shipped one must equal what the ticket_issued event carries), and at the
first call it records the wait: the material of the evaluation (`bench/ewt.py`). It does the
same at a booking's check-in and at a remote join, each ticket kept with its source
(walk-in, booking, remote join), and asks every range predictor (low, point, high
seconds) the same. A booking's ticket, called ahead of walk-ins from its due time, is
estimated as the domain does it, over its queue time (DESIGN: from the later of check-in and
its due time, with the bookings due by then ahead of it), and its wait is measured over the
same span; the due time read here from the booking's policy must be the one its ticket got.

Bookings, remote joins and their codes get ids and codes counted from 1, so a seed gives
the same day; the day closer of the engine is left asleep, and the bookings whose check-in
window closed are marked missed when the day says (`Engine.miss_bookings`), not when a
real second has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import partial
from typing import Any

from queue_service.config import AppConfig
from queue_service.domain import commands, errors, online
from queue_service.domain.actions import CounterCommand, counter_command
from queue_service.domain.bookings import BookingRecord, policy_of, slot_start, window
from queue_service.domain.clock import ManualClock
from queue_service.domain.estimate import PREDICTORS, Predictor
from queue_service.domain.events import Event
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState, Ticket
from queue_service.domain.vocab import BookingEntry, BookingStatus, EventType, Priority, Source
from queue_service.engine import Engine
from queue_service.simulate.day import (
    Booked,
    Called,
    HallDay,
    Issued,
    Progress,
    Refused,
    Summary,
)
from queue_service.simulate.families import Family
from queue_service.simulate.profiles import Profile
from queue_service.store.memory import MemoryStore

# An estimated wait as a range: (low, point, high) seconds, or None.
Range = tuple[float, float, float]
RangePredictor = Callable[[SiteState, str, int, datetime, Ticket | None], Range | None]
# What the predictors said: each point predictor's estimate, each range predictor's range.
Said = tuple[dict[str, float | None], dict[str, Range | None]]


@dataclass(slots=True)
class Prediction:
    """One ticket's first visit: what each predictor said at issue, and what happened."""

    service: str
    # From when its wait runs: its issue, or a booking's due time when that is later.
    since: datetime
    estimates: dict[str, float | None]
    wait: float | None = None  # first call - since; None while never called
    # kiosk (a walk-in, or a booking checked in too late), booking or online (remote join)
    source: Source = Source.KIOSK
    ranges: dict[str, Range | None] = field(default_factory=dict)  # by range predictor


@dataclass(slots=True)
class OfflineDriver:
    """Plays a `HallDay` through an engine of its own (`run`)."""

    site: Site
    day: date
    predictors: dict[str, Predictor] = field(default_factory=lambda: dict(PREDICTORS))
    ranges: dict[str, RangePredictor] = field(default_factory=dict)
    clock: ManualClock = field(init=False)
    store: MemoryStore = field(init=False, default_factory=MemoryStore)
    engine: Engine = field(init=False)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by ticket id
    _ids: int = 0
    _bookings: int = 0
    _codes: int = 0

    def __post_init__(self) -> None:
        midnight = datetime.combine(self.day, datetime.min.time(), self.site.timezone)
        self.clock = ManualClock(midnight)
        config = AppConfig(path="", sites={self.site.id: self.site}, tokens=())
        # One command at a time: nothing to gather into a batch. The day closer looks at
        # the clock once a day of real time: never during a run (see the module's doc).
        self.engine = Engine(
            config, self.store, self.clock, gather_seconds=0.0, day_check_seconds=86400.0
        )

    @property
    def state(self) -> SiteState:
        """The site's committed state (every command is committed before the next)."""
        return self.engine.site_state(self.site.id)

    @property
    def events(self) -> list[Event]:
        """The day's log, as committed."""
        return self.store.events

    async def run(
        self, hall: HallDay, progress: Progress | None = None, until: time | None = None
    ) -> Summary:
        """Play `hall`'s day, the engine started for it and stopped after."""
        await self.engine.start()
        try:
            return await hall.run(self, progress, until)
        finally:
            await self.engine.stop()

    async def _do(self, command: CounterCommand) -> list[Event]:
        """Run a command through the engine; the events it committed."""
        made: list[Event] = []

        def respond(state: SiteState, events: list[Event]) -> tuple[int, dict[str, Any]]:
            made.extend(events)
            return 200, {}

        await self.engine.execute(self.site.id, command, respond)
        for e in made:
            if e.type == EventType.TICKET_CALLED and e.segment == 0:
                p = self.predictions.get(e.ticket_id or "")
                if p is not None and p.wait is None:
                    # As the state measures it: never negative (an officer may call a
                    # booking's ticket before its due time).
                    p.wait = max(0.0, (e.ts - p.since).total_seconds())
        return made

    async def wait_until(self, at: datetime) -> None:
        if at > self.clock.now():
            self.clock.set(at)

    def _ticket_id(self) -> str:
        self._ids += 1
        return f"sim-{self.day:%Y%m%d}-{self._ids:05d}"

    def _new_code(self) -> str:
        """The next booking or remote join code: the count, spread over the code space
        (7919 is prime to its size, so no two counts give one code)."""
        self._codes += 1
        n = (self._codes * 7919) % len(online.CODE_ALPHABET) ** online.CODE_LENGTH
        digits = []
        for _ in range(online.CODE_LENGTH):
            n, d = divmod(n, len(online.CODE_ALPHABET))
            digits.append(online.CODE_ALPHABET[d])
        return "".join(digits)

    def _ask(self, state: SiteState, service: str, ahead: int, now: datetime) -> Said:
        """What each predictor tells a ticket of `service` with `ahead` before it."""
        return (
            {name: f(state, service, ahead, now, None) for name, f in self.predictors.items()},
            {name: f(state, service, ahead, now, None) for name, f in self.ranges.items()},
        )

    def _predicted(self, event: Event, asked: Said, due: datetime | None = None) -> None:
        """Keep what the predictors said at the issue `event` (of a ticket due at `due`)."""
        said, ranges = asked
        stored = event.data.get("estimated_wait_seconds")
        if "shipped" in said:
            shown = said["shipped"]
            # The evaluation measures what the citizen was told, nothing else.
            assert (shown is None) == (stored is None), (shown, stored)
            said["shipped"] = stored
        assert event.ticket_id is not None
        assert event.service is not None
        since = event.ts if due is None else max(event.ts, due)
        self.predictions[event.ticket_id] = Prediction(
            event.service, since, said, source=Source(event.data["source"]), ranges=ranges
        )

    async def issue(
        self, at: datetime, service: str, priority: Priority | None
    ) -> Issued | Refused:
        ticket_id = self._ticket_id()
        now = self.clock.now()
        state = self.state
        said = self._ask(state, service, state.ahead_of_new(service, priority, now), now)
        try:
            (event,) = await self._do(
                partial(commands.issue, ticket_id=ticket_id, service=service, priority=priority)
            )
        except errors.DomainError as exc:
            return exc.code
        self._predicted(event, said)
        return Issued(event.data["number"], ticket_id)

    async def call_next(self, at: datetime, counter: str) -> Called | Refused:
        try:
            (event,) = await self._do(partial(commands.call_next, counter_id=counter))
        except errors.DomainError as exc:
            return exc.code
        assert event.service is not None
        return Called(event.data["number"], event.ticket_id, event.service)

    async def counter(
        self, at: datetime, counter: str, action: str, body: dict[str, str] | None = None
    ) -> Refused | None:
        command = counter_command(action, counter, body or {})
        try:
            await self._do(command)
        except errors.DomainError as exc:
            return exc.code
        return None

    async def cancel(self, at: datetime, number: str, ticket_id: str | None) -> Refused | None:
        assert ticket_id is not None
        try:
            await self._do(partial(commands.cancel, ticket_id=ticket_id, reason="pulang"))
        except errors.DomainError as exc:
            return exc.code
        return None

    # -- antrian online --------------------------------------------------------------------

    async def book(self, at: datetime, service: str, day: date, slot: str) -> Booked | Refused:
        self._bookings += 1
        booking_id = f"sim-{self.day:%Y%m%d}-b{self._bookings:05d}"
        try:
            (event,) = await self._do(
                partial(
                    online.book,
                    booking_id=booking_id,
                    service=service,
                    day=day.isoformat(),
                    slot=slot,
                    new_code=self._new_code,
                )
            )
        except errors.DomainError as exc:
            return exc.code
        return Booked(booking_id, event.data["code"])

    async def cancel_booking(self, at: datetime, booking_id: str) -> Refused | None:
        try:
            await self._do(partial(online.cancel_booking, booking_id=booking_id, reason="batal"))
        except errors.DomainError as exc:
            return exc.code
        return None

    def _booked(
        self, state: SiteState, b: BookingRecord, now: datetime
    ) -> tuple[Said, datetime | None]:
        """What the predictors tell booking `b`'s ticket checked in at `now` of its queue
        time, and when it may be called as the booking's policy says (None: at once, in the
        walk-ins' order, as a fifo booking's or a late one's)."""
        svc = state.site.services[b.service]
        due = None
        if now <= window(state.site, svc, b)[1]:
            due = {
                BookingEntry.AT_SLOT: slot_start(state.site, b),
                BookingEntry.PRIORITY: now,
                BookingEntry.FIFO: None,
            }[policy_of(svc).entry]
        if due is None:
            return self._ask(state, b.service, state.ahead_of_new(b.service, None, now), now), None
        ahead = state.queues[b.service].booked_ahead_at(max(now, due))
        return self._ask(state, b.service, ahead, now), due

    async def check_in(self, at: datetime, code: str) -> Issued | Refused:
        now = self.clock.now()
        state = self.state
        b = state.bookings.by_code(code)
        # Asked only of a booking still to check in (the others are refused: unknown,
        # checked in, cancelled or missed).
        said: Said = ({}, {})
        due = None
        if b is not None and b.state == BookingStatus.BOOKED:
            said, due = self._booked(state, b, now)
        ticket_id = self._ticket_id()
        try:
            events = await self._do(partial(online.check_in, code=code, ticket_id=ticket_id))
        except errors.DomainError as exc:
            return exc.code
        assert b is not None, "a booking's code, not a remote join's"
        event = events[-1]
        assert event.data.get("due_at") == (None if due is None else due.isoformat()), event
        self._predicted(event, said, due)
        return Issued(event.data["number"], ticket_id, due_at=due)

    async def join(self, at: datetime, service: str) -> Issued | Refused:
        ticket_id = self._ticket_id()
        now = self.clock.now()
        state = self.state
        said = self._ask(state, service, state.ahead_of_new(service, None, now), now)
        try:
            (event,) = await self._do(
                partial(online.join, ticket_id=ticket_id, service=service, new_code=self._new_code)
            )
        except errors.DomainError as exc:
            return exc.code
        self._predicted(event, said)
        return Issued(
            event.data["number"],
            ticket_id,
            code=event.data.get("code"),
            estimate=event.data.get("estimated_wait_seconds"),
        )

    async def estimate(self, at: datetime, service: str) -> float | None:
        state = self.state
        now = self.clock.now()
        return state.estimated_wait_seconds(service, state.ahead_of_new(service, None, now), now)

    async def confirm(self, at: datetime, code: str) -> Refused | None:
        # A remote join's code confirms its ticket: no new ticket, the id is not taken.
        unused = f"sim-{self.day:%Y%m%d}-unused"
        try:
            await self._do(partial(online.check_in, code=code, ticket_id=unused))
        except errors.DomainError as exc:
            return exc.code
        return None

    async def miss_bookings(self, at: datetime) -> int:
        return await self.engine.miss_bookings(self.site.id)


@dataclass(slots=True)
class OfflineDay:
    summary: Summary
    driver: OfflineDriver

    @property
    def events(self) -> list[Event]:
        return self.driver.events


async def run_day(
    site: Site,
    profile: Profile,
    seed: int,
    day: date | None = None,
    progress: Progress | None = None,
    until: time | None = None,
    family: Family | None = None,
) -> OfflineDay:
    """Simulate one day of `site` offline (in the hall behaviour of `family`, when given);
    its events, state and predictions."""
    hall = HallDay(site, profile, seed, day, family)
    driver = OfflineDriver(site, hall.day)
    summary = await driver.run(hall, progress, until)
    return OfflineDay(summary, driver)
