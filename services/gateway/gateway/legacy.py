"""The predecessor's endpoints, kept for its clients: `GET /list`, `/new?user=`,
`/show?user=`, `/fetch`. Their answers are as before; what changed is underneath (no fuzzy
matching, nothing marked seen before the page is sent, clear 4xx/5xx statuses).

`/new`, `/show` and `/fetch` change state on GET: when GATEWAY_API_KEY is set they need it,
in the X-API-Key header, and they are rate limited like every other change. A browser that
says another site made the request gets 403 (an `<img>` on a hostile page changes nothing).
HEAD never changes state.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway import actions, pages
from gateway.context import correlation_id
from gateway.problems import Problem
from gistsync.contracts import check_login
from gistsync.errors import PublishError

log = logging.getLogger(__name__)
HTML = "text/html"


def html(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type=HTML, charset="utf-8")


def bad_request(text: str) -> Problem:
    return Problem(400, text, title="Bad request")


def login_param(request: web.Request) -> str:
    """The `user` query parameter, checked against GitHub's login rules (400 otherwise)."""
    values = request.query.getall("user", [])
    if len(values) > 1:
        raise bad_request("Say which GitHub user, once: ?user=LOGIN")
    user = values[0].strip() if values else ""
    if not user:
        raise bad_request("Say which GitHub user: ?user=LOGIN")
    try:
        return check_login(user)
    except ValueError as exc:
        raise bad_request(f"{user[:80]!r} is not a GitHub login: {exc}.") from None


async def list_users(request: web.Request) -> web.Response:
    users = await actions.tracked_users(request)
    return web.json_response({"success": True, "data": [user.login for user in users]})


async def new_user(request: web.Request) -> web.Response:
    login = login_param(request)
    result = await actions.track(request, login)
    match result.outcome:
        case actions.Tracking.NO_SUCH_USER:
            text = f"There is no GitHub user {login}; nothing was added."
            return html(404, pages.message("Not found", text))
        case actions.Tracking.ALREADY:
            text = f"{result.login} is already tracked; nothing changed."
            return html(200, pages.message("Already tracked", text))
    text = f"Now tracking {result.login}: their gists appear within a few poll intervals."
    return html(202, pages.message("Added", text))


async def show_user(request: web.Request) -> web.StreamResponse:
    """The unseen gists, then marked seen, only once the page has been sent: a failure
    on the way leaves them unseen, to be shown again (never lost)."""
    login = login_param(request)
    reply = await actions.gists(request, login, include_seen=False)
    if not reply.tracked or reply.login is None:
        text = f"{login} is not tracked. Add them with /new?user={login}."
        return html(404, pages.message("Not tracked", text))
    shown = actions.unseen(reply)
    response = html(200, pages.unseen_gists(reply.login, shown))
    if request.method != "GET":
        return response  # HEAD: no page is sent, so nothing is seen
    await response.prepare(request)
    await response.write_eof()
    if shown:
        ids = tuple(g.id for g in shown)
        try:
            await actions.services(request).mark_seen(reply.login, ids, cid=correlation_id(request))
        except PublishError as exc:
            log.warning("gists stay unseen", extra={"login": reply.login, "error": str(exc)})
    return response


async def fetch(request: web.Request) -> web.Response:
    report = await actions.services(request).poll_and_wait(cid=correlation_id(request))
    return html(200, f"New gists: <b>{report.new_gists}</b>")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/list", list_users)
    # GET is the action itself: HEAD would do it without showing it (405).
    app.router.add_get("/new", new_user, allow_head=False)
    app.router.add_get("/show", show_user)
    app.router.add_get("/fetch", fetch, allow_head=False)
