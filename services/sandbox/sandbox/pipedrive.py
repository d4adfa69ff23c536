"""Pipedrive API v2 simulator under /api/v2: organizations, persons, deals, activities.

Per API request: injected faults, then the `x-api-token` header (401), the daily token
budget, the burst window (and the search window for searches), then the handler. Every
non-fault reply carries x-ratelimit-* and x-daily-requests-left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from sandbox import pipedrive_errors as errors
from sandbox.pipedrive_errors import ApiError
from sandbox.pipedrive_lists import list_records
from sandbox.pipedrive_paging import page_by_offset
from sandbox.pipedrive_schema import SEARCH_ROUTES, TOKEN_COSTS
from sandbox.pipedrive_search import parse_search, search, search_item
from sandbox.pipedrive_state import (
    ACTIVITY,
    DEAL,
    ORGANIZATION,
    PERSON,
    EntityKind,
    PipedriveState,
    Record,
)
from sandbox.pipedrive_validation import bool_param, enum_param, int_param, limit_param
from sandbox.ratelimit import whole_seconds
from sandbox.timeutil import seconds_to_utc_midnight
from sandbox.web_common import (
    CONTROL_PREFIX,
    Handler,
    add_control_routes,
    control_errors,
    json_response,
    route_key,
    run_api_request,
)

API_PREFIX = "/api/v2"
R = TypeVar("R", bound=web.StreamResponse)
STATE_KEY = web.AppKey("pipedrive_state", PipedriveState)


def create_pipedrive_app(state: PipedriveState | None = None, *, token: str) -> web.Application:
    sim = state or PipedriveState()

    @web.middleware
    async def api(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        route = route_key(request, API_PREFIX)
        return await run_api_request(request, sim, route, lambda: _guarded(request, handler, route))

    async def _guarded(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
        is_search = route in SEARCH_ROUTES
        # Only the header authenticates; a token in the URL is refused even beside a valid
        # header, so a client that leaks it into logs fails its tests.
        if request.headers.get("x-api-token") != token or "api_token" in request.query:
            return _with_headers(errors.unauthorized(), sim, is_search)
        limits = sim.config.limits
        cost = TOKEN_COSTS.get(route, 0)
        if cost > sim.budget_left():
            wait = whole_seconds(seconds_to_utc_midnight(sim.clock()))
            response = errors.too_many_requests(wait, "Daily token budget exhausted")
            return _with_headers(response, sim, is_search)
        now = time.monotonic()
        wait_s = sim.burst.wait_for(limits.burst_limit, limits.burst_window_seconds, now)
        if is_search:
            search_wait = sim.search_burst.wait_for(
                limits.search_burst_limit, limits.search_window_seconds, now
            )
            wait_s = max(wait_s, search_wait)
        if wait_s > 0:
            response = errors.too_many_requests(whole_seconds(wait_s))
            return _with_headers(response, sim, is_search)
        sim.burst.add(now)
        if is_search:
            sim.search_burst.add(now)
        sim.budget_spent += cost
        sim.stats.tokens_spent += cost
        result: web.StreamResponse
        try:
            result = await handler(request)
        except ApiError as exc:
            result = errors.error_response(exc.status, exc.error, exc.error_info)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # Pipedrive's answer to a path it does not know.
            message = "Unknown method ." if exc.status == 404 else exc.reason
            result = errors.error_response(exc.status, message)
        return _with_headers(result, sim, is_search)

    async def state_snapshot(_: web.Request) -> web.Response:
        return json_response(sim.snapshot())

    app = web.Application(middlewares=[control_errors, api])
    app[STATE_KEY] = sim
    _add_api_routes(app)
    app.router.add_get("/_sandbox/state", state_snapshot)
    add_control_routes(app, sim, with_tokens=True)
    return app


def _with_headers(response: R, sim: PipedriveState, is_search: bool) -> R:
    limits = sim.config.limits
    if is_search:
        window, limit, length = (
            sim.search_burst,
            limits.search_burst_limit,
            limits.search_window_seconds,
        )
    else:
        window, limit, length = sim.burst, limits.burst_limit, limits.burst_window_seconds
    now = time.monotonic()
    response.headers["x-ratelimit-limit"] = str(limit)
    response.headers["x-ratelimit-remaining"] = str(max(0, limit - window.used(length, now)))
    response.headers["x-ratelimit-reset"] = str(whole_seconds(window.reset_in(length, now)))
    response.headers["x-daily-requests-left"] = str(sim.budget_left())
    return response


# -- handlers -------------------------------------------------------------------------------

ApiHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _state(request: web.Request) -> PipedriveState:
    return request.app[STATE_KEY]


def _ok(data: Any, next_cursor: str | bool | None = False) -> web.Response:
    """The success envelope; lists and searches add additional_data.next_cursor."""
    body: dict[str, Any] = {"success": True, "data": data}
    if next_cursor is not False:
        body["additional_data"] = {"next_cursor": next_cursor}
    return json_response(body)


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise ApiError(415, "Unsupported Media Type: send application/json")
    try:
        return json.loads(await request.read())
    except ValueError:
        raise errors.BadRequest("Request body is not valid JSON") from None


def _entity_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise errors.BadRequest("Parameter 'id' must be an integer")
    return int(raw)


def _creator(create: Callable[[PipedriveState, Any], dict[str, Any]]) -> ApiHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        return _ok(create(_state(request), body))  # v2 answers a create with 200

    return handler


def _getter(kind: EntityKind) -> ApiHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _ok(_state(request).get(kind, _entity_id(request)))

    return handler


def _updater(update: Callable[[PipedriveState, int, Any], Record]) -> ApiHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        entity_id = _entity_id(request)
        body = await _json_body(request)
        return _ok(update(_state(request), entity_id, body))

    return handler


def _deleter(kind: EntityKind) -> ApiHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _ok(_state(request).delete(kind, _entity_id(request)))

    return handler


def _lister(kind: EntityKind) -> ApiHandler:
    async def handler(request: web.Request) -> web.StreamResponse:
        sim = _state(request)
        page, next_cursor = list_records(sim, kind, request.query)
        return _ok([sim.view(kind, record) for record in page], next_cursor)

    return handler


def _searcher(kind: EntityKind, *filters: tuple[str, str]) -> ApiHandler:
    """filters: (query parameter, record field) pairs, e.g. ("organization_id", "org_id")."""

    async def handler(request: web.Request) -> web.StreamResponse:
        sim, query = _state(request), request.query
        exact = bool_param(query, "exact_match") or False
        parsed = parse_search(kind, query.get("term"), query.get("fields"), exact)
        equal: dict[str, Any] = {field: int_param(query, param) for param, field in filters}
        if kind is DEAL:
            equal["status"] = enum_param(query, "status", ("open", "won", "lost"))
        limit = limit_param(query)
        hits, next_cursor = page_by_offset(
            search(sim, kind, parsed, **equal), limit, query.get("cursor")
        )
        items = [
            {"result_score": score, "item": search_item(sim, kind, record)}
            for score, record in hits
        ]
        return _ok({"items": items}, next_cursor)

    return handler


def _add_api_routes(app: web.Application) -> None:
    r = app.router
    # Updates call the method on the instance, so a subclass's override (benchmarks) runs.
    kinds = [
        ("organizations", ORGANIZATION, PipedriveState.create_organization,
         lambda sim, i, body: sim.update_organization(i, body)),
        ("persons", PERSON, PipedriveState.create_person,
         lambda sim, i, body: sim.update_person(i, body)),
        ("deals", DEAL, PipedriveState.create_deal,
         lambda sim, i, body: sim.update_deal(i, body)),
        ("activities", ACTIVITY, PipedriveState.create_activity,
         lambda sim, i, body: sim.update_activity(i, body)),
    ]  # fmt: skip
    searches = {
        "organizations": _searcher(ORGANIZATION),
        "persons": _searcher(PERSON, ("organization_id", "org_id")),
        "deals": _searcher(DEAL, ("organization_id", "org_id"), ("person_id", "person_id")),
    }
    for name, kind, create, update in kinds:
        base = f"{API_PREFIX}/{name}"
        # Searches before /{id}: aiohttp matches routes in registration order.
        if name in searches:
            r.add_get(f"{base}/search", searches[name])
        r.add_get(base, _lister(kind))
        r.add_post(base, _creator(create))
        r.add_get(f"{base}/{{id}}", _getter(kind))
        r.add_patch(f"{base}/{{id}}", _updater(update))
        r.add_delete(f"{base}/{{id}}", _deleter(kind))
