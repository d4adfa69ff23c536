"""The gateway application: routes, middlewares, and how a failure is answered to each
audience (problem+json for the API, a page for people, the predecessor's own answers for
its clients). Never a hang, never a stack trace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import api, legacy, openapi, pages, problems, ui
from gateway.access import access_log
from gateway.context import (
    REQUEST_ID_HEADER,
    SETTINGS,
    Audience,
    audience_of,
    correlation_id,
)
from gateway.forms import BAD_BODY, unreadable_body
from gateway.guard import HOSTS, guard
from gateway.limits import RateLimiter
from gateway.metrics import measure
from gateway.origin import Hosts, split_names
from gateway.problems import UPSTREAM_FAILURES, Problem
from gateway.security import AUTH_FAILURES, KEYS, LIMITER, Keys
from gateway.services import SERVICES, Services
from gateway.sessions import REVOCATIONS, SignOuts
from gateway.settings import Settings
from gistsync.errors import PublishError, RemoteError
from gistsync.ops import add_probe_routes
from gistsync.transport.connection import CONNECTION_ERRORS

log = logging.getLogger(__name__)

# No script anywhere, styles from this site only, forms post only here, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def render(request: web.Request, audience: Audience, problem: Problem) -> web.Response:
    if audience in (Audience.API, Audience.OPEN):
        return problems.render(problem, correlation_id(request))
    if audience is Audience.LEGACY and request.path == "/list":
        # The predecessor's JSON endpoint keeps its envelope.
        body = {"success": False, "error": problem.detail}
        response = web.json_response(body, status=problem.status)
    elif audience is Audience.LEGACY:
        text = pages.message(problem.title, problem.detail)
        response = web.Response(status=problem.status, text=text, content_type="text/html")
    else:
        text = pages.error_page(problem.status, problem.title, problem.detail)
        response = web.Response(status=problem.status, text=text, content_type="text/html")
    response.headers.update(problem.headers)
    return response


@web.middleware
async def answer_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    audience = audience_of(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect
        problem = problems.from_http(exc)
    except Problem as exc:
        problem = exc
    except BAD_BODY as exc:
        problem = unreadable_body(exc)  # the client's bytes, not our failure
    except UPSTREAM_FAILURES as exc:
        level = logging.ERROR if isinstance(exc, RemoteError) else logging.WARNING
        log.log(level, "upstream failure", extra={"path": request.path, "error": str(exc)})
        # The predecessor's clients have always had 503 for a silent service.
        timeout_status = 503 if audience is Audience.LEGACY else 504
        problem = problems.from_upstream(exc, timeout_status=timeout_status)
    except Exception:
        log.exception("unexpected failure", extra={"path": request.path})
        detail = f"Something broke (request {correlation_id(request)}); it has been logged."
        problem = Problem(500, detail, kind="internal")
    return render(request, audience, problem)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every answer carries, whichever way it was made."""
    headers = response.headers
    headers.setdefault(REQUEST_ID_HEADER, correlation_id(request))
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)


async def revocation_bus(app: web.Application) -> AsyncIterator[None]:
    """Sign-outs heard from, and told to, every other running gateway: at once when the
    broker is there, else as soon as it is (the gateway serves meanwhile)."""
    bus = app[REVOCATIONS]
    starting = asyncio.create_task(_start_when_ready(bus, app[SERVICES]))
    if app[SERVICES].ready:
        await asyncio.wait({starting}, timeout=5.0)  # as before: started before serving
    yield
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    await bus.close()


async def _start_when_ready(bus: SignOuts, services: Services) -> None:
    while True:
        if services.ready:
            try:
                await bus.start()
                return
            except (PublishError, *CONNECTION_ERRORS) as exc:  # gone again: wait for it
                log.debug("sign-out bus not started yet", extra={"error": repr(exc)})
        await asyncio.sleep(0.5)


def create_app(
    settings: Settings,
    services: Services,
    *,
    limiter: RateLimiter | None = None,
    auth_failures: RateLimiter | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[access_log, measure, answer_failures, guard],
        client_max_size=settings.gateway_max_body_bytes,
    )
    app[SETTINGS] = settings
    app[SERVICES] = services
    app[KEYS] = keys = Keys.from_settings(settings)
    # `is None`, not `or`: a limiter that has seen no client yet is empty, hence falsy.
    if limiter is None:
        limiter = RateLimiter(
            settings.gateway_rate_limit_per_minute, settings.gateway_rate_limit_burst
        )
    if auth_failures is None:
        auth_failures = RateLimiter(
            settings.gateway_auth_failures_per_minute, settings.gateway_auth_failure_burst
        )
    app[LIMITER], app[AUTH_FAILURES] = limiter, auth_failures
    app[HOSTS] = Hosts.build(split_names(settings.gateway_allowed_hosts), settings.gateway_host)
    app[REVOCATIONS] = services.sign_outs(keys.revocations)
    app.cleanup_ctx.append(revocation_bus)
    app.on_response_prepare.append(stamp)
    legacy.add_routes(app)
    api.add_routes(app)
    ui.add_routes(app)
    openapi.add_routes(app, settings)
    # /metrics is on the ops port only (GATEWAY_OPS_PORT); a load balancer in front of this
    # port may still ask the probes.
    add_probe_routes(app, lambda: services.ready)
    if settings.api_key is None:
        log.warning(
            "GATEWAY_API_KEY is not set: anyone who reaches this gateway can change what it "
            "tracks (browsers refuse other sites' pages, programs are not asked). Do not "
            "expose it beyond people and programs you trust."
        )
    return app
