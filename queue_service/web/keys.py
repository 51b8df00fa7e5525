"""Typed application keys: every shared resource of the app lives under one of these."""

from __future__ import annotations

from aiohttp import web

from queue_service.config import AppConfig, Token
from queue_service.domain.clock import Clock
from queue_service.engine import Engine
from queue_service.exposition import Exposition
from queue_service.settings import Settings
from queue_service.store.event_store import EventStore
from queue_service.stream import StreamHub

SETTINGS = web.AppKey("settings", Settings)
CONFIG = web.AppKey("config", AppConfig)
CLOCK = web.AppKey("clock", Clock)
STORE = web.AppKey("store", EventStore)
ENGINE = web.AppKey("engine", Engine)
HUB = web.AppKey("hub", StreamHub)
TOKENS = web.AppKey("tokens", dict[str, Token])
# Secrets already found valid, by their plain text: at most one entry per configured token
# (invalid ones are never kept), so every request of a known token skips the hashing.
KNOWN_SECRETS = web.AppKey("known_secrets", dict[str, Token])
EXPOSITION = web.AppKey("exposition", Exposition)
# The OpenAPI document, encoded once (web/openapi.py makes it from the route table).
OPENAPI = web.AppKey("openapi", bytes)
# The token of a request to a route with roles, once checked (`auth.guarded`).
TOKEN = web.RequestKey("token", Token)
