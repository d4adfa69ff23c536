"""Identical concurrent reads share one broker request, on a real broker: a writer stand-in
that holds its answers counts how many queries reach it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientResponse
from prometheus_client import REGISTRY

from gistsync.broker import Retry
from gistsync.contracts import (
    AnyMessage,
    GistsQuery,
    GistsReply,
    Message,
    PollReport,
    TrackedUser,
    TrackedUsersReply,
)
from tests.conftest import PARTITIONS, BrokerFactory
from tests.gateway.conftest import Client
from tests.waiting import eventually

CONCURRENT = 20


@dataclass
class HeldPeer:
    """Answers the writer's and the poller's queries only once `release` is set, so that
    every concurrent request is in flight before the first answer."""

    answer: Callable[[AnyMessage], Message | None]
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[AnyMessage] = field(default_factory=list)

    async def handle(self, message: AnyMessage) -> Message | None:
        self.received.append(message)
        await self.release.wait()
        return self.answer(message)

    def count(self, kind: str) -> int:
        return sum(m.type == kind for m in self.received)


def users(*logins: str) -> TrackedUsersReply:
    return TrackedUsersReply(users=tuple(TrackedUser(login=u, unseen=0) for u in logins))


def answers(message: AnyMessage) -> Message | None:
    match message:
        case GistsQuery(login=login):
            return GistsReply(tracked=True, login=login)
        case _:
            return users("alice", "bob")


async def start_peer(brokers: BrokerFactory, peer: HeldPeer) -> None:
    """Where the writer and the poller take their queries: a user's gists come on the
    writer's partitions, a poll of one partition on the poller's, the rest on the shared
    query queues."""
    broker = brokers("peer")
    await broker.connect()
    await broker.consume("pipedrive_writer.queries", peer.handle, retry=None)
    await broker.consume("github_poller.queries", peer.handle, retry=None)
    await broker.consume_partitions("pipedrive_writer", peer.handle, retry=Retry(max_attempts=1))
    await broker.consume_partitions("github_poller", peer.handle, retry=Retry(max_attempts=1))


@pytest.fixture
async def peer(brokers: BrokerFactory) -> HeldPeer:
    held = HeldPeer(answers)
    await start_peer(brokers, held)
    return held


def in_flight() -> float:
    return REGISTRY.get_sample_value("gistsync_http_requests_in_flight") or 0.0


async def concurrently(
    gateway: Client, peer: HeldPeer, paths: list[str], *, queries: int
) -> list[ClientResponse]:
    """Sends every request at once, releases the peer once all are being answered and
    `queries` reached it, and returns the responses."""
    before = in_flight()
    sent = [asyncio.ensure_future(gateway.get(path)) for path in paths]
    await eventually(lambda: in_flight() - before >= len(paths), what="all requests in flight")
    await eventually(lambda: len(peer.received) >= queries, what="the queries at the peer")
    await asyncio.sleep(0.2)  # room for any further query to show up
    peer.release.set()
    return list(await asyncio.gather(*sent))


async def test_concurrent_identical_reads_share_one_broker_request(
    gateway: Client, peer: HeldPeer
) -> None:
    responses = await concurrently(gateway, peer, ["/list"] * CONCURRENT, queries=1)
    assert [r.status for r in responses] == [200] * CONCURRENT
    bodies = [await r.json() for r in responses]
    assert bodies == [{"success": True, "data": ["alice", "bob"]}] * CONCURRENT
    assert peer.count("query.tracked_users") == 1


async def test_every_read_shares_the_same_request_across_routes(
    gateway: Client, peer: HeldPeer
) -> None:
    # /list and /api/users ask the same question: one request answers both.
    paths = ["/list", "/api/users"] * (CONCURRENT // 2)
    responses = await concurrently(gateway, peer, paths, queries=1)
    assert {r.status for r in responses} == {200}
    assert peer.count("query.tracked_users") == 1


async def test_different_questions_are_not_shared(gateway: Client, peer: HeldPeer) -> None:
    paths = [
        "/api/users/alice/gists",
        "/api/users/alice/gists",
        "/api/users/alice/gists?state=all",
        "/api/users/bob/gists",
    ]
    responses = await concurrently(gateway, peer, paths, queries=3)
    assert {r.status for r in responses} == {200}
    asked = sorted((m.login, m.include_seen) for m in peer.received if isinstance(m, GistsQuery))
    assert asked == [("alice", False), ("alice", True), ("bob", False)]


async def test_nothing_is_kept_once_answered(gateway: Client, peer: HeldPeer) -> None:
    peer.release.set()
    first = await (await gateway.get("/list")).json()
    peer.answer = lambda message: users("carol")
    second = await (await gateway.get("/list")).json()
    assert first["data"] == ["alice", "bob"]
    assert second["data"] == ["carol"]  # asked again, never the earlier answer
    assert peer.count("query.tracked_users") == 2


async def test_an_error_reaches_every_asker(gateway: Client, peer: HeldPeer) -> None:
    def fail(message: AnyMessage) -> Message | None:
        raise RuntimeError("the writer broke")

    peer.answer = fail
    responses = await concurrently(gateway, peer, ["/api/users"] * CONCURRENT, queries=1)
    assert [r.status for r in responses] == [502] * CONCURRENT
    assert peer.count("query.tracked_users") == 1
    # The failure is not remembered either.
    peer.answer = answers
    assert (await gateway.get("/api/users")).status == 200
    assert peer.count("query.tracked_users") == 2


async def test_a_silent_service_times_out_every_asker_once(gateway: Client, peer: HeldPeer) -> None:
    # Never released: nobody answers within the gateway's 1 s request timeout.
    sent = [asyncio.ensure_future(gateway.get("/api/users")) for _ in range(CONCURRENT)]
    responses = await asyncio.gather(*sent)
    assert [r.status for r in responses] == [504] * CONCURRENT
    assert peer.count("query.tracked_users") == 1
    peer.release.set()


async def test_poll_now_is_never_shared(gateway: Client, brokers: BrokerFactory) -> None:
    # Each /fetch promises a poll that starts after it was asked, so each one asks.
    peer = HeldPeer(lambda message: PollReport(users=2, new_gists=0))
    await start_peer(brokers, peer)
    # Each /fetch asks every partition's owner.
    responses = await concurrently(gateway, peer, ["/fetch"] * 3, queries=3 * PARTITIONS)
    assert [r.status for r in responses] == [200] * 3
    assert peer.count("command.poll_now") == 3 * PARTITIONS
