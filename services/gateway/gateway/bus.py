"""`Services` over RabbitMQ: the gateway's questions as requests, its commands as confirmed
publishes. Every exchange is bounded in time: a silent or unreachable service becomes
`RequestTimeout` or `PublishError`, never a hang.

Identical read queries asked while one is already on its way share it: one broker request,
and its answer (or its error) goes to every asker. Nothing is kept once it is answered, so an
answer is never older than the question. Under load, many concurrent `/list` requests cost
one round trip, not one each.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from gateway.sessions import RevocationBus, Revocations, SignOuts
from gateway.settings import Settings
from gistsync.broker import Broker
from gistsync.contracts import (
    AnyMessage,
    GistsQuery,
    GistsReply,
    MarkGistsSeen,
    Message,
    PollNow,
    PollReport,
    PollStatus,
    PollStatusQuery,
    PollStatusReply,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserExistsQuery,
    UserExistsReply,
    UserStatusQuery,
    UserStatusReply,
)
from gistsync.errors import PublishError, RemoteError, RequestTimeout

R = TypeVar("R", bound=Message)
# How much longer than its own timeout a request may take before it is cut off, covering
# the publish and a broker that stalls.
GRACE_SECONDS = 1.0
# Reads answered from what a service holds, whatever the moment they were asked while in
# flight. Not `PollNow`: it promises a poll that starts after it was asked.
SHAREABLE = (TrackedUsersQuery, UserStatusQuery, PollStatusQuery, GistsQuery, UserExistsQuery)
Key = tuple[str, float]


class BrokerServices:
    """The real `Services`: one per gateway process, over its broker connection."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        # The shareable queries in flight, by what they ask and how long they may wait.
        self._in_flight: dict[Key, asyncio.Task[AnyMessage]] = {}

    @property
    def ready(self) -> bool:
        return self.broker.ready

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # --- questions ----------------------------------------------------------------------

    async def tracked_users(self, *, cid: str) -> tuple[TrackedUser, ...]:
        reply = await self.ask(TrackedUsersQuery(correlation_id=cid), TrackedUsersReply)
        return reply.users

    async def user_status(self, login: str, *, cid: str) -> TrackedUser | None:
        query = UserStatusQuery(login=login, correlation_id=cid)
        return (await self.ask(query, UserStatusReply)).user

    async def poll_status(self, login: str, *, cid: str) -> PollStatus | None:
        query = PollStatusQuery(login=login, correlation_id=cid)
        return (await self.ask(query, PollStatusReply)).status

    async def gists(self, login: str, *, include_seen: bool, cid: str) -> GistsReply:
        query = GistsQuery(login=login, include_seen=include_seen, correlation_id=cid)
        return await self.ask(query, GistsReply)

    async def github_login(self, login: str, *, cid: str) -> str | None:
        reply = await self.ask(UserExistsQuery(login=login, correlation_id=cid), UserExistsReply)
        return reply.login if reply.exists else None

    async def poll_and_wait(self, *, cid: str) -> PollReport:
        wait = self.settings.fetch_timeout_seconds
        reports = await asyncio.gather(
            *(self.ask(poll, PollReport, wait) for poll in self._polls(cid))
        )
        return PollReport(
            users=sum(r.users for r in reports),
            new_gists=sum(r.new_gists for r in reports),
            correlation_id=cid,
        )

    # --- commands -----------------------------------------------------------------------

    async def track(self, login: str, *, cid: str) -> None:
        await self.tell(TrackUser(login=login, correlation_id=cid))

    async def untrack(self, login: str, *, cid: str) -> None:
        await self.tell(UntrackUser(login=login, correlation_id=cid))

    async def mark_seen(self, login: str, gist_ids: tuple[str, ...], *, cid: str) -> None:
        await self.tell(MarkGistsSeen(login=login, gist_ids=gist_ids, correlation_id=cid))

    async def poll_now(self, *, cid: str) -> None:
        for poll in self._polls(cid):
            await self.tell(poll)

    def sign_outs(self, revocations: Revocations) -> SignOuts:
        return RevocationBus(self.broker, revocations, self.settings.publish_timeout_seconds)

    # --- the exchanges ------------------------------------------------------------------

    def _polls(self, cid: str) -> list[PollNow]:
        """One per partition: each poller replica polls the users of the partitions it owns."""
        return [PollNow(partition=n, correlation_id=cid) for n in range(self.broker.partitions)]

    async def ask(self, query: Message, expect: type[R], timeout: float = 0) -> R:
        """Send a query, wait for its reply (at most `timeout`, the request timeout by default)."""
        wait = timeout or self.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(
                wait + self.settings.publish_timeout_seconds + GRACE_SECONDS
            ):
                reply = await self._request(query, wait)
        except TimeoutError:
            raise RequestTimeout(f"no answer to {query.type}") from None
        if not isinstance(reply, expect):
            raise RemoteError("unexpected_reply", f"expected {expect.__name__}, got {reply.type}")
        return reply

    async def _request(self, query: Message, wait: float) -> AnyMessage:
        """The broker request for `query`, joined if an identical one is already in flight.

        The shared request runs as its own task, so an asker that gives up (timeout, client
        gone) never cancels it for the others; it carries the first asker's correlation id.
        """
        if not isinstance(query, SHAREABLE):
            return await self.broker.request(query, timeout=wait)
        key = (query.model_dump_json(exclude={"message_id", "correlation_id", "sent_at"}), wait)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self.broker.request(query, timeout=wait))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: Key, task: asyncio.Task[AnyMessage]) -> None:
        """Answered: the next identical query asks again."""
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # seen here too: every asker may have given up before the end

    async def tell(self, command: Message) -> None:
        """Publish a command; done once the broker confirmed it."""
        try:
            async with asyncio.timeout(self.settings.publish_timeout_seconds + GRACE_SECONDS):
                await self.broker.publish(command)
        except TimeoutError:
            raise PublishError("the broker did not confirm in time") from None
