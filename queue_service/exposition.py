"""The /metrics exposition: a renderer built for 10^5 series that never stalls the loop.

Why not prometheus-client's collector path for the big families: at 300 sites x 20
services x 20 counters its render takes seconds and blocks the event loop (see
bench/README.md). Here, counter and histogram families are rendered per site from the
plain totals kept by the live state and cached until that site's totals change; gauges
are rendered from live state each scrape; and the loop is yielded to every few
milliseconds. prometheus-client still provides the small families it is good at (process,
platform, commit latency histogram), appended at the end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as time_of_day
from functools import partial
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from queue_service.domain.bookings import slot_start
from queue_service.domain.state import SiteState
from queue_service.domain.totals import Histogram as TotalsHistogram
from queue_service.domain.totals import SiteTotals
from queue_service.domain.vocab import BookingStatus, CounterStatus, Source
from queue_service.engine import Engine
from queue_service.stream import StreamHub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
YIELD_EVERY_SECONDS = 0.005
# qms_bookings_due_next_hour looks this far ahead.
DUE_AHEAD = timedelta(hours=1)
# The sources of the tickets antrian online brings into a queue (qms_queue_waiting_online_tickets).
ONLINE_SOURCES = (Source.BOOKING, Source.ONLINE)


class MetricSource(Protocol):
    """Another part of the service that exports families (the device links do)."""

    def render_metrics(self, now: float) -> str: ...


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _le(bound: float) -> str:
    return repr(float(bound))


def header(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


# (name, help, attribute of SiteTotals) of the per-(site, service) counters.
_SERVICE_COUNTERS = (
    ("qms_tickets_issued_total", "Tickets issued.", "issued"),
    ("qms_tickets_called_total", "Visits called for the first time.", "called"),
    (
        "qms_tickets_called_within_target_total",
        "Visits first called within the service's target wait.",
        "called_within",
    ),
    ("qms_tickets_recalled_total", "Recalls of called tickets.", "recalled"),
)
_ESTIMATE_COUNTERS = (
    (
        "qms_wait_prediction_under_seconds_total",
        "Seconds citizens waited beyond the estimate given at issue (sum over first calls).",
        "estimate_under",
    ),
    (
        "qms_wait_prediction_over_seconds_total",
        "Seconds the estimate given at issue exceeded the actual wait (sum over first calls).",
        "estimate_over",
    ),
)
_HISTOGRAMS = (
    ("qms_ticket_wait_seconds", "Wait: first call minus start of the visit.", "wait"),
    ("qms_ticket_walk_seconds", "Walk: service start minus last call.", "walk"),
    ("qms_ticket_service_seconds", "Service: end minus start (or last call).", "service"),
    (
        "qms_wait_prediction_abs_error_seconds",
        "|actual wait - the estimate given at issue|, observed at a ticket's first call.",
        "estimate_error",
    ),
)
_COUNTER_COUNTERS = (
    ("qms_loket_served_total", "Visits finished or transferred at the counter.", "counter_served"),
    (
        "qms_loket_busy_seconds_total",
        "Service seconds summed over the counter's visits.",
        "counter_busy",
    ),
)


@dataclass(frozen=True, slots=True)
class TodayBookings:
    """A site's bookings of its current service day, as the gauges read them."""

    by_state: Counter[tuple[str, BookingStatus]]  # (service, state) -> bookings
    pending: list[tuple[str, datetime]]  # (service, slot start) of those not checked in


