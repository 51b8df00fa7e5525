"""The `ticket_visits` view (migration 0007) against its former definition (0003).

    python -m bench.visits_view [--sites 30] [--days 100] [--tickets 300] [--reps 5]

Loads a log of `--sites` x `--days` x `--tickets` tickets (each issued, called a minute
later and served for four minutes) into a fresh database, creates the view as migration
0003 wrote it beside the current one (the baseline, same database and session), and times
three queries on each, alternated: the whole view aggregated, one site, one day. Prints the
medians and the ratio current / former. Nothing here asserts a timing.

Migration 0003's view definition now lives only in the history (the numbered migrations hold
the tables; the views are defined once, in `migrations/views.sql`), so the former definition
is read from git at the last commit that had it: run this from a git checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from bench.common import ROOT, fresh_database, median, run_on_server

# The last commit whose 0003 still created the view (before views.sql held it).
_FORMER_AT = "8e8b7a4"
_FORMER_PATH = "queue_service/store/migrations/0003_visit_estimates.sql"


def _former_definition() -> str:
    return subprocess.run(  # noqa: S603 - a fixed git command on this checkout
        ["git", "show", f"{_FORMER_AT}:{_FORMER_PATH}"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


_LOAD = """
INSERT INTO ticket_events (seq, site_id, service_day, type, ts, ticket_id, counter_id,
                           service, segment, data)
SELECT t.n * 3 + k.k, 'site-' || (t.n % $1::int), date '2026-01-01' + t.n / ($1::int * $3::int),
       k.type, timestamptz '2026-01-01 01:00Z' + (t.n / ($1::int * $3::int)) * interval '1 day'
               + k.after, 't' || t.n, k.counter, 'S' || (t.n % 7), 0, k.data::jsonb
  FROM generate_series(0, $1::int * $2::int * $3::int - 1) AS t(n)
 CROSS JOIN (VALUES (0, 'ticket_issued', interval '0 s', NULL, '{"number": "A001"}'),
                    (1, 'ticket_called', interval '60 s', 'c1', '{}'),
                    (2, 'ticket_finished', interval '300 s', 'c1', '{"outcome": "served"}'))
       AS k(k, type, after, counter, data)
"""


async def _run(url: str, sites: int, days: int, tickets: int, reps: int) -> None:
    import asyncpg

    from queue_service.store.migrate import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        began = time.perf_counter()
        await conn.execute(_LOAD, sites, days, tickets)
        await conn.execute("VACUUM ANALYZE ticket_events")
        events = await conn.fetchval("SELECT count(*) FROM ticket_events")
        print(f"  loaded {events:,} events in {time.perf_counter() - began:.1f} s", flush=True)
        former = _former_definition().split("COMMENT ON")[0]
        await conn.execute(
            former.replace("CREATE OR REPLACE VIEW ticket_visits", "CREATE VIEW former_visits")
        )
        queries = {
            "whole view": "SELECT count(*), avg(wait_seconds) FROM {v}",
            "one site": "SELECT count(*), avg(wait_seconds) FROM {v} WHERE site_id = 'site-3'",
            "one day": "SELECT count(*), avg(wait_seconds) FROM {v}"
            " WHERE service_day = date '2026-01-02'",
        }
        times: dict[tuple[str, str], list[float]] = {}
        for rep in range(reps):
            views = ("ticket_visits", "former_visits")
            for view in views if rep % 2 == 0 else views[::-1]:
                for name, sql in queries.items():
                    t = time.perf_counter()
                    rows = await conn.fetch(sql.format(v=view))
                    times.setdefault((name, view), []).append(time.perf_counter() - t)
                    assert rows[0][0] > 0
        for name in queries:
            now = median(times[(name, "ticket_visits")])
            was = median(times[(name, "former_visits")])
            print(
                f"  {name:10s}  current (0007) {now * 1000:8.1f} ms   former (0003) "
                f"{was * 1000:8.1f} ms   current / former {now / was:.2f}x"
            )
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.visits_view", description=__doc__)
    parser.add_argument("--sites", type=int, default=30)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"ticket_visits: {args.sites} sites x {args.days} days x {args.tickets} tickets, "
        f"medians of {args.reps} alternated repetitions",
        flush=True,
    )

    async def run(server_url: str) -> None:
        async with fresh_database(server_url, "bench_visits") as url:
            await _run(url, args.sites, args.days, args.tickets, args.reps)

    run_on_server(None, run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
