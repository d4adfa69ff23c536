"""GitHub REST simulator: `GET /users/{username}`, `GET /users/{username}/gists` and
`GET /rate_limit` (which, as on GitHub, the primary limit neither counts nor refuses).

Order of checks per API request, as GitHub appears to apply them: injected faults, then
credentials (401), the secondary limits (concurrency, points per window), the primary hourly
limit, and finally the handler; every non-fault reply carries the x-ratelimit-* headers.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, TypeVar

from aiohttp import web
from yarl import URL

from sandbox import github_errors as errors
from sandbox.github_control import add_github_control_routes
from sandbox.github_render import base_gist, public_user
from sandbox.github_state import GitHubState, Identity
from sandbox.ratelimit import whole_seconds
from sandbox.timeutil import parse_iso8601
from sandbox.web_common import (
    CONTROL_PREFIX,
    Handler,
    add_control_routes,
    control_errors,
    json_response,
    route_key,
    run_api_request,
)

R = TypeVar("R", bound=web.StreamResponse)
STATE_KEY = web.AppKey("github_state", GitHubState)
IDENTITY_KEY = web.RequestKey("github_identity", Identity)
RATE_LIMIT_PATH = "/rate_limit"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


def create_github_app(state: GitHubState | None = None, *, token: str | None) -> web.Application:
    """`token=None` accepts any token as valid (anonymous callers still get the 60/h limit)."""
    sim = state or GitHubState()

    @web.middleware
    async def api(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        identity = _identity(request, token)
        # A request holds its concurrency slot from arrival to reply (latency included) and
        # is judged on arrival, so the requests already in flight keep theirs.
        held = identity.key if identity else None
        crowded = False
        if held:
            sim.windows.in_flight[held] += 1
            crowded = sim.windows.in_flight[held] > sim.config.limits.max_concurrent
        try:
            return await run_api_request(
                request,
                sim,
                route_key(request),
                lambda: _limited(request, handler, identity, crowded),
            )
        finally:
            if held:
                sim.windows.in_flight[held] -= 1

    async def _limited(
        request: web.Request, handler: Handler, identity: Identity | None, crowded: bool
    ) -> web.StreamResponse:
        if identity is None:
            anonymous = Identity(f"ip:{request.remote}", authorized=False)
            return _with_headers(errors.bad_credentials(), sim, anonymous)
        limits = sim.config.limits
        if crowded:
            response = errors.secondary_exceeded(
                limits.secondary_status, limits.concurrency_retry_after_seconds
            )
            return _with_headers(response, sim, identity)
        points = sim.secondary_window(identity)
        now = time.monotonic()
        wait = points.wait_for(limits.secondary_points_limit, limits.secondary_window_seconds, now)
        if wait > 0:
            response = errors.secondary_exceeded(limits.secondary_status, whole_seconds(wait))
            return _with_headers(response, sim, identity)
        points.add(now)
        primary = sim.primary_window(identity)
        primary.roll(limits.primary_window_seconds, time.time())
        request[IDENTITY_KEY] = identity
        # "Accessing this endpoint does not count against your REST API rate limit."
        free = request.path == RATE_LIMIT_PATH
        if primary.used >= sim.primary_limit(identity) and not free:
            who = "user ID 1" if identity.authorized else str(request.remote)
            response = errors.primary_exceeded(limits.primary_status, who, identity.authorized)
            return _with_headers(response, sim, identity)
        result: web.StreamResponse
        try:
            result = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            result = errors.error_response(exc.reason, exc.status)
        # "Making a conditional request does not count against your primary rate limit if a
        # 304 response is returned and the request was made while correctly authorized."
        if not (identity.authorized and result.status == 304) and not free:
            primary.used += 1
        return _with_headers(result, sim, identity)

    app = web.Application(middlewares=[control_errors, api])
    app[STATE_KEY] = sim
    app.router.add_get("/users/{username}", _get_user)
    app.router.add_get("/users/{username}/gists", _list_gists)
    app.router.add_get(RATE_LIMIT_PATH, _rate_limit)
    add_control_routes(app, sim, with_tokens=False)
    add_github_control_routes(app, sim)
    return app


def _identity(request: web.Request, token: str | None) -> Identity | None:
    """None means the Authorization header is present but not acceptable (-> 401)."""
    header = request.headers.get("Authorization")
    if header is None:
        return Identity(f"ip:{request.remote}", authorized=False)
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in ("bearer", "token") or not value:
        return None
    if token is not None and value != token:
        return None
    return Identity(f"token:{value}", authorized=True)


def _with_headers(response: R, sim: GitHubState, identity: Identity) -> R:
    window = sim.primary_window(identity)
    limit = sim.primary_limit(identity)
    reset = window.reset_at(sim.config.limits.primary_window_seconds, time.time())
    response.headers["x-ratelimit-limit"] = str(limit)
    response.headers["x-ratelimit-remaining"] = str(max(0, limit - window.used))
    response.headers["x-ratelimit-used"] = str(window.used)
    response.headers["x-ratelimit-reset"] = str(math.ceil(reset))
    response.headers["x-ratelimit-resource"] = "core"
    return response


async def _rate_limit(request: web.Request) -> web.StreamResponse:
    """GitHub's `rate-limit-overview`: the simulated core window, and the resources the
    simulator does not limit at their full quota."""
    sim = request.app[STATE_KEY]
    identity = request[IDENTITY_KEY]
    window = sim.primary_window(identity)
    limit = sim.primary_limit(identity)
    now = time.time()
    core = {
        "limit": limit,
        "remaining": max(0, limit - window.used),
        "reset": math.ceil(window.reset_at(sim.config.limits.primary_window_seconds, now)),
        "used": window.used,
        "resource": "core",
    }

    def untouched(resource: str, quota: int, seconds: int) -> dict[str, Any]:
        reset = math.ceil(now + seconds)
        return {"limit": quota, "remaining": quota, "reset": reset, "used": 0, "resource": resource}

    resources = {
        "core": core,
        "search": untouched("search", 30 if identity.authorized else 10, 60),
        "graphql": untouched("graphql", 5000 if identity.authorized else 0, 3600),
    }
    return json_response({"resources": resources, "rate": core})


def _api_base(request: web.Request) -> str:
    return str(request.url.origin())


async def _get_user(request: web.Request) -> web.StreamResponse:
    sim = request.app[STATE_KEY]
    user = sim.user(request.match_info["username"])
    if user is None:
        return errors.not_found(errors.DOCS_GET_USER)
    count = len(sim.public_gists(user.login))
    return _conditional(request, public_user(user, _api_base(request), count))


async def _list_gists(request: web.Request) -> web.StreamResponse:
    sim = request.app[STATE_KEY]
    user = sim.user(request.match_info["username"])
    if user is None:
        return errors.not_found(errors.DOCS_LIST_GISTS)
    query = request.query
    per_page = min(_positive_int(query.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
    page = _positive_int(query.get("page"), 1)
    if page == 1:
        sim.polled(user.login, time.time())
    gists = sim.public_gists(user.login)
    if "since" in query:
        since = parse_iso8601(query["since"])
        if since is None:
            return errors.validation_failed("since", errors.DOCS_LIST_GISTS)
        gists = [g for g in gists if g.updated_at >= since]
    start = (page - 1) * per_page
    api = _api_base(request)
    body = [base_gist(g, user, api) for g in gists[start : start + per_page]]
    last_page = max(1, math.ceil(len(gists) / per_page))
    link = _link_header(request.url, page, last_page)
    return _conditional(request, body, {"Link": link} if link else {})


def _positive_int(raw: str | None, default: int) -> int:
    # GitHub ignores unusable paging values rather than failing the request.
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


def _link_header(url: URL, page: int, last_page: int) -> str | None:
    """GitHub's order: prev, next, last, first; absent when one page holds everything."""
    if page == 1 and last_page == 1:
        return None
    rels: list[tuple[str, int]] = []
    if page > 1:
        rels.append(("prev", page - 1))
    if page < last_page:
        rels += [("next", page + 1), ("last", last_page)]
    if page > 1:
        rels.append(("first", 1))
    return ", ".join(f'<{url.update_query(page=str(n))}>; rel="{rel}"' for rel, n in rels)


def _conditional(
    request: web.Request, data: Any, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with a weak ETag (GitHub sends W/"<sha256>"); 304 when If-None-Match matches."""
    response = json_response(data, 200, headers)
    assert response.body is not None and isinstance(response.body, bytes)
    etag = f'W/"{hashlib.sha256(response.body).hexdigest()}"'
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
    response.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    return response


def _etag_matches(header: str | None, etag: str) -> bool:
    # Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored, quotes are significant.
    if header is None:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
