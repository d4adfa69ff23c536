"""`gistsync users` over a real broker, with the poller's and the writer's stand-ins
(`tests.gateway.conftest.Peers` serving a `World`) answering: the gateway's messages, the
gateway's steps, and a clear line and exit code for every way it can go wrong."""

from __future__ import annotations

import json

import pytest

from gistsync.contracts import TrackUser, UntrackUser
from tests.cli.conftest import Peers, gistsync
from tests.gateway.fakes import World
from tests.waiting import eventually


@pytest.fixture
def world(broker_env: dict[str, str], broker_peers: Peers) -> World:
    world = World()
    world.add_user("OctoCat")
    world.add_user("alice")
    world.track("alice")
    return world.serve(broker_peers)


async def test_list_shows_each_tracked_user(world: World) -> None:
    world.add_user("Bob")
    world.track("Bob")
    run = await gistsync("users", "list")
    assert run.code == 0, run.text
    assert [line.split() for line in run.out.splitlines()] == [
        ["LOGIN", "UNSEEN"],
        ["alice", "0"],
        ["Bob", "0"],
    ]
    assert run.err == "2 tracked user(s)\n"


async def test_list_as_json_lines(world: World) -> None:
    run = await gistsync("users", "list", "--json")
    assert run.code == 0, run.text
    assert [json.loads(line) for line in run.out.splitlines()] == [{"login": "alice", "unseen": 0}]


async def test_add_tracks_under_githubs_spelling(world: World, broker_peers: Peers) -> None:
    run = await gistsync("users", "add", "octocat")
    assert run.code == 0, run.text
    assert run.out == "tracking OctoCat\n"
    await eventually(lambda: "octocat" in world.tracked, what="OctoCat tracked")
    [command] = broker_peers.of_type("command.track_user")
    assert isinstance(command, TrackUser) and command.login == "OctoCat"


async def test_add_someone_tracked_already_sends_nothing(world: World, broker_peers: Peers) -> None:
    run = await gistsync("users", "add", "ALICE")
    assert run.code == 0, run.text
    assert run.out == "already tracked: alice\n"
    assert broker_peers.of_type("command.track_user") == []
    assert broker_peers.of_type("query.user_exists") == []  # no GitHub request either


async def test_add_a_login_github_does_not_know_exits_1(world: World, broker_peers: Peers) -> None:
    run = await gistsync("users", "add", "nobody-here")
    assert run.code == 1
    assert run.err == "no GitHub user nobody-here\n"
    assert broker_peers.of_type("command.track_user") == []


async def test_remove(world: World, broker_peers: Peers) -> None:
    run = await gistsync("users", "remove", "Alice")
    assert run.code == 0, run.text
    assert run.out == "no longer tracking alice\n"
    await eventually(lambda: not world.tracked, what="alice untracked")
    [command] = broker_peers.of_type("command.untrack_user")
    assert isinstance(command, UntrackUser) and command.login == "alice"


async def test_remove_someone_not_tracked_exits_1(world: World, broker_peers: Peers) -> None:
    run = await gistsync("users", "remove", "OctoCat")
    assert run.code == 1
    assert run.err == "not tracked: OctoCat\n"
    assert broker_peers.of_type("command.untrack_user") == []


@pytest.mark.parametrize("login", ["not a login", "x" * 40, "a_b", ""])
async def test_an_invalid_login_exits_2_before_any_broker(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, login: str
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # never reached
    run = await gistsync("users", "add", login)
    assert run.code == 2
    assert run.err.startswith(f"gistsync users: invalid login {login!r}")


async def test_broker_down_exits_3_without_its_password(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:broker-password-42@127.0.0.1:1/")
    run = await gistsync("users", "list")
    assert run.code == 3
    assert run.err.startswith(
        "gistsync users: cannot reach the broker amqp://127.0.0.1:1/: AMQPConnectionError: "
    )
    assert "broker-password-42" not in run.text


async def test_no_service_answering_exits_3_and_says_which(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", "0.3")  # nobody consumes the queries
    run = await gistsync("users", "add", "octocat")
    assert run.code == 3
    assert "no answer to query.user_status" in run.err
    assert "are github_poller and pipedrive_writer running" in run.err


async def test_bad_settings_exit_2(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTITIONS", "none")
    run = await gistsync("users", "list")
    assert run.code == 2
    assert run.err.startswith("gistsync users: setting PARTITIONS is invalid")
