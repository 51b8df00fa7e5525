"""One site's 90-day report on a multi-site, 90-day event log.

    python -m bench.report [--sites 20] [--days 90] [--visits 900] [--reps 5] [--view]

1. Generate the event log in SQL (`generate_series`, fixed random seed): `sites` halls of
   the bench hall shape (20 services, 25 counters) x `days` service days x `visits`
   tickets a day, each with its issue, call(s), start and end events (85% served, 5%
   incomplete, 4% no-show after two calls, 3% cancelled, 3% transferred and served in the
   new service), and every counter opened at 08:00 and closed at 15:00 WITA.
2. Cold: the first report of site-000 over the 90 days (rolls up the 90 closed days).
3. Warm, repeated: the same report (the stale-day check, every figure, the IKM), against a
   baseline in the same run, a plain COUNT(*) over the same rolled-up rows, and the same
   query through the `ticket_visits` view (with --view; once, it reads the whole log).
4. The hourly background rollup: one new day of every site.

Figures are medians; nothing asserts a timing. Target from the issue: < 2 s for one site's
90-day report. See bench/REPORTS.md for the figures and the extrapolation to 300 sites.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg

from bench.common import banner, fresh_database, hall_config, run_on_server
from bench.common import median as _median
from queue_service.reports.build import build_report, site_dims
from queue_service.store import reports as store
from queue_service.store.db import create_pool
from queue_service.store.migrate import migrate

FIRST_DAY = date(2026, 8, 1)
SERVICES, COUNTERS = 20, 25

# One statement per site: the tickets of every day, then their events. Times are local
# (WITA) 08:00 + an even spread over 7 hours; waits up to ~35 min, walks 20..80 s,
# services 2..10 min. `k` picks the outcome.
_GENERATE = """
INSERT INTO ticket_events (seq, site_id, service_day, type, ts, ticket_id, counter_id,
                           service, segment, data)
WITH t AS (
    SELECT $1::text AS site_id, d.day, n,
           md5($1 || d.day || '-' || n) AS ticket_id,
           'S' || lpad((n % 20)::text, 2, '0') AS service,
           'S' || lpad(((n + 7) % 20)::text, 2, '0') AS service2,
           'c' || lpad(CASE WHEN n % 2 = 0 THEN n % 20 ELSE (n + 19) % 20 END::text, 2, '0')
             AS counter_id,
           (d.day::timestamp + interval '8 hours') AT TIME ZONE 'Asia/Makassar'
             + (n * 25200.0 / $2) * interval '1 second' AS issued,
           (random() * random() * 2100)::int AS wait, 20 + (random() * 60)::int AS walk,
           120 + (random() * 480)::int AS svc, (random() * 100)::int AS k
      FROM (SELECT $3::date + g AS day FROM generate_series(0, $4 - 1) g) d,
           generate_series(1, $2) n
),
ev AS (
    SELECT site_id, day, 'ticket_issued' AS type, issued AS ts, ticket_id, NULL AS counter_id,
           service, 0 AS segment,
           jsonb_build_object('number', 'A' || lpad(n::text, 3, '0'), 'source', 'kiosk') AS data
      FROM t
    UNION ALL
    SELECT site_id, day, 'ticket_cancelled', issued + wait * interval '1 second', ticket_id,
           NULL, service, 0, '{}'::jsonb
      FROM t WHERE k < 3
    UNION ALL
    SELECT site_id, day, 'ticket_called', issued + wait * interval '1 second', ticket_id,
           counter_id, service, 0, '{}'::jsonb
      FROM t WHERE k >= 3
    UNION ALL
    SELECT site_id, day, 'ticket_recalled', issued + (wait + 60) * interval '1 second',
           ticket_id, counter_id, service, 0, '{}'::jsonb
      FROM t WHERE k BETWEEN 3 AND 6
    UNION ALL
    SELECT site_id, day, 'ticket_no_show', issued + (wait + 120) * interval '1 second',
           ticket_id, counter_id, service, 0, '{}'::jsonb
      FROM t WHERE k BETWEEN 3 AND 6
    UNION ALL
    SELECT site_id, day, 'ticket_started', issued + (wait + walk) * interval '1 second',
           ticket_id, counter_id, service, 0, '{}'::jsonb
      FROM t WHERE k >= 7
    UNION ALL
    SELECT site_id, day, 'ticket_finished', issued + (wait + walk + svc) * interval '1 second',
           ticket_id, counter_id, service, 0,
           jsonb_build_object('outcome', CASE WHEN k < 12 THEN 'incomplete' ELSE 'served' END)
      FROM t WHERE k >= 10
    UNION ALL
    SELECT site_id, day, 'ticket_transferred',
           issued + (wait + walk + svc) * interval '1 second', ticket_id, counter_id, service,
           0, jsonb_build_object('to_service', service2)
      FROM t WHERE k BETWEEN 7 AND 9
    UNION ALL
    SELECT site_id, day, 'ticket_called', issued + (2 * wait + walk + svc) * interval '1 second',
           ticket_id, 'c' || lpad(((n + 7) % 20)::text, 2, '0'), service2, 1, '{}'::jsonb
      FROM t WHERE k BETWEEN 7 AND 9
    UNION ALL
    SELECT site_id, day, 'ticket_finished',
           issued + (2 * wait + walk + 2 * svc) * interval '1 second', ticket_id,
           'c' || lpad(((n + 7) % 20)::text, 2, '0'), service2, 1,
           '{"outcome": "served"}'::jsonb
      FROM t WHERE k BETWEEN 7 AND 9
    UNION ALL
    SELECT $1, d.day, x.type,
           (d.day::timestamp + x.at) AT TIME ZONE 'Asia/Makassar', NULL,
           'c' || lpad(c::text, 2, '0'), NULL, 0, '{}'::jsonb
      FROM (SELECT $3::date + g AS day FROM generate_series(0, $4 - 1) g) d,
           generate_series(0, 24) c,
           (VALUES ('counter_opened', interval '8 hours'),
                   ('counter_closed', interval '15 hours')) AS x(type, at)
)
SELECT $5 + row_number() OVER (ORDER BY day, ts), site_id, day, type, ts, ticket_id,
       counter_id, service, segment, data
  FROM ev
