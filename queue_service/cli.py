"""Command line: `queue-service run | check-config | hash-token | simulate | report`."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from queue_service.config import ConfigError, hash_token, load_config
from queue_service.reports import cli as reports_cli
from queue_service.simulate import cli as simulate_cli

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
        secret = args.token or getpass.getpass("token: ")
        print(hash_token(secret))
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from queue_service.settings import Settings, SettingsError
    from queue_service.web.access_log import DropBadRequests, RedactingAccessLogger
    from queue_service.web.app import create_app

    try:
        settings = Settings.from_env(
            args.config,
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir) if args.data_dir else None,
        )
    except SettingsError as exc:
        print(f"the service did not start: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.server").addFilter(DropBadRequests())
    try:
        config = load_config(settings.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        log.error(
            "the service did not start: %d problem(s) in the configuration", len(exc.problems)
        )
        return 1
    where = (
        "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    )
    log.info("starting Antrian on http://%s:%d/ with %s", settings.host, settings.port, where)
    web.run_app(
        create_app(settings, config),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=10,
        keepalive_timeout=settings.idle_seconds,
    )
    return 0
