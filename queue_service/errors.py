"""Antrian's one exception root. Every error Antrian raises on purpose is an `AntrianError`
and carries a stable `code` (what clients, logs and tests match on), the HTTP `status` the
API answers it with, a human `message` and JSON-ready `details`.

    AntrianError                          code                  status  where
    ├── DomainError                       domain_error          400     domain/errors.py
    │   ├── Invalid                       invalid_command       400
    │   │   └── InvalidPhone              invalid_phone         400     domain/notices.py
    │   ├── NotFound                      not_found             404
    │   │   └── UnknownSite, UnknownService, UnknownCounter, UnknownTicket,
    │   │       BookingNotFound
    │   └── Conflict                      conflict              409
    │       └── InvalidTransition, TicketTaken, QueueEmpty, CounterBusy,
    │           CounterNotOpen, NotServedHere, NoShowTooEarly,
    │           NotIssuing (SiteClosed, CutoffPassed, QuotaReached),
    │           NotBookable, RemoteJoinOff, SlotFull, BookingClosed, BookingLimit,
    │           CheckInRefused (TooEarly, TooLate, BookingCancelled, AlreadyCheckedIn),
    │           IdempotencyKeyReused (idempotency_key_reused, engine/answers.py)
    ├── InvalidAnswers (ValueError)       invalid_answers       400     domain/ikm.py
    ├── ReplayError                       replay_failed         500     domain/state.py
    ├── ApiError                          bad_request           400     web/errors.py
    │   └── Malformed 400, Unauthorized 401, Forbidden 403, TooLarge 413,
    │       SurveyConflict 409, InvalidSurvey 400
    ├── StartupFailed                     (its /readyz reason)          web/app.py
    ├── StoreUnavailable                  database_unavailable  503     store/protocol.py
    ├── WriterLockHeld                    writer_lock_held              store/event_store.py
    ├── EmbeddedPostgresError (OSError)   embedded_postgres             store/db.py
    ├── AnswerFailed                      answer_failed         500     engine/answers.py
    │                                                           (carried out, no answer made)
    ├── ReportRangeError (ValueError)     invalid_range         400     reports/build.py
    ├── ConfigError                       invalid_config                config.py
    ├── SettingsError (ValueError)        invalid_settings              settings.py
    ├── FrameError (ValueError)           invalid_frame                 devices/framing.py
    ├── LinkError                         device_link                   devices/link.py
    ├── KeypadBusy (ValueError)           keypad_busy                   devices/sim/hardware.py
    └── ServiceUnavailable                service_unreachable           simulate/http.py

An empty status means the error never reaches an HTTP answer (start-up, devices, the
command line). The HTTP error middleware needs one branch for the whole tree: `status`, `code`,
`message`, `details`. Exceptions that are not Antrian's (a bug, a library's failure) are not
wrapped: they travel as what they are and are answered 500 `internal_error`.
"""

from __future__ import annotations

from typing import Any


class AntrianError(Exception):
    """An error Antrian raises on purpose, with a stable code for clients.

    A subclass names its code and status as class keywords, so that a leaf of the tree is
    one line: `class UnknownSite(NotFound, code="unknown_site"): ...`; what it does not name
    it inherits.
    """

    code: str = "error"
    status: int = 500

    def __init_subclass__(cls, *, code: str | None = None, status: int | None = None) -> None:
        super().__init_subclass__()
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status

    def __init__(self, message: str = "", *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details
        if code is not None:
            self.code = code
