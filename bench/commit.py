"""The cost of one group commit, the store alone: `EventStore.append` against a bulk COPY.

    python -m bench.commit [--reps 5] [--commits 1000] [--batch 17] [--compare TREE ...]

Each repetition writes `--commits` batches of `--batch` issued tickets (a `ticket_issued`
event and its ~700-byte stored answer each, as the issue path commits them; 17 is the
batch size `bench issue` sees at 50 clients) to a fresh database, on one connection, one
batch after another: first through `EventStore.append` (one statement per batch, committed
on its own), then the same rows through the driver's binary COPY in one transaction per
batch (`copy_records_to_table`, the fastest way the driver has to load rows: the baseline,
run in the same process). Per commit it prints the wall time, the CPU time of the
PostgreSQL backend and of this Python process, and the WAL written per ticket.

With `--compare`, the store of each tree given (a directory of this repository's files, for
example `git archive <commit> | tar -x -C DIR`) is measured too, in its own process,
alternating with this tree's, so that two versions of the store compare on a machine
whose speed drifts. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from queue_service.domain.vocab import EventType

ROOT = Path(__file__).resolve().parent.parent


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(url: str, commits: int, batch: int) -> dict[str, dict[str, float]]:
    """Run in the tree under test (PYTHONPATH): imports only its `queue_service`."""
    import asyncpg

    from bench.dayload import ANSWER_COLUMNS, EVENT_COLUMNS
    from queue_service.domain.events import Event
    from queue_service.store.db import create_pool
    from queue_service.store.event_store import EventStore
    from queue_service.store.migrate import migrate

    try:  # where the tree under test keeps it (store/protocol.py since issue 16)
        from queue_service.store.protocol import IdempotentAnswer
    except ImportError:  # a tree from before (--compare)
        from queue_service.store.event_store import (  # type: ignore[attr-defined]
            IdempotentAnswer,
        )

    pool = await create_pool(url)
    async with pool.acquire() as conn:
        await migrate(conn)
    store = EventStore(pool, url)
    await store.open_writer()
    writer: asyncpg.Connection = await store._writer_conn()
    pid = writer.get_server_pid()
    now = datetime.now(UTC)
    day = date.today()
    # The tree under test may predate the EventType enum; its value is the string either way.
    issued = cast("EventType", "ticket_issued")
    answer_text = json.dumps({"status": "waiting", "filler": "x" * 600})
    seq = 0
    batches = []
    for _ in range(commits * 2):  # the first half through append, the second through COPY
        events, answers = [], []
        for i in range(batch):
            seq += 1
            site, service = f"site-{i % 20:02d}", f"S{i % 20:02d}"
            data = {"number": seq % 999, "label": f"A{seq % 999:03d}", "source": "kiosk"}
            ticket = secrets.token_urlsafe(16)
            events.append(Event(issued, site, now, day, ticket, None, service, 0, data, seq))
            answers.append(
                IdempotentAnswer(site, secrets.token_hex(16), "0" * 64, 201, answer_text, seq, now)
            )
        batches.append((events, answers))

    async def via_append(part: list[Any]) -> None:
        for events, answers in part:
            await store.append(events, answers)

    # The baseline writes the same rows, in the tables' columns (as bench/dayload.py loads
    # a day); an answer's fields are named as its columns.
    event_record = attrgetter(
        "seq", "site", "day", "type", "ts", "ticket_id", "counter_id", "service", "segment", "data"
    )
    answer_record = attrgetter(*ANSWER_COLUMNS)

    async def via_copy(part: list[Any]) -> None:
        for events, answers in part:
            async with writer.transaction():
                await writer.copy_records_to_table(
                    "ticket_events",
                    columns=EVENT_COLUMNS,
                    records=[event_record(e) for e in events],
                )
                await writer.copy_records_to_table(
                    "idempotency_keys",
                    columns=ANSWER_COLUMNS,
                    records=[answer_record(a) for a in answers],
                )

    async def binary_jsonb() -> None:
        # COPY's binary format needs jsonb in binary too (version byte, then the text).
        await writer.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + json.dumps(v).encode(),
            decoder=lambda b: json.loads(b[1:]),
            schema="pg_catalog",
            format="binary",
        )

    out = {}
    for name, write, part in (
        ("append", via_append, batches[:commits]),
        ("copy", via_copy, batches[commits:]),
    ):
        if name == "copy":
            await binary_jsonb()
        warm, timed = part[: commits // 10], part[commits // 10 :]
        await write(warm)
        lsn = await writer.fetchval("SELECT pg_current_wal_lsn()")
        cpu, own, wall = _backend_cpu(pid), time.process_time(), time.perf_counter()
        await write(timed)
        wall = time.perf_counter() - wall
        own = time.process_time() - own
        cpu = _backend_cpu(pid) - cpu
        wal = await writer.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn)
        n = len(timed)
        out[name] = {
            "wall_us": wall / n * 1e6,
            "postgres_us": cpu / n * 1e6,
            "python_us": own / n * 1e6,
            "wal_bytes_per_ticket": float(wal) / (n * batch),
        }
    await store.close()
    await pool.close()
    return out


def _run_tree(tree: Path, url: str, commits: int, batch: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and file
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            url,
            "--commits",
            str(commits),
            "--batch",
            str(batch),
        ],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the measurement failed:\n{done.stderr}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=17)
    parser.add_argument("--compare", type=Path, nargs="*", default=[])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(_measure(args.worker, args.commits, args.batch))))
        return 0

    sys.path.insert(0, str(ROOT))
    from bench.common import create_database, database_server, drop_database, median

    trees = [ROOT, *[t.resolve() for t in args.compare]]
    runs: dict[Path, list[dict[str, dict[str, float]]]] = {t: [] for t in trees}
    print(
        f"group commit: {args.batch} tickets per commit, {args.commits} commits "
        f"(10% warm-up) per way, {args.reps} repetitions",
        flush=True,
    )
    with database_server() as server:
        for rep in range(args.reps):
            for tree in trees if rep % 2 == 0 else trees[::-1]:
                url = asyncio.run(create_database(server, "bench_commit"))
                try:
                    r = _run_tree(tree, url, args.commits, args.batch)
                finally:
                    asyncio.run(drop_database(server, url))
                runs[tree].append(r)
                a, c = r["append"], r["copy"]
                print(
                    f"  {rep + 1}/{args.reps} {tree!s:28s} append: wall {a['wall_us']:5.0f} "
                    f"postgres {a['postgres_us']:4.0f} python {a['python_us']:4.0f} us/commit,"
                    f" WAL {a['wal_bytes_per_ticket']:4.0f} B/ticket | copy: wall "
                    f"{c['wall_us']:5.0f} postgres {c['postgres_us']:4.0f} python "
                    f"{c['python_us']:4.0f}",
                    flush=True,
                )
    print("\n summary (medians over repetitions; per commit, and per ticket in brackets)")
    for tree, rs in runs.items():
        for way in ("append", "copy"):
            m = {k: median([r[way][k] for r in rs]) for k in rs[0][way]}
            print(
                f"  {tree!s:28s} {way:6s} wall {m['wall_us']:5.0f} us, postgres CPU "
                f"{m['postgres_us']:4.0f} us ({m['postgres_us'] / args.batch:4.1f}), Python "
                f"CPU {m['python_us']:4.0f} us ({m['python_us'] / args.batch:4.1f}), WAL "
                f"{m['wal_bytes_per_ticket']:4.0f} B/ticket"
            )
        ratio = median([r["append"]["wall_us"] / r["copy"]["wall_us"] for r in rs])
        cpu = median(
            [
                (r["append"]["postgres_us"] + r["append"]["python_us"])
                / (r["copy"]["postgres_us"] + r["copy"]["python_us"])
                for r in rs
            ]
        )
        print(
            f"  {tree!s:28s} append / copy (paired medians): wall {ratio:.2f}x, "
            f"CPU (both sides) {cpu:.2f}x"
        )
    if len(trees) > 1:
        base = runs[ROOT]
        for tree in trees[1:]:
            wins = sum(
                b["append"]["python_us"] + b["append"]["postgres_us"]
                < o["append"]["python_us"] + o["append"]["postgres_us"]
                for b, o in zip(base, runs[tree], strict=True)
            )
            print(f"  {ROOT} used less CPU per commit than {tree} in {wins} of {len(base)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
