"""What the request handlers find on the application, who a request is for, and the
request's correlation id."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from aiohttp import web

from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)

CORRELATION_ID = web.RequestKey("correlation_id", str)
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def correlation_id(request: web.Request) -> str:
    """The client's `X-Request-Id` when it is sane, else a new one; kept on the request."""
    if CORRELATION_ID in request:
        return request[CORRELATION_ID]
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    value = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    request[CORRELATION_ID] = value
    return value


class Audience(StrEnum):
    """Who a route answers, which decides how it authenticates and how it shows a failure."""

    API = "api"  # programs: JSON, problem+json errors, the X-API-Key header
    UI = "ui"  # people: HTML pages and forms, a session cookie, CSRF tokens
    LEGACY = "legacy"  # the predecessor's clients: its answers, the X-API-Key header
    OPEN = "open"  # probes, metrics, the API description: no data, no state, no key


LEGACY_PATHS = frozenset({"/list", "/new", "/show", "/fetch"})
# The predecessor's GETs that change state: they are treated like POSTs. HEAD never changes
# anything (`/show` answers its headers, `/new` and `/fetch` do not take it).
LEGACY_WRITES = frozenset({"/new", "/show", "/fetch"})
OPEN_PATHS = frozenset(
    {"/metrics", "/healthz", "/readyz", "/openapi.json", "/docs", "/assets/gistsync.css"}
)
# Pages anyone may reach so that they can sign in.
SIGN_IN_PATHS = frozenset({"/login", "/logout"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def route_template(request: web.Request) -> str | None:
    """The matched route's template (`/api/users/{login}`), None when nothing matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def audience_of(request: web.Request) -> Audience:
    path = route_template(request) or request.path
    if path == "/api" or path.startswith("/api/"):
        return Audience.API
    if path in LEGACY_PATHS:
        return Audience.LEGACY
    if path in OPEN_PATHS:
        return Audience.OPEN
    return Audience.UI


def changes_state(request: web.Request) -> bool:
    if request.method == "GET":
        return route_template(request) in LEGACY_WRITES
    return request.method not in READ_METHODS
