"""What each HTTP request does. The predecessor's endpoints, kept for its clients:
`GET /list`, `/new?user=`, `/show?user=`, `/fetch`.

The gateway holds no token: it validates, then asks the poller or the writer over RabbitMQ.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway import pages
from gateway.context import BROKER, SETTINGS, correlation_id
from gistsync.contracts import (
    MarkGistsSeen,
    PollNow,
    PollReport,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UnseenGistsQuery,
    UnseenGistsReply,
    UserExistsQuery,
    UserExistsReply,
    check_login,
    login_key,
)
from gistsync.errors import PublishError

log = logging.getLogger(__name__)
HTML = "text/html"


def html(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type=HTML, charset="utf-8")


def login_param(request: web.Request) -> str:
    """The `user` query parameter, checked against GitHub's login rules (400 otherwise)."""
    user = request.query.get("user", "").strip()
    if not user:
        raise web.HTTPBadRequest(
            text=pages.message("Bad request", "Say which GitHub user: ?user=LOGIN"),
            content_type=HTML,
        )
    try:
        return check_login(user)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=pages.message("Bad request", f"{user!r} is not a GitHub login: {exc}."),
            content_type=HTML,
        ) from None


async def ask(request: web.Request, query: object, timeout: float | None = None) -> object:
    settings = request.app[SETTINGS]
    return await request.app[BROKER].request(
        query,  # type: ignore[arg-type]
        timeout=timeout or settings.request_timeout_seconds,
    )


async def tracked_users(request: web.Request) -> TrackedUsersReply:
    reply = await ask(request, TrackedUsersQuery(correlation_id=correlation_id(request)))
    assert isinstance(reply, TrackedUsersReply)
    return reply


async def list_users(request: web.Request) -> web.Response:
    reply = await tracked_users(request)
    return web.json_response({"success": True, "data": [user.login for user in reply.users]})


async def new_user(request: web.Request) -> web.Response:
    login = login_param(request)
    cid = correlation_id(request)
    exists = await ask(request, UserExistsQuery(login=login, correlation_id=cid))
    assert isinstance(exists, UserExistsReply)
    if not exists.exists or exists.login is None:
        text = f"There is no GitHub user {login}; nothing was added."
        return html(404, pages.message("Not found", text))
    canonical = exists.login
    tracked = await tracked_users(request)
    if any(login_key(u.login) == login_key(canonical) for u in tracked.users):
        text = f"{canonical} is already tracked; nothing changed."
        return html(200, pages.message("Already tracked", text))
    await request.app[BROKER].publish(TrackUser(login=canonical, correlation_id=cid))
    text = f"Now tracking {canonical}: their gists appear within a few poll intervals."
    return html(202, pages.message("Added", text))


async def show_user(request: web.Request) -> web.StreamResponse:
    """The unseen gists, then marked seen, only once the page has been sent: a failure
    on the way leaves them unseen, to be shown again (never lost)."""
    login = login_param(request)
    cid = correlation_id(request)
    reply = await ask(request, UnseenGistsQuery(login=login, correlation_id=cid))
    assert isinstance(reply, UnseenGistsReply)
    if not reply.tracked or reply.login is None:
        text = f"{login} is not tracked. Add them with /new?user={login}."
        return html(404, pages.message("Not tracked", text))
    response = html(200, pages.unseen_gists(reply.login, reply.gists))
    await response.prepare(request)
    await response.write_eof()
    if reply.gists:
        seen = MarkGistsSeen(
            login=reply.login, gist_ids=tuple(g.id for g in reply.gists), correlation_id=cid
        )
        try:
            await request.app[BROKER].publish(seen)
        except PublishError as exc:
            log.warning("gists stay unseen", extra={"login": reply.login, "error": str(exc)})
    return response


async def fetch(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    reply = await ask(
        request, PollNow(correlation_id=correlation_id(request)), settings.fetch_timeout_seconds
    )
    assert isinstance(reply, PollReport)
    return html(200, f"New gists: <b>{reply.new_gists}</b>")
