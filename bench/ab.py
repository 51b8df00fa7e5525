"""Compare the issue path of two source trees, service runs only, alternated in pairs.

    python -m bench.ab TREE_A TREE_B [--reps 4] [--clients 50] [--duration 4]

A tree is a directory holding this repository's files, for example a commit unpacked with
`git archive <commit> | tar -x -C /tmp/a`. Each repetition runs the service of both trees
(order alternating), each on a fresh database of one PostgreSQL server, under the load of
`bench issue` (`bench.issue.one_run`), and prints throughput, server and PostgreSQL CPU per
request, p99 and the mean commit cycle; then medians per tree and the share of pairs each
tree won. This machine's speed drifts by ±20% within minutes: only runs alternated in the
same session compare two versions of the code. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import bench.issue as issue
from bench.common import database_server, median


async def compare(
    server_url: str, trees: list[Path], *, reps: int, clients: int, duration: float
) -> None:
    timezone = issue.pick_timezone()
    results: dict[Path, list[issue.RunResult]] = {t: [] for t in trees}
    for i in range(reps):
        for tree in trees if i % 2 == 0 else trees[::-1]:
            issue.SERVER_ROOT = tree  # the server process runs from this tree
            r = await issue.one_run(
                "service", server_url, timezone, clients=clients, warmup=1, duration=duration
            )
            results[tree].append(r)
            c = r.commits
            # Trees older than the commit totals of bench.server print none.
            cycle = f"{c['seconds'] / c['batches'] * 1000:.2f} ms" if c and c["batches"] else "n/a"
            print(
                f"  {tree!s:32s} {r.rps:6.0f} req/s  server {r.server_us_per_request:4.0f}"
                f" us/req  postgres {r.postgres_us_per_request:3.0f} us/req"
                f"  p99 {r.p99_ms:5.1f} ms  commit {cycle}"
                f"  201s = committed: {r.ok_total == r.committed}",
                flush=True,
            )
    a, b = trees
    wins = sum(x.rps > y.rps for x, y in zip(results[b], results[a], strict=True))
    for tree in trees:
        rs = results[tree]
        print(
            f" median {tree!s:25s} {median([r.rps for r in rs]):6.0f} req/s  server"
            f" {median([r.server_us_per_request for r in rs]):4.0f} us/req  p99"
            f" {median([r.p99_ms for r in rs]):5.1f} ms"
        )
    print(f" {b} had the higher throughput in {wins} of {reps} pairs")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("trees", nargs=2, type=Path)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    with database_server() as url:
        asyncio.run(
            compare(url, trees, reps=args.reps, clients=args.clients, duration=args.duration)
        )


if __name__ == "__main__":
    main()
