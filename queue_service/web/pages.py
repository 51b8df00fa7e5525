"""The front-end pages (`kiosk/`: plain HTML, CSS and JS modules, no build step) and the
ticket's QR code.

Routes: `/` and `/ui` redirect to `/ui/`; `/ui/` is the landing page (`index.html`);
`/ui/{path}` serves a file of the pages folder; `/api/v1/tickets/{id}/qr.svg` is the QR
code of a ticket's status page, for the kiosk's confirmation and the printed ticket.

A page's file holds only what is its own (its title, scripts, body): the head every page
shares (doctype, charset, viewport, icon, stylesheet) is written once, in `page-head.html`,
and sent before it.

Caching: the pages have no build step and so no content-hashed names, and a hall must see
an update without clearing caches on every screen. Every file is therefore sent with
`Cache-Control: no-cache` and a validator (ETag and Last-Modified; a page, an ETag of its
head and its own part): browsers keep it but ask each time, and an unchanged file costs a
304 on the hall's LAN.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import segno
from aiohttp import web

from queue_service.web.keys import ENGINE, SETTINGS

# Module scripts need a JavaScript type (browsers refuse others), so types are not left to
# the host's mimetypes database.
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".txt": "text/plain",
}

# Pages load nothing from elsewhere (halls are often offline); saying so also keeps an
# injected script or a framing page out.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def ui_no_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def ticket_qr(request: web.Request) -> web.Response:
    """An SVG QR code of the ticket's status page URL (kiosk confirmation, printed ticket)."""
    ticket_id = request.match_info["ticket"]
    request.app[ENGINE].ticket_site(ticket_id)  # 404 unless it is today's ticket
    url = f"{request.scheme}://{request.host}/ui/status.html#{ticket_id}"
    out = io.BytesIO()
    # A standalone image needs the SVG namespace (svg_inline leaves it out); a viewBox
    # instead of a fixed size lets every page draw it at its own size; light modules are
    # painted so the code scans on a tinted background too.
    segno.make(url, error="m").save(
        out, kind="svg", border=2, xmldecl=False, nl=False, omitsize=True, light="#fff"
    )
    svg = out.getvalue().decode()
    # The ticket id is a capability: private, and never stored by a shared cache.
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def _resolve(root: Path, tail: str) -> Path | None:
    """The file under `root` that `tail` names, or None (missing, hidden or outside root)."""
    parts = [p for p in tail.split("/") if p]
    if any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None
    path = root.joinpath(*parts) if parts else root
    try:
        path = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root):
        return None
    if path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


@functools.cache
def _root(pages_dir: Path) -> Path:
    return pages_dir.resolve()


PAGE_HEAD = "page-head.html"


def _html_page(request: web.Request, head: Path, page: Path) -> web.Response:
    """The shared head and the page's own part, as one document with an ETag of both."""
    body = head.read_bytes() + page.read_bytes()
    etag = hashlib.blake2b(body, digest_size=16).hexdigest()
    headers = {**PAGE_HEADERS, "ETag": f'"{etag}"'}
    if any(tag.value == etag for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)


async def page(request: web.Request) -> web.StreamResponse:
    """A file of the pages folder (`ANTRIAN_PAGES_DIR`); the folder itself is index.html."""
    root = _root(request.app[SETTINGS].pages_dir)
    head = root / PAGE_HEAD
    path = _resolve(root, request.match_info["path"])
    if path is None or path == head:
        raise web.HTTPNotFound()
    if path.suffix == ".html":
        return _html_page(request, head, path)
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    if content_type.startswith("text/") or content_type.endswith(("json", "xml")):
        content_type += "; charset=utf-8"
    headers = {**PAGE_HEADERS, "Content-Type": content_type}
    return web.FileResponse(path, headers=headers)
