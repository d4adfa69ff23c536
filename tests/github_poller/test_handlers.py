"""The service's messages over a real RabbitMQ: the queries a gateway asks, the events the
writer sends, with the whole service running in-process against the simulator."""

from __future__ import annotations

import logging

import httpx
import pytest

from gistsync.contracts import (
    GistDiscovered,
    Message,
    PollNow,
    PollReport,
    UserExistsQuery,
    UserExistsReply,
    UserTracked,
    UserUntracked,
    login_key,
)
from gistsync.errors import RemoteError
from gistsync.transport.topology import partition_of
from github_poller.__main__ import lifespan
from github_poller.handlers import Handlers
from github_poller.poller import Poller
from github_poller.schedule import Schedule
from sandbox.testing import Sandbox
from tests.conftest import PARTITIONS
from tests.github_poller.conftest import ClientFactory, Settled, World, handled, status
from tests.waiting import eventually


async def test_user_exists_answers_with_githubs_spelling(world: World) -> None:
    world.sandbox.github.add_user("OctoCat")
    await world.start_writer()
    settings = world.settings()
    async with lifespan(settings):
        gateway = await world.gateway()
        found = await gateway.request(UserExistsQuery(login="octocat"), timeout=5)
        assert found == UserExistsReply(
            exists=True,
            login="OctoCat",
            message_id=found.message_id,
            correlation_id=found.correlation_id,
            sent_at=found.sent_at,
        )
        missing = await gateway.request(UserExistsQuery(login="nobody"), timeout=5)
        assert isinstance(missing, UserExistsReply)
        assert (missing.exists, missing.login) == (False, None)


async def test_user_exists_fails_with_an_error_reply_when_github_does(world: World) -> None:
    await world.start_writer()
    world.sandbox.github.patch_config({"faults": {"error_rate": 1.0}})
    async with lifespan(world.settings()):
        gateway = await world.gateway()
        with pytest.raises(RemoteError) as caught:
            await gateway.request(UserExistsQuery(login="octocat"), timeout=5)
    assert caught.value.code == "failed"
    assert caught.value.detail == "GitHub answered 500 for user octocat: Server Error"


async def test_poll_now_polls_every_tracked_user_and_reports(world: World) -> None:
    world.sandbox.github.add_gists_bulk("alice", 2)
    world.sandbox.github.add_gists_bulk("Bob", 1)
    world.writer.users = ["alice", "Bob"]
    await world.start_writer()
    settings = world.settings()
    settled = Settled()
    async with lifespan(settings):
        await eventually(lambda: ready(f"http://127.0.0.1:{settings.github_poller_port}"))
        gateway = await world.gateway()
        # Loaded users are spread over the (here hour-long) interval: one is polled at
        # once (which one depends on their partitions), the other would be in half an hour.
        gists = {"alice": 2, "Bob": 1}
        events = world.writer.events
        await eventually(lambda: bool(events) and len(events) == gists[events[0].login])
        not_yet = 3 - len(events)
        first = await gateway.request(PollNow(correlation_id="fetch-1"), timeout=5)
        assert isinstance(first, PollReport)
        assert (first.users, first.new_gists, first.correlation_id) == (2, not_yet, "fetch-1")
        again = await gateway.request(PollNow(), timeout=5)
        assert isinstance(again, PollReport)
        assert (again.users, again.new_gists) == (2, 0)
        await eventually(lambda: len(world.writer.events) == 3 and settled())
    assert sorted(e.login for e in world.writer.events) == ["Bob", "alice", "alice"]
    assert world.sandbox.github.stats.snapshot(with_tokens=False)["requests"] == {
        "GET /users/{username}/gists": {"200": 2, "304": 3}
    }


async def test_a_poll_of_one_partition_polls_only_its_users(world: World) -> None:
    logins = ["alice", "Bob", "carol", "dave"]
    for login in logins:
        world.sandbox.github.add_gists_bulk(login, 1)
    world.writer.users = logins
    await world.start_writer()
    settings = world.settings()
    async with lifespan(settings):
        await eventually(lambda: ready(f"http://127.0.0.1:{settings.github_poller_port}"))
        gateway = await world.gateway()
        reports = [
            await gateway.request(PollNow(partition=n), timeout=5) for n in range(PARTITIONS)
        ]
    assert all(isinstance(r, PollReport) for r in reports)
    mine = [
        sum(partition_of(login_key(login), PARTITIONS) == n for login in logins)
        for n in range(PARTITIONS)
    ]
    assert [r.users for r in reports if isinstance(r, PollReport)] == mine
    assert sum(mine) == len(logins)


