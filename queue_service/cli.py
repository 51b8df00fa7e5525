"""Command line: `queue-service run | check-config | hash-token | simulate | report`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queue_service.config import AppConfig, ConfigError, hash_token, load_config
from queue_service.reports import cli as reports_cli
from queue_service.simulate import cli as simulate_cli

if TYPE_CHECKING:
    from queue_service.settings import Settings

log = logging.getLogger("queue_service")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queue-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service")
    run.add_argument("--config", required=True, help="site configuration (TOML)")
    run.add_argument("--host", help="listen address (ANTRIAN_HOST, default 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (ANTRIAN_PORT, default 8080)")
    run.add_argument(
        "--data-dir",
        help="embedded PostgreSQL data directory when DATABASE_URL is unset "
        "(ANTRIAN_DATA_DIR, default var/pgdata)",
    )

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file", nargs="?", help="site configuration (TOML)")
    check.add_argument("--config", dest="config_opt", help=argparse.SUPPRESS)

    token = sub.add_parser("hash-token", help="print the sha256 to configure for a token")
    token.add_argument("token", nargs="?", help="the token (asked for when omitted)")

    simulate_cli.add_parser(sub)
    reports_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        path = args.file or args.config_opt
        if not path:
            print("check-config: give the configuration file", file=sys.stderr)
            return 2
        try:
            config = load_config(path)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
            return 1
        services = sum(len(s.services) for s in config.sites.values())
        counters = sum(len(s.counters) for s in config.sites.values())
        print(
            f"{path}: OK ({len(config.sites)} site(s), {services} services, "
            f"{counters} counters, {len(config.tokens)} tokens)"
        )
        return 0
    if args.command == "simulate":
        return simulate_cli.main(args)
    if args.command == "report":
        return reports_cli.main(args)
    if args.command == "hash-token":
        return _hash_token(args.token)
    return _run(args)


def _hash_token(given: str | None) -> int:
    if given is None:
        try:
            given = getpass.getpass("token: ")
        except EOFError:  # stdin closed before a line (`... < /dev/null`)
            print(file=sys.stderr)  # after the prompt
            given = ""
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130
    problem = token_problem(given)
    if problem is not None:
        print(f"hash-token: {problem}", file=sys.stderr)
        return 2
    print(hash_token(given))
    return 0


def token_problem(secret: str) -> str | None:
    """Why a bearer token cannot be configured, or None. The service reads the token a
    client sends without its surrounding spaces, and a header cannot carry control
    characters: such a token would match nothing."""
    if not secret.strip():
        return "the token is empty; give the token to hash (or type it when asked)"
    if secret != secret.strip():
        return "the token starts or ends with a space, which no client can send; remove it"
    if any(ord(c) < 0x20 or c == "\x7f" for c in secret):
        return "the token holds a control character, which no client can send"
    return None


def _run(args: argparse.Namespace) -> int:
    from queue_service.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(
            args.config,
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir) if args.data_dir else None,
        )
    except SettingsError as exc:
        print(f"the service did not start: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from queue_service.web.access_log import DropBadRequests

    logging.getLogger("aiohttp.server").addFilter(DropBadRequests())
    logging.getLogger("asyncpg.pool").addFilter(OneLine())
    try:
        config = load_config(settings.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        log.error(
            "the service did not start: %d problem(s) in the configuration", len(exc.problems)
        )
        return 1
    return asyncio.run(_serve(settings, config))


class OneLine(logging.Filter):
    """A warning logged with its traceback becomes one line ending with the exception:
    asyncpg's pool logs every failed reconnection so while the database is down."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and record.levelno < logging.ERROR:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})".replace("\n", " ")
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts (a port in use stops the service
    before it touches the database)."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address, family=family, backlog=128)


def _why(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):  # a host name that does not resolve
        return exc.strerror or str(exc)
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def _serve(settings: Settings, config: AppConfig) -> int:
    """Listen, bring the service up in the background, serve until SIGINT or SIGTERM (or
    until the bring-up fails for good: status 1)."""
    from aiohttp import web

    from queue_service.web.access_log import RedactingAccessLogger
    from queue_service.web.api import STARTUP
    from queue_service.web.app import create_app

    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        log.error(
            "the service did not start: cannot listen on %s port %d: %s",
            settings.host,
            settings.port,
            _why(exc),
        )
        return 1
    app = create_app(settings, config, serve_while_starting=True)
    runner = web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,
        keepalive_timeout=settings.idle_seconds,
        shutdown_timeout=10,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    status = 0
    try:
        await runner.setup()  # starts the bring-up in the background
        site = web.SockSite(runner, sock)
        await site.start()
        print(banner(settings, config, sock.getsockname()), flush=True)
        bring_up = app[STARTUP].task
        assert bring_up is not None
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({bring_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set() and not bring_up.cancelled() and bring_up.exception() is not None:
            status = 1  # logged by the app (one line); nothing more to wait for
            stopping.cancel()
        else:
            await stopping
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        sock.close()
    return status


def banner(settings: Settings, config: AppConfig, address: tuple[Any, ...]) -> str:
    """What `run` prints once it listens: where the pages are, which database, which
    configuration, where the log goes."""
    from queue_service.settings import describe_database_url

    host, port = address[0], address[1]
    shown = host
    note = ""
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a description, not a bind
        shown, note = "127.0.0.1", f" (listening on every address, {host})"
    elif ":" in host:
        shown = f"[{host}]"
    url = f"http://{shown}:{port}"
    if settings.database_url is None:
        from queue_service.store.db import EmbeddedPostgres

        data_dir = settings.data_dir.resolve()
        database = (
            f"embedded PostgreSQL in {data_dir} "
            f"(its log: {EmbeddedPostgres(settings.data_dir).log_path})"
        )
    else:
        database = f"{describe_database_url(settings.database_url)} (DATABASE_URL)"
    services = sum(len(s.services) for s in config.sites.values())
    counters = sum(len(s.counters) for s in config.sites.values())
    return "\n".join(
        [
            f"Antrian is listening on {url}/{note}",
            f"  pages     {url}/ui/",
            f"  ready     {url}/readyz (503 with the reason until the database is up)",
            f"  database  {database}",
            f"  config    {settings.config_path.resolve()} ({len(config.sites)} site(s), "
            f"{services} services, {counters} counters)",
            f"  log       stderr, level {settings.log_level} (ANTRIAN_LOG_LEVEL)",
            "Ctrl-C stops it.",
        ]
    )
