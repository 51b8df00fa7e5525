"""The pages are served as files under /ui/ with safe headers, and each ticket has a QR code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import KIOSK, ROOT, SITE

PAGES = (
    "index.html",
    "kiosk.html",
    "counter.html",
    "board.html",
    "display.html",
    "status.html",
    "survey.html",
    "online.html",
)


async def test_root_and_ui_without_slash_redirect_to_the_landing_page(client: TestClient) -> None:
    for path in ("/", "/ui"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/ui/"


async def test_ui_serves_the_landing_page_with_no_cache_and_a_strict_policy(
    client: TestClient,
) -> None:
    resp = await client.get("/ui/")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "js/index.js" in await resp.text()


async def test_every_page_is_sent_with_the_shared_head_and_an_unchanged_one_is_answered_304(
    client: TestClient,
) -> None:
    head = (ROOT / "kiosk" / "page-head.html").read_text()
    for page in PAGES:
        first = await client.get(f"/ui/{page}")
        own = (ROOT / "kiosk" / page).read_text()
        assert await first.text() == head + own
        assert first.headers["Content-Type"] == "text/html; charset=utf-8"
        again = await client.get(f"/ui/{page}", headers={"If-None-Match": first.headers["ETag"]})
        assert again.status == 304
    assert (await client.get("/ui/page-head.html")).status == 404


async def test_an_unchanged_file_is_answered_304(client: TestClient) -> None:
    first = await client.get("/ui/css/app.css")
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/css")
    etag = first.headers["ETag"]
    again = await client.get("/ui/css/app.css", headers={"If-None-Match": etag})
    assert again.status == 304


@pytest.mark.parametrize("page", PAGES)
async def test_every_page_and_the_files_it_loads_are_served(client: TestClient, page: str) -> None:
    resp = await client.get(f"/ui/{page}")
    assert resp.status == 200
    html = await resp.text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not ref.startswith(("http:", "https:", "//")), f"{page} loads {ref} from outside"
        asset = await client.get(f"/ui/{ref}")
        assert asset.status == 200, ref


async def test_modules_are_served_as_javascript_and_import_only_local_files(
    client: TestClient,
) -> None:
    for path in sorted((ROOT / "kiosk" / "js").glob("*.js")):
        resp = await client.get(f"/ui/js/{path.name}")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
        source = path.read_text()
        for target in re.findall(r'from "([^"]+)"', source):
            assert target.startswith("./") and (path.parent / target).is_file(), target
        assert "http://" not in source and "https://" not in source


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../pyproject.toml",
        "/ui/%2e%2e/pyproject.toml",
        "/ui/js/%2e%2e/%2e%2e/README.md",
        "/ui/.hidden",
        "/ui/nope.html",
        "/ui/js/",
    ],
)
async def test_nothing_outside_the_pages_folder_or_hidden_is_served(
    client: TestClient, path: str
) -> None:
    resp = await client.get(path)
    assert resp.status == 404


async def test_ticket_qr_code_is_a_standalone_svg_of_the_status_page(client: TestClient) -> None:
    resp = await client.post(f"/api/v1/sites/{SITE}/tickets", json={"service": "KK"}, headers=KIOSK)
    ticket = await resp.json()
    qr = await client.get(f"/api/v1/tickets/{ticket['id']}/qr.svg")
    assert qr.status == 200 and qr.headers["Content-Type"].startswith("image/svg+xml")
    assert qr.headers["Cache-Control"].startswith("private")
    svg = await qr.text()
    # An <img> draws only an SVG that declares its namespace; a viewBox lets it scale.
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and "viewBox" in svg


async def test_qr_code_of_an_unknown_ticket_is_404(client: TestClient) -> None:
    resp = await client.get("/api/v1/tickets/no-such-ticket/qr.svg")
    assert resp.status == 404
    assert (await resp.json())["code"] == "unknown_ticket"


def test_pages_folder_is_where_the_settings_say() -> None:
    from queue_service.settings import Settings

    assert Settings(config_path=Path("x")).pages_dir.resolve() == (ROOT / "kiosk").resolve()
