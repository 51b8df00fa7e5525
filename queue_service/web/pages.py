"""The front-end pages (kiosk/, plain HTML/CSS/JS, no build step) and the ticket QR code."""

from __future__ import annotations

from aiohttp import web

from queue_service.web.keys import ENGINE, SETTINGS

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


@routes.get("/api/v1/tickets/{ticket}/qr.svg")
async def ticket_qr(request: web.Request) -> web.Response:
    """An SVG QR code of the ticket's status page URL (for the kiosk's confirmation)."""
    import segno

    ticket_id = request.match_info["ticket"]
    engine = request.app[ENGINE]
    for site_id in engine.config.sites:
        if ticket_id in engine.site_state(site_id).tickets:
            break
    else:
        from queue_service.domain.errors import UnknownTicket

        raise UnknownTicket("no such ticket today", ticket=ticket_id[:8] + "...")
    url = f"{request.scheme}://{request.host}/ui/status.html#{ticket_id}"
    svg = segno.make(url, error="m").svg_inline(scale=6, border=2)
    return web.Response(text=svg, content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=86400"})


def add_static(app: web.Application) -> None:
    pages = app[SETTINGS].pages_dir
    if pages.is_dir():
        app.router.add_static("/ui/", pages, show_index=False, append_version=False)
