"""The HTML interface, for people: the tracked users, one user's gists, and forms to track,
mark seen, stop tracking and sign in. Forms follow post/redirect/get: every POST answers
303 to a page, with a flash message saying what happened or why nothing did.

CSRF tokens and sessions are checked by `guard.guard` before these handlers run.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from gateway import actions, pages
from gateway.forms import read_form
from gateway.forms import text_field as field
from gateway.guard import count_failure, refuse_while_guessing
from gateway.pages import STYLE, Frame
from gateway.problems import UPSTREAM_FAILURES, Problem, from_upstream
from gateway.security import (
    CSRF_COOKIE,
    FLASH_COOKIE,
    KEYS,
    SESSION_COOKIE,
    Flash,
    local_path,
    see_other,
)
from gateway.sessions import REVOCATIONS
from gistsync.contracts import GIST_ID_REGEX, GistView, check_login

log = logging.getLogger(__name__)
GIST_ID = re.compile(rf"^{GIST_ID_REGEX}$")


def frame_of(request: web.Request) -> Frame:
    keys = request.app[KEYS]
    cookie = request.cookies.get(CSRF_COOKIE)
    if not keys.csrf_cookie_ok(cookie) or cookie is None:
        cookie = keys.new_csrf()
    session = keys.session(request.cookies.get(SESSION_COOKIE)) if keys.enforced else None
    return Frame(
        csrf=keys.form_token(cookie, session),
        csrf_cookie=cookie,
        flash=keys.read_flash(request.cookies.get(FLASH_COOKIE)),
        signed_in=session is not None,
        keyed=keys.enforced,
        here=request.path_qs,
    )


def page(request: web.Request, frame: Frame, body: str, status: int = 200) -> web.Response:
    response = web.Response(status=status, text=body, content_type="text/html", charset="utf-8")
    keys = request.app[KEYS]
    if frame.csrf_cookie != request.cookies.get(CSRF_COOKIE):
        keys.set_cookie(response, CSRF_COOKIE, frame.csrf_cookie, keys.session_max_age)
    if FLASH_COOKIE in request.cookies:
        keys.clear_cookie(response, FLASH_COOKIE)  # shown once
    return response


def redirect(request: web.Request, location: str, flash: Flash | None = None) -> web.Response:
    response = see_other(location)
    if flash is not None:
        request.app[KEYS].set_flash(response, flash)
    return response


async def act(
    request: web.Request, back: str, action: Callable[[], Awaitable[Flash]]
) -> web.Response:
    """Run a form's action and go back to `back` with its outcome, failures included."""
    try:
        flash = await action()
    except Problem as problem:
        flash = Flash("error", problem.detail)
    except UPSTREAM_FAILURES as exc:
        log.warning("form action failed", extra={"path": request.path, "error": str(exc)})
        flash = Flash("error", from_upstream(exc).detail)
    return redirect(request, back, flash)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def newest_first(gists: tuple[GistView, ...]) -> tuple[GistView, ...]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return tuple(sorted(gists, key=lambda g: g.created_at or oldest, reverse=True))


# --- pages ------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    frame = frame_of(request)
    users = await actions.tracked_users(request)
    return page(request, frame, pages.index(users, frame))


async def user(request: web.Request) -> web.Response:
    raw = request.match_info["login"]
    try:
        login = check_login(raw)
    except ValueError:
        raise Problem(404, f"{raw[:80]!r} is not a GitHub login.") from None
    state = "all" if request.query.get("state") == "all" else "unseen"
    reply, polling = await asyncio.gather(
        actions.gists(request, login, include_seen=state == "all"),
        actions.polling(request, login),
    )
    if not reply.tracked or reply.login is None:
        raise Problem(404, f"{login} is not tracked. Add them from the list of tracked users.")
    if reply.login != login:  # one address per user: GitHub's spelling
        suffix = "?state=all" if state == "all" else ""
        return see_other(pages.user_path(reply.login, suffix))
    frame = frame_of(request)
    shown = newest_first(reply.gists if state == "all" else actions.unseen(reply))
    panel = pages.polling_panel(polling.state, polling.status, polling.detail)
    return page(request, frame, pages.user_page(reply.login, shown, state, frame, panel))


