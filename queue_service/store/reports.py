"""Report queries: visit figures per agency, service and counter, busiest hours, counter
times, antrian online (bookings, booked waits, reminders) and the IKM sums, for one site
and a range of service days.

Closed service days are read from the rollup tables (`report_visits` and
`report_counter_days`, filled from `visits_of()` and `counter_spans_of()` the first time a
report needs the day, and again when a later event changed it); the current day is read
live. See docs/reports.md for the definitions.

The share within target counts, besides the visits called, the visits never called that
waited past their target (`_WAITING_PAST_TARGET`): the definition of
queue_service/domain/standard.py, which the board's headline follows too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from queue_service.domain.vocab import BookingStatus, Outcome, Source
from queue_service.store.db import connection

log = logging.getLogger(__name__)

# Serialises rollups of one site (two reports asking for the same new day at once).
_ROLLUP_LOCK = "antrian-report-rollup:"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SiteDims:
    """What reports need from the configuration: the site's zone, each service's agency
    and target wait, each counter's services."""

    timezone: str
    services: tuple[tuple[str, str, float], ...]  # (code, agency, target wait seconds)
    counters: tuple[tuple[str, tuple[str, ...]], ...]  # (counter id, service codes)

    def service_arrays(self) -> tuple[list[str], list[str], list[float]]:
        return (
            [s[0] for s in self.services],
            [s[1] for s in self.services],
            [float(s[2]) for s in self.services],
        )

    def counter_pairs(self) -> tuple[list[str], list[str]]:
        pairs = [(c, s) for c, services in self.counters for s in services]
        return [p[0] for p in pairs], [p[1] for p in pairs]


# -- rollup ---------------------------------------------------------------------------------

# Days of the range (before `today`) with events whose rollup is missing or older than
# their last event: one backward probe of the (site_id, service_day, seq) index per day.
_STALE_DAYS = """
SELECT d.day, b.last_seq
  FROM (SELECT g::date AS day FROM generate_series($2::date, $3::date, interval '1 day') g) d
 CROSS JOIN LATERAL (SELECT max(e.seq) AS last_seq FROM ticket_events e
                      WHERE e.site_id = $1 AND e.service_day = d.day) b
  LEFT JOIN report_days r ON r.site_id = $1 AND r.service_day = d.day
 WHERE d.day < $4 AND b.last_seq IS NOT NULL AND r.last_seq IS DISTINCT FROM b.last_seq
 ORDER BY d.day
"""

_ROLL_VISITS = """
INSERT INTO report_visits (site_id, service_day, ticket_id, segment, service, priority,
                           source, counter_id, enqueued_at, first_called_at, finished_at,
                           outcome, wait_seconds, walk_seconds, service_seconds,
                           estimated_wait_seconds)
SELECT site_id, service_day, ticket_id, segment, service, priority, source, counter_id,
       enqueued_at, first_called_at, finished_at, outcome, wait_seconds, walk_seconds,
       service_seconds, estimated_wait_seconds
  FROM visits_of($1, $2, $2)
"""

