"""The actions an officer takes at a counter, declared once: the HTTP API
(`POST /api/v1/sites/{site}/counters/{counter}/{action}`), the serial keypads and the
simulator all read this table, and the OpenAPI document lists its fields.

Each action names its command (in `domain/commands.py`) and the body fields it takes. A
field maps a JSON body key to a keyword of the command; `default` is used when the body
leaves it out (a field with no default is required).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from queue_service.domain import commands, errors
from queue_service.domain.events import Event
from queue_service.domain.state import SiteState
from queue_service.domain.vocab import MAX_REASON, MAX_TICKET_ID, MAX_WORD, FinishOutcome

# What a counter action is once its body is read: the command with its arguments bound,
# waiting for the state and the clock.
CounterCommand = Callable[[SiteState, datetime], list[Event]]


class CounterAction(StrEnum):
    OPEN = "open"
    PAUSE = "pause"
    CLOSE = "close"
    CALL_NEXT = "call-next"
    CALL = "call"
    RECALL = "recall"
    START = "start"
    FINISH = "finish"
    NO_SHOW = "no-show"
    TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class Field:
    """One body field of an action: a non-empty string of at most `max_length` characters."""

    name: str  # the JSON key
    keyword: str  # the command's keyword argument
    max_length: int
    default: str | None = None  # None: required
    choices: tuple[str, ...] = ()  # empty: any string
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    action: CounterAction
    command: Callable[..., list[Event]]
    fields: tuple[Field, ...] = ()
    summary: str = ""
    holds_ticket: bool = False  # acts on the ticket the counter holds (or takes one)


ACTIONS: Mapping[CounterAction, ActionSpec] = {
    spec.action: spec
    for spec in (
        ActionSpec(CounterAction.OPEN, commands.open_counter, summary="Open the counter."),
        ActionSpec(
            CounterAction.PAUSE,
            commands.pause_counter,
            (
                Field(
                    "reason",
                    "reason",
                    MAX_REASON,
                    description="Why the counter pauses, e.g. `Istirahat` or `Gangguan sistem`.",
                ),
            ),
            summary="Pause the counter (a break, a meeting).",
        ),
        ActionSpec(CounterAction.CLOSE, commands.close_counter, summary="Close the counter."),
        ActionSpec(
            CounterAction.CALL_NEXT,
            commands.call_next,
            summary="Call the next ticket in the call order of the counter's services.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.CALL,
            commands.call_ticket,
            (
                Field(
                    "ticket_id",
                    "ticket_id",
                    MAX_TICKET_ID,
                    description="Id of a waiting ticket (from the snapshot), not its number.",
                ),
            ),
            summary="Call one waiting ticket out of order.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.RECALL,
            commands.recall,
            summary="Call the held ticket again.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.START,
            commands.start,
            summary="The citizen arrived: service starts.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.FINISH,
            commands.finish,
            (
                Field(
                    "outcome",
                    "outcome",
                    MAX_WORD,
                    default=FinishOutcome.SERVED,
                    choices=tuple(FinishOutcome),
                    description="served (*selesai dilayani*), incomplete (documents incomplete, "
                    "*berkas tidak lengkap*), referred (sent elsewhere, *dirujuk*). Absent or "
                    "null: served.",
                ),
            ),
            summary="Finish the held ticket's visit.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.NO_SHOW,
            commands.no_show,
            summary="The called citizen did not come.",
            holds_ticket=True,
        ),
        ActionSpec(
            CounterAction.TRANSFER,
            commands.transfer,
            (
                Field(
                    "service",
                    "to_service",
                    MAX_WORD,
                    description="Code of the service the ticket moves to; it keeps its place "
                    "by original issue time.",
                ),
            ),
            summary="Send the held ticket to another service's queue.",
            holds_ticket=True,
        ),
    )
}


def counter_command(action: str, counter_id: str, body: Mapping[str, Any]) -> CounterCommand:
    """The command for `action` at `counter_id` with its fields read from `body` (already
    type-checked by the caller's parser: strings where present). Raises `NotFound` for an
    action not in the table and `Invalid` for a required field that is missing or empty."""
    try:
        spec = ACTIONS[CounterAction(action)]
    except ValueError:
        raise errors.NotFound(
            f"unknown counter action {action!r}",
            action=action,
            actions=sorted(ACTIONS),
        ) from None
    kwargs: dict[str, Any] = {"counter_id": counter_id}
    for f in spec.fields:
        value = body.get(f.name)
        if value is None or value == "":
            if f.default is None:
                raise errors.Invalid(f"{f.name} is required", field=f.name)
            value = f.default
        kwargs[f.keyword] = value
    command = spec.command

    def bound(state: SiteState, now: datetime) -> list[Event]:
        return command(state, now, **kwargs)

    return bound
