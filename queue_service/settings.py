"""Process settings from the environment and the command line, validated once at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from queue_service.errors import AntrianError


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` tokens are added each second, up to `burst` (the bucket's size)."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The configured limits. Defaults: a kiosk issues one ticket per citizen (a few a
    minute at most); a hall's kiosks or citizens' phones may share one address (NAT, a
    carrier's CGNAT), so the per-address limits are several times a single client's."""

    issue_per_token: Rate = Rate(1.0, 10)
    issue_per_address: Rate = Rate(5.0, 30)
    public_per_address: Rate = Rate(20.0, 100)
    max_keys: int = 10_000  # buckets kept per scope (memory: ~200 bytes each)
    # Open streams (SSE) at once: per address (a hall's screens behind one NAT are a few
    # dozen), and in all (each costs a descriptor and ~10 KB; see tests/test_hostile.py).
    streams_per_address: int = 50
    streams_total: int = 5000


class SettingsError(AntrianError, ValueError, code="invalid_settings"):
    """An environment variable (or a command-line option) has a value the service cannot
    use. Also a ValueError: the option parsers report it as a bad value."""


def _rate(env: Mapping[str, str], name: str, default: Rate) -> Rate:
    """`per_second/burst`, e.g. "1/10"."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        per_second, burst = raw.split("/")
        rate = Rate(float(per_second), int(burst))
        if not math.isfinite(rate.per_second):
            raise ValueError(per_second)
        return rate
    except ValueError:
        raise SettingsError(
            f'{name}={raw!r}: give tokens per second and the burst, e.g. "1/10" (both above 0)'
        ) from None


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={raw!r}: give a whole number above 0")
    return value


def rate_limits_from_env(env: Mapping[str, str]) -> RateLimits | None:
    """The rate limits `ANTRIAN_RATE_*` ask for; None when `ANTRIAN_RATE_LIMITS` is off."""
    switch = env.get("ANTRIAN_RATE_LIMITS", "on").strip().lower()
    if switch in ("off", "0", "false", "no"):
        return None
    if switch not in ("on", "1", "true", "yes"):
        raise SettingsError(f"ANTRIAN_RATE_LIMITS={switch!r}: give on or off")
    d = RateLimits()
    return RateLimits(
        issue_per_token=_rate(env, "ANTRIAN_RATE_ISSUE_PER_KIOSK", d.issue_per_token),
        issue_per_address=_rate(env, "ANTRIAN_RATE_ISSUE_PER_ADDRESS", d.issue_per_address),
        public_per_address=_rate(env, "ANTRIAN_RATE_PUBLIC_PER_ADDRESS", d.public_per_address),
        streams_per_address=_count(env, "ANTRIAN_STREAMS_PER_ADDRESS", d.streams_per_address),
        streams_total=_count(env, "ANTRIAN_STREAMS_TOTAL", d.streams_total),
    )


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where and how notices are delivered (queue_service/webhook.py, docs/webhooks.md).
    Attempt n (1, 2, ...) that fails is retried after a random pause of up to
    min(backoff_cap, backoff_base * 2^(n-1)) seconds ("full jitter"); the last of
    `max_attempts` that fails gives the notice up."""

    # Never in the repr: a URL may carry a user and password, and a gateway's token.
    url: str = field(repr=False)
    secret: str = field(repr=False)
    timeout_seconds: float = 10.0  # one attempt, connecting to the last byte of the answer
    backoff_base: float = 5.0
    backoff_cap: float = 15 * 60.0
    max_attempts: int = 12
    poll_seconds: float = 2.0  # looks for due rows this often when not woken
    batch: int = 50  # rows claimed at a time
    concurrency: int = 8  # attempts in flight at once
    retention_days: int = 7  # delivered and failed rows are deleted this long after

    def __post_init__(self) -> None:
        if (
            min(self.timeout_seconds, self.backoff_base, self.backoff_cap, self.poll_seconds) <= 0
            or min(self.max_attempts, self.batch, self.concurrency, self.retention_days) < 1
            or self.backoff_cap < self.backoff_base
        ):
            raise ValueError("webhook settings need positive times and counts, cap >= base")

    @property
    def target(self) -> str:
        """The URL without its user, password, query and fragment: for logs."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        port = f":{parts.port}" if parts.port is not None else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(f"{name}={raw!r}: give a number of seconds above 0")
    return value


def webhook_from_env(env: Mapping[str, str]) -> WebhookSettings | None:
    """The webhook `ANTRIAN_WEBHOOK_*` asks for; None when ANTRIAN_WEBHOOK_URL is unset
    (no notices are delivered). The secret is required with a URL, and never echoed."""
    url = _get(env, "ANTRIAN_WEBHOOK_URL")
    secret = env.get("ANTRIAN_WEBHOOK_SECRET", "")
    if url is None:
        if secret.strip():
            raise SettingsError(
                "ANTRIAN_WEBHOOK_SECRET is set but ANTRIAN_WEBHOOK_URL is not: give the URL "
                "notices are posted to, or unset the secret"
            )
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        usable = usable and parts.port != 0  # reading .port checks the port's range
    except ValueError:
        usable = False
    if not usable:
        raise SettingsError(
            "ANTRIAN_WEBHOOK_URL: give an http:// or https:// URL with a host, "
            "e.g. https://gateway.example.go.id/antrian"
        )
    if len(secret) < 16 or secret != secret.strip():
        raise SettingsError(
            "ANTRIAN_WEBHOOK_SECRET: give the shared secret the receiver checks signatures "
            "with, at least 16 characters, no surrounding spaces (e.g. `openssl rand -hex 32`)"
        )
    d = WebhookSettings(url=url, secret=secret)
    base = _seconds(env, "ANTRIAN_WEBHOOK_BACKOFF_BASE_SECONDS", d.backoff_base)
    cap = _seconds(env, "ANTRIAN_WEBHOOK_BACKOFF_CAP_SECONDS", d.backoff_cap)
    if cap < base:
        raise SettingsError(
            f"ANTRIAN_WEBHOOK_BACKOFF_CAP_SECONDS={cap:g} is below the base pause "
            f"({base:g} s): give a cap at least as long"
        )
    return WebhookSettings(
        url=url,
        secret=secret,
        timeout_seconds=_seconds(env, "ANTRIAN_WEBHOOK_TIMEOUT_SECONDS", d.timeout_seconds),
        backoff_base=base,
        backoff_cap=cap,
        max_attempts=_count(env, "ANTRIAN_WEBHOOK_MAX_ATTEMPTS", d.max_attempts),
    )


DEFAULT_DATA_DIR = Path("var/pgdata")
DEFAULT_PAGES_DIR = Path(__file__).resolve().parent.parent / "kiosk"


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    # A server named by DATABASE_URL, or None for the embedded PostgreSQL in data_dir.
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = DEFAULT_DATA_DIR
    # Bearer token Prometheus must present on /metrics (None: /metrics is open).
    metrics_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 64 * 1024
    # Where the front-end pages are served from.
    pages_dir: Path = DEFAULT_PAGES_DIR
    log_level: str = "INFO"
    # Rate limits on ticket issuing and the public endpoints (web/security.py). On for the
    # service (ANTRIAN_RATE_LIMITS=off to disable); None (off) for apps built in code
    # (tests, benchmarks) unless they ask for it.
    rate_limits: RateLimits | None = None
    # A connection that has not sent a complete request for this long is closed: an idle
    # keep-alive connection, and also one that never finishes its headers (a slowloris
    # client), since aiohttp's timer runs from the connection's start. A request being
    # handled (a live stream, say) is never cut by it.
    idle_seconds: int = 30
    # Where notices to citizens are posted (ANTRIAN_WEBHOOK_URL); None: not delivered.
    webhook: WebhookSettings | None = None

    @classmethod
    def from_env(
        cls,
        config_path: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        host: str | None = None,
        port: int | None = None,
        data_dir: Path | None = None,
    ) -> Settings:
        """The settings the environment (`os.environ` unless `env` is given) and the command
        line's options ask for; a value that cannot be used raises SettingsError naming the
        variable (or option) and what to give instead."""
        env = os.environ if env is None else env
        data = Path(env["ANTRIAN_DATA_DIR"]) if _get(env, "ANTRIAN_DATA_DIR") else None
        pages = Path(env["ANTRIAN_PAGES_DIR"]) if _get(env, "ANTRIAN_PAGES_DIR") else None
        return cls(
            config_path=Path(config_path),
            host=_host(host, "--host") if host is not None else _host_env(env),
            port=_port(str(port), "--port") if port is not None else _port_env(env),
            database_url=_database_url(env),
            data_dir=(
                _directory(data_dir, "--data-dir", must_exist=False)
                if data_dir is not None
                else _directory(data, "ANTRIAN_DATA_DIR", must_exist=False)
                if data is not None
                else DEFAULT_DATA_DIR
            ),
            metrics_token=_metrics_token(env),
            pages_dir=(
                _directory(pages, "ANTRIAN_PAGES_DIR", must_exist=True)
                if pages is not None
                else DEFAULT_PAGES_DIR
            ),
            log_level=_log_level(env),
            rate_limits=rate_limits_from_env(env),
            idle_seconds=_count(env, "ANTRIAN_IDLE_SECONDS", 30),
            webhook=webhook_from_env(env),
        )


def _get(env: Mapping[str, str], name: str) -> str | None:
    """A variable's value; None when unset or blank (a blank value means the default)."""
    raw = env.get(name)
    return raw if raw is not None and raw.strip() else None


