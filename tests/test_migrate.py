"""The schema at start-up: numbered migrations as the history of the tables, the functions
and the ticket_visits view from one file (migrations/views.sql), applied when it changed."""

from __future__ import annotations

import re
import uuid

import asyncpg

from queue_service.store.migrate import DEFINITIONS, available, definitions, migrate

DEFINED = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(VIEW|FUNCTION)\s+(\w+)", re.I | re.M)


def test_views_and_functions_are_defined_once_in_the_definitions_file() -> None:
    assert {m[2] for m in DEFINED.findall(definitions())} == {
        "visits_of",
        "counter_spans_of",
        "multirange_seconds",
        "ticket_visits",
        "booking_visits_of",
    }
    for _, name, sql in available():
        assert not DEFINED.findall(sql), f"{name} defines a view or function again"


async def test_an_unchanged_definitions_file_is_not_applied_again(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrate(conn)
        assert first[-1] == DEFINITIONS and len(first) == len(available()) + 1
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_changed_definitions_are_replaced_and_keep_their_grants(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        role = f"reader_{uuid.uuid4().hex[:12]}"  # roles are the server's, not the database's
        await conn.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            await conn.execute(f"GRANT SELECT ON ticket_visits TO {role}")
            # What an upgrade finds: the database received another version of the file.
            await conn.execute("UPDATE schema_definitions SET sha256 = 'older'")
            assert await migrate(conn) == [DEFINITIONS]
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'ticket_visits', 'SELECT')", role
            )
            assert await conn.fetchval("SELECT count(*) FROM ticket_visits") == 0
        finally:
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()