# Each counter's open, busy and idle-while-queue seconds per day, from the event log: $1
# site, $2..$3 days, $4 the end of what is still open (now, for today; NULL for a closed
# day: its open spans end at the day's last event, unfinished visits are left out), $5/$6
# (counter, service) pairs of the configuration.
_COUNTER_DAYS = """
WITH v AS (SELECT * FROM visits_of($1, $2, $3)),
spans AS (SELECT * FROM counter_spans_of($1, $2, $3, $4)),
cs AS (SELECT * FROM unnest($5::text[], $6::text[]) AS c(counter_id, service)),
opened AS (
    SELECT service_day, counter_id, range_agg(tstzrange(opened_at, closed_at)) AS m
      FROM spans WHERE closed_at > opened_at GROUP BY 1, 2
),
busy AS (
    SELECT service_day, counter_id,
           range_agg(tstzrange(first_called_at, coalesce(finished_at, $4))) AS m
      FROM v WHERE counter_id IS NOT NULL AND coalesce(finished_at, $4) > first_called_at
     GROUP BY 1, 2
),
waiting AS (
    SELECT service_day, service,
           range_agg(tstzrange(enqueued_at, coalesce(first_called_at, finished_at, $4))) AS m
      FROM v WHERE coalesce(first_called_at, finished_at, $4) > enqueued_at
     GROUP BY 1, 2
),
queue AS (
    SELECT w.service_day, cs.counter_id, range_agg(r) AS m
      FROM waiting w JOIN cs USING (service) CROSS JOIN LATERAL unnest(w.m) AS r
     GROUP BY 1, 2
)
SELECT coalesce(o.service_day, b.service_day) AS service_day,
       coalesce(o.counter_id, b.counter_id) AS counter_id,
       multirange_seconds(o.m) AS open_seconds,
       multirange_seconds(b.m) AS busy_seconds,
       multirange_seconds((coalesce(o.m, '{}') - coalesce(b.m, '{}')) * coalesce(q.m, '{}'))
         AS idle_while_queue_seconds
  FROM opened o
  FULL JOIN busy b ON b.service_day = o.service_day AND b.counter_id = o.counter_id
  LEFT JOIN queue q ON q.service_day = coalesce(o.service_day, b.service_day)
                   AND q.counter_id = coalesce(o.counter_id, b.counter_id)
"""
_ROLL_COUNTERS = (
    "INSERT INTO report_counter_days (site_id, service_day, counter_id, open_seconds,"  # noqa: S608 - constant parts
    " busy_seconds, idle_while_queue_seconds)"
    " SELECT $1, service_day, counter_id, open_seconds, busy_seconds,"
    " idle_while_queue_seconds FROM (" + _COUNTER_DAYS + ") d"
)


async def ensure_rollup(
    pool: asyncpg.Pool,
    site_id: str,
    first: date,
    last: date,
    today: date,
    now: datetime,
    dims: SiteDims,
    progress: Progress | None = None,
) -> int:
    """Roll up every closed day of the range that is missing or stale; return how many."""
    pair_counters, pair_services = dims.counter_pairs()
    async with connection(pool) as conn:
        stale = await conn.fetch(_STALE_DAYS, site_id, first, last, today)
        for done, (day, last_seq) in enumerate(stale, 1):
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", _ROLLUP_LOCK + site_id
                )
                rolled = await conn.fetchval(
                    "SELECT last_seq FROM report_days WHERE site_id = $1 AND service_day = $2",
                    site_id,
                    day,
                )
                if rolled != last_seq:  # another report may have just done it
                    await conn.execute(
                        "DELETE FROM report_visits WHERE site_id = $1 AND service_day = $2",
                        site_id,
                        day,
                    )
                    await conn.execute(
                        "DELETE FROM report_counter_days WHERE site_id = $1 AND service_day = $2",
                        site_id,
                        day,
                    )
                    await conn.execute(_ROLL_VISITS, site_id, day)
                    await conn.execute(
                        _ROLL_COUNTERS,
                        site_id,
                        day,
                        day,
                        None,
                        pair_counters,
                        pair_services,
                    )
                    await conn.execute(
                        "INSERT INTO report_days (site_id, service_day, last_seq, rolled_at)"
                        " VALUES ($1, $2, $3, $4) ON CONFLICT (site_id, service_day)"
                        " DO UPDATE SET last_seq = EXCLUDED.last_seq,"
                        " rolled_at = EXCLUDED.rolled_at",
                        site_id,
                        day,
                        last_seq,
                        now,
                    )
            if progress is not None:
                progress(done, len(stale))
    if stale:
        log.info("rolled up %d day(s) of %s for reports", len(stale), site_id)
    return len(stale)


# -- figures ----------------------------------------------------------------------------------