async def test_a_tracked_user_is_polled_at_once_and_a_duplicate_is_harmless(
    world: World,
) -> None:
    world.sandbox.github.add_gists_bulk("newbie", 2)
    await world.start_writer()
    settings = world.settings()
    ops = f"http://127.0.0.1:{settings.github_poller_port}"
    settled = Settled()
    async with lifespan(settings):
        gateway = await world.gateway()
        # One question per partition gained at start, each for that partition's users.
        await eventually(lambda: world.writer.queries == PARTITIONS)
        assert sorted(n for n in world.writer.asked if n is not None) == list(range(PARTITIONS))
        await gateway.publish(UserTracked(login="newbie"))
        await eventually(lambda: len(world.writer.events) == 2, timeout=3)
        before = handled("github_poller")
        await gateway.publish(UserTracked(login="NEWBIE"))  # the same user
        await eventually(lambda: handled("github_poller") > before and settled())
        assert len(world.writer.events) == 2
        assert world.sandbox.github.stats.total == 1
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{ops}/metrics")).text
    assert "gistsync_tracked_users 1.0" in metrics
    assert all(isinstance(e, GistDiscovered) and e.login == "newbie" for e in world.writer.events)


async def test_an_untracked_user_is_no_longer_polled(world: World) -> None:
    world.sandbox.github.add_gists_bulk("leaver", 1)
    world.sandbox.github.add_gists_bulk("stayer", 1)
    await world.start_writer()
    settings = world.settings(poll_interval_seconds=0.2)
    settled = Settled()
    async with lifespan(settings):
        gateway = await world.gateway()
        # One question per partition gained at start.
        await eventually(lambda: world.writer.queries == PARTITIONS)
        await gateway.publish(UserTracked(login="leaver"))
        await gateway.publish(UserTracked(login="stayer"))
        await eventually(lambda: len(world.writer.events) == 2, timeout=3)
        before = handled("github_poller")
        await gateway.publish(UserUntracked(login="LEAVER"))
        await eventually(lambda: handled("github_poller") > before and settled())
        world.sandbox.github.add_gists_bulk("leaver", 1)
        world.sandbox.github.add_gists_bulk("stayer", 1)
        await eventually(lambda: len(world.writer.events) == 3, timeout=3)
        report = await gateway.request(PollNow(), timeout=5)  # polls whoever is tracked
        await eventually(settled)
    assert isinstance(report, PollReport)
    assert report.users == 1
    assert [e.login for e in world.writer.events] == ["leaver", "stayer", "stayer"]


async def test_tracked_users_load_retries_until_the_writer_answers(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="github_poller")
    world.sandbox.github.add_gists_bulk("alice", 1)
    world.writer.users = ["alice"]
    settings = world.settings(request_timeout_seconds=0.3, poll_interval_seconds=0.5)
    ops = f"http://127.0.0.1:{settings.github_poller_port}"
    async with lifespan(settings):
        await eventually(lambda: len(retries(caplog)) >= 2)
        assert await status(f"{ops}/healthz") == 200
        assert await status(f"{ops}/readyz") == 503
        gateway = await world.gateway()
        with pytest.raises(RemoteError, match="the tracked users are not loaded yet"):
            await gateway.request(PollNow(), timeout=5)

        await world.start_writer()
        await eventually(lambda: ready(ops), timeout=5)
        await eventually(lambda: len(world.writer.events) == 1, timeout=3)
    assert world.writer.events[0].login == "alice"
    assert len(retries(caplog)) >= 2
    assert {r.levelname for r in retries(caplog)} == {"WARNING"}
    assert any(r.getMessage() == "tracked users loaded" for r in caplog.records)


def retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "tracked users not loaded, retrying"]


async def ready(ops: str) -> bool:
    return await status(f"{ops}/readyz") == 200


async def test_an_unknown_login_is_asked_of_github_once_until_its_entry_expires(
    sandbox: Sandbox, clients: ClientFactory
) -> None:
    now = [1000.0]
    client, _ = clients()
    schedule = Schedule(interval=3600, rate=200, max_in_flight=8, failure_backoff_max=60)
    poller = Poller(client, publish_nothing, schedule)
    handlers = Handlers(poller, client, query_wait=5, unknown_user_ttl=300, clock=lambda: now[0])
    sandbox.github.stats.reset()
    for attempt in range(60):
        login = "gil--" if attempt % 2 else "GIL--"  # one user, whatever the case
        reply = await handlers.user_exists(UserExistsQuery(login=login))
        assert (reply.exists, reply.login) == (False, None)
        now[0] += 1  # a minute of tries, well within the 300 s
    assert sandbox.github.stats.snapshot(with_tokens=False)["requests"] == {
        "GET /users/{username}": {"404": 1}
    }

    sandbox.github.add_user("gil--")  # created on GitHub meanwhile: a grandfathered login
    reply = await handlers.user_exists(UserExistsQuery(login="gil--"))
    assert reply.exists is False  # still remembered as unknown
    now[0] += 300
    reply = await handlers.user_exists(UserExistsQuery(login="gil--"))
    assert (reply.exists, reply.login) == (True, "gil--")
    assert sandbox.github.stats.snapshot(with_tokens=False)["requests"] == {
        "GET /users/{username}": {"404": 1, "200": 1}
    }


async def publish_nothing(message: Message) -> None:
    raise AssertionError(f"nothing is published here: {message!r}")
