"""The live stream: committed events fanned out per site to server-sent-event clients.

Each event goes out with its global `seq` as the SSE id. Notices (device health) are
not events: they go out without an id, only to clients connected at the time, and a
client that missed one reads the current state in the snapshot. A reconnecting client sends
Last-Event-ID and gets every later event of its site from a bounded buffer; if the buffer
no longer reaches back that far (or the service restarted since), it gets a `reset` and
re-reads the snapshot, so a client never silently misses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from queue_service.domain.events import Event

log = logging.getLogger(__name__)

_CLOSE = object()


@dataclass(frozen=True, slots=True)
class Notice:
    """A message that is not a stored event (e.g. `device_status`): no seq, not buffered."""

    site: str
    payload: dict[str, Any]

    def encode(self) -> bytes:
        return format_sse(None, self.payload)


class Subscriber:
    def __init__(self, site: str, max_queued: int) -> None:
        self.site = site
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_queued)
        self.overflowed = False

    def push(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A client too slow to keep up is dropped; it reconnects and resumes or resets.
            self.overflowed = True


class StreamHub:
    def __init__(self, *, buffer_size: int = 4096, max_queued: int = 4096) -> None:
        self.buffer_size = buffer_size
        self.max_queued = max_queued
        self._buffers: dict[str, deque[Event]] = {}
        self._floor: dict[str, int] = {}  # events at or below this seq are not buffered
        self._subscribers: dict[str, set[Subscriber]] = {}

    def seed(self, site: str, last_seq: int) -> None:
        """Start a site's buffer after `last_seq` (events before it came from replay)."""
        self._floor[site] = last_seq
        self._buffers[site] = deque(maxlen=self.buffer_size)

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def clients_by_site(self) -> dict[str, int]:
        return {site: len(subs) for site, subs in self._subscribers.items()}

    def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            buf = self._buffers.get(event.site)
            if buf is None:
                self.seed(event.site, event.seq - 1)
                buf = self._buffers[event.site]
            if len(buf) == buf.maxlen:
                self._floor[event.site] = buf[0].seq
            buf.append(event)
            for sub in self._subscribers.get(event.site, ()):
                sub.push(event)

    def notify(self, site: str, payload: dict[str, Any]) -> None:
        """Push a notice to the site's current subscribers."""
        notice = Notice(site, payload)
        for sub in self._subscribers.get(site, ()):
            sub.push(notice)

    def subscribe(self, site: str) -> Subscriber:
        sub = Subscriber(site, self.max_queued)
        self._subscribers.setdefault(site, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subscribers.get(sub.site)
        if subs is not None:
            subs.discard(sub)

    def backlog(self, site: str, after_seq: int) -> list[Event] | None:
        """Buffered events of `site` after `after_seq`, or None if some may be missing."""
        if after_seq < self._floor.get(site, 0):
            return None
        return [e for e in self._buffers.get(site, ()) if e.seq > after_seq]

    def last_seq(self, site: str) -> int:
        buf = self._buffers.get(site)
        if buf:
            return buf[-1].seq
        return self._floor.get(site, 0)

    def close(self) -> None:
        for subs in self._subscribers.values():
            for sub in subs:
                sub.overflowed = True
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(_CLOSE)

    @staticmethod
    def is_close(item: Any) -> bool:
        return item is _CLOSE


def format_sse(event_id: int | None, data: dict[str, Any]) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


# What public screens (and kiosks) may see of an event: no ticket id (a capability), no
# priority kind (it would tie a called number to a pregnancy or a disability), no reasons.
PUBLIC_FIELDS = frozenset(
    {"seq", "type", "site", "ts", "number", "service", "counter", "to_service", "calls"}
)


def event_payload(event: Event, *, staff: bool) -> dict[str, Any]:
    payload = event.public()
    if not staff:
        return {k: v for k, v in payload.items() if k in PUBLIC_FIELDS}
    if event.ticket_id is not None:
        payload["ticket_id"] = event.ticket_id
    return payload


def encode_events(events: Iterable[Event], *, staff: bool) -> bytes:
    return b"".join(format_sse(e.seq, event_payload(e, staff=staff)) for e in events)