# The visits of the range: rolled-up closed days, and the current day live.
# $1 site, $2 first day, $3 last day, $4 today (site timezone).
_VISITS = """
v AS (
    SELECT service_day, ticket_id, segment, service, source, counter_id, enqueued_at,
           first_called_at, finished_at, outcome, wait_seconds, walk_seconds, service_seconds,
           estimated_wait_seconds
      FROM report_visits
     WHERE site_id = $1 AND service_day BETWEEN $2 AND $3 AND service_day < $4
    UNION ALL
    SELECT service_day, ticket_id, segment, service, source, counter_id, enqueued_at,
           first_called_at, finished_at, outcome, wait_seconds, walk_seconds, service_seconds,
           estimated_wait_seconds
      FROM visits_of($1, greatest($2, $4), $3)
)"""
# $5 service codes, $6 their agencies, $7 their target waits (seconds).
_SERVICES = (
    "svc AS (SELECT * FROM unnest($5::text[], $6::text[], $7::float8[])"
    " AS s(service, agency, target))"
)
# A visit never called (no wait) that has waited longer than its service's target: until
# the end of its day if it expired, until now ($8, the report's clock) if it still waits.
# A breach of the standard as much as a call past the target, counted in the denominator
# of the share within target (see domain/standard.py). Cancelled visits are not: the
# citizen withdrew (the board's headline stops counting a ticket once it leaves the queue).
_WAITING_PAST_TARGET = (
    "count(*) FILTER (WHERE wait_seconds IS NULL"
    " AND (outcome = 'expired' OR outcome IS NULL)"
    " AND extract(epoch FROM coalesce(finished_at, $8::timestamptz) - enqueued_at) > target)"
)

# The visit outcomes a report counts, in the order of its columns (a visit still open
# has none: `open`).
REPORT_OUTCOMES = (
    Outcome.SERVED,
    Outcome.INCOMPLETE,
    Outcome.REFERRED,
    Outcome.NO_SHOW,
    Outcome.CANCELLED,
    Outcome.TRANSFERRED,
    Outcome.EXPIRED,
)
_OUTCOME_COUNTS = "".join(
    f"count(*) FILTER (WHERE outcome = '{o}') AS {o},\n       " for o in REPORT_OUTCOMES
)

_FIGURES = (
    "WITH "  # noqa: S608 - constant parts, values are $n parameters
    + _VISITS
    + ", "
    + _SERVICES
    + """,
x AS (SELECT v.*, svc.agency, svc.target FROM v LEFT JOIN svc USING (service))
SELECT GROUPING(agency, service, counter_id) AS g, agency, service, counter_id,
       count(*) AS visits,
       count(*) FILTER (WHERE segment = 0) AS issued,
       """
    + _OUTCOME_COUNTS
    + """count(*) FILTER (WHERE outcome IS NULL) AS open,
       count(wait_seconds) AS waits,
       count(*) FILTER (WHERE wait_seconds <= target) AS within_target,
       """
    + _WAITING_PAST_TARGET
    + """ AS waiting_past_target,
       percentile_cont('{0.5,0.9}'::float8[]) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p,
       max(wait_seconds) AS wait_max,
       avg(wait_seconds) AS wait_mean,
       count(walk_seconds) AS walks,
       percentile_cont('{0.5,0.9}'::float8[]) WITHIN GROUP (ORDER BY walk_seconds) AS walk_p,
       avg(walk_seconds) AS walk_mean,
       count(service_seconds) AS services,
       percentile_cont('{0.5,0.9}'::float8[]) WITHIN GROUP (ORDER BY service_seconds)
         AS service_p,
       avg(service_seconds) AS service_mean,
       count(wait_seconds - estimated_wait_seconds) AS estimates,
       avg(abs(wait_seconds - estimated_wait_seconds)) AS estimate_mae,
       avg(wait_seconds - estimated_wait_seconds) AS estimate_bias
  FROM x
 GROUP BY GROUPING SETS ((), (agency), (agency, service), (counter_id))
"""
)

_HOURS = (
    "WITH "
    + _VISITS
    + """
SELECT extract(hour FROM enqueued_at AT TIME ZONE $5)::int AS hour,
       count(*) FILTER (WHERE segment = 0) AS arrivals,
       count(wait_seconds) AS waits,
       avg(wait_seconds) AS wait_mean,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p90
  FROM v GROUP BY 1 ORDER BY 1
"""
)

