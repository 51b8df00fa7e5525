"""Mode (b): a simulated day against the pure domain, on a manual clock, in memory.

Every command goes through `queue_service.domain.commands` and every event is applied with
`SiteState.apply`, as the engine does, so the log is valid by construction and the state
keeps its invariants. At each issue the driver also asks every predictor of
`queue_service.domain.estimate` what it would have told the citizen (the shipped one must
equal what the ticket_issued event carries), and at the first call it records the wait:
the material of the evaluation (`bench/ewt.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import partial

from queue_service.domain import commands, errors
from queue_service.domain import events as ev
from queue_service.domain.clock import ManualClock
from queue_service.domain.estimate import PREDICTORS, Predictor
from queue_service.domain.events import Event
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals, wait_bounds
from queue_service.simulate.day import Called, HallDay, Issued, Progress, Refused, Summary
from queue_service.simulate.profiles import Profile

_COUNTER_COMMANDS: dict[str, Callable[..., list[Event]]] = {
    "open": commands.open_counter,
    "close": commands.close_counter,
    "recall": commands.recall,
    "start": commands.start,
    "no-show": commands.no_show,
}


@dataclass(slots=True)
class Prediction:
    """One ticket's first visit: what each predictor said at issue, and what happened."""

    service: str
    issued_at: datetime
    estimates: dict[str, float | None]
    wait: float | None = None  # first call - issue; None while never called


@dataclass(slots=True)
class OfflineDriver:
    site: Site
    day: date
    predictors: dict[str, Predictor] = field(default_factory=lambda: dict(PREDICTORS))
    state: SiteState = field(init=False)
    clock: ManualClock = field(init=False)
    events: list[Event] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by ticket id
    _ids: int = 0

    def __post_init__(self) -> None:
        bounds = wait_bounds(s.target_wait_seconds for s in self.site.services.values())
        totals = SiteTotals(self.site.services, self.site.counters, bounds)
        self.state = SiteState(self.site, self.day, totals)
        midnight = datetime.combine(self.day, datetime.min.time(), self.site.timezone)
        self.clock = ManualClock(midnight)

    def _do(self, command: Callable[[SiteState, datetime], list[Event]]) -> list[Event]:
        now = self.clock.now()
        events = command(self.state, now)
        out = []
        for e in events:
            e = dataclasses.replace(e, seq=len(self.events) + 1)
            self.state.apply(e)
            self.events.append(e)
            out.append(e)
            if e.type == ev.TICKET_CALLED and e.segment == 0:
                p = self.predictions.get(e.ticket_id or "")
                if p is not None and p.wait is None:
                    p.wait = (e.ts - p.issued_at).total_seconds()
        return out

    async def wait_until(self, at: datetime) -> None:
        if at > self.clock.now():
            self.clock.set(at)

    async def issue(self, at: datetime, service: str, priority: str | None) -> Issued | Refused:
        self._ids += 1
        ticket_id = f"sim-{self.day:%Y%m%d}-{self._ids:05d}"
        now = self.clock.now()
        ahead = self.state.ahead_of_new(service, priority)
        said = {
            name: f(self.state, service, ahead, now, None) for name, f in self.predictors.items()
        }
        try:
            (event,) = self._do(
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
            (event,) = self._do(partial(commands.call_next, counter_id=counter))
        except errors.DomainError as exc:
            return exc.code
        assert event.service is not None
        return Called(event.data["number"], event.ticket_id, event.service)

    async def counter(
        self, at: datetime, counter: str, action: str, body: dict[str, str] | None = None
    ) -> Refused | None:
        body = body or {}
        command: Callable[[SiteState, datetime], list[Event]]
        if action in _COUNTER_COMMANDS:
            command = partial(_COUNTER_COMMANDS[action], counter_id=counter)
        elif action == "pause":
            command = partial(commands.pause_counter, counter_id=counter, reason=body["reason"])
        elif action == "finish":
            command = partial(commands.finish, counter_id=counter, outcome=body["outcome"])
        elif action == "transfer":
            command = partial(commands.transfer, counter_id=counter, to_service=body["service"])
        else:
            raise ValueError(f"unknown counter action {action!r}")
        try:
            self._do(command)
        except errors.DomainError as exc:
            return exc.code
        return None

    async def cancel(self, at: datetime, number: str, ticket_id: str | None) -> Refused | None:
        assert ticket_id is not None
        try:
            self._do(partial(commands.cancel, ticket_id=ticket_id, reason="pulang"))
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
    summary = await hall.run(driver, progress, until)
    return OfflineDay(summary, driver)
