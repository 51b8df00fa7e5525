"""Process settings from the environment and the command line, validated once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


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
    # service (ANTRIAN_RATE_LIMITS=off to disable); off for apps built in code (tests,
    # benchmarks) unless they ask for it.
    rate_limits: bool = False

    @classmethod
    def from_env(cls, config_path: str | Path, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "config_path": Path(config_path),
            "host": env.get("ANTRIAN_HOST", "127.0.0.1"),
            "port": int(env.get("ANTRIAN_PORT", "8080")),
            "database_url": env.get("DATABASE_URL") or None,
            "data_dir": Path(env.get("ANTRIAN_DATA_DIR", "var/pgdata")),
            "metrics_token": env.get("ANTRIAN_METRICS_TOKEN") or None,
            "log_level": env.get("ANTRIAN_LOG_LEVEL", "INFO").upper(),
            "rate_limits": env.get("ANTRIAN_RATE_LIMITS", "on").strip().lower()
            not in ("off", "0", "false", "no"),
        }
        if env.get("ANTRIAN_PAGES_DIR"):
            values["pages_dir"] = Path(env["ANTRIAN_PAGES_DIR"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
