"""A server process for the issue benchmark: `python -m bench.server service|bare ...`.

`service` runs the real app (create_app: database, migrations, engine replay, API) with the
benchmark hall; `bare` runs an aiohttp app with one JSON POST handler, the ceiling.
Both listen on 127.0.0.1, port 0 (the kernel picks a free one), print `READY <port>` on
stdout once they accept requests, and shut down cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web


async def bare_issue(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    if not isinstance(body, dict) or not isinstance(body.get("service"), str):
        return web.json_response({"code": "invalid"}, status=400)
    return web.json_response(
        {
            "site": request.match_info["site"],
            "service": body["service"],
            "number": "A001",
            "state": "waiting",
        },
        status=201,
    )


def bare_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/sites/{site}/tickets", bare_issue)
    return app


def service_app(dsn: str, sites: int, services: int, timezone: str) -> web.Application:
    from bench.common import hall_config
    from queue_service.settings import Settings
    from queue_service.web.app import create_app

    config = hall_config(sites=sites, services=services, counters=services, timezone=timezone)
    settings = Settings(config_path=Path("<bench>"), database_url=dsn, host="127.0.0.1", port=0)
    return create_app(settings, config)


def _watch_commits(app: web.Application) -> dict[str, float] | None:
    """Totals of the engine's commits (count, events, seconds), kept up to date."""
    from queue_service.web.keys import ENGINE

    if ENGINE not in app:
        return None
    totals = {"batches": 0.0, "events": 0.0, "seconds": 0.0, "max_seconds": 0.0}

    def observe(seconds: float, events: int) -> None:
        totals["batches"] += 1
        totals["events"] += events
        totals["seconds"] += seconds
        totals["max_seconds"] = max(totals["max_seconds"], seconds)

    app[ENGINE].commit_observers.append(observe)
    return totals


async def serve(app: web.Application, profile: str | None = None) -> None:
    # access_log=None: the access log is off in both servers (it costs a log line per request).
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()  # the serving only: start-up and shutdown stay out of the profile
    commits = _watch_commits(app)
    print(f"READY {port}", flush=True)
    await stop.wait()
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    if commits is not None:
        # Read by bench.issue: how long the writer spent committing (the group commit's
        # cycle), besides the CPU figures it measures from outside.
        print("COMMITS " + json.dumps(commits), flush=True)
    await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("kind", choices=("service", "bare"))
    parser.add_argument("--dsn")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--timezone", default="Asia/Makassar")
    parser.add_argument("--profile", help="write a cProfile of the serving to this file")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="server %(levelname)s %(name)s: %(message)s",
    )
    if args.kind == "bare":
        app = bare_app()
    else:
        if not args.dsn:
            parser.error("service needs --dsn")
        app = service_app(args.dsn, args.sites, args.services, args.timezone)
    asyncio.run(serve(app, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
