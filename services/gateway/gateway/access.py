"""The request's log fields, and the access log of what changes state or fails to sign in.

The outermost of the gateway's middlewares (only the tracing one, when on, wraps it): every
line logged while a request is handled carries its correlation id (and the user a route
names), and the access line sees the status the client got, whichever middleware made it.

One JSON line per state change (POST, PUT, PATCH, DELETE, the predecessor's GETs that write)
and per refused credential (401, 403, whatever the method): who (the client's address, the
kind of credential it showed), what (the route's pattern, never the raw path with its
logins), the answer and how long it took. Never the key, the cookie or the session id: the
credential's kind is read from which header or cookie is there, not from its value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.context import (
    SETTINGS,
    Audience,
    audience_of,
    changes_state,
    correlation_id,
    route_template,
)
from gateway.security import API_KEY_HEADER, SESSION_COOKIE, client_of
from gistsync.contracts import LOGIN_PATTERN
from gistsync.logcontext import bound

log = logging.getLogger("gateway.access")

Credential = Literal["key", "session", "none"]
REFUSED = frozenset({401, 403})
# What a client that went away before its answer is logged with (nginx's convention).
CLIENT_GONE = 499


def credential_of(request: web.Request) -> Credential:
    """The kind of credential the request shows for its audience: pages sign in with a
    session cookie, programs with the key header."""
    if audience_of(request) is Audience.UI:
        return "session" if request.cookies.get(SESSION_COOKIE) else "none"
    return "key" if API_KEY_HEADER in request.headers else "none"


def login_of(request: web.Request) -> str | None:
    """The user the route names (`/api/users/{login}`), when it is a login at all."""
    login = request.match_info.get("login")
    return login if login is not None and LOGIN_PATTERN.fullmatch(login) else None


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    status = 500
    with bound(correlation_id=correlation_id(request), login=login_of(request)):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect the failure middleware let through
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            if changes_state(request) or status in REFUSED:
                write(request, status, time.monotonic() - started)


def write(request: web.Request, status: int, seconds: float) -> None:
    settings = request.app[SETTINGS]
    route = route_template(request)
    log.info(
        "%s %s %s",
        request.method,
        route or "(no route)",
        status,
        extra={
            "access": True,
            "client": client_of(request, settings.gateway_trust_forwarded_for),
            "credential": credential_of(request),
            "method": request.method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
