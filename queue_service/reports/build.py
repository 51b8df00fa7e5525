"""Build one site's report (a plain dict, the JSON form) from the store's figures and the
site's configuration. The renderers (CSV, HTML) read only this dict."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from queue_service.domain import ikm, standard
from queue_service.domain.site import Site
from queue_service.domain.vocab import BookingStatus, NoticeKind, NoticeState
from queue_service.errors import AntrianError
from queue_service.store import reports as store
from queue_service.store.reports import Progress, SiteDims

# A report covers at most this many days (a year and a bit; the rollups make that fast).
MAX_DAYS = 400
# 2: the outcome `expired`, and the share within target counts the visits never called
# that waited past their target (`within_target.waiting_past_target`).
# 3: `online`, the bookings of the range and the waits of booked citizens against walk-ins',
# and the reminders delivered and given up.
REPORT_VERSION = 3

# GROUPING(agency, service, counter_id) of the figure rows: 1 = not grouped by it.
_G_SITE, _G_AGENCY, _G_SERVICE, _G_COUNTER = 7, 3, 1, 6
# GROUPING(agency, service) of the IKM rows.
_I_SITE, _I_AGENCY, _I_SERVICE = 3, 1, 0
# GROUPING(service) of the antrian online rows (bookings, waits by entry).
_O_SITE, _O_SERVICE = 1, 0
# How a visit entered its queue, in the `online.*.waits` of a report: with a booking
# checked in on time (source `booking`), or any other way (walk-ins, remote joins, and
# bookings checked in late, issued as walk-ins).
BOOKED, WALK_IN = "booked", "walk_in"


class ReportRangeError(AntrianError, ValueError, code="invalid_range", status=400):
    """A date range that is empty, reversed or too long."""


def check_range(first: date, last: date) -> None:
    if last < first:
        raise ReportRangeError("'to' is before 'from'")
    if (last - first).days + 1 > MAX_DAYS:
        raise ReportRangeError(f"a report covers at most {MAX_DAYS} days")


def site_dims(site: Site) -> SiteDims:
    return SiteDims(
        timezone=str(site.timezone),
        services=tuple(
            (s.code, s.agency, float(s.target_wait_seconds)) for s in site.services.values()
        ),
        counters=tuple((c.id, tuple(c.services)) for c in site.counters.values()),
    )


def _num(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct_at(values: Any, i: int) -> float | None:
    """One of the percentiles asked of PostgreSQL as an array (one sort for both)."""
    return None if not values else _num(values[i])


def _share(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 4)


def _within_target_share(within: int, called: int, waiting_past_target: int) -> float | None:
    """The share within target, as the board's headline defines it (domain/standard.py):
    called within target / (called + never called but waited past the target), rounded
    to 4 decimals for publication; None when nothing can be judged yet."""
    share = standard.within_standard_share(within, called, waiting_past_target)
    return None if share is None else round(share, 4)


def _figures(row: dict[str, Any] | None) -> dict[str, Any]:
    r = row or {}

    def n(key: str) -> int:
        return int(r.get(key) or 0)

    waits = n("waits")
    return {
        "visits": n("visits"),
        "issued": n("issued"),
        **{outcome: n(outcome) for outcome in store.REPORT_OUTCOMES},
        "open": n("open"),
        "wait": {
            "count": waits,
            "p50": _pct_at(r.get("wait_p"), 0),
            "p90": _pct_at(r.get("wait_p"), 1),
            "max": _num(r.get("wait_max")),
            "mean": _num(r.get("wait_mean")),
        },
        # share = count / (wait.count + waiting_past_target): the visits called, and those
        # never called that waited past their target (expired, or still waiting now).
        "within_target": {
            "count": n("within_target"),
            "waiting_past_target": n("waiting_past_target"),
            "share": _within_target_share(n("within_target"), waits, n("waiting_past_target")),
        },
        "walk": {
            "count": n("walks"),
            "p50": _pct_at(r.get("walk_p"), 0),
            "p90": _pct_at(r.get("walk_p"), 1),
            "mean": _num(r.get("walk_mean")),
        },
        "service": {
            "count": n("services"),
            "p50": _pct_at(r.get("service_p"), 0),
            "p90": _pct_at(r.get("service_p"), 1),
            "mean": _num(r.get("service_mean")),
        },
        # The wait each ticket was told at issue against its actual wait (first visits
        # that were called): mean absolute error, and bias (positive: waited longer).
        "estimate": {
            "count": n("estimates"),
            "mae": _num(r.get("estimate_mae")),
            "bias": _num(r.get("estimate_bias")),
        },
    }


def _bookings(row: dict[str, Any] | None) -> dict[str, Any]:
    """Bookings by state now; the show rate is checked in / (checked in + missed): of the
    bookings whose fate is known, not cancelled, the share that came."""
    r = row or {}

    def n(key: str) -> int:
        return int(r.get(key) or 0)

    checked_in, missed = n(BookingStatus.CHECKED_IN), n(BookingStatus.MISSED)
    return {
        "made": n("made"),
        **{state.value: n(state) for state in BookingStatus},
        "late": n("late"),
        "moved": n("moved"),
        "show_rate": _share(checked_in, checked_in + missed),
        # Check-in minus slot start, seconds (negative: early), of the checked-in bookings.
        "punctuality": {
            "count": n("punctual_count"),
            "p50": _pct_at(r.get("punctuality_p"), 0),
            "p90": _pct_at(r.get("punctuality_p"), 1),
        },
    }


def _entry_waits(row: dict[str, Any] | None) -> dict[str, Any]:
    """The waits of one way of entering the queue (booked or walk-in)."""
    r = row or {}

    def n(key: str) -> int:
        return int(r.get(key) or 0)

    waits = n("waits")
    return {
        "visits": n("visits"),
        "wait": {
            "count": waits,
            "p50": _pct_at(r.get("wait_p"), 0),
            "p90": _pct_at(r.get("wait_p"), 1),
            "mean": _num(r.get("wait_mean")),
        },
        "within_target": {
            "count": n("within_target"),
            "waiting_past_target": n("waiting_past_target"),
            "share": _within_target_share(n("within_target"), waits, n("waiting_past_target")),
        },
    }


# The final outcomes of a reminder (a notice to the webhook) that a report counts.
_REMINDER_OUTCOMES = (NoticeState.DELIVERED, NoticeState.FAILED)


def _reminders(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Reminders delivered and given up (`failed`), in all and per kind (every kind, 0
    when none), from the count rows of one site or service."""
    n = {(r["kind"], r["outcome"]): int(r["n"]) for r in rows}
    return {
        **{
            o.value: sum(v for (_, outcome), v in n.items() if outcome == o)
            for o in _REMINDER_OUTCOMES
        },
        "by_kind": {
            kind.value: {o.value: n.get((kind.value, o.value), 0) for o in _REMINDER_OUTCOMES}
            for kind in NoticeKind
        },
    }