_DAYS = (
    "WITH "  # noqa: S608 - constant parts, values are $n parameters
    + _VISITS
    + ", "
    + _SERVICES
    + """,
x AS (SELECT v.*, svc.target FROM v LEFT JOIN svc USING (service))
SELECT service_day AS day,
       count(*) FILTER (WHERE segment = 0) AS issued,
       count(*) FILTER (WHERE outcome = 'served') AS served,
       count(*) FILTER (WHERE outcome = 'expired') AS expired,
       count(wait_seconds) AS waits,
       count(*) FILTER (WHERE wait_seconds <= target) AS within_target,
       """
    + _WAITING_PAST_TARGET
    + """ AS waiting_past_target,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p90
  FROM x GROUP BY 1 ORDER BY 1
"""
)

# Antrian online: the waits of booked citizens (the visits of tickets issued at a booking's
# check-in, source `booking`) against everyone else's (walk-ins, remote joins, and bookings
# checked in late, issued as walk-ins), per service and for the site, with the share
# within target as the headline defines it. `booked` is the split; GROUPING(service) = 1
# marks the site's rows.
_IS_BOOKED = f"v.source IS NOT DISTINCT FROM '{Source.BOOKING}'"
_WAITS_BY_ENTRY = (
    "WITH "  # noqa: S608 - constant parts, values are $n parameters
    + _VISITS
    + ", "
    + _SERVICES
    + ",\nx AS (SELECT v.*, svc.target, "
    + _IS_BOOKED
    + """ AS booked
        FROM v LEFT JOIN svc USING (service))
SELECT GROUPING(service) AS g, service, booked,
       count(*) AS visits,
       count(wait_seconds) AS waits,
       count(*) FILTER (WHERE wait_seconds <= target) AS within_target,
       """
    + _WAITING_PAST_TARGET
    + """ AS waiting_past_target,
       percentile_cont('{0.5,0.9}'::float8[]) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p,
       avg(wait_seconds) AS wait_mean
  FROM x
 GROUP BY GROUPING SETS ((booked), (service, booked))
"""
)

# The bookings whose slot falls in the range, by their state now (booking_visits_of() in
# views.sql), per service and for the site. $1 site, $2 timezone, $3 first, $4 last day.
_BOOKING_STATES = "".join(
    f"count(*) FILTER (WHERE state = '{s}') AS {s},\n       " for s in BookingStatus
)
_BOOKINGS = (
    "SELECT GROUPING(service) AS g, service, count(*) AS made,\n       "  # noqa: S608 - constant parts
    + _BOOKING_STATES
    + """count(*) FILTER (WHERE late) AS late,
       count(*) FILTER (WHERE moves > 0) AS moved,
       count(punctuality_seconds) AS punctual_count,
       percentile_cont('{0.5,0.9}'::float8[]) WITHIN GROUP (ORDER BY punctuality_seconds)
         AS punctuality_p
  FROM booking_visits_of($1, $2, $3, $4)
 GROUP BY GROUPING SETS ((), (service))
"""
)

# Reminders: the notices of the range delivered to the webhook or given up, by kind, for
# the site and per service (those naming none count in the site's only), from the daily
# counts the outbox keeps (`notice_counts`, migration 0012; its rows are pruned after a
# week, the counts are not). GROUPING(service) = 1 marks the site's rows.
# $1 site, $2 first, $3 last day.
_REMINDERS = """
SELECT GROUPING(service) AS g, service, kind, outcome, sum(n)::bigint AS n
  FROM notice_counts
 WHERE site_id = $1 AND service_day BETWEEN $2 AND $3
 GROUP BY GROUPING SETS ((kind, outcome), (service, kind, outcome))
HAVING GROUPING(service) = 1 OR service <> ''
"""

# Counter figures of the rolled-up days of the range (today's come from _COUNTER_DAYS).
_COUNTERS_ROLLED = """
SELECT counter_id, sum(open_seconds) AS open_seconds, sum(busy_seconds) AS busy_seconds,
       sum(idle_while_queue_seconds) AS idle_while_queue_seconds,
       count(*) FILTER (WHERE open_seconds > 0) AS days_open
  FROM report_counter_days
 WHERE site_id = $1 AND service_day BETWEEN $2 AND $3 AND service_day < $4
 GROUP BY 1
"""

