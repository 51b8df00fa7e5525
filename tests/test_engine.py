"""Engine housekeeping: idempotency answers are kept for their window, then forgotten."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from queue_service.domain.clock import ManualClock
from queue_service.engine import ANSWER_MEMORY, IDEMPOTENCY_WINDOW
from queue_service.web.keys import ENGINE
from tests.conftest import KIOSK, SITE


async def issue(client: TestClient, key: str) -> dict[str, str]:
    resp = await client.post(
        f"/api/v1/sites/{SITE}/tickets",
        json={"service": "KTP-EL"},
        headers={**KIOSK, "Idempotency-Key": key},
    )
    assert resp.status == 201
    return await resp.json()  # type: ignore[no-any-return]


async def test_answers_are_forgotten_after_the_window(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    engine = client.app[ENGINE]
    first = await issue(client, "old-key")
    assert (SITE, "old-key") in engine.answers
    clock.advance(IDEMPOTENCY_WINDOW.total_seconds() + 3600)  # Wednesday, 10:00 WITA
    await issue(client, "new-key")
    assert (SITE, "old-key") not in engine.answers
    assert (SITE, "new-key") in engine.answers
    conn = await asyncpg.connect(database_url)
    try:
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys")}
    finally:
        await conn.close()
    assert keys == {"new-key"}
    # Past its window a key is a new request: a new ticket on the new day.
    again = await issue(client, "old-key")
    assert again["id"] != first["id"]


async def test_an_answer_out_of_memory_is_fetched_from_the_database(
    client: TestClient, clock: ManualClock
) -> None:
    engine = client.app[ENGINE]
    first = await issue(client, "late-retry")
    clock.advance(ANSWER_MEMORY.total_seconds() + 60)
    await issue(client, "another")  # a commit prunes the answers held in memory
    assert (SITE, "late-retry") not in engine.answers
    assert (SITE, "late-retry") in engine.answer_keys
    again = await issue(client, "late-retry")
    assert (again["id"], again["number"]) == (first["id"], first["number"])
    resp = await client.post(
        f"/api/v1/sites/{SITE}/tickets",
        json={"service": "KTP-EL", "priority": "elderly"},
        headers={**KIOSK, "Idempotency-Key": "late-retry"},
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "idempotency_key_reused"
