"""The schema at start-up: versioned SQL migrations (`migrations/NNNN_name.sql`, the history
of the tables), applied in order, then the definitions computed from the tables
(`migrations/views.sql`: functions and the `ticket_visits` view, as they are now).

A numbered migration runs once (`schema_migrations`). The definitions are applied again
whenever `views.sql` differs from what the database last received (its SHA-256 in
`schema_definitions`), so an upgrade replaces them without a migration repeating them; an
unchanged file touches nothing (replacing a view waits for the queries reading it).
"""

from __future__ import annotations

import hashlib
import logging
import re
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
DEFINITIONS = "views.sql"
# Serialises concurrent start-ups against one database.
_LOCK_ID = 0x616E7472  # "antr"


def available() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("queue_service.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def _has_statements(sql: str) -> bool:
    """Whether the SQL holds more than comments (PostgreSQL answers an empty query with
    nothing, which the driver does not take)."""
    return any(line.strip() and not line.lstrip().startswith("--") for line in sql.splitlines())


def definitions() -> str:
    """The SQL of the definitions computed from the tables (`views.sql`)."""
    folder = resources.files("queue_service.store").joinpath("migrations")
    return folder.joinpath(DEFINITIONS).read_text("utf-8")


async def migrate(conn: asyncpg.Connection | PoolConnectionProxy) -> list[str]:
    """Apply every migration not yet applied, then the definitions if they changed; return
    the names of the files applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in available():
            if version in done:
                continue
            async with conn.transaction():
                if _has_statements(sql):  # else it says where its definitions went
                    await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("applied migration %s", name)
            applied_now.append(name)
        if await _define(conn):
            log.info("applied %s", DEFINITIONS)
            applied_now.append(DEFINITIONS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now


async def _define(conn: asyncpg.Connection | PoolConnectionProxy) -> bool:
    """Apply `views.sql` unless the database has it already; whether it was applied."""
    sql = definitions()
    digest = hashlib.sha256(sql.encode("utf-8")).hexdigest()
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_definitions ("
        " name text PRIMARY KEY, sha256 text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    stored = await conn.fetchval(
        "SELECT sha256 FROM schema_definitions WHERE name = $1", DEFINITIONS
    )
    if stored == digest:
        return False
    async with conn.transaction():
        await conn.execute(sql)
        await conn.execute(
            "INSERT INTO schema_definitions (name, sha256) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()",
            DEFINITIONS,
            digest,
        )
    return True
