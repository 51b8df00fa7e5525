"""The route table (web/routes.py) is what the service serves and documents: the router and
the OpenAPI document are made from it, its role checks and body types hold on the real app,
and the gaps the document once left (an empty transfer service, empty report dates, the
`starting` refusal, /readyz's fields) are closed."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from queue_service.domain.vocab import Role
from queue_service.web.api import SERVED_WHILE_STARTING
from queue_service.web.openapi import ERROR_CODES, openapi_document
from queue_service.web.routes import ROUTES
from queue_service.web.security import LIMITED_ROUTES
from queue_service.web.spec import Access
from tests.conftest import ADMIN, KIOSK, MANAGER, SITE, counter_auth

BASE = f"/api/v1/sites/{SITE}"
METHODS = ("get", "post", "put", "patch", "delete")


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    }


def test_the_documents_paths_methods_and_roles_are_the_route_tables() -> None:
    operations = _operations(openapi_document())
    documented = [route for route in ROUTES if route.documented]
    assert set(operations) == {(route.method, route.canonical) for route in documented}
    for route in documented:
        operation = operations[route.method, route.canonical]
        assert operation["operationId"] == route.operation_id
        assert set(operation.get("x-roles", ())) == set(route.roles), route.operation_id
        security: dict[Access, list[dict[str, Any]] | None] = {
            Access.ROLES: None,  # the document-wide bearer token
            Access.OPTIONAL: [{}, {"bearerAuth": []}],
            Access.PUBLIC: [],
        }
        assert operation.get("security") == security[route.access], route.operation_id
        if route.body is not None:
            schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema_ref["$ref"].endswith("/" + route.body.schema)
        assert ("429" in operation["responses"]) == (route.limit is not None)
    ids = [route.operation_id for route in ROUTES]
    assert len(ids) == len(set(ids))


async def test_every_route_the_router_serves_is_in_the_table_and_back(
    client: TestClient[Any, Any],
) -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == {(route.method, route.canonical) for route in ROUTES}


def test_the_limited_routes_are_the_tables() -> None:
    assert dict(LIMITED_ROUTES) == {
        (route.method, route.canonical): route.limit for route in ROUTES if route.limit
    }


def test_each_counter_actions_body_schema_is_its_fields_in_the_table_of_actions() -> None:
    from queue_service.domain.actions import ACTIONS

    document = openapi_document()
    schemas = document["components"]["schemas"]
    for action, spec in ACTIONS.items():
        operation = document["paths"][f"/api/v1/sites/{{site}}/counters/{{counter}}/{action}"]
        ref = operation["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[1]]
        assert set(schema.get("properties", {})) == {f.name for f in spec.fields}, action
        assert schema.get("required", []) == [f.name for f in spec.fields if f.required]
        for f in spec.fields:
            assert schema["properties"][f.name]["maxLength"] == f.max_length


# -- the role checks, from the table ---------------------------------------------------------


def _concrete(path: str) -> str:
    return path.replace("{site}", SITE).replace("{counter}", "loket-01")


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.access is Access.ROLES], ids=lambda r: r.operation_id
)
async def test_every_route_with_roles_wants_a_token_of_them_after_its_site_exists(
    client: TestClient[Any, Any], route: Any
) -> None:
    query = "?counter=loket-01" if route.counter is not None else ""
    path = _concrete(route.path) + query
    nowhere = path.replace(SITE, "nowhere", 1)
    resp = await client.request(route.method, nowhere, json={})
    assert resp.status == 404 and (await resp.json())["code"] == "unknown_site"
    resp = await client.request(route.method, path, json={})
    assert resp.status == 401 and (await resp.json())["code"] == "token_required"
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    tokens = {
        Role.KIOSK: KIOSK,
        Role.COUNTER: counter_auth("loket-01"),
        Role.MANAGER: MANAGER,
        Role.ADMIN: ADMIN,
    }
    for role, headers in tokens.items():
        resp = await client.request(route.method, path, json={}, headers=headers)
        body = await resp.json()
        if role in route.roles:
            assert body.get("code") != "role_not_allowed", (role, body)
        else:
            assert resp.status == 403 and body["code"] == "role_not_allowed", role
            assert body["details"]["allowed_roles"] == sorted(route.roles)


# -- the gaps the document left --------------------------------------------------------------


async def _held_ticket(client: TestClient[Any, Any]) -> str:
    directory = await (await client.get(BASE)).json()
    service = directory["services"][0]["code"]
    resp = await client.post(f"{BASE}/tickets", json={"service": service}, headers=KIOSK)
    assert resp.status == 201
    for action in ("open", "call-next"):
        resp = await client.post(f"{BASE}/counters/loket-01/{action}", json={}, headers=ADMIN)
        assert resp.status == 200, await resp.text()
    ticket: str = (await resp.json())["ticket"]["id"]
    return ticket


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [("transfer", {"service": ""}, "service"), ("call", {"ticket_id": ""}, "ticket_id")],
)
async def test_an_empty_required_field_of_a_counter_action_is_400_as_documented(
    client: TestClient[Any, Any], action: str, body: dict[str, str], field: str
) -> None:
    if action == "transfer":
        await _held_ticket(client)
    resp = await client.post(f"{BASE}/counters/loket-01/{action}", json=body, headers=ADMIN)
    data = await resp.json()
    assert resp.status == 400, data
    assert data["code"] == "invalid_command" and data["details"] == {"field": field}
    operation = openapi_document()["paths"][f"/api/v1/sites/{{site}}/counters/{{counter}}/{action}"]
    assert "`invalid_command`" in operation["post"]["responses"]["400"]["description"]


@pytest.mark.parametrize("report", ["report", "ikm"])
@pytest.mark.parametrize("query", ["from=", "to=", "from=&to=2026-11-23"])
async def test_empty_report_dates_are_refused_not_taken_for_the_default(
    client: TestClient[Any, Any], report: str, query: str
) -> None:
    resp = await client.get(f"{BASE}/{report}?{query}", headers=MANAGER)
    data = await resp.json()
    assert resp.status == 400, data
    assert data["code"] == "invalid_date"
    ok = await client.get(f"{BASE}/{report}", headers=MANAGER)  # absent: the default range
    assert ok.status == 200


def test_every_api_operation_but_the_document_documents_503_starting() -> None:
    assert ("starting", 503) in {(code, status) for code, status, _ in ERROR_CODES}
    document = openapi_document()
    assert "starting" in document["components"]["responses"]["ServiceUnavailable"]["description"]
    for (method, path), operation in _operations(document).items():
        starting = "`starting`" in operation["responses"].get("503", {}).get("description", "")
        expected = path.startswith("/api/v1/") and path not in SERVED_WHILE_STARTING
        assert starting == expected, (method, path)


def test_readyz_documents_every_field_it_answers() -> None:
    readiness = openapi_document()["components"]["schemas"]["Readiness"]
    assert set(readiness["properties"]) == {
        "status",
        "reason",
        "detail",
        "stage",
        "attempt",
        "problems",
    }
    assert readiness["required"] == ["status"]
    assert set(readiness["properties"]["stage"]["enum"]) >= {"database", "replay", "stopping"}
