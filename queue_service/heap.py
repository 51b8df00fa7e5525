"""The garbage-collector policy of the service process: keep full collections short.

The live state of a day only grows: every ticket adds objects that live until the day
ends. CPython's full (generation 2) collection traverses every tracked object, so as the
state grows each full collection stops the event loop for longer (tens of milliseconds
for a busy hall, up to a second after a large replay), and every request in flight waits.

The objects that survive a full collection are almost all state of today, kept until the
day rolls over. So after start-up and after every full collection, the survivors are
frozen (`gc.freeze()`): later full collections traverse only what is younger than the
last one, and their pause stays proportional to what was allocated since, not to the
size of the day. Objects freed by reference counting are freed as always, frozen or not;
only garbage in reference cycles among frozen objects waits, until `renew()` (once a
night, at RENEW_AT in the first site's timezone) unfreezes, collects everything once and
freezes again.

Start-up replay allocates millions of objects and frees none: the cyclic collector would
only traverse the growing state again and again (about a fifth of the time), so it is off
while the engine replays.

`policy()` is the whole of it for one engine, as one context manager: the collector off
around the replay (`Policy.replay()`), then held, renewed nightly, and released on exit.

Young collections run after YOUNG_THRESHOLD net allocations instead of CPython 3.11's
700 (3.13 raised its own default to 2000): a busy service allocates and frees many
short-lived objects per request, and with 700 it spent ~6% of its time in young
collections that mostly found requests still in flight (bench/README.md: 0.29 s of
collections per benchmark run at 700, 0.11 s at 2000, the longest pause under 10 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, tzinfo
from datetime import time as day_time
from typing import Any

from queue_service.domain.clock import Clock

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 2000
# Local time at which the day's heap is collected once in full: halls are closed, and the
# state of the day before has been dropped by then.
RENEW_AT = day_time(3, 0)

_users = 0  # engines of this process that hold the policy (tests run several)
_thresholds: tuple[int, int, int] | None = None  # what the process had before hold()
renewals = 0  # full collections of the whole heap done by `renew()` in this process


def _freeze_after_full(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def hold() -> None:
    """Start the policy for one holder: freeze what is alive now (after start-up replay:
    the state of today). No collection first: after a large replay it would cost ~0.4 s
    of start-up for little garbage; `renew()` collects it at night."""
    global _users, _thresholds
    _users += 1
    if _users == 1:
        gc.callbacks.append(_freeze_after_full)
        _thresholds = gc.get_threshold()
        gc.set_threshold(max(YOUNG_THRESHOLD, _thresholds[0]), *_thresholds[1:])
    gc.freeze()


def release() -> None:
    """End the policy for one holder; the last one unfreezes the heap."""
    global _users, _thresholds
    if _users == 0:
        return
    _users -= 1
    if _users == 0:
        if _freeze_after_full in gc.callbacks:
            gc.callbacks.remove(_freeze_after_full)
        if _thresholds is not None:
            gc.set_threshold(*_thresholds)
            _thresholds = None
        gc.unfreeze()


def renew() -> float:
    """Collect the whole heap once (cyclic garbage among frozen objects included) and
    freeze the survivors again. Returns the pause in seconds. Meant for a quiet hour."""
    global renewals
    began = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    pause = time.perf_counter() - began
    renewals += 1
    log.info("full garbage collection of the day's heap: %.3f s", pause)
    return pause


class Policy:
    """The collector policy of one engine (see the module's docstring); made by `policy()`."""

    def __init__(self, clock: Clock, timezone: tzinfo, check_seconds: float) -> None:
        self.clock = clock
        self.timezone = timezone
        # How often the nightly renewal looks at the clock (a stepped or injected clock
        # must not make it wait out a whole night).
        self.check_seconds = check_seconds
        self._held = False
        self._nightly: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """The collector off for the block; once it ends well, what it built is frozen and
        the policy held (before the collector is on again: everything replayed is still in
        its young generation, and the first allocation after `gc.enable()` would traverse
        all of it in one young collection, 0.2 s at a million events, measured)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
            hold()
            self._held = True
            self._nightly = asyncio.create_task(self._renew_nightly(), name="heap-renewal")
        finally:
            if was_enabled:
                gc.enable()

    async def _renew_nightly(self) -> None:
        """Once a night (RENEW_AT local), collect the whole heap: cyclic garbage among
        frozen objects is freed there and nowhere else."""
        while True:
            local = self.clock.now().astimezone(self.timezone)
            at = datetime.combine(local.date(), RENEW_AT, tzinfo=self.timezone)
            if at <= local:
                at = datetime.combine(
                    local.date() + timedelta(days=1), RENEW_AT, tzinfo=self.timezone
                )
            # Slept in pieces: the clock may be stepped (or injected) meanwhile.
            await asyncio.sleep(min((at - local).total_seconds(), self.check_seconds))
            if self.clock.now().astimezone(self.timezone) >= at:
                renew()

    async def close(self) -> None:
        nightly, self._nightly = self._nightly, None
        if nightly is not None:
            nightly.cancel()
            await asyncio.wait({nightly})
        if self._held:
            release()
            self._held = False


@contextlib.asynccontextmanager
async def policy(
    clock: Clock, timezone: tzinfo, check_seconds: float = 600.0
) -> AsyncIterator[Policy]:
    """The collector policy of one engine, from its replay until it stops."""
    held = Policy(clock, timezone, check_seconds)
    try:
        yield held
    finally:
        await held.close()
