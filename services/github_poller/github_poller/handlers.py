"""What each message the poller receives does.

- `github_poller` partitions: gaining one loads its users from the writer and polls them at
  once; losing one stops polling them here (another replica polls them now).
  `event.user_tracked` → poll that user at once, then on schedule;
  `event.user_untracked` → stop polling that user.
- `command.poll_now` to a partition → poll that partition's users now and report.
- `query.poll_status` (to the user's partition) → how the polling of that user goes, from
  memory (`PollStatusReply`, `status` None when this poller does not poll them).
- `github_poller.queries` queue: `query.user_exists` → ask GitHub (a login GitHub said does
  not exist is answered from memory for `unknown_user_ttl` seconds); `command.poll_now` → poll
  every user this replica tracks now and report `PollReport(users=<users polled>,
  new_gists=<gists those polls published>)`. A failure there raises, and the broker
  answers the requester with an `ErrorReply`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from gistsync.contracts import (
    AnyMessage,
    Message,
    PollNow,
    PollReport,
    PollStatusQuery,
    PollStatusReply,
    TrackedUsersQuery,
    TrackedUsersReply,
    UserExistsQuery,
    UserExistsReply,
    UserTracked,
    UserUntracked,
    login_key,
)
from gistsync.errors import PermanentError
from gistsync.transport.topology import partition_of
from github_poller.github import GitHubClient
from github_poller.poller import Poller, Request

log = logging.getLogger(__name__)

# At most this many unknown logins are remembered: the oldest go first.
UNKNOWN_USERS_MAX = 10_000


class UnknownUsers:
    """Logins GitHub answered 404 for, each until its entry expires (bounded, oldest out)."""

    def __init__(
        self, ttl: float, *, clock: Callable[[], float] = time.monotonic, size: int = 10_000
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._size = size
        self._until: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, login: str) -> bool:
        key = login_key(login)
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[key]
            return False
        return True

    def add(self, login: str) -> None:
        if self._ttl <= 0:
            return
        key = login_key(login)
        self._until.pop(key, None)
        self._until[key] = self._clock() + self._ttl
        while len(self._until) > self._size:
            self._until.popitem(last=False)


class Handlers:
    def __init__(
        self,
        poller: Poller,
        client: GitHubClient,
        *,
        query_wait: float,
        partitions: int = 1,
        unknown_user_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poller = poller
        self._unknown = UnknownUsers(unknown_user_ttl, clock=clock, size=UNKNOWN_USERS_MAX)
        self._client = client
        self._partitions = partitions
        # A rate-limit pause longer than this fails a query at once: its asker gives up
        # after about that long anyway.
        self._query_wait = query_wait

    async def on_event(self, message: AnyMessage) -> Message | None:
        if isinstance(message, PollNow) and message.partition is not None:
            # Delivered to this partition's owner, after it loaded the partition's users.
            wanted = message.partition
            users, new_gists = await self._poller.poll_now(
                lambda key: partition_of(key, self._partitions) == wanted
            )
            return PollReport(users=users, new_gists=new_gists)
        if isinstance(message, PollStatusQuery):
            return PollStatusReply(status=self._poller.status(message.login))
        if isinstance(message, UserTracked):
            self._poller.track(message.login)  # a duplicate is harmless
            return None
        if isinstance(message, UserUntracked):
            self._poller.untrack(message.login)
            return None
        raise PermanentError(f"github_poller does not handle {message.type} events")

    async def on_query(self, message: AnyMessage) -> Message | None:
        if isinstance(message, UserExistsQuery):
            return await self.user_exists(message)
        if isinstance(message, PollNow):
            users, new_gists = await self._poller.poll_now()
            return PollReport(users=users, new_gists=new_gists)
        raise PermanentError(f"github_poller does not answer {message.type}")

    async def user_exists(self, query: UserExistsQuery) -> UserExistsReply:
        if query.login in self._unknown:
            return UserExistsReply(exists=False)
        login = await self._client.user_login(query.login, max_wait=self._query_wait)
        if login is None:
            self._unknown.add(query.login)
            return UserExistsReply(exists=False)
        return UserExistsReply(exists=True, login=login)


class Handover:
    """What the poller does when a partition changes hands (`gistsync.transport.partitions`):
    gaining one, it asks the writer for that partition's users only and polls them; losing
    one, it stops polling them."""

    def __init__(
        self,
        poller: Poller,
        request: Request,
        partitions: int,
        *,
        timeout: float,
        retry_base: float,
        retry_max: float,
    ) -> None:
        self._poller = poller
        self._request = request
        self._partitions = partitions
        self._timeout = timeout
        self._retry = (retry_base, retry_max)
        # Users found at start are spread over the interval; later, a partition comes from
        # a replica that polled its users up to an interval ago: poll them at once.
        self.started = False

    def _of(self, partition: int) -> Callable[[str], bool]:
        return lambda key: partition_of(key, self._partitions) == partition

    async def on_gain(self, partition: int) -> None:
        await load_tracked_users(
            self._request,
            self._poller,
            timeout=self._timeout,
            retry_base=self._retry[0],
            retry_max=self._retry[1],
            partition=partition,
            at_once=self.started,
        )

    def on_loss(self, partition: int) -> None:
        mine = self._of(partition)
        self._poller.forget(lambda key: not mine(key))


async def load_tracked_users(
    request: Request,
    poller: Poller,
    *,
    timeout: float,
    retry_base: float,
    retry_max: float,
    partition: int | None = None,
    at_once: bool = False,
) -> int:
    """Asks the writer for the tracked users (of one partition, or all) until it answers (it
    may start after us), then tracks them. Returns how many it tracked."""
    delay = retry_base
    attempt = 1
    while True:
        try:
            reply = await request(TrackedUsersQuery(partition=partition), timeout=timeout)
            if not isinstance(reply, TrackedUsersReply):
                raise TypeError(f"expected reply.tracked_users, got {type(reply).__name__}")
        except Exception as exc:
            log.warning(
                "tracked users not loaded, retrying",
                extra={"attempt": attempt, "retry_in": round(delay, 2), "error": str(exc)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max)
            attempt += 1
            continue
        for user in reply.users:
            poller.track(user.login, at_once=at_once)
        log.info("tracked users loaded", extra={"users": len(reply.users), "partition": partition})
        return len(reply.users)
