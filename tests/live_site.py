"""A site's live state driven in a test the way the engine drives it (`Engine._decide`):
roll the state to the clock's service day, let a command decide at the clock's time, give
each event the next seq and apply it. For the tests of the pure domain and its read models,
which need no engine, store or event loop; the tests of the engine run the engine itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from queue_service.domain.clock import ManualClock
from queue_service.domain.events import Event
from queue_service.domain.site import Site
from queue_service.domain.state import SiteState
from queue_service.domain.totals import SiteTotals

# A command of `queue_service.domain.commands`: (state, now, **arguments) -> its events.
Command = Callable[..., list[Event]]


class LiveSite:
    """One site's live state on a manual clock; `log` holds every applied event in order
    (an event's seq is its place in the log)."""

    def __init__(self, site: Site, clock: ManualClock, totals: SiteTotals | None = None) -> None:
        self.site = site
        self.clock = clock
        self.state = SiteState(site, site.service_day(clock.now()), totals)
        self.log: list[Event] = []

    def do(self, command: Command, **kwargs: Any) -> list[Event]:
        """Decide `command` at the clock's time on the state of its service day and apply
        the events; they are returned numbered."""
        now = self.clock.now()
        today = self.site.service_day(now)
        if self.state.day != today:
            self.state.roll_to(today)
        return self.apply(command(self.state, now, **kwargs))

    def apply(self, events: Iterable[Event]) -> list[Event]:
        """Number `events` on from the log's last and apply them, in order."""
        numbered = []
        for event in events:
            event = dataclasses.replace(event, seq=len(self.log) + 1)
            self.state.apply(event)
            self.log.append(event)
            numbered.append(event)
        return numbered

    def clone(self) -> LiveSite:
        """A copy to decide on without touching this one (its state a `SiteState.clone`,
        which keeps no totals), numbering on from the same log."""
        copy = LiveSite(self.site, self.clock)
        copy.state = self.state.clone()
        copy.log = list(self.log)
        return copy
