"""What the gateway asks of the poller and the writer, over RabbitMQ, shared by every
audience. Every exchange is bounded in time: a silent or unreachable service becomes
`RequestTimeout` or `PublishError`, never a hang.

Identical read queries asked while one is already on its way share it: one broker request,
and its answer (or its error) goes to every asker. Nothing is kept once it is answered, so an
answer is never older than the question. Under load, many concurrent `/list` requests cost
one round trip, not one each.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from aiohttp import web

from gateway.context import BROKER, SETTINGS, correlation_id
from gistsync.broker import Broker
from gistsync.contracts import (
    AnyMessage,
    GistsQuery,
    GistsReply,
    GistView,
    MarkGistsSeen,
    Message,
    PollNow,
    PollReport,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserExistsQuery,
    UserExistsReply,
    login_key,
)
from gistsync.errors import PublishError, RemoteError, RequestTimeout

R = TypeVar("R", bound=Message)
# How much longer than its own timeout a request may take before it is cut off, covering
# the publish and a broker that stalls.
GRACE_SECONDS = 1.0
# Reads answered from what a service holds, whatever the moment they were asked while in
# flight. Not `PollNow`: it promises a poll that starts after it was asked.
SHAREABLE = (TrackedUsersQuery, GistsQuery, UserExistsQuery)
Pending = dict[tuple[str, float], asyncio.Task[AnyMessage]]
# The queries in flight per broker (one broker per gateway), by what they ask.
_in_flight: weakref.WeakKeyDictionary[Broker, Pending] = weakref.WeakKeyDictionary()


async def ask(request: web.Request, query: Message, expect: type[R], timeout: float = 0) -> R:
    """Send a query, wait for its reply (at most `timeout`, the request timeout by default)."""
    settings = request.app[SETTINGS]
    wait = timeout or settings.request_timeout_seconds
    try:
        async with asyncio.timeout(wait + settings.publish_timeout_seconds + GRACE_SECONDS):
            reply = await _request(request.app[BROKER], query, wait)
    except TimeoutError:
        raise RequestTimeout(f"no answer to {getattr(query, 'type', 'a request')}") from None
    if not isinstance(reply, expect):
        raise RemoteError("unexpected_reply", f"expected {expect.__name__}, got {reply.type}")
    return reply


async def _request(broker: Broker, query: Message, wait: float) -> AnyMessage:
    """The broker request for `query`, joined if an identical one is already in flight.

    The shared request runs as its own task, so an asker that gives up (timeout, client gone)
    never cancels it for the others; it carries the first asker's correlation id.
    """
    if not isinstance(query, SHAREABLE):
        return await broker.request(query, timeout=wait)
    pending = _in_flight.setdefault(broker, {})
    key = (query.model_dump_json(exclude={"message_id", "correlation_id", "sent_at"}), wait)
    task = pending.get(key)
    if task is None:
        task = asyncio.create_task(broker.request(query, timeout=wait))
        pending[key] = task
        task.add_done_callback(lambda done: _forget(pending, key, done))
    return await asyncio.shield(task)


def _forget(pending: Pending, key: tuple[str, float], task: asyncio.Task[AnyMessage]) -> None:
    """Answered: the next identical query asks again."""
    if pending.get(key) is task:
        del pending[key]
    if not task.cancelled():
        task.exception()  # seen here too: every asker may have given up before the end


async def tell(request: web.Request, command: Message) -> None:
    """Publish a command; done once the broker confirmed it."""
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.publish_timeout_seconds + GRACE_SECONDS):
            await request.app[BROKER].publish(command)
    except TimeoutError:
        raise PublishError("the broker did not confirm in time") from None


async def tracked_users(request: web.Request) -> tuple[TrackedUser, ...]:
    cid = correlation_id(request)
    return (await ask(request, TrackedUsersQuery(correlation_id=cid), TrackedUsersReply)).users


async def find_tracked(request: web.Request, login: str) -> TrackedUser | None:
    """The tracked user with this login in any letter case, or None."""
    key = login_key(login)
    return next((u for u in await tracked_users(request) if login_key(u.login) == key), None)


async def gists(request: web.Request, login: str, *, include_seen: bool) -> GistsReply:
    cid = correlation_id(request)
    query = GistsQuery(login=login, include_seen=include_seen, correlation_id=cid)
    return await ask(request, query, GistsReply)


class Tracking(Enum):
    ADDED = "added"
    ALREADY = "already"
    NO_SUCH_USER = "no_such_user"


@dataclass(frozen=True)
class TrackResult:
    outcome: Tracking
    login: str  # canonical when known, else as asked


async def track(request: web.Request, login: str) -> TrackResult:
    """Track a GitHub user under GitHub's spelling of the login, once.

    Asks the writer first: a user already tracked costs no GitHub request.
    """
    tracked = await find_tracked(request, login)
    if tracked is not None:
        return TrackResult(Tracking.ALREADY, tracked.login)
    cid = correlation_id(request)
    exists = await ask(request, UserExistsQuery(login=login, correlation_id=cid), UserExistsReply)
    if not exists.exists or exists.login is None:
        return TrackResult(Tracking.NO_SUCH_USER, login)
    if exists.login != login and await find_tracked(request, exists.login) is not None:
        return TrackResult(Tracking.ALREADY, exists.login)  # a renamed user, tracked already
    await tell(request, TrackUser(login=exists.login, correlation_id=cid))
    return TrackResult(Tracking.ADDED, exists.login)


async def untrack(request: web.Request, login: str) -> str | None:
    """Stop tracking; the canonical login, or None when the user was not tracked."""
    tracked = await find_tracked(request, login)
    if tracked is None:
        return None
    await tell(request, UntrackUser(login=tracked.login, correlation_id=correlation_id(request)))
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
        command = MarkGistsSeen(
            login=reply.login, gist_ids=wanted, correlation_id=correlation_id(request)
        )
        await tell(request, command)
    return SeenResult(True, reply.login, marked=wanted)


def _polls(request: web.Request) -> list[PollNow]:
    """One per partition: each poller replica polls the users of the partitions it owns."""
    partitions = request.app[BROKER].partitions
    return [PollNow(partition=n, correlation_id=correlation_id(request)) for n in range(partitions)]


async def poll_now(request: web.Request) -> None:
    for command in _polls(request):
        await tell(request, command)


async def poll_and_wait(request: web.Request) -> PollReport:
    settings = request.app[SETTINGS]
    reports = await asyncio.gather(
        *(ask(request, q, PollReport, settings.fetch_timeout_seconds) for q in _polls(request))
    )
    return PollReport(
        users=sum(r.users for r in reports),
        new_gists=sum(r.new_gists for r in reports),
        correlation_id=correlation_id(request),
    )


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
