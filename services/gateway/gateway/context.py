"""What the request handlers find on the application, and the request's correlation id."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from gistsync.broker import Broker
from gistsync.settings import GatewaySettings

BROKER = web.AppKey("broker", Broker)
SETTINGS = web.AppKey("settings", GatewaySettings)

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