def online_section(
    site: Site,
    booking_rows: list[dict[str, Any]],
    wait_rows: list[dict[str, Any]],
    reminder_rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """Antrian online in a report: the bookings whose slot is in the range, by state, the
    waits of booked citizens against walk-ins', and the reminders delivered and given up,
    per service and for the site. A service is listed when it takes bookings or the range
    holds bookings, booked visits or reminders of it (its booking policy may have been
    removed since)."""
    site_bookings = next((r for r in booking_rows if r["g"] == _O_SITE), None)
    service_bookings = {r["service"]: r for r in booking_rows if r["g"] == _O_SERVICE}
    site_waits = {bool(r["booked"]): r for r in wait_rows if r["g"] == _O_SITE}
    service_waits: dict[str, dict[bool, dict[str, Any]]] = {}
    for r in wait_rows:
        if r["g"] == _O_SERVICE:
            service_waits.setdefault(r["service"], {})[bool(r["booked"])] = r
    site_reminders = [r for r in reminder_rows if r["g"] == _O_SITE]
    service_reminders: dict[str, list[dict[str, Any]]] = {}
    for r in reminder_rows:
        if r["g"] == _O_SERVICE:
            service_reminders.setdefault(r["service"], []).append(r)
    booked_services = {code for code, rows in service_waits.items() if True in rows}
    seen = set(service_bookings) | booked_services | set(service_reminders)
    codes = [code for code, svc in site.services.items() if svc.booking is not None or code in seen]
    codes += sorted(seen - set(site.services))

    def waits(rows: dict[bool, dict[str, Any]]) -> dict[str, Any]:
        return {BOOKED: _entry_waits(rows.get(True)), WALK_IN: _entry_waits(rows.get(False))}

    services = []
    for code in codes:
        svc = site.services.get(code)
        services.append(
            {
                "code": code,
                "name": {"id": svc.name_id, "en": svc.name_en} if svc else {"id": code, "en": code},
                "takes_bookings": svc is not None and svc.booking is not None,
                "target_wait_seconds": svc.target_wait_seconds if svc else None,
                "bookings": _bookings(service_bookings.get(code)),
                "waits": waits(service_waits.get(code, {})),
                "reminders": _reminders(service_reminders.get(code, [])),
            }
        )
    return {
        "totals": {
            "bookings": _bookings(site_bookings),
            "waits": waits(site_waits),
            "reminders": _reminders(site_reminders),
        },
        "services": services,
    }


def _ikm_part(row: dict[str, Any] | None) -> dict[str, Any]:
    r = row or {}
    respondents = int(r.get("respondents") or 0)
    sums = [float(r.get(f"u{i}") or 0) for i in range(1, ikm.ELEMENTS + 1)]
    result = ikm.from_sums(sums, respondents)
    quick_n = int(r.get("quick_respondents") or 0)
    out: dict[str, Any] = (
        result.as_dict()
        if result is not None
        else {
            "respondents": 0,
            "element_means": None,
            "perception": None,
            "ikm": None,
            "grade": None,
            "grade_name": None,
        }
    )
    out["quick"] = {
        "respondents": quick_n,
        "index": ikm.quick_index(float(r.get("rating_sum") or 0), quick_n),
    }
    return out


async def build_report(
    pool: asyncpg.Pool,
    site: Site,
    first: date,
    last: date,
    now: datetime,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report of `site` for service days `first`..`last` (site timezone)."""
    check_range(first, last)
    today = site.service_day(now)
    dims = site_dims(site)
    await store.ensure_rollup(pool, site.id, first, last, today, now, dims, progress)
    raw = await store.site_report(pool, site.id, first, last, today, now, dims)

    by_g: dict[int, list[dict[str, Any]]] = {}
    for row in raw.figures:
        by_g.setdefault(int(row["g"]), []).append(row)
    site_row = next(iter(by_g.get(_G_SITE, [])), None)
    agency_rows = {r["agency"]: r for r in by_g.get(_G_AGENCY, [])}
    service_rows = {r["service"]: r for r in by_g.get(_G_SERVICE, [])}
    counter_rows = {r["counter_id"]: r for r in by_g.get(_G_COUNTER, []) if r["counter_id"]}
    times = {r["counter_id"]: r for r in raw.counters}

    agencies = [
        {"id": a.id, "name": a.name, **_figures(agency_rows.get(a.id))}
        for a in site.agencies.values()
    ]
    services = [
        {
            "code": s.code,
            "agency": s.agency,
            "name": {"id": s.name_id, "en": s.name_en},
            "target_wait_seconds": s.target_wait_seconds,
            **_figures(service_rows.get(s.code)),
        }
        for s in site.services.values()
    ]
    # Services no longer configured still count in the totals; list them too.
    for code, row in service_rows.items():
        if code not in site.services:
            services.append(
                {
                    "code": code,
                    "agency": None,
                    "name": {"id": code, "en": code},
                    "target_wait_seconds": None,
                    **_figures(row),
                }
            )
    counter_ids = list(site.counters) + sorted(
        (set(counter_rows) | set(times)) - set(site.counters)
    )
    counters = []
    for cid in counter_ids:
        t = times.get(cid) or {}
        opened = float(t.get("open_seconds") or 0)
        busy = float(t.get("busy_seconds") or 0)
        cfg = site.counters.get(cid)
        counters.append(
            {
                "id": cid,
                "name": cfg.name if cfg else cid,
                **_figures(counter_rows.get(cid)),
                "open_seconds": round(opened, 1),
                "busy_seconds": round(busy, 1),
                "idle_while_queue_seconds": round(float(t.get("idle_while_queue_seconds") or 0), 1),
                "utilisation": _share(int(busy), int(opened)),
                "days_open": int(t.get("days_open") or 0),
            }
        )
    hours = [
        {
            "hour": int(r["hour"]),
            "arrivals": int(r["arrivals"]),
            "waits": int(r["waits"]),
            "wait_mean": _num(r["wait_mean"]),
            "wait_p90": _num(r["wait_p90"]),
        }
        for r in raw.hours
    ]
    daily = [
        {
            "day": r["day"].isoformat(),
            "issued": int(r["issued"]),
            "served": int(r["served"]),
            "expired": int(r["expired"]),
            "waits": int(r["waits"]),
            "within_target_count": int(r["within_target"]),
            "waiting_past_target": int(r["waiting_past_target"]),
            "within_target_share": _within_target_share(
                int(r["within_target"]), int(r["waits"]), int(r["waiting_past_target"])
            ),
            "wait_p90": _num(r["wait_p90"]),
        }
        for r in raw.days
    ]
    return {
        "version": REPORT_VERSION,
        "site": {"id": site.id, "name": site.name, "timezone": str(site.timezone)},
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": (last - first).days + 1,
        "days_with_visits": len(daily),
        "generated_at": now.isoformat(),
        "partial_today": first <= today <= last,
        "totals": _figures(site_row),
        "agencies": agencies,
        "services": services,
        "counters": counters,
        "hours": hours,
        "daily": daily,
        "online": online_section(site, raw.bookings, raw.waits_by_entry, raw.reminders),
        "ikm": ikm_section(site, raw.ikm, raw.ikm_bands),
        "comments": [
            {"day": r["service_day"].isoformat(), "service": r["service"], "text": r["comment"]}
            for r in raw.comments
        ],
    }


def ikm_section(
    site: Site, rows: list[dict[str, Any]], band_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The IKM part of a report: site, agencies, services and wait bands."""
    ikm_g: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        ikm_g.setdefault(int(row["g"]), []).append(row)
    ikm_agency = {r["agency"]: r for r in ikm_g.get(_I_AGENCY, [])}
    ikm_service = {r["service"]: r for r in ikm_g.get(_I_SERVICE, [])}
    bands_by = {r["band"]: r for r in band_rows}
    bands = []
    for code, name_id, name_en in ikm.WAIT_BANDS:
        band_row = bands_by.get(code)
        bands.append(
            {
                "band": code,
                "name": {"id": name_id, "en": name_en},
                "wait_mean": _num(band_row["wait_mean"]) if band_row else None,
                **_ikm_part(band_row),
            }
        )
    return {
        "elements": [
            {"code": code, "name": {"id": n_id, "en": n_en}}
            for code, n_id, n_en in ikm.ELEMENT_NAMES
        ],
        "site": _ikm_part(next(iter(ikm_g.get(_I_SITE, [])), None)),
        "agencies": [
            {"id": a.id, "name": a.name, **_ikm_part(ikm_agency.get(a.id))}
            for a in site.agencies.values()
        ],
        "services": [
            {
                "code": s.code,
                "name": {"id": s.name_id, "en": s.name_en},
                **_ikm_part(ikm_service.get(s.code)),
            }
            for s in site.services.values()
        ],
        "by_wait_band": bands,
    }


async def build_ikm(pool: asyncpg.Pool, site: Site, first: date, last: date) -> dict[str, Any]:
    """Only the IKM of a range (no visit figures, no rollup needed)."""
    check_range(first, last)
    rows, bands = await store.site_ikm(pool, site.id, first, last, site_dims(site))
    return {
        "site": {"id": site.id, "name": site.name, "timezone": str(site.timezone)},
        "from": first.isoformat(),
        "to": last.isoformat(),
        **ikm_section(site, rows, bands),
    }


def default_range(site: Site, now: datetime, days: int = 30) -> tuple[date, date]:
    today = site.service_day(now)
    return today - timedelta(days=days - 1), today