async def stylesheet(_: web.Request) -> web.Response:
    response = web.Response(text=STYLE, content_type="text/css", charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


async def login_form(request: web.Request) -> web.Response:
    keys = request.app[KEYS]
    next_path = local_path(request.query.get("next"))
    if not keys.enforced or keys.session_ok(request.cookies.get(SESSION_COOKIE)):
        return see_other(next_path)
    frame = frame_of(request)
    return page(request, frame, pages.login_page(next_path, frame))


# --- forms ------------------------------------------------------------------------------


async def add_user(request: web.Request) -> web.Response:
    raw = field(await read_form(request), "login")
    try:
        login = check_login(raw)
    except ValueError as exc:
        shown = repr(raw[:80]) if raw else "An empty name"
        return redirect(request, "/", Flash("error", f"{shown} is not a GitHub login: {exc}."))

    async def track() -> Flash:
        result = await actions.track(request, login)
        match result.outcome:
            case actions.Tracking.NO_SUCH_USER:
                return Flash("error", f"There is no GitHub user {login}; nothing was added.")
            case actions.Tracking.ALREADY:
                return Flash("ok", f"{result.login} is already tracked.")

        async def listed() -> bool:
            return await actions.find_tracked(request, result.login) is not None

        await actions.settle(request, listed)
        return Flash("ok", f"Now tracking {result.login}: their gists appear within moments.")

    return await act(request, "/", track)


async def mark_seen(request: web.Request) -> web.Response:
    login = request.match_info["login"]
    back = pages.user_path(login)
    form = await read_form(request)
    ids = [v for v in form.getall("gist_id", []) if isinstance(v, str)]
    if not all(GIST_ID.fullmatch(i) for i in ids):
        return redirect(request, back, Flash("error", "That is not a gist id; nothing changed."))

    async def mark() -> Flash:
        check_login_or_404(login)
        result = await actions.mark_seen(request, login, tuple(ids) or None)
        if not result.tracked:
            raise Problem(404, f"{login} is not tracked.")
        if result.unknown:
            raise Problem(404, f"Not gists of {result.login}; nothing was marked.")
        if not result.marked:
            return Flash("ok", "Those gists were already seen.")
        marked = set(result.marked)

        async def applied() -> bool:
            reply = await actions.gists(request, result.login, include_seen=False)
            return not marked & {g.id for g in reply.gists}

        await actions.settle(request, applied)
        return Flash("ok", f"Marked {plural(len(marked), 'gist')} as seen.")

    return await act(request, back, mark)


async def untrack(request: web.Request) -> web.Response:
    login = request.match_info["login"]

    async def stop() -> Flash:
        check_login_or_404(login)
        canonical = await actions.untrack(request, login)
        if canonical is None:
            raise Problem(404, f"{login} is not tracked.")

        async def gone() -> bool:
            return await actions.find_tracked(request, canonical) is None

        await actions.settle(request, gone)
        return Flash(
            "ok",
            f"Stopped tracking {canonical}. Their Pipedrive person, deal (now lost) and "
            "activities are kept.",
        )

    return await act(request, "/", stop)


async def sync(request: web.Request) -> web.Response:
    back = local_path(field(await read_form(request), "back"))

    async def poll() -> Flash:
        await actions.poll_now(request)
        return Flash("ok", "Checking GitHub now: new gists appear within moments.")

    return await act(request, back, poll)


async def sign_in(request: web.Request) -> web.Response:
    keys = request.app[KEYS]
    form = await read_form(request)
    next_path = local_path(field(form, "next"))
    if not keys.enforced:
        return see_other(next_path)
    refuse_while_guessing(request)
    if not keys.key_ok(field(form, "api_key")):
        count_failure(request)
        flash = Flash("error", "That is not this gateway's API key.")
        return redirect(request, "/login?next=" + quote(next_path, safe="/"), flash)
    response = redirect(request, next_path, Flash("ok", "Signed in."))
    keys.set_cookie(response, SESSION_COOKIE, keys.new_session(), keys.session_max_age)
    # A new token after signing in: one planted before cannot ride the new session.
    keys.set_cookie(response, CSRF_COOKIE, keys.new_csrf(), keys.session_max_age)
    return response


async def sign_out(request: web.Request) -> web.Response:
    """Ends the session everywhere it can be ended (see `sessions.py`), not only in this
    browser: a copy of the cookie stops working too."""
    keys = request.app[KEYS]
    session = keys.session(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        await request.app[REVOCATIONS].announce(session)
    response = redirect(request, "/login" if keys.enforced else "/", Flash("ok", "Signed out."))
    keys.clear_cookie(response, SESSION_COOKIE)
    return response


def check_login_or_404(login: str) -> None:
    try:
        check_login(login)
    except ValueError:
        raise Problem(404, f"{login[:80]!r} is not a GitHub login.") from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/users/{login}", user)
    app.router.add_post("/users", add_user)
    app.router.add_post("/users/{login}/seen", mark_seen)
    app.router.add_post("/users/{login}/untrack", untrack)
    app.router.add_post("/sync", sync)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", sign_in)
    app.router.add_post("/logout", sign_out)
    app.router.add_get(pages.STYLESHEET, stylesheet)
