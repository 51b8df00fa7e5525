"""Bearer-token access: roles kiosk, counter and survey (bound to counters), manager, admin.

Tokens are configured as SHA-256 hashes; a request's token is hashed and looked up (a
secret found valid once is remembered, per app, so later requests skip the hashing).
EventSource cannot send headers, so the stream alone also accepts `?access_token=`.

A route declared with roles (web/routes.py) is `guarded`: its site (and counter) must
exist, then the token must have one of the roles, for the site (and, bound to counters,
for the counter); the handler finds the token under `TOKEN`.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from queue_service.config import Token, hash_token
from queue_service.domain import errors
from queue_service.domain.vocab import COUNTER_ROLES, Role
from queue_service.web.errors import Forbidden, Handler, Unauthorized
from queue_service.web.keys import CONFIG, KNOWN_SECRETS, TOKEN, TOKENS
from queue_service.web.spec import CounterIn

STAFF = frozenset({Role.KIOSK, Role.COUNTER, Role.MANAGER, Role.ADMIN})
# Roles that see ticket ids (the snapshot, the staff stream): a kiosk stands in a public
# place, so it issues tickets but never learns other citizens' ids.
TICKET_STAFF = frozenset({Role.COUNTER, Role.MANAGER, Role.ADMIN})


def principal(request: web.Request, *, allow_query: bool = False) -> Token | None:
    """The token's owner, None without a token; 401 for a token that is not configured."""
    secret = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>'", code="invalid_token")
        secret = value.strip()
    elif allow_query:
        secret = request.query.get("access_token") or None
    if secret is None:
        return None
    known = request.app[KNOWN_SECRETS]
    token = known.get(secret)
    if token is None:
        token = request.app[TOKENS].get(hash_token(secret))
        if token is None:
            raise Unauthorized("this token is not valid", code="invalid_token")
        known[secret] = token
    return token


def authorize(
    request: web.Request,
    roles: Collection[Role],
    *,
    site: str | None = None,
    counter: str | None = None,
    allow_query: bool = False,
) -> Token:
    """The token's owner, if it has one of `roles` for `site` (and `counter`): else 401
    without a valid token, 403 with one that may not."""
    token = principal(request, allow_query=allow_query)
    if token is None:
        raise Unauthorized("this endpoint needs a bearer token", code="token_required")
    if token.role not in roles:
        raise Forbidden(
            f"role {token.role!r} may not do this",
            code="role_not_allowed",
            allowed_roles=sorted(roles),
        )
    if site is not None and not token.allows_site(site):
        raise Forbidden(f"this token is not valid for site {site!r}", code="site_not_allowed")
    if counter is not None and token.role in COUNTER_ROLES and counter not in token.counters:
        raise Forbidden(
            f"this token may not act on counter {counter!r}", code="counter_not_allowed"
        )
    return token


def guarded(handler: Handler, roles: Collection[Role], counter_in: CounterIn | None) -> Handler:
    """`handler` behind the role check: 404 for a site (or counter) that does not exist,
    answered before the token is looked at; then `authorize`."""

    async def guard(request: web.Request) -> web.StreamResponse:
        site_id = request.match_info["site"]
        site = request.app[CONFIG].sites.get(site_id)
        if site is None:
            raise errors.UnknownSite(f"site {site_id!r} does not exist", site=site_id)
        counter = None
        if counter_in is not None:
            if counter_in is CounterIn.PATH:
                counter = request.match_info["counter"]
            else:
                counter = request.query.get("counter", "")
            if counter not in site.counters:
                raise errors.UnknownCounter(
                    f"counter {counter!r} does not exist at {site_id!r}", counter=counter
                )
        request[TOKEN] = authorize(request, roles, site=site_id, counter=counter)
        return await handler(request)

    return guard