# Survey sums per site, agency and service. $1 site, $2 first, $3 last day, $4/$5/$6 the
# service arrays.
_SURVEY_SVC = (
    "svc AS (SELECT * FROM unnest($4::text[], $5::text[], $6::float8[])"
    " AS s(service, agency, target))"
)
_IKM = (
    "WITH "  # noqa: S608 - constant parts, values are $n parameters
    + _SURVEY_SVC
    + """,
x AS (SELECT s.*, svc.agency, svc.target FROM surveys s LEFT JOIN svc USING (service)
       WHERE s.site_id = $1 AND s.service_day BETWEEN $2 AND $3)
SELECT GROUPING(agency, service) AS g, agency, service,
       count(*) FILTER (WHERE mode = 'skm') AS respondents,
       sum(u1) AS u1, sum(u2) AS u2, sum(u3) AS u3, sum(u4) AS u4, sum(u5) AS u5,
       sum(u6) AS u6, sum(u7) AS u7, sum(u8) AS u8, sum(u9) AS u9,
       count(*) FILTER (WHERE mode = 'quick') AS quick_respondents,
       sum(rating) AS rating_sum
  FROM x GROUP BY GROUPING SETS ((), (agency), (agency, service))
"""
)
# The bands of domain/ikm.py's wait_band: within is wait <= target, as `within_target`.
_IKM_BANDS = (
    "WITH "  # noqa: S608 - constant parts, values are $n parameters
    + _SURVEY_SVC
    + """,
x AS (SELECT s.*, svc.target FROM surveys s LEFT JOIN svc USING (service)
       WHERE s.site_id = $1 AND s.service_day BETWEEN $2 AND $3)
SELECT CASE WHEN wait_seconds IS NULL OR target IS NULL OR target <= 0 THEN 'unknown'
            WHEN wait_seconds <= target THEN 'within'
            WHEN wait_seconds <= 2 * target THEN 'up_to_2x'
            ELSE 'over_2x' END AS band,
       count(*) FILTER (WHERE mode = 'skm') AS respondents,
       sum(u1) AS u1, sum(u2) AS u2, sum(u3) AS u3, sum(u4) AS u4, sum(u5) AS u5,
       sum(u6) AS u6, sum(u7) AS u7, sum(u8) AS u8, sum(u9) AS u9,
       count(*) FILTER (WHERE mode = 'quick') AS quick_respondents,
       sum(rating) AS rating_sum,
       avg(wait_seconds) AS wait_mean
  FROM x GROUP BY 1
"""
)

# Latest comments (text only: no ticket id), for the report's reader.
_COMMENTS = """
SELECT service_day, service, comment FROM surveys
 WHERE site_id = $1 AND service_day BETWEEN $2 AND $3 AND comment IS NOT NULL AND comment <> ''
 ORDER BY submitted_at DESC LIMIT $4
"""

# IKM over a rolling window for every site and service at once (the Prometheus gauges).
_IKM_ALL = """
SELECT site_id, service, count(*) FILTER (WHERE mode = 'skm') AS respondents,
       sum(u1) AS u1, sum(u2) AS u2, sum(u3) AS u3, sum(u4) AS u4, sum(u5) AS u5,
       sum(u6) AS u6, sum(u7) AS u7, sum(u8) AS u8, sum(u9) AS u9
  FROM surveys WHERE service_day >= $1
 GROUP BY GROUPING SETS ((site_id), (site_id, service))
"""


_REPORT_SETTINGS = "SET LOCAL work_mem = '64MB'"


