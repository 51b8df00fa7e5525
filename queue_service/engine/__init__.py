"""The engine, in parts: `core` runs commands against live state and commits their events
(the writer, the service days); `answers` keeps the idempotent answers; the collector
policy it holds is `queue_service.heap`'s; it runs on any `queue_service.store.protocol.Store`.

The names below are the engine's interface to the rest of the service.
"""

from queue_service.engine.answers import (
    ANSWER_FAILED_STATUS,
    ANSWER_MEMORY,
    IDEMPOTENCY_WINDOW,
    AnswerFailed,
    IdempotencyKeyReused,
)
from queue_service.engine.core import Engine, EngineStats

__all__ = [
    "ANSWER_FAILED_STATUS",
    "ANSWER_MEMORY",
    "IDEMPOTENCY_WINDOW",
    "AnswerFailed",
    "Engine",
    "EngineStats",
    "IdempotencyKeyReused",
]
