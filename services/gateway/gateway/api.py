"""The JSON API under /api, for programs. Described by `openapi.py`; failures are RFC 9457
problems. Commands are applied asynchronously by the other services, so a change is
answered 202 Accepted: it shows in the reads within moments, not necessarily at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import actions
from gateway.context import SETTINGS
from gateway.problems import Problem
from gateway.schemas import (
    STATES,
    Body,
    Gist,
    GistList,
    Polling,
    PollingError,
    SeenAccepted,
    SeenRequest,
    State,
    Tracking,
    TrackRequest,
    Untracking,
    User,
    UserDetail,
    UserList,
    UserPolling,
)
from gistsync.contracts import check_login

JSON = "application/json"


B = TypeVar("B", bound=Body)


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def invalid_body(exc: ValidationError) -> Problem:
    errors = [
        {
            "location": ".".join(["body", *(str(part) for part in e["loc"])]),
            "message": _message(e),
        }
        for e in exc.errors()[:20]
    ]
    first = errors[0]
    return Problem(
        422, f"{first['location']}: {first['message']}", kind="invalid-body", errors=errors
    )


async def read_body(request: web.Request, model: type[B]) -> B:
    """The JSON object body as `model`: 415 not JSON, 413 too large, 408 too slow,
    400 malformed, 422 not what the operation takes."""
    settings = request.app[SETTINGS]
    if request.content_type != JSON:
        raise Problem(
            415, f"Send the body as JSON, with Content-Type: {JSON}.", kind="unsupported-media-type"
        )
    if (request.content_length or 0) > settings.gateway_max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=settings.gateway_max_body_bytes, actual_size=request.content_length or 0
        )
    try:
        async with asyncio.timeout(settings.gateway_body_timeout_seconds):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = f"The body is not valid JSON: {exc}" if isinstance(exc, ValueError) else ""
        detail = detail or "The body is nested too deeply."
        raise Problem(400, detail, kind="malformed-json") from None
    if not isinstance(data, dict):
        raise Problem(422, "body: must be a JSON object", kind="invalid-body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc) from None


def login_in_path(request: web.Request) -> str:
    raw = request.match_info["login"]
    try:
        return check_login(raw)
    except ValueError as exc:
        raise Problem(
            400, f"{raw[:80]!r} is not a GitHub login: {exc}.", kind="invalid-login"
        ) from None


def state_in_query(request: web.Request) -> State:
    values = request.query.getall("state", [])
    if not values:
        return "unseen"
    if len(values) > 1 or values[0] not in STATES:
        raise Problem(400, 'state is "unseen" (the default) or "all".', kind="invalid-parameter")
    return "all" if values[0] == "all" else "unseen"


def not_tracked(login: str) -> Problem:
    return Problem(404, f"{login} is not tracked.", kind="not-tracked")


def answer(body: BaseModel, status: int = 200, **headers: str) -> web.Response:
    text = body.model_dump_json()
    return web.json_response(text=text, status=status, headers=headers or None)


async def list_users(request: web.Request) -> web.Response:
    users = await actions.tracked_users(request)
    return answer(UserList(users=[User(login=u.login, unseen=u.unseen) for u in users]))


async def create_user(request: web.Request) -> web.Response:
    body = await read_body(request, TrackRequest)
    result = await actions.track(request, body.login)
    match result.outcome:
        case actions.Tracking.NO_SUCH_USER:
            raise Problem(
                404,
                f"There is no GitHub user {body.login}; nothing was added.",
                kind="no-such-github-user",
            )
        case actions.Tracking.ALREADY:
            raise Problem(
                409,
                f"{result.login} is already tracked; nothing changed.",
                kind="already-tracked",
                login=result.login,
            )
    location = f"/api/users/{result.login}"
    return answer(Tracking(login=result.login, state="tracking"), 202, Location=location)


def user_polling(polling: actions.Polling) -> UserPolling:
    status = polling.status
    if status is None:
        return UserPolling(state=polling.state, detail=polling.detail)
    error = status.last_error
    return UserPolling(
        state=polling.state,
        last_poll_at=status.last_poll_at,
        last_change_at=status.last_change_at,
        last_error=None if error is None else PollingError(at=error.at, message=error.text),
        failures=status.failures,
        interval_seconds=status.interval_seconds,
        next_poll_at=status.next_poll_at,
    )


async def get_user(request: web.Request) -> web.Response:
    login = login_in_path(request)
    user, polling = await actions.user_detail(request, login)
    if user is None:
        raise not_tracked(login)
    return answer(UserDetail(login=user.login, unseen=user.unseen, polling=user_polling(polling)))


async def delete_user(request: web.Request) -> web.Response:
    login = login_in_path(request)
    canonical = await actions.untrack(request, login)
    if canonical is None:
        raise not_tracked(login)
    return answer(Untracking(login=canonical, state="untracking"), 202)


async def list_gists(request: web.Request) -> web.Response:
    login = login_in_path(request)
    state = state_in_query(request)
    reply = await actions.gists(request, login, include_seen=state == "all")
    if not reply.tracked or reply.login is None:
        raise not_tracked(login)
    shown = reply.gists if state == "all" else actions.unseen(reply)
    gists = [Gist.of(g) for g in shown]
    return answer(
        GistList(login=reply.login, state="all" if state == "all" else "unseen", gists=gists)
    )


async def mark_seen(request: web.Request) -> web.Response:
    login = login_in_path(request)
    body = await read_body(request, SeenRequest)
    ids = tuple(body.gist_ids) if body.gist_ids is not None else None
    result = await actions.mark_seen(request, login, ids)
    if not result.tracked:
        raise not_tracked(login)
    if result.unknown:
        listed = ", ".join(result.unknown[:5]) + (", ..." if len(result.unknown) > 5 else "")
        raise Problem(
            404,
            f"Not gists of {result.login}: {listed}; nothing was marked.",
            kind="unknown-gists",
            unknown=list(result.unknown),
        )
    return answer(SeenAccepted(login=result.login, gist_ids=list(result.marked)), 202)


async def sync(request: web.Request) -> web.Response:
    await actions.poll_now(request)
    return answer(Polling(state="polling"), 202)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", create_user)
    app.router.add_get("/api/users/{login}", get_user)
    app.router.add_delete("/api/users/{login}", delete_user)
    app.router.add_get("/api/users/{login}/gists", list_gists)
    app.router.add_post("/api/users/{login}/gists/seen", mark_seen)
    app.router.add_post("/api/sync", sync)