def _records(rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


def _add_counter_days(
    totals: list[dict[str, Any]], days: Sequence[asyncpg.Record]
) -> list[dict[str, Any]]:
    by_counter = {r["counter_id"]: dict(r) for r in totals}
    for day in days:
        row = by_counter.setdefault(
            day["counter_id"],
            {
                "counter_id": day["counter_id"],
                "open_seconds": 0.0,
                "busy_seconds": 0.0,
                "idle_while_queue_seconds": 0.0,
                "days_open": 0,
            },
        )
        for key in ("open_seconds", "busy_seconds", "idle_while_queue_seconds"):
            row[key] = float(row[key] or 0) + float(day[key] or 0)
        row["days_open"] = int(row["days_open"] or 0) + (1 if day["open_seconds"] else 0)
    return sorted(by_counter.values(), key=lambda r: str(r["counter_id"]))


@dataclass(frozen=True, slots=True)
class RawReport:
    figures: list[dict[str, Any]]
    hours: list[dict[str, Any]]
    days: list[dict[str, Any]]
    counters: list[dict[str, Any]]
    ikm: list[dict[str, Any]]
    ikm_bands: list[dict[str, Any]]
    comments: list[dict[str, Any]]
    waits_by_entry: list[dict[str, Any]]
    bookings: list[dict[str, Any]]
    reminders: list[dict[str, Any]]


async def site_report(
    pool: asyncpg.Pool,
    site_id: str,
    first: date,
    last: date,
    today: date,
    now: datetime,
    dims: SiteDims,
    *,
    comments: int = 50,
) -> RawReport:
    """Every figure of a site's report over [first, last] (rollups must be ensured first).
    `today` is the site's current service day (read live), `now` the report's clock: the
    end of today's open counter spans and of the waits of tickets still waiting."""
    codes, agencies, targets = dims.service_arrays()
    pair_counters, pair_services = dims.counter_pairs()
    base = (site_id, first, last, today)
    async with (
        connection(pool) as conn,
        # One snapshot for every part, so the parts add up.
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        # Sorts and hashes of a 90-day range fit in memory (the default 4 MB spills).
        await conn.execute(_REPORT_SETTINGS)
        figures = await conn.fetch(_FIGURES, *base, codes, agencies, targets, now)
        hours = await conn.fetch(_HOURS, *base, dims.timezone)
        days = await conn.fetch(_DAYS, *base, codes, agencies, targets, now)
        counters = _records(await conn.fetch(_COUNTERS_ROLLED, *base))
        if first <= today <= last:
            live = await conn.fetch(
                _COUNTER_DAYS, site_id, today, today, now, pair_counters, pair_services
            )
            counters = _add_counter_days(counters, live)
        ikm = await conn.fetch(_IKM, site_id, first, last, codes, agencies, targets)
        bands = await conn.fetch(_IKM_BANDS, site_id, first, last, codes, agencies, targets)
        notes = await conn.fetch(_COMMENTS, site_id, first, last, comments)
        by_entry = await conn.fetch(_WAITS_BY_ENTRY, *base, codes, agencies, targets, now)
        bookings = await conn.fetch(_BOOKINGS, site_id, dims.timezone, first, last)
        reminders = await conn.fetch(_REMINDERS, site_id, first, last)
    return RawReport(
        _records(figures),
        _records(hours),
        _records(days),
        counters,
        _records(ikm),
        _records(bands),
        _records(notes),
        _records(by_entry),
        _records(bookings),
        _records(reminders),
    )


async def site_ikm(
    pool: asyncpg.Pool, site_id: str, first: date, last: date, dims: SiteDims
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The IKM rows (site, agency, service) and the rows by wait band of a range."""
    codes, agencies, targets = dims.service_arrays()
    async with connection(pool) as conn:
        ikm = await conn.fetch(_IKM, site_id, first, last, codes, agencies, targets)
        bands = await conn.fetch(_IKM_BANDS, site_id, first, last, codes, agencies, targets)
    return _records(ikm), _records(bands)


async def ikm_sums(pool: asyncpg.Pool, since: date) -> list[dict[str, Any]]:
    """SKM element sums per site and per (site, service) for service days from `since`."""
    async with connection(pool) as conn:
        rows = await conn.fetch(_IKM_ALL, since)
    return _records(rows)


async def count_visits(pool: asyncpg.Pool, site_id: str, first: date, last: date) -> int:
    """A plain count of the rolled-up visits of a range (the benchmark's baseline)."""
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT count(*) FROM report_visits"
            " WHERE site_id = $1 AND service_day BETWEEN $2 AND $3",
            site_id,
            first,
            last,
        )
    return int(value)