"""

# Some surveys, so the IKM part of the report has rows to aggregate (10% of served).
_SURVEYS = """
INSERT INTO surveys (ticket_id, site_id, service_day, segment, service, counter_id,
                     wait_seconds, service_seconds, mode, u1, u2, u3, u4, u5, u6, u7, u8, u9,
                     channel, submitted_at)
SELECT e.ticket_id, e.site_id, e.service_day, e.segment, e.service, e.counter_id,
       random() * 1800, 300, 'skm', 3 + (random() > 0.3)::int, 3, 2 + (random() > 0.5)::int,
       4, 3, 3 + (random() > 0.5)::int, 4, 3, 3, 'phone', e.ts
  FROM ticket_events e
 WHERE e.site_id = $1 AND e.type = 'ticket_finished' AND e.data ->> 'outcome' = 'served'
   AND random() < 0.1
"""


async def run(args: argparse.Namespace, server_url: str) -> None:
    async with fresh_database(server_url, "bench_report") as url:
        await _run(args, url)


async def _run(args: argparse.Namespace, url: str) -> None:
    config = hall_config(sites=args.sites, services=SERVICES, counters=COUNTERS)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute("SELECT setseed(0.42)")
        banner(
            f"generate: {args.sites} sites x {args.days} days x {args.visits} tickets/day"
            f" = {args.sites * args.days * args.visits:,} tickets"
        )
        began = time.perf_counter()
        seq = 0
        for s in range(args.sites):
            site_id = f"site-{s:03d}"
            await conn.execute(_GENERATE, site_id, args.visits, FIRST_DAY, args.days, seq)
            await conn.execute(_SURVEYS, site_id)
            seq = await conn.fetchval("SELECT max(seq) FROM ticket_events")
            if (s + 1) % 5 == 0 or s + 1 == args.sites:
                print(
                    f"  {s + 1}/{args.sites} sites, {seq:,} events,"
                    f" {time.perf_counter() - began:.0f} s",
                    flush=True,
                )
        await conn.execute("VACUUM ANALYZE")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        events = await conn.fetchval("SELECT count(*) FROM ticket_events")
        surveys = await conn.fetchval("SELECT count(*) FROM surveys")
        print(f"  {events:,} events, {surveys:,} surveys, database {size}", flush=True)
    finally:
        await conn.close()

    site = config.sites["site-000"]
    first, last = FIRST_DAY, FIRST_DAY + timedelta(days=args.days - 1)
    # "Now": the morning after the last day, so every day of the range is closed.
    now = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=2)
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        banner(f"cold: first {args.days}-day report of site-000 (rolls up {args.days} days)")
        cold_began = time.perf_counter()
        report = await build_report(pool, site, first, last, now)
        cold = time.perf_counter() - cold_began
        visits = report["totals"]["visits"]
        print(f"  {cold:.2f} s, {visits:,} visits, {cold / args.days * 1000:.0f} ms per day rolled")

        banner(f"warm: the same report, {args.reps} repetitions (median)")
        warm: list[float] = []
        base: list[float] = []
        for _ in range(args.reps):
            began = time.perf_counter()
            await build_report(pool, site, first, last, now)
            warm.append(time.perf_counter() - began)
            began = time.perf_counter()
            counted = await store.count_visits(pool, site.id, first, last)
            base.append(time.perf_counter() - began)
        assert counted == visits
        w, b = _median(warm), _median(base)
        print(
            f"  report: {w * 1000:.0f} ms (min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f})"
        )
        print(f"  baseline COUNT(*) of the same {visits:,} rolled-up visits: {b * 1000:.1f} ms")
        print(f"  ratio report / baseline: {w / b:.0f}x")
        stages = await _stages(pool, site, first, last, now)
        for name, seconds in stages.items():
            print(f"    {name}: {seconds * 1000:.0f} ms")

        if args.view:
            banner("the same visits through the ticket_visits view (no rollup), once")
            view_query = (
                "SELECT service, percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_seconds)"
                " FROM ticket_visits WHERE site_id = $1 AND service_day BETWEEN $2 AND $3"
                " GROUP BY service"
            )
            async with pool.acquire() as c:
                began = time.perf_counter()
                await c.fetch(view_query, site.id, first, last)
                took = time.perf_counter() - began
                print(f"  p90 wait per service via the view: {took:.2f} s")
                plan = await c.fetch("EXPLAIN ANALYZE " + view_query, site.id, first, last)
                # Whether the view grouped the whole log (every site) or only this site.
                for (line,) in plan:
                    if "Aggregate" in line or "on ticket_events" in line:
                        print(f"    {line.strip()[:150]}")

        banner("IKM gauges: SKM sums of every site and service (the 5-minute refresh)")
        ikm_runs = []
        for _ in range(3):
            began = time.perf_counter()
            rows = await store.ikm_sums(pool, first)
            ikm_runs.append(time.perf_counter() - began)
        print(
            f"  {args.days}-day window, {args.sites} sites, {len(rows)} rows:"
            f" {_median(ikm_runs) * 1000:.0f} ms (median of 3)"
        )

        banner("hourly background rollup: one new closed day of every site")
        # Pretend the last day was not rolled up yet for any site, then roll it up.
        async with pool.acquire() as c:
            await c.execute("DELETE FROM report_days WHERE service_day = $1", last)
        began = time.perf_counter()
        for each in config.sites.values():
            await store.ensure_rollup(
                pool, each.id, last, last, last + timedelta(days=1), now, site_dims(each)
            )
        one_day = time.perf_counter() - began
        print(
            f"  {args.sites} sites: {one_day:.2f} s ({one_day / args.sites * 1000:.0f} ms per"
            f" site-day)"
        )
    finally:
        await pool.close()


async def _stages(
    pool: asyncpg.Pool, site: object, first: date, last: date, now: datetime
) -> dict[str, float]:
    """Each query of a warm report (median of 3), to show where the time goes."""
    from queue_service.domain.site import Site

    assert isinstance(site, Site)
    dims = site_dims(site)
    today = site.service_day(now)
    out: dict[str, float] = {}
    began = time.perf_counter()
    await store.ensure_rollup(pool, site.id, first, last, today, now, dims)
    out[f"stale-day check ({(last - first).days + 1} index probes)"] = time.perf_counter() - began
    began = time.perf_counter()
    await store.site_report(pool, site.id, first, last, today, now, dims)
    out["all figures (one snapshot)"] = time.perf_counter() - began
    codes, agencies, targets = dims.service_arrays()
    pair_counters, pair_services = dims.counter_pairs()
    base = (site.id, first, last, today)
    queries = (
        ("  per agency/service/counter", store._FIGURES, (*base, codes, agencies, targets, now)),
        ("  busiest hours", store._HOURS, (*base, dims.timezone)),
        ("  per day", store._DAYS, (*base, codes, agencies, targets, now)),
        ("  counter times (rolled up)", store._COUNTERS_ROLLED, base),
        (
            "  counter times of one day, live (what today costs)",
            store._COUNTER_DAYS,
            (site.id, last, last, now, pair_counters, pair_services),
        ),
        ("  IKM", store._IKM, (site.id, first, last, codes, agencies, targets)),
        ("  IKM by wait band", store._IKM_BANDS, (site.id, first, last, codes, agencies, targets)),
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(store._REPORT_SETTINGS)
        for name, sql, params in queries:
            runs = []
            for _ in range(3):
                began = time.perf_counter()
                await conn.fetch(sql, *params)
                runs.append(time.perf_counter() - began)
            out[name] = _median(runs)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    # 900 a day: 300 sites x 365 days x 900 is the issue's ~100 million visits a year.
    parser.add_argument("--visits", type=int, default=900, help="tickets per site and day")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--view", action="store_true", help="also time the view (slow)")


def main(args: argparse.Namespace, server_url: str | None = None) -> None:
    run_on_server(server_url, lambda url: run(args, url))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    add_arguments(parser)
    parsed = parser.parse_args()
    print(
        f"bench report: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, Python"
        f" {platform.python_version()}, {os.cpu_count()} cpus, load average"
        f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    main(parsed)
    sys.exit(0)
