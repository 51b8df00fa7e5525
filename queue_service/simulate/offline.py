"""Mode (b): a simulated day through the engine itself, on a manual clock, in memory.

Every command goes through `queue_service.engine.Engine` on a `MemoryStore`: decided by
`queue_service.domain.commands`, numbered, applied and committed as the service does it, so
the log is valid by construction and the state keeps its invariants. At each issue the
driver also asks every predictor of `queue_service.domain.estimate` what it would have told
the citizen (the shipped one must equal what the ticket_issued event carries), and at the
first call it records the wait: the material of the evaluation (`bench/ewt.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import partial
from typing import Any

from queue_service.config import AppConfig
from queue_service.domain import commands, errors
from queue_service.domain.actions import CounterCommand, counter_command
from queue_service.domain.clock import ManualClock
from queue_service.domain.estimate import PREDICTORS, Predictor
from queue_service.domain.events import Event
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import EventType, Priority
from queue_service.engine import Engine
from queue_service.simulate.day import Called, HallDay, Issued, Progress, Refused, Summary
from queue_service.simulate.profiles import Profile
from queue_service.store.memory import MemoryStore


@dataclass(slots=True)
class Prediction:
    """One ticket's first visit: what each predictor said at issue, and what happened."""

    service: str
    issued_at: datetime
    estimates: dict[str, float | None]
    wait: float | None = None  # first call - issue; None while never called


@dataclass(slots=True)
class OfflineDriver:
    """Plays a `HallDay` through an engine of its own (`run`)."""

    site: Site
    day: date
    predictors: dict[str, Predictor] = field(default_factory=lambda: dict(PREDICTORS))
    clock: ManualClock = field(init=False)
    store: MemoryStore = field(init=False, default_factory=MemoryStore)
    engine: Engine = field(init=False)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by ticket id
    _ids: int = 0

    def __post_init__(self) -> None:
        midnight = datetime.combine(self.day, datetime.min.time(), self.site.timezone)
        self.clock = ManualClock(midnight)
        config = AppConfig(path="", sites={self.site.id: self.site}, tokens=())
        # One command at a time: nothing to gather into a batch.
        self.engine = Engine(config, self.store, self.clock, gather_seconds=0.0)

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
                    p.wait = (e.ts - p.issued_at).total_seconds()
        return made

    async def wait_until(self, at: datetime) -> None:
        if at > self.clock.now():
            self.clock.set(at)

    async def issue(
        self, at: datetime, service: str, priority: Priority | None
    ) -> Issued | Refused:
        self._ids += 1
        ticket_id = f"sim-{self.day:%Y%m%d}-{self._ids:05d}"
        now = self.clock.now()
        state = self.state
        ahead = state.ahead_of_new(service, priority)
        said = {name: f(state, service, ahead, now, None) for name, f in self.predictors.items()}
        try:
            (event,) = await self._do(
                partial(commands.issue, ticket_id=ticket_id, service=service, priority=priority)
            )
        except errors.DomainError as exc:
            return exc.code
        stored = event.data.get("estimated_wait_seconds")
        if "shipped" in said:
            shown = said["shipped"]
            # The evaluation measures what the citizen was told, nothing else.
            assert (shown is None) == (stored is None), (shown, stored)
            said["shipped"] = stored
        self.predictions[ticket_id] = Prediction(service, event.ts, said)
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
) -> OfflineDay:
    """Simulate one day of `site` offline; its events, state and predictions."""
    hall = HallDay(site, profile, seed, day)
    driver = OfflineDriver(site, hall.day)
    summary = await driver.run(hall, progress, until)
    return OfflineDay(summary, driver)
