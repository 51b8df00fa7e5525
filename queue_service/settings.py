"""Process settings from the environment and the command line, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


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


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


def _rate(env: Mapping[str, str], name: str, default: Rate) -> Rate:
    """`per_second/burst`, e.g. "1/10"."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        per_second, burst = raw.split("/")
        return Rate(float(per_second), int(burst))
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
class Settings:
    config_path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    # A server named by DATABASE_URL, or None for the embedded PostgreSQL in data_dir.
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path("var/pgdata")
    # Bearer token Prometheus must present on /metrics (None: /metrics is open).
    metrics_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 64 * 1024
    # Where the front-end pages are served from.
    pages_dir: Path = Path(__file__).resolve().parent.parent / "kiosk"
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

    @classmethod
    def from_env(cls, config_path: str | Path, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "config_path": Path(config_path),
            "host": env.get("ANTRIAN_HOST", "127.0.0.1"),
            "port": _count(env, "ANTRIAN_PORT", 8080),
            "database_url": env.get("DATABASE_URL") or None,
            "data_dir": Path(env.get("ANTRIAN_DATA_DIR", "var/pgdata")),
            "metrics_token": env.get("ANTRIAN_METRICS_TOKEN") or None,
            "log_level": env.get("ANTRIAN_LOG_LEVEL", "INFO").upper(),
            "rate_limits": rate_limits_from_env(env),
            "idle_seconds": _count(env, "ANTRIAN_IDLE_SECONDS", 30),
        }
        if env.get("ANTRIAN_PAGES_DIR"):
            values["pages_dir"] = Path(env["ANTRIAN_PAGES_DIR"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
