"""The gateway application: routes, middlewares and the mapping of failures to answers."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import handlers, pages
from gateway.context import BROKER, REQUEST_ID_HEADER, SETTINGS, correlation_id
from gateway.metrics import measure
from gistsync.broker import Broker
from gistsync.errors import PublishError, RemoteError, RequestTimeout
from gistsync.ops import add_ops_routes
from gistsync.settings import GatewaySettings

log = logging.getLogger(__name__)


def failure(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    if request.path == "/list":  # the predecessor's JSON endpoint keeps its envelope
        return web.json_response({"success": False, "error": detail}, status=status)
    return web.Response(status=status, text=pages.message(title, detail), content_type="text/html")


@web.middleware
async def answer_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Upstream trouble becomes a clear 502/503, anything else a bare 500: never a hang,
    never a stack trace."""
    cid = correlation_id(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = cid
        raise
    except RequestTimeout as exc:
        log.warning("no answer in time", extra={"path": request.path, "error": str(exc)})
        response = failure(
            request,
            503,
            "Service unavailable",
            "A gistsync service did not answer in time; try again shortly.",
        )
    except PublishError:
        response = failure(
            request,
            503,
            "Service unavailable",
            "The message broker is not reachable; nothing was changed. Try again shortly.",
        )
    except RemoteError as exc:
        log.error("upstream service failed", extra={"path": request.path, "error": str(exc)})
        detail = f"A gistsync service failed: {exc.detail}"
        response = failure(request, 502, "Upstream failure", detail)
    except Exception:
        log.exception("unexpected failure", extra={"path": request.path})
        response = failure(request, 500, "Internal error", f"Something broke (request {cid}).")
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = cid
    return response


def create_app(settings: GatewaySettings, broker: Broker) -> web.Application:
    app = web.Application(middlewares=[measure, answer_failures], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[BROKER] = broker
    app.router.add_get("/list", handlers.list_users)
    app.router.add_get("/new", handlers.new_user)
    app.router.add_get("/show", handlers.show_user)
    app.router.add_get("/fetch", handlers.fetch)
    add_ops_routes(app, lambda: broker.ready)
    return app