class Exposition:
    def __init__(
        self, engine: Engine, hub: StreamHub, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.hub = hub
        self.wall_clock = wall_clock
        self.sources: list[MetricSource] = []  # device links register here
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        # No `_created` sample: prometheus-client would add
        # qms_commit_batch_duration_seconds_created (in the 0.0.4 text format a gauge family
        # of its own, the process's start time, which nothing reads). No family of the
        # service has one (docs/metrics.md). The switch is process-wide; this histogram is
        # the service's only prometheus-client metric.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.commit_seconds = Histogram(
            "qms_commit_batch_duration_seconds",
            "Time to commit one batch of events.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        engine.commit_observers.append(lambda seconds, _n: self.commit_seconds.observe(seconds))
        self.last_render_seconds = 0.0
        # (family, site) -> (version, rendered bytes); see _chunk.
        self._cache: dict[tuple[str, str], tuple[object, bytes]] = {}
        # site -> ((day, seq), family -> bytes) of the gauges that change only with events.
        self._gauge_cache: dict[str, tuple[object, dict[str, bytes]]] = {}
        self._svc_labels: dict[str, dict[str, str]] = {}
        self._ctr_labels: dict[str, dict[str, str]] = {}
        # The services of each site that take bookings (antrian online's gauges).
        self._booking_services: dict[str, tuple[str, ...]] = {}
        for site_id, site in engine.config.sites.items():
            self._svc_labels[site_id] = {
                code: f'site="{escape(site_id)}",service="{escape(code)}"' for code in site.services
            }
            self._booking_services[site_id] = tuple(
                code for code, svc in site.services.items() if svc.booking is not None
            )
            self._ctr_labels[site_id] = {
                cid: f'site="{escape(site_id)}",counter="{escape(cid)}"' for cid in site.counters
            }
        # site -> ((day, book version), its bookings of that day): see _today_bookings.
        self._bookings_cache: dict[str, tuple[object, TodayBookings]] = {}
        self._les: dict[tuple[float, ...], list[str]] = {}
        self._idle_shown: dict[tuple[str, str], float] = {}
        self._last_yield = 0.0

    async def _maybe_yield(self) -> None:
        now = time.perf_counter()
        if now - self._last_yield > YIELD_EVERY_SECONDS:
            await asyncio.sleep(0)
            self._last_yield = time.perf_counter()

    def _chunk(
        self, family: str, site_id: str, version: object, build: Callable[[], Iterable[str]]
    ) -> bytes:
        """A site's lines of a family, rebuilt only when the site's `version` changed."""
        hit = self._cache.get((family, site_id))
        if hit is not None and hit[0] == version:
            return hit[1]
        data = "".join(build()).encode()
        self._cache[(family, site_id)] = (version, data)
        return data

    async def _family(
        self, out: list[bytes], name: str, kind: str, help_text: str, chunks: Iterable[bytes]
    ) -> None:
        out.append(header(name, kind, help_text).encode())
        for chunk in chunks:
            out.append(chunk)
            await self._maybe_yield()

    # -- line builders -------------------------------------------------------------------

    def _values(
        self,
        name: str,
        attr: str,
        labels_of: dict[str, dict[str, str]],
        site_id: str,
        totals: SiteTotals,
    ) -> Iterator[str]:
        """One line per service (or counter) of the totals' `attr`, labelled by `labels_of`."""
        labels = labels_of[site_id]
        values: dict[str, int] | dict[str, float] = getattr(totals, attr)
        return (f"{name}{{{labels[k]}}} {fmt(v)}\n" for k, v in values.items())

    def _histogram_attr(
        self, name: str, attr: str, site_id: str, totals: SiteTotals
    ) -> Iterator[str]:
        return self._histogram(name, site_id, getattr(totals, attr))

    def _closed(self, site_id: str, totals: SiteTotals) -> Iterator[str]:
        labels = self._svc_labels[site_id]
        return (
            f'qms_tickets_closed_total{{{labels[s]},outcome="{o}"}} {v}\n'
            for (s, o), v in totals.closed.items()
        )

    def _histogram(
        self, name: str, site_id: str, hists: dict[str, TotalsHistogram]
    ) -> Iterator[str]:
        labels = self._svc_labels[site_id]
        for service, h in hists.items():
            lbl = labels[service]
            # One prefix per series and the le strings formatted once per bucket layout:
            # the first render after start formats hundreds of thousands of these lines.
            prefix = f"{name}_bucket{{{lbl},le="
            les = self._le_strings(h.bounds)
            running = 0
            parts = []
            for le, count in zip(les, h.counts, strict=False):
                running += count
                parts.append(f"{prefix}{le}}} {running}\n")
            yield "".join(parts)
            yield f"{name}_sum{{{lbl}}} {fmt(h.sum)}\n{name}_count{{{lbl}}} {h.count}\n"

    def _le_strings(self, bounds: tuple[float, ...]) -> list[str]:
        """The quoted `le` values of a bucket layout, +Inf last (cached per layout)."""
        cached = self._les.get(bounds)
        if cached is None:
            cached = [f'"{_le(b)}"' for b in bounds] + ['"+Inf"']
            self._les[bounds] = cached
        return cached

    # -- families from the cumulative totals (change only with events) -----------------

    async def _totals_families(self, states: dict[str, SiteState], out: list[bytes]) -> None:
        totals = {site_id: st.totals for site_id, st in states.items() if st.totals is not None}

        def per_site(
            family: str, lines: Callable[[str, SiteTotals], Iterable[str]]
        ) -> Iterator[bytes]:
            for site_id, t in totals.items():
                yield self._chunk(family, site_id, t.version, partial(lines, site_id, t))

        # (family, type, help, the lines of one site): in the order they are exposed.
        families: list[tuple[str, str, str, Callable[[str, SiteTotals], Iterable[str]]]] = [
            *(
                (name, "counter", help_text, partial(self._values, name, attr, self._svc_labels))
                for name, help_text, attr in _SERVICE_COUNTERS
            ),
            ("qms_tickets_closed_total", "counter", "Visits closed, by outcome.", self._closed),
            *(
                (name, "histogram", help_text, partial(self._histogram_attr, name, attr))
                for name, help_text, attr in _HISTOGRAMS
            ),
            *(
                (name, "counter", help_text, partial(self._values, name, attr, self._svc_labels))
                for name, help_text, attr in _ESTIMATE_COUNTERS
            ),
            *(
                (name, "counter", help_text, partial(self._values, name, attr, self._ctr_labels))
                for name, help_text, attr in _COUNTER_COUNTERS
            ),
        ]
        for name, kind, help_text, lines in families:
            await self._family(out, name, kind, help_text, per_site(name, lines))
        # Up to what is final: an event decided before this scrape and committed after it
        # could otherwise end an interval earlier than the scrape counted it.
        now = self.engine.settled_until(self.engine.clock.now())
        await self._family(
            out,
            "qms_loket_idle_while_queue_waits_seconds_total",
            "counter",
            "Seconds the counter was open and held no ticket while one of its services had"
            " tickets waiting.",
            (self._idle_seconds(site_id, states[site_id], now).encode() for site_id in totals),
        )

    def _idle_seconds(self, site_id: str, state: SiteState, now: datetime) -> str:
        """`SiteState.idle_queue_seconds` of each counter up to `now` (the engine's
        `settled_until`: no later commit can end an interval before it). Never below what
        an earlier scrape of this process showed, as a second guard (a wall clock stepped
        back)."""
        labels = self._ctr_labels[site_id]
        shown = self._idle_shown
        lines = []
        for cid in state.counters:
            key = (site_id, cid)
            value = max(state.idle_queue_seconds(cid, now), shown.get(key, 0.0))
            shown[key] = value
            lines.append(
                f"qms_loket_idle_while_queue_waits_seconds_total{{{labels[cid]}}} {fmt(value)}\n"
            )
        return "".join(lines)

    # -- gauges from live state ------------------------------------------------------------

    def _state_gauges(self, site_id: str, state: SiteState) -> dict[str, list[str]]:
        """Gauges that change only when an event is applied (cached by the site's seq)."""
        site = state.site
        svc_labels = self._svc_labels[site_id]
        ctr_labels = self._ctr_labels[site_id]
        lines: dict[str, list[str]] = {name: [] for name, _ in _STATE_GAUGES}
        open_by_service = dict.fromkeys(site.services, 0)
        for cid, c in state.counters.items():
            if c.state == CounterStatus.OPEN:
                for code in site.counters[cid].services:
                    open_by_service[code] += 1
        for code, q in state.queues.items():
            lbl = svc_labels[code]
            waiting = len(q)
            lines["qms_queue_waiting_tickets"].append(f"{{{lbl}}} {waiting}\n")
            lines["qms_queue_waiting_priority_tickets"].append(f"{{{lbl}}} {len(q.priority)}\n")
            if waiting:
                oldest = min(t.enqueued_at for t in q.waiting()).timestamp()
                lines["qms_queue_oldest_ticket_timestamp_seconds"].append(
                    f"{{{lbl}}} {fmt(oldest)}\n"
                )
            open_counters = open_by_service[code]
            lines["qms_queue_open_counters"].append(f"{{{lbl}}} {open_counters}\n")
            lines["qms_service_target_wait_seconds"].append(
                f"{{{lbl}}} {q.service.target_wait_seconds}\n"
            )
        for cid, c in state.counters.items():
            lbl = ctr_labels[cid]
            lines["qms_loket_open"].append(f"{{{lbl}}} {int(c.state == CounterStatus.OPEN)}\n")
            lines["qms_loket_paused"].append(f"{{{lbl}}} {int(c.state == CounterStatus.PAUSED)}\n")
            lines["qms_loket_serving"].append(f"{{{lbl}}} {int(c.ticket_id is not None)}\n")
            idle = c.idle_since is not None and any(
                len(state.queues[code]) for code in site.counters[cid].services
            )
            lines["qms_loket_idle_while_queue_waits"].append(f"{{{lbl}}} {int(idle)}\n")
        self._online_gauges(site_id, state, lines)
        site_lbl = f'site="{escape(site_id)}"'
        info = f'name="{escape(site.name)}",timezone="{escape(str(site.timezone))}"'
        lines["qms_site_info"].append(f"{{{site_lbl},{info}}} 1\n")
        if state.last_ts is not None:
            lines["qms_site_last_event_timestamp_seconds"].append(
                f"{{{site_lbl}}} {fmt(state.last_ts.timestamp())}\n"
            )
        return lines

    def _today_bookings(self, site_id: str, state: SiteState) -> TodayBookings:
        """The site's bookings of its current day, recounted only when a booking event
        changed its book (the book holds every day ahead: ticket events leave it alone)."""
        key = (state.day, state.bookings.version)
        hit = self._bookings_cache.get(site_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        today = TodayBookings(Counter(), [])
        starts: dict[time_of_day, datetime] = {}  # a day has a few slots and many bookings
        if state.day is not None:
            for b in state.bookings.of_day(state.day):
                today.by_state[(b.service, b.state)] += 1
                if b.state == BookingStatus.BOOKED:
                    at = starts.get(b.slot)
                    if at is None:
                        at = starts[b.slot] = slot_start(state.site, b)
                    today.pending.append((b.service, at))
        self._bookings_cache[site_id] = (key, today)
        return today

    def _online_gauges(self, site_id: str, state: SiteState, lines: dict[str, list[str]]) -> None:
        """Antrian online, per service that takes bookings: today's bookings by state (a
        gauge of the current service day, not a cumulative count: a booking changes state,
        and reports count the past), and the tickets waiting that came through it. Never a
        booking's id or code, nor a phone number, as a label."""
        codes = self._booking_services[site_id]
        if not codes:
            return
        svc_labels = self._svc_labels[site_id]
        by_state = self._today_bookings(site_id, state).by_state
        for code in codes:
            lbl = svc_labels[code]
            for status in BookingStatus:
                lines["qms_bookings"].append(
                    f'{{{lbl},state="{status}"}} {by_state[(code, status)]}\n'
                )
            waiting: Counter[Source] = Counter()
            unconfirmed = 0
            for t in state.queues[code].waiting():
                waiting[t.source] += 1
                unconfirmed += t.confirmed is False
            for source in ONLINE_SOURCES:
                lines["qms_queue_waiting_online_tickets"].append(
                    f'{{{lbl},source="{source}"}} {waiting[source]}\n'
                )
            lines["qms_queue_unconfirmed_tickets"].append(f"{{{lbl}}} {unconfirmed}\n")

    def _due_next_hour(
        self, site_id: str, state: SiteState, now_dt: datetime, lines: dict[str, list[str]]
    ) -> None:
        """Bookings of today not yet checked in whose slot starts within the next hour, or
        has started (their check-in window still open: past it, they are missed)."""
        codes = self._booking_services[site_id]
        if not codes:
            return
        until = now_dt + DUE_AHEAD
        pending = self._today_bookings(site_id, state).pending
        due = Counter(service for service, starts in pending if starts < until)
        svc_labels = self._svc_labels[site_id]
        for code in codes:
            lines["qms_bookings_due_next_hour"].append(f"{{{svc_labels[code]}}} {due[code]}\n")

    def _time_gauges(
        self, site_id: str, state: SiteState, now_dt: datetime
    ) -> dict[str, list[str]]:
        """Gauges that move with the clock: recomputed every scrape."""
        site = state.site
        is_open = site.is_open(now_dt)
        svc_labels = self._svc_labels[site_id]
        lines: dict[str, list[str]] = {name: [] for name, _ in _TIME_GAUGES}
        for code, q in state.queues.items():
            lbl = svc_labels[code]
            oldest_wait = 0.0
            over = 0
            oldest = q.oldest_enqueued_at()
            if oldest is not None:
                oldest_wait = max(0.0, (now_dt - oldest).total_seconds())
                over = q.waiting_over_target(now_dt)  # the headline's figure, one function
            lines["qms_queue_oldest_wait_seconds"].append(f"{{{lbl}}} {fmt(oldest_wait)}\n")
            lines["qms_queue_waiting_over_target_tickets"].append(f"{{{lbl}}} {over}\n")
            accepting = state.not_accepting(code, now_dt) is None
            lines["qms_service_accepting"].append(f"{{{lbl}}} {int(accepting)}\n")
            # The estimate shown on the kiosk and the board, for a ticket issued now (it
            # moves with the clock: the observed call rate decays while nobody is called).
            predicted = state.estimated_wait_seconds(
                code, state.ahead_of_new(code, None, now_dt), now_dt
            )
            if predicted is not None:
                lines["qms_queue_predicted_wait_seconds"].append(
                    f"{{{lbl}}} {fmt(round(predicted, 1))}\n"
                )
        self._due_next_hour(site_id, state, now_dt, lines)
        site_lbl = f'site="{escape(site_id)}"'
        lines["qms_site_open"].append(f"{{{site_lbl}}} {int(is_open)}\n")
        lines["qms_site_on_break"].append(
            f"{{{site_lbl}}} {int(site.current_break(now_dt) is not None)}\n"
        )
        return lines

    async def _gauge_families(self, states: dict[str, SiteState], out: list[bytes]) -> None:
        now_dt = self.engine.clock.now()
        per_site: dict[str, dict[str, bytes]] = {}
        for site_id, state in states.items():
            hit = self._gauge_cache.get(site_id)
            # Start-up loads the bookings without a seq: their book's version counts too.
            key = (state.day, state.last_seq, state.bookings.version)
            if hit is not None and hit[0] == key:
                chunks = hit[1]
            else:
                chunks = {
                    name: "".join(name + line for line in lines).encode()
                    for name, lines in self._state_gauges(site_id, state).items()
                }
                self._gauge_cache[site_id] = (key, chunks)
            per_site[site_id] = dict(chunks)
            for name, lines in self._time_gauges(site_id, state, now_dt).items():
                per_site[site_id][name] = "".join(name + line for line in lines).encode()
            await self._maybe_yield()
        for name, help_text in _GAUGES:
            await self._family(
                out, name, "gauge", help_text, (per_site[site_id][name] for site_id in states)
            )

    def _self_monitoring(self, snapshot_ts: float) -> str:
        e = self.engine
        s = e.stats
        lines = [
            header("qms_events_committed_total", "counter", "Events committed to PostgreSQL."),
            f"qms_events_committed_total {s.events_committed}\n",
            header("qms_commit_batches_total", "counter", "Group commits."),
            f"qms_commit_batches_total {s.batches_committed}\n",
            header("qms_commit_failures_total", "counter", "Group commits that failed."),
            f"qms_commit_failures_total {s.commit_failures}\n",
            header("qms_database_up", "gauge", "1 when the writer can commit."),
            # Reachable is not enough: a full disk answers `SELECT 1` and refuses INSERTs.
            f"qms_database_up {int(e.available and e.writable)}\n",
            header("qms_replay_duration_seconds", "gauge", "Start-up replay time."),
            f"qms_replay_duration_seconds {fmt(s.replay_seconds)}\n",
            header("qms_replay_events", "gauge", "Events replayed at start-up."),
            f"qms_replay_events {s.replayed_events}\n",
            header("qms_sse_clients", "gauge", "Open live-stream connections."),
        ]
        clients = self.hub.clients_by_site()
        for site_id in e.config.sites:
            lines.append(f'qms_sse_clients{{site="{escape(site_id)}"}} {clients.get(site_id, 0)}\n')
        lines += [
            header(
                "qms_snapshot_timestamp_seconds",
                "gauge",
                "Unix time of the live state this exposition was rendered from.",
            ),
            f"qms_snapshot_timestamp_seconds {fmt(snapshot_ts)}\n",
            header("qms_metrics_render_seconds", "gauge", "Time the previous render took."),
            f"qms_metrics_render_seconds {fmt(self.last_render_seconds)}\n",
        ]
        return "".join(lines)

    async def render(self) -> bytes:
        began = time.perf_counter()
        self._last_yield = began
        states = {site_id: self.engine.site_state(site_id) for site_id in self.engine.config.sites}
        snapshot_ts = self.wall_clock()
        out: list[bytes] = []
        await self._totals_families(states, out)
        await self._gauge_families(states, out)
        out.append(self._self_monitoring(snapshot_ts).encode())
        for source in self.sources:
            out.append(source.render_metrics(snapshot_ts).encode())
            await self._maybe_yield()
        out.append(generate_latest(self.registry))
        body = b"".join(out)
        self.last_render_seconds = time.perf_counter() - began
        return body


_STATE_GAUGES = (
    ("qms_queue_waiting_tickets", "Tickets waiting."),
    ("qms_queue_waiting_priority_tickets", "Priority tickets waiting."),
    (
        "qms_queue_oldest_ticket_timestamp_seconds",
        "Unix time the oldest waiting ticket started waiting.",
    ),
    ("qms_queue_open_counters", "Open counters serving the service."),
    ("qms_service_target_wait_seconds", "The service standard's target wait."),
    ("qms_loket_open", "1 when the counter is open."),
    ("qms_loket_paused", "1 when the counter is paused."),
    ("qms_loket_serving", "1 while the counter holds a ticket."),
    (
        "qms_loket_idle_while_queue_waits",
        "1 when open and idle while one of its services has tickets waiting.",
    ),
    ("qms_bookings", "Bookings of today's service day by state (booked: not yet checked in)."),
    (
        "qms_queue_waiting_online_tickets",
        "Tickets waiting that came through antrian online: checked-in bookings (source"
        " booking) and remote joins (source online).",
    ),
    (
        "qms_queue_unconfirmed_tickets",
        "Remote joins waiting that are not yet confirmed at the kiosk.",
    ),
    ("qms_site_info", "Site names; always 1."),
    ("qms_site_last_event_timestamp_seconds", "Unix time of the last event of the day."),
)
_TIME_GAUGES = (
    ("qms_queue_oldest_wait_seconds", "How long the oldest waiting ticket has waited."),
    (
        "qms_queue_waiting_over_target_tickets",
        "Waiting tickets that have already waited longer than the target.",
    ),
    (
        "qms_queue_predicted_wait_seconds",
        "Estimated wait for a ticket issued now (the estimate citizens are shown).",
    ),
    ("qms_service_accepting", "1 when tickets can be issued now."),
    (
        "qms_bookings_due_next_hour",
        "Bookings of today not yet checked in whose slot starts within the next hour"
        " (or has started, its check-in window still open).",
    ),
    ("qms_site_open", "1 within opening hours."),
    ("qms_site_on_break", "1 during a configured break."),
)
_GAUGES = _STATE_GAUGES + _TIME_GAUGES
