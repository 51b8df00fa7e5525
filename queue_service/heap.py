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
night, at 03:00 in the first site's timezone: `Engine._renew_heap_nightly`) unfreezes,
collects everything once and freezes again.

Young collections run after YOUNG_THRESHOLD net allocations instead of CPython 3.11's
700 (3.13 raised its own default to 2000): a busy service allocates and frees many
short-lived objects per request, and with 700 it spent ~6% of its time in young
collections that mostly found requests still in flight (bench/README.md: 0.29 s of
collections per benchmark run at 700, 0.11 s at 2000, the longest pause under 10 ms).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 2000

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
