"""What the handlers of every audience (API, pages, the predecessor's endpoints) do with
`Services`: the steps of tracking, untracking and marking seen, decided here once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from aiohttp import web

from gateway.context import SETTINGS, correlation_id
from gateway.services import SERVICES, Services
from gistsync.contracts import GistsReply, GistView, PollStatus, TrackedUser
from gistsync.errors import PublishError, RemoteError, RequestTimeout


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def tracked_users(request: web.Request) -> tuple[TrackedUser, ...]:
    return await services(request).tracked_users(cid=correlation_id(request))


async def find_tracked(request: web.Request, login: str) -> TrackedUser | None:
    """The tracked user with this login in any letter case, or None."""
    return await services(request).user_status(login, cid=correlation_id(request))


@dataclass(frozen=True)
class Polling:
    """What the poller said of a user's polling, or why it said nothing."""

    state: Literal["reported", "not_polled", "unknown"]
    status: PollStatus | None = None
    detail: str | None = None


def unknown_because(exc: RequestTimeout | PublishError | RemoteError) -> str:
    """Why a poll status is unknown, in fixed words: no upstream detail reaches the page."""
    if isinstance(exc, RequestTimeout):
        return "The poller did not answer in time."
    if isinstance(exc, PublishError):
        return "The message broker is not reachable."
    return "The poller failed to answer."


async def polling(request: web.Request, login: str) -> Polling:
    """The user's poll status; never fails: a poller that does not answer makes it unknown,
    and the rest of the page or answer is shown all the same."""
    try:
        status = await services(request).poll_status(login, cid=correlation_id(request))
    except (RequestTimeout, PublishError, RemoteError) as exc:
        return Polling("unknown", detail=unknown_because(exc))
    if status is None:
        return Polling("not_polled", detail="The poller does not poll this user (yet).")
    return Polling("reported", status)


async def user_detail(request: web.Request, login: str) -> tuple[TrackedUser | None, Polling]:
    """The tracked user (as `find_tracked`) and their polling, asked of the writer and the
    poller at once."""
    user, poll = await asyncio.gather(find_tracked(request, login), polling(request, login))
    return user, poll


async def gists(request: web.Request, login: str, *, include_seen: bool) -> GistsReply:
    cid = correlation_id(request)
    return await services(request).gists(login, include_seen=include_seen, cid=cid)


class Tracking(Enum):
    ADDED = "added"
    ALREADY = "already"
    NO_SUCH_USER = "no_such_user"


@dataclass(frozen=True)
class TrackResult:
    outcome: Tracking
    login: str  # canonical when known, else as asked


async def track(request: web.Request, login: str) -> TrackResult:
    return await track_user(services(request), login, cid=correlation_id(request))


async def track_user(services: Services, login: str, *, cid: str) -> TrackResult:
    """Track a GitHub user under GitHub's spelling of the login, once (every audience, the
    command line included, goes through here).

    Asks the writer first: a user already tracked costs no GitHub request.
    """
    tracked = await services.user_status(login, cid=cid)
    if tracked is not None:
        return TrackResult(Tracking.ALREADY, tracked.login)
    canonical = await services.github_login(login, cid=cid)
    if canonical is None:
        return TrackResult(Tracking.NO_SUCH_USER, login)
    if canonical != login and await services.user_status(canonical, cid=cid) is not None:
        return TrackResult(Tracking.ALREADY, canonical)  # a renamed user, tracked already
    await services.track(canonical, cid=cid)
    return TrackResult(Tracking.ADDED, canonical)


async def untrack(request: web.Request, login: str) -> str | None:
    return await untrack_user(services(request), login, cid=correlation_id(request))


async def untrack_user(services: Services, login: str, *, cid: str) -> str | None:
    """Stop tracking; the canonical login, or None when the user was not tracked."""
    tracked = await services.user_status(login, cid=cid)
    if tracked is None:
        return None
    await services.untrack(tracked.login, cid=cid)
    return tracked.login


@dataclass(frozen=True)
class SeenResult:
    tracked: bool
    login: str
    marked: tuple[str, ...] = ()  # the ids now being marked seen
    unknown: tuple[str, ...] = ()  # asked for, but not gists of this user


async def mark_seen(
    request: web.Request, login: str, gist_ids: tuple[str, ...] | None
) -> SeenResult:
    """Mark the given gists (None: every unseen one) of a user as seen.

    Ids that are not this user's gists refuse the whole request, so a typo never half-applies;
    ids already seen are simply left out.
    """
    reply = await gists(request, login, include_seen=gist_ids is not None)
    if not reply.tracked or reply.login is None:
        return SeenResult(False, login)
    known = {g.id: g for g in reply.gists}
    if gist_ids is None:
        wanted = tuple(g.id for g in reply.gists if not g.seen)
    else:
        wanted = tuple(dict.fromkeys(gist_ids))
        unknown = tuple(i for i in wanted if i not in known)
        if unknown:
            return SeenResult(True, reply.login, unknown=unknown)
        wanted = tuple(i for i in wanted if not known[i].seen)
    if wanted:
        await services(request).mark_seen(reply.login, wanted, cid=correlation_id(request))
    return SeenResult(True, reply.login, marked=wanted)


async def poll_now(request: web.Request) -> None:
    await services(request).poll_now(cid=correlation_id(request))


async def settle(
    request: web.Request, done: Callable[[], Awaitable[bool]], interval: float = 0.1
) -> bool:
    """Wait (briefly, see GATEWAY_UI_SETTLE_SECONDS) until `done()`: commands are applied
    asynchronously, and a page shown right after a form should already show its effect."""
    deadline = time.monotonic() + request.app[SETTINGS].gateway_ui_settle_seconds
    while True:
        try:
            if await done():
                return True
        except (RequestTimeout, RemoteError, PublishError):
            return False  # the change was sent; the page just may not show it yet
        if time.monotonic() + interval > deadline:
            return False
        await asyncio.sleep(interval)


def unseen(view: GistsReply) -> tuple[GistView, ...]:
    return tuple(g for g in view.gists if not g.seen)