def _host(raw: str | None, name: str) -> str:
    if raw is None:
        return "127.0.0.1"
    host = raw.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise SettingsError(f"{name}={raw!r}: give an address or host name to listen on")
    return host


def _host_env(env: Mapping[str, str]) -> str:
    return _host(_get(env, "ANTRIAN_HOST"), "ANTRIAN_HOST")


def _port_env(env: Mapping[str, str]) -> int:
    return _port(_get(env, "ANTRIAN_PORT"), "ANTRIAN_PORT")


def _port(raw: str | None, name: str) -> int:
    if raw is None:
        return 8080
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SettingsError(
            f"{name}={raw!r}: give a port number from 0 to 65535 (0: any free port)"
        )
    return port


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(env: Mapping[str, str]) -> str:
    raw = _get(env, "ANTRIAN_LOG_LEVEL")
    if raw is None:
        return "INFO"
    level = raw.strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise SettingsError(f"ANTRIAN_LOG_LEVEL={raw!r}: give one of {', '.join(LOG_LEVELS)}")
    return level


def _metrics_token(env: Mapping[str, str]) -> str | None:
    raw = env.get("ANTRIAN_METRICS_TOKEN")
    if not raw:
        return None
    if raw != raw.strip() or any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        # The bearer token a scraper sends is read without its surrounding spaces, and a
        # header cannot carry control characters: such a token could never be matched.
        raise SettingsError(
            "ANTRIAN_METRICS_TOKEN: the token starts or ends with a space or holds a control "
            "character, so no scraper could send it; remove them"
        )
    return raw


