"""The real `Services` (`gateway.bus.BrokerServices`) on a real broker: what reaches the
other services, and every way an exchange can fail, as the answers of each audience.

Identical concurrent reads share one broker request: a writer stand-in that holds its
answers counts how many queries reach it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from prometheus_client import REGISTRY

from gateway.bus import BrokerServices
from gateway.services import SERVICES
from gistsync.broker import Broker
from gistsync.contracts import (
    AnyMessage,
    GistsQuery,
    GistsReply,
    Message,
    PollNow,
    PollReport,
    TrackedUser,
    TrackedUsersReply,
)
from gistsync.errors import PublishError
from gistsync.retry import Retry
from tests.conftest import PARTITIONS, BrokerFactory
from tests.gateway.conftest import Client, Peers, StartGateway
from tests.gateway.fakes import World, gist
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


# This module's gateways and peers are the real ones, on the broker.
@pytest.fixture
async def start_gateway(start_broker_gateway: StartGateway) -> StartGateway:
    return start_broker_gateway


@pytest.fixture
async def gateway(broker_gateway: Client) -> Client:
    return broker_gateway


@pytest.fixture
async def peers(broker_peers: Peers) -> Peers:
    return broker_peers


@pytest.fixture
def world(peers: Peers) -> World:
    world = World()
    world.add_user("OctoCat", gist("aa11", "Hello", ("hello.py", "Python")))
    world.add_user("alice")
    world.track("alice")
    return world.serve(peers)


def broker_of(gateway: Client) -> Broker:
    services = gateway.app[SERVICES]
    assert isinstance(services, BrokerServices)
    return services.broker


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


# --- what reaches the other services ------------------------------------------------------


async def test_track_read_mark_and_untrack_through_the_broker(
    gateway: Client, world: World, peers: Peers
) -> None:
    """Every question and command on its way: shared queues, partitions, replies."""
    created = await gateway.post("/api/users", json={"login": "octocat"})
    assert created.status == 202 and created.headers["Location"] == "/api/users/OctoCat"
    await eventually(lambda: "octocat" in world.tracked)
    # One user: the partitioned queries, to the writer and to the poller.
    one = await (await gateway.get("/api/users/OCTOCAT")).json()
    assert (one["login"], one["unseen"], one["polling"]["state"]) == ("OctoCat", 1, "not_polled")
    assert [m.type for m in peers.received if m.type == "query.user_status"]
    assert [m.type for m in peers.received if m.type == "query.poll_status"]
    listed = await (await gateway.get("/list")).json()
    assert sorted(listed["data"]) == ["OctoCat", "alice"]
    seen = await gateway.post("/api/users/octocat/gists/seen", json={"all": True})
    assert await seen.json() == {"login": "OctoCat", "gist_ids": ["aa11"]}
    await eventually(lambda: world.seen == {"aa11"})
    assert (await gateway.delete("/api/users/alice")).status == 202
    await eventually(lambda: "alice" not in world.tracked)
    kinds = {m.type for m in peers.received}
    assert {"command.track_user", "command.mark_seen", "command.untrack_user"} <= kinds


# --- failures, as each audience is answered them --------------------------------------------


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status and body["request_id"] == response.headers["X-Request-Id"]
    return body


async def test_a_silent_service_is_504_a_broken_one_502(gateway: Client, peers: Peers) -> None:
    started = time.monotonic()
    silent = await problem(await gateway.get("/api/users"), 504)
    assert silent["type"] == "urn:gistsync:problem:upstream-timeout"
    assert silent["detail"] == "A gistsync service did not answer in time; try again shortly."
    assert time.monotonic() - started < 4

    def broken(_: AnyMessage) -> None:
        raise RuntimeError("cache not loaded")

    peers.answers["query.user_status"] = broken  # one user: the owner of their partition
    failed = await problem(await gateway.get("/api/users/octocat"), 502)
    assert failed["detail"] == "A gistsync service failed: cache not loaded"


async def test_a_wrong_reply_is_502(gateway: Client, peers: Peers, world: World) -> None:
    peers.answers["query.gists"] = lambda _: TrackedUsersReply(users=())
    body = await problem(await gateway.get("/api/users/alice/gists"), 502)
    assert "expected GistsReply" in body["detail"]


async def test_an_unreachable_broker_is_503_and_changes_nothing(
    gateway: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: object, **__: object) -> None:
        raise PublishError("not connected to the broker")

    monkeypatch.setattr(broker_of(gateway), "publish", refuse)
    body = await problem(await gateway.post("/api/sync"), 503)
    assert body["type"] == "urn:gistsync:problem:broker-unavailable"
    assert "nothing was changed" in body["detail"]


async def test_a_stalled_broker_never_hangs_a_request(
    start_gateway: StartGateway, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await start_gateway(publish_timeout_seconds=0.2, request_timeout_seconds=0.3)

    async def stall(*_: object, **__: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(broker_of(gateway), "request", stall)
    monkeypatch.setattr(broker_of(gateway), "publish", stall)
    started = time.monotonic()
    await problem(await gateway.get("/api/users"), 504)
    await problem(await gateway.post("/api/sync"), 503)
    assert time.monotonic() - started < 5


async def test_fetch_polls_every_partition_and_adds_up(gateway: Client, peers: Peers) -> None:
    # Each partition's owner reports its users; the gateway asks them all.
    def report(message: AnyMessage) -> PollReport:
        assert isinstance(message, PollNow) and message.partition is not None
        return PollReport(users=2, new_gists=message.partition + 1)

    peers.answers["command.poll_now"] = report
    response = await gateway.get("/fetch")
    assert response.status == 200
    assert await response.text() == f"New gists: <b>{sum(range(1, PARTITIONS + 1))}</b>"
    polls = [m for m in peers.of_type("command.poll_now") if isinstance(m, PollNow)]
    assert sorted(m.partition for m in polls if m.partition is not None) == list(range(PARTITIONS))


async def test_a_silent_service_gives_503_not_a_hang(gateway: Client) -> None:
    started = time.monotonic()
    response = await gateway.get("/list")
    assert response.status == 503
    assert await response.json() == {
        "success": False,
        "error": "A gistsync service did not answer in time; try again shortly.",
    }
    page = await gateway.get("/show", params={"user": "octocat"})
    assert page.status == 503
    assert "did not answer in time" in await page.text()
    assert time.monotonic() - started < 5


async def test_a_failing_service_gives_502_with_its_reason(gateway: Client, peers: Peers) -> None:
    def broken(_: AnyMessage) -> None:
        raise RuntimeError("cache not loaded")

    peers.answers["query.tracked_users"] = broken
    response = await gateway.get("/list")
    assert response.status == 502
    assert (await response.json())["error"] == "A gistsync service failed: cache not loaded"
