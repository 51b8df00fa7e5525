"""The live stream (server-sent events): ids, resume without gaps, reset, redaction."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from queue_service.web.keys import HUB
from tests.conftest import KIOSK, SITE

BASE = f"/api/v1/sites/{SITE}"


async def next_message(resp: ClientResponse, timeout: float = 5.0) -> tuple[int | None, Any]:
    """Read one SSE message (skipping comments and the retry hint)."""
    event_id: int | None = None
    data: list[str] = []
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().rstrip("\n")
        if line == "":
            if data:
                return event_id, json.loads("\n".join(data))
            continue
        if line.startswith(":") or line.startswith("retry:"):
            continue
        name, _, value = line.partition(": ")
        if name == "id":
            event_id = int(value)
        elif name == "data":
            data.append(value)


async def issue(client: TestClient, service: str = "KTP-EL") -> dict[str, Any]:
    resp = await client.post(f"{BASE}/tickets", json={"service": service}, headers=KIOSK)
    assert resp.status == 201
    return await resp.json()  # type: ignore[no-any-return]


async def test_public_stream_carries_numbers_but_never_ticket_ids(client: TestClient) -> None:
    resp = await client.get(f"{BASE}/stream")
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    _, hello = await next_message(resp)
    assert hello["type"] == "hello"
    ticket = await issue(client)
    event_id, event = await next_message(resp)
    assert event["type"] == "ticket_issued" and event["number"] == ticket["number"]
    assert event_id == event["seq"] == ticket["seq"]
    assert "ticket_id" not in event and ticket["id"] not in json.dumps(event)
    resp.close()


async def test_staff_stream_carries_ticket_ids(client: TestClient) -> None:
    resp = await client.get(f"{BASE}/stream", params={"access_token": "demo-manager"})
    await next_message(resp)
    ticket = await issue(client)
    _, event = await next_message(resp)
    assert event["ticket_id"] == ticket["id"]
    resp.close()


async def test_reconnect_with_last_event_id_resumes_without_gaps(client: TestClient) -> None:
    first = await issue(client)
    missed = [await issue(client) for _ in range(3)]
    resp = await client.get(f"{BASE}/stream", headers={"Last-Event-ID": str(first["seq"])})
    got = [await next_message(resp) for _ in range(3)]
    assert [e["number"] for _, e in got] == [t["number"] for t in missed]
    live = await issue(client)
    _, event = await next_message(resp)
    assert event["number"] == live["number"]
    resp.close()


async def test_resume_from_before_the_buffer_gets_a_reset(client: TestClient) -> None:
    await issue(client)
    # As after a restart: events up to seq 10 came from replay and are not buffered, so a
    # client resuming from 3 must re-read the snapshot.
    hub = client.app[HUB]
    hub.seed(SITE, 10)
    resp = await client.get(f"{BASE}/stream", headers={"Last-Event-ID": "3"})
    _, event = await next_message(resp)
    assert event["type"] == "reset"
    resp.close()


async def test_bad_last_event_id_is_400(client: TestClient) -> None:
    resp = await client.get(f"{BASE}/stream", headers={"Last-Event-ID": "abc"})
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_last_event_id"


async def test_public_and_kiosk_streams_hide_priority_and_ids(client: TestClient) -> None:
    for params in ({}, {"access_token": "demo-kiosk"}):
        resp = await client.get(f"{BASE}/stream", params=params)
        await next_message(resp)
        r = await client.post(
            f"{BASE}/tickets", json={"service": "KTP-EL", "priority": "ibu_hamil"}, headers=KIOSK
        )
        ticket = await r.json()
        _, event = await next_message(resp)
        assert event["number"] == ticket["number"]
        assert "priority" not in event and "ticket_id" not in event and "source" not in event
        resp.close()


async def test_resume_from_an_id_ahead_of_the_server_gets_a_reset(client: TestClient) -> None:
    # As after a database restore: the display's last id is from a longer history.
    resp = await client.get(f"{BASE}/stream", headers={"Last-Event-ID": "100000"})
    _, event = await next_message(resp)
    assert event["type"] == "reset"
    resp.close()