def _directory(path: Path, name: str, *, must_exist: bool) -> Path:
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name}={str(path)!r}: not a directory")
    if must_exist and not path.is_dir():
        raise SettingsError(f"{name}={str(path)!r}: no such directory")
    return path


DATABASE_URL_FORM = "postgresql://user:password@host:port/database"
_PASSWORD_PARAMS = {"password", "sslpassword"}


def _database_url(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL, checked as far as it can be without connecting. Never echoed back with
    its password: messages show `describe_database_url`'s form."""
    raw = env.get("DATABASE_URL")
    if not raw or not raw.strip():
        return None
    url = raw.strip()
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        shown = f"{scheme}://" if sep else "a value that is not a URL"
        raise SettingsError(
            f"DATABASE_URL: give a PostgreSQL URL, {DATABASE_URL_FORM} (got {shown})"
        )
    try:
        hosts = _hosts(url)
    except ValueError as exc:  # urlsplit: brackets that do not close, say
        raise SettingsError(f"DATABASE_URL: not a URL ({exc}); give {DATABASE_URL_FORM}") from None
    for host in hosts:
        _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if colon and port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise SettingsError(
                f"DATABASE_URL={describe_database_url(url)!r}: the port {port!r} is not a "
                "port number from 1 to 65535"
            )
    return url


def _hosts(url: str) -> list[str]:
    netloc = urlsplit(url).netloc
    hosts = netloc.rpartition("@")[2]
    return [h for h in hosts.split(",") if h]


def describe_database_url(url: str) -> str:
    """The URL without its password (in the user part or the query), for logs and banners."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be read)"
    user, at, hosts = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _PASSWORD_PARAMS],
        safe="/",
    )
    netloc = f"{user}@{hosts}" if at and user else hosts
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{shown}?{query}" if query else shown
