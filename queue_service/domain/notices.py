"""Notices to citizens (issue 17): what the service tells a phone, and the phone it tells.

A citizen who books or joins a queue from a phone may leave a mobile number. The number is
a `Contact` of the subject (the booking or the remote-join ticket) for as long as the visit
lasts, and is `Erase`d in the transaction of the event that ends it. Events that a citizen
should hear about (booked, near, called, ...) become `Notice`s; the store turns a notice
into an outbox row only where its subject has a contact, copying the number into the row,
and the webhook worker hands the row to the deployment's SMS or WhatsApp gateway
(docs/webhooks.md).

Pure: dataclasses and one validating function, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from queue_service.domain.errors import Invalid
from queue_service.domain.vocab import NoticeKind


@dataclass(frozen=True, slots=True)
class Contact:
    """The phone number (normalised, `+628...`) to notify about `subject` at `site`."""

    site: str
    subject: str  # a booking id, or a remote-join ticket id
    # Never in the repr: a contact in a log line, a traceback or a test failure keeps its
    # number to itself.
    phone: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell the citizen behind `subject`. `key` is unique across the service
    and stable (a replayed or retried command makes the same key): the store keeps the
    first notice of a key, and the receiver gets it as the Idempotency-Key."""

    site: str
    subject: str
    kind: NoticeKind
    key: str
    ts: datetime  # when it happened (the event's time)
    data: Mapping[str, Any]  # JSON-ready details: the code, slot, ticket number, counter


@dataclass(frozen=True, slots=True)
class Erase:
    """The visit behind `subject` ended: forget its phone number."""

    site: str
    subject: str


class InvalidPhone(Invalid, code="invalid_phone"):
    """The phone number is not an Indonesian mobile number. The message never repeats it."""


# Separators people type inside a number: spaces, dashes, dots, brackets.
_SEPARATORS = re.compile(r"[\s\-.()]")
# In international form: 62, then 8 (a mobile number), 10 to 15 digits in all.
_MOBILE = re.compile(r"628\d{7,12}")


def normalise_phone(raw: str) -> str:
    """An Indonesian mobile number in one form, `+628...`, from what a citizen typed:
    `0812-3456-7890`, `+62 812 3456 7890`, `+62 (0)812...` or `6281234567890`. Raises
    InvalidPhone for anything else (a landline, a foreign number, letters, too few or too
    many digits)."""
    text = _SEPARATORS.sub("", raw)
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("0"):
        digits = "62" + text[1:]
    else:
        digits = text
    if digits.startswith("620"):  # "+62 (0)812...", the trunk 0 kept after the country code
        digits = "62" + digits[3:]
    if not digits.isascii() or not _MOBILE.fullmatch(digits):
        raise InvalidPhone(
            "give an Indonesian mobile number: 08..., +628... or 628... (10 to 15 digits)"
        )
    return "+" + digits
