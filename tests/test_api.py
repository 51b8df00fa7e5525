"""The HTTP API on a real PostgreSQL: tickets, counter actions, errors, idempotency, access."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from queue_service.web.app import create_app
from tests.conftest import (
    ADMIN,
    KIOSK,
    MANAGER,
    SITE,
    auth,
    counter_auth,
    fetch,
    one_queue_hall,
)

BASE = f"/api/v1/sites/{SITE}"


async def issue(
    client: TestClient, service: str = "KTP-EL", *, key: str | None = None, **extra: Any
) -> dict[str, Any]:
    headers = dict(KIOSK)
    if key:
        headers["Idempotency-Key"] = key
    resp = await client.post(f"{BASE}/tickets", json={"service": service, **extra}, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def act(
    client: TestClient,
    counter: str,
    action: str,
    body: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> dict[str, Any]:
    resp = await client.post(
        f"{BASE}/counters/{counter}/{action}", json=body or {}, headers=counter_auth(counter)
    )
    data = await resp.json()
    assert resp.status == status, data
    return data  # type: ignore[no-any-return]


async def test_issue_ticket_returns_number_position_and_status_link(client: TestClient) -> None:
    first = await issue(client)
    second = await issue(client)
    assert first["number"] == "A001" and second["number"] == "A002"
    assert second["people_ahead"] == 1 and second["position"] == 2
    status = await (await client.get(f"/api/v1/tickets/{second['id']}")).json()
    assert status["state"] == "waiting" and status["people_ahead"] == 1


async def test_full_visit_through_the_api(client: TestClient) -> None:
    ticket = await issue(client)
    await act(client, "loket-01", "open")
    called = await act(client, "loket-01", "call-next")
    assert called["ticket"]["number"] == ticket["number"]
    assert called["counter"]["ticket"]["state"] == "called"
    recalled = await act(client, "loket-01", "recall")
    assert recalled["ticket"]["calls"] == 2
    await act(client, "loket-01", "start")
    done = await act(client, "loket-01", "finish", {"outcome": "served"})
    assert done["ticket"]["state"] == "done" and done["counter"]["served_today"] == 1
    snap = await (await client.get(f"{BASE}/snapshot", headers=MANAGER)).json()
    ktp = next(s for s in snap["services"] if s["code"] == "KTP-EL")
    assert ktp["called_today"] == 1 and ktp["waiting"] == 0


async def test_same_idempotency_key_gives_the_same_ticket(client: TestClient) -> None:
    key = str(uuid.uuid4())
    first = await issue(client, key=key)
    again = await issue(client, key=key)
    assert again == first
    snap = await (await client.get(f"{BASE}/snapshot", headers=MANAGER)).json()
    assert next(s for s in snap["services"] if s["code"] == "KTP-EL")["issued_today"] == 1


async def test_concurrent_retries_with_one_key_give_one_ticket(client: TestClient) -> None:
    key = str(uuid.uuid4())
    results = await asyncio.gather(*(issue(client, key=key) for _ in range(10)))
    assert len({r["id"] for r in results}) == 1
    snap = await (await client.get(f"{BASE}/snapshot", headers=MANAGER)).json()
    assert next(s for s in snap["services"] if s["code"] == "KTP-EL")["issued_today"] == 1


async def test_idempotency_key_reused_with_another_body_is_409(client: TestClient) -> None:
    key = str(uuid.uuid4())
    await issue(client, key=key)
    resp = await client.post(
        f"{BASE}/tickets", json={"service": "KK"}, headers={**KIOSK, "Idempotency-Key": key}
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "idempotency_key_reused"


async def test_the_idempotency_hash_is_pinned_so_a_retry_across_an_upgrade_still_matches(
    client: TestClient, database_url: str
) -> None:
    """The stored request hash is SHA-256 of "METHOD path", a newline and the body in the
    standard library's canonical JSON (keys sorted, no spaces, ASCII only): a
    change of encoder must not change it, or retries sent across an upgrade would be 409."""
    import hashlib

    key = str(uuid.uuid4())
    body = '{ "source" : "reception", "service": "KTP-EL",  "priority": "lansia" }'
    resp = await client.post(
        f"{BASE}/tickets",
        data=body,
        headers={**KIOSK, "Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert resp.status == 201, await resp.text()
    canonical = '{"priority":"lansia","service":"KTP-EL","source":"reception"}'
    expected = hashlib.sha256(f"POST {BASE}/tickets\n{canonical}".encode()).hexdigest()
    [(stored,)] = await fetch(
        database_url, "SELECT request_hash FROM idempotency_keys WHERE key = $1", key
    )
    assert stored == expected


async def test_twenty_counters_calling_at_once_on_one_queue_never_share_a_ticket(
    aiohttp_client: Any, settings: Any, clock: Any
) -> None:
    config = one_queue_hall(counters=20)
    client = await aiohttp_client(create_app(settings, config, clock))
    base = "/api/v1/sites/hall"
    counters = [f"c{n:02d}" for n in range(20)]
    for c in counters:
        assert (await client.post(f"{base}/counters/{c}/open", headers=ADMIN)).status == 200
    for _ in range(30):
        resp = await client.post(f"{base}/tickets", json={"service": "Q"}, headers=ADMIN)
        assert resp.status == 201
    for _round in range(3):
        results = await asyncio.gather(
            *(client.post(f"{base}/counters/{c}/call-next", headers=ADMIN) for c in counters)
        )
        bodies = [await r.json() for r in results]
        held = [b["ticket"]["id"] for r, b in zip(results, bodies, strict=True) if r.status == 200]
        assert len(held) == len(set(held))
        refused = {b["code"] for r, b in zip(results, bodies, strict=True) if r.status != 200}
        assert refused <= {"queue_empty"}
        assert len(held) == min(20, 30 - 20 * _round) if _round < 2 else not held
        await asyncio.gather(
            *(client.post(f"{base}/counters/{c}/finish", headers=ADMIN) for c in counters)
        )


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", KIOSK, 400, "invalid_json"),
        (b"[1, 2]", KIOSK, 400, "invalid_json"),
        (b'{"service": 7}', KIOSK, 400, "invalid_field"),
        (b'{"service": "KTP-EL", "nik": "6371010101010001"}', KIOSK, 400, "unknown_field"),
        (b"{}", KIOSK, 400, "missing_field"),
        (b'{"service": "NOPE"}', KIOSK, 404, "unknown_service"),
        (b'{"service": "KTP-EL", "priority": "vip"}', KIOSK, 400, "invalid_command"),
        (b'{"service": "KTP-EL"}', {}, 401, "token_required"),
        (b'{"service": "KTP-EL"}', auth("wrong"), 401, "invalid_token"),
        (b'{"service": "KTP-EL"}', counter_auth("loket-01"), 403, "role_not_allowed"),
        (b"x" * (70 * 1024), KIOSK, 413, "body_too_large"),
    ],
)
async def test_bad_ticket_requests_get_documented_errors(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    resp = await client.post(
        f"{BASE}/tickets", data=body, headers={**headers, "Content-Type": "application/json"}
    )
    data = await resp.json()
    assert resp.status == status, data
    assert data["code"] == code
    assert set(data) == {"code", "message", "details"}


async def test_unknown_site_counter_ticket_and_action_are_404(client: TestClient) -> None:
    cases = [
        (client.get("/api/v1/sites/nowhere/snapshot", headers=ADMIN), "unknown_site"),
        (client.post(f"{BASE}/counters/loket-99/open", json={}, headers=ADMIN), "unknown_counter"),
        (client.get("/api/v1/tickets/doesnotexist"), "unknown_ticket"),
        (client.post(f"{BASE}/counters/loket-01/dance", json={}, headers=ADMIN), "not_found"),
        (client.get("/api/v1/nothing-here"), "not_found"),
    ]
    for request, code in cases:
        resp = await request
        assert resp.status == 404
        assert (await resp.json())["code"] == code


async def test_invalid_transitions_are_409(client: TestClient) -> None:
    data = await act(client, "loket-01", "call-next", status=409)
    assert data["code"] == "counter_not_open"
    await act(client, "loket-01", "open")
    assert (await act(client, "loket-01", "call-next", status=409))["code"] == "queue_empty"
    assert (await act(client, "loket-01", "finish", status=409))["code"] == "invalid_transition"
    await issue(client)
    await act(client, "loket-01", "call-next")
    assert (await act(client, "loket-01", "no-show", status=409))["code"] == "no_show_too_early"
    assert (await act(client, "loket-01", "close", status=409))["code"] == "counter_busy"


async def test_counter_token_cannot_act_on_another_counter(client: TestClient) -> None:
    resp = await client.post(
        f"{BASE}/counters/loket-02/open", json={}, headers=counter_auth("loket-01")
    )
    assert resp.status == 403
    assert (await resp.json())["code"] == "counter_not_allowed"


async def test_public_display_and_status_show_no_ticket_ids(client: TestClient) -> None:
    ticket = await issue(client)
    await act(client, "loket-01", "open")
    await act(client, "loket-01", "call-next")
    text = await (await client.get(f"{BASE}/display")).text()
    assert ticket["number"] in text and ticket["id"] not in text
    directory = await (await client.get(f"{BASE}")).text()
    assert ticket["id"] not in directory
    assert (await client.get(f"{BASE}/snapshot")).status == 401


async def test_citizen_can_cancel_own_waiting_ticket(client: TestClient) -> None:
    ticket = await issue(client)
    resp = await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", json={})
    assert resp.status == 200 and (await resp.json())["state"] == "cancelled"
    again = await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", json={})
    assert again.status == 409


async def test_health_ready_and_openapi(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await (await client.get("/readyz")).json())["status"] == "ready"
    doc = await (await client.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path is None or route.method == "HEAD" or path.startswith("/ui"):
            continue  # /ui/ serves the static pages, not part of the API
        assert path in paths, path
        assert route.method.lower() in paths[path], (route.method, path)


async def test_deeply_nested_json_is_400_not_500(client: TestClient) -> None:
    body = b"[" * 20000 + b"]" * 20000
    resp = await client.post(
        f"{BASE}/tickets", data=body[:60000], headers={**KIOSK, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_json"


async def test_kiosk_token_never_sees_other_citizens_ticket_ids(client: TestClient) -> None:
    ticket = await issue(client)
    resp = await client.get(f"{BASE}/snapshot", headers=KIOSK)
    assert resp.status == 403
    assert (await resp.json())["code"] == "role_not_allowed"
    assert ticket["id"] not in await (await client.get(f"{BASE}/display", headers=KIOSK)).text()


async def test_a_stalled_database_answers_503_instead_of_hanging(
    client: TestClient, database_url: str
) -> None:
    import asyncpg

    from queue_service.web.keys import STORE

    client.app[STORE].commit_timeout = 1.0
    await issue(client)
    blocker = await asyncpg.connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE ticket_events IN ACCESS EXCLUSIVE MODE")
        resp = await asyncio.wait_for(
            client.post(
                f"{BASE}/tickets",
                json={"service": "KTP-EL"},
                headers={**KIOSK, "Idempotency-Key": "stalled"},
            ),
            timeout=10,
        )
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["code"] == "database_unavailable"
        await tx.rollback()
    finally:
        await blocker.close()
    for _ in range(50):
        resp = await client.post(
            f"{BASE}/tickets",
            json={"service": "KTP-EL"},
            headers={**KIOSK, "Idempotency-Key": "stalled"},
        )
        if resp.status == 201:
            break
        await asyncio.sleep(0.2)
    assert resp.status == 201
    assert (await resp.json())["number"] == "A002"


async def test_the_issue_answer_shows_the_estimate_stored_with_the_ticket(
    client: TestClient, database_url: str
) -> None:

    for counter in ("loket-01", "loket-02"):
        await act(client, counter, "open")
    answers = [await issue(client) for _ in range(4)]
    rows = await fetch(
        database_url,
        "SELECT ticket_id, (data->>'estimated_wait_seconds')::float8 AS estimate"
        " FROM ticket_events WHERE type = 'ticket_issued'",
    )
    stored = {r["ticket_id"]: r["estimate"] for r in rows}
    assert len(stored) == 4
    for answer in answers:
        # What the citizen is told is what is held to account when the ticket is called.
        assert answer["estimated_wait_seconds"] == stored[answer["id"]]
    assert answers[-1]["estimated_wait_seconds"] > answers[0]["estimated_wait_seconds"]


async def test_text_postgres_cannot_store_is_refused_in_any_json_encoding(
    client: TestClient,
) -> None:
    await act(client, "loket-01", "open")
    for body in (
        b'{"reason": "a\\u0000b"}',
        b'{"reason": "x\\udb3ey"}',
        '{"reason": "a\\u0000b"}'.encode("utf-16"),  # json.loads reads UTF-16 too
        '{"reason": "x\\udb3ey"}'.encode("utf-32"),
    ):
        resp = await client.post(
            f"{BASE}/counters/loket-01/pause",
            data=body,
            headers={**counter_auth("loket-01"), "Content-Type": "application/json"},
        )
        assert resp.status == 400, body
        assert (await resp.json())["code"] == "invalid_json"
    ok = await act(client, "loket-01", "pause", {"reason": "istirahat"})
    assert ok["counter"]["state"] == "paused"


async def test_the_services_own_device_keys_are_refused_from_clients(client: TestClient) -> None:
    for key in ("device:disp-1:42", "keypad:keypads:1:N:42:0a1b2c3d"):
        resp = await client.post(
            f"{BASE}/tickets", json={"service": "KTP-EL"}, headers={**KIOSK, "Idempotency-Key": key}
        )
        assert resp.status == 400
        assert (await resp.json())["code"] == "invalid_idempotency_key"


async def test_only_secrets_found_valid_are_remembered(client: TestClient) -> None:
    from queue_service.web.keys import KNOWN_SECRETS

    for n in range(5):
        resp = await client.post(
            f"{BASE}/tickets", json={"service": "KTP-EL"}, headers=auth(f"wrong-{n}")
        )
        assert resp.status == 401
    await issue(client)
    await issue(client)
    assert set(client.app[KNOWN_SECRETS]) == {"demo-kiosk"}
