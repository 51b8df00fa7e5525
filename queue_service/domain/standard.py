"""The service standard (*standar pelayanan*) as the headline figures read it: pure functions.

docs/design.md: a ticket's wait is *within standard* when it is at most its service's target
wait. A ticket called within its target counts as within; a ticket called later counts as
a breach, and so does a ticket still waiting that has already waited longer than its
target (the call-time count alone only sees such a breach once the ticket is called, so
a hall whose queues have stopped moving would show 100%). A waiting ticket that has not
reached its target yet is not counted either way: it may still be called in time.

Every figure the snapshot (and the board drawn from it) publishes about the standard is
computed here, once, from plain numbers; nothing here reads the clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def within_standard_share(
    called_within: int, called: int, waiting_over_target: int
) -> float | None:
    """Share of today's tickets within standard so far: called within their target over
    (called + still waiting past their target). None when both are zero (nothing to judge
    yet). Exact; the snapshot rounds it for publication."""
    judged = called + waiting_over_target
    if judged <= 0:
        return None
    return called_within / judged


def over_target(wait_seconds: float | None, target_seconds: float) -> bool:
    """Whether a wait is past the standard: strictly longer than the target (a wait of
    exactly the target is within, as when it is called)."""
    return wait_seconds is not None and wait_seconds > target_seconds


def ratio_to_target(wait_seconds: float | None, target_seconds: float) -> float | None:
    """A wait as a multiple of its service's target (1.0 = exactly the standard); None
    without a wait or a target."""
    if wait_seconds is None or target_seconds <= 0:
        return None
    return wait_seconds / target_seconds


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What the headline needs of one service's queue at one instant."""

    service: str
    target_seconds: float
    waiting: int
    oldest_wait_seconds: float | None  # the longest-waiting ticket's wait; None if none waits
    called: int  # first calls today
    called_within: int  # ... of which within the target
    waiting_over_target: int  # waiting tickets already past the target

    @property
    def in_breach(self) -> bool:
        """The queue's oldest waiting ticket has waited longer than its target."""
        return over_target(self.oldest_wait_seconds, self.target_seconds)

    @property
    def ratio(self) -> float | None:
        return ratio_to_target(self.oldest_wait_seconds, self.target_seconds)

    @property
    def share(self) -> float | None:
        return within_standard_share(self.called_within, self.called, self.waiting_over_target)


def worst_queue(queues: Iterable[QueueFigures]) -> QueueFigures | None:
    """The queue furthest past its own standard: the largest oldest wait / target among
    queues where a ticket waits (the first such queue on a tie). None when none waits.

    Not the absolute oldest ticket: 15 minutes is green against a 20-minute standard and
    red against a 10-minute one."""
    worst: QueueFigures | None = None
    worst_ratio = 0.0
    for q in queues:
        r = q.ratio
        if r is None:
            continue
        if worst is None or r > worst_ratio:
            worst, worst_ratio = q, r
    return worst


@dataclass(frozen=True, slots=True)
class Headline:
    """The site's headline figures against the standard, from its queues' figures."""

    waiting: int
    called: int
    called_within: int
    waiting_over_target: int
    share: float | None  # within_standard_share over the whole site
    queues_in_breach: int
    queues_waiting: int  # queues where at least one ticket waits
    worst: QueueFigures | None


def headline(queues: Iterable[QueueFigures]) -> Headline:
    """Site totals (sums over the queues, then one share of the sums: a share of shares
    would weigh a quiet service like a busy one), queues in breach and the worst queue."""
    qs = list(queues)
    called = sum(q.called for q in qs)
    called_within = sum(q.called_within for q in qs)
    over = sum(q.waiting_over_target for q in qs)
    return Headline(
        waiting=sum(q.waiting for q in qs),
        called=called,
        called_within=called_within,
        waiting_over_target=over,
        share=within_standard_share(called_within, called, over),
        queues_in_breach=sum(1 for q in qs if q.in_breach),
        queues_waiting=sum(1 for q in qs if q.waiting),
        worst=worst_queue(qs),
    )
