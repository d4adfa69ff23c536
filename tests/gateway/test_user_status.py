"""One user's status, as `GET /api/users/{login}` and the user's page show it: the writer's
count of unseen gists and the poller's account of the polling, asked at once. A poller that
does not answer leaves the polling unknown; the rest is answered all the same."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator

from gateway.openapi import build
from gistsync.contracts import PollError, PollStatus
from tests.gateway.conftest import Client, Peers, StartGateway, gateway_settings
from tests.gateway.fakes import XSS, FakeServices, World, failing, gist

T0 = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 2, 9, 34, 0, tzinfo=UTC)
FAILING = PollStatus(
    last_poll_at=T1,
    last_change_at=T0,
    last_error=PollError(at=T1, text="GitHub answered 502 for user OctoCat: Bad Gateway"),
    failures=2,
    interval_seconds=240.0,
    next_poll_at=T2,
)
UNKNOWN: dict[str, Any] = {
    "state": "unknown",
    "detail": "The poller did not answer in time.",
    "last_poll_at": None,
    "last_change_at": None,
    "last_error": None,
    "failures": None,
    "interval_seconds": None,
    "next_poll_at": None,
}


@pytest.fixture
def world(peers: FakeServices) -> World:
    world = World()
    world.add_user("OctoCat", gist("aa11", "Hello", ("hello.py", "Python")))
    world.track("OctoCat")
    world.polls["octocat"] = FAILING
    return world.serve(peers)


def documented(body: dict[str, Any]) -> None:
    """`body` is what the OpenAPI document says `getUser` answers."""
    spec = build(gateway_settings())
    schema = spec["paths"]["/api/users/{login}"]["get"]["responses"]["200"]["content"]
    validator = OAS31Validator(
        {**schema["application/json"]["schema"], "components": spec["components"]}
    )
    validator.validate(body)


async def user(gateway: Client, login: str = "octocat") -> dict[str, Any]:
    response = await gateway.get(f"/api/users/{login}")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    documented(body)
    return body


# --- the API ------------------------------------------------------------------------------


async def test_the_writers_count_and_the_pollers_status_in_one_answer(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    response = await gateway.get("/api/users/OCTOCAT")
    assert await response.json() == {
        "login": "OctoCat",
        "unseen": 1,
        "polling": {
            "state": "reported",
            "detail": None,
            "last_poll_at": "2026-03-02T09:30:00Z",
            "last_change_at": "2026-03-02T09:00:05Z",
            "last_error": {
                "at": "2026-03-02T09:30:00Z",
                "message": "GitHub answered 502 for user OctoCat: Bad Gateway",
            },
            "failures": 2,
            "interval_seconds": 240.0,
            "next_poll_at": "2026-03-02T09:34:00Z",
        },
    }
    documented(await response.json())
    # Both asked, as the request that caused them.
    [status] = peers.of_type("query.user_status")
    [polling] = peers.of_type("query.poll_status")
    assert status.correlation_id == polling.correlation_id == response.headers["X-Request-Id"]


async def test_a_user_the_poller_does_not_poll_yet_says_so(gateway: Client, world: World) -> None:
    world.polls.clear()
    polling = (await user(gateway))["polling"]
    assert polling == {
        **UNKNOWN,
        "state": "not_polled",
        "detail": "The poller does not poll this user (yet).",
    }


async def test_a_silent_poller_leaves_the_polling_unknown_not_the_user(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    del peers.answers["query.poll_status"]
    body = await user(gateway)
    assert (body["login"], body["unseen"], body["polling"]) == ("OctoCat", 1, UNKNOWN)


async def test_a_failing_poller_leaves_the_polling_unknown_and_its_words_out(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    peers.answers["query.poll_status"] = failing("failed", "amqp://guest:hunter2@rabbit")
    response = await gateway.get("/api/users/octocat")
    text = await response.text()
    assert response.status == 200
    assert "hunter2" not in text
    polling = (await response.json())["polling"]
    assert polling == {**UNKNOWN, "detail": "The poller failed to answer."}


async def test_a_silent_writer_is_still_a_timeout(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    del peers.answers["query.user_status"]
    response = await gateway.get("/api/users/octocat")
    assert response.status == 504
    assert (await response.json())["type"] == "urn:gistsync:problem:upstream-timeout"


async def test_an_untracked_user_is_404_whatever_the_poller_says(
    gateway: Client, world: World
) -> None:
    world.tracked.clear()
    response = await gateway.get("/api/users/octocat")
    assert response.status == 404


async def test_the_writer_and_the_poller_are_asked_at_once(
    gateway: Client, world: World, peers: FakeServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each answer waits until both questions are out: asked one after the other, the first
    # would wait in vain.
    both = asyncio.Barrier(2)
    user_status, poll_status = peers.user_status, peers.poll_status

    async def user_status_met(login: str, *, cid: str) -> Any:
        await asyncio.wait_for(both.wait(), 2)
        return await user_status(login, cid=cid)

    async def poll_status_met(login: str, *, cid: str) -> Any:
        await asyncio.wait_for(both.wait(), 2)
        return await poll_status(login, cid=cid)

    monkeypatch.setattr(peers, "user_status", user_status_met)
    monkeypatch.setattr(peers, "poll_status", poll_status_met)
    assert (await user(gateway))["polling"]["state"] == "reported"


# --- the page -------------------------------------------------------------------------------


async def test_the_users_page_shows_how_polling_goes(gateway: Client, world: World) -> None:
    world.polls["octocat"] = FAILING.model_copy(update={"last_error": PollError(at=T1, text=XSS)})
    page = await (await gateway.get("/users/OctoCat")).text()
    assert '<section class=polling id=polling data-state="reported">' in page
    assert '<dt>Last poll</dt><dd><time datetime="2026-03-02T09:30:00Z">' in page
    assert "2026-03-02 09:30:00 UTC" in page
    assert '<dt>Last change seen</dt><dd><time datetime="2026-03-02T09:00:05Z">' in page
    assert "<dt>Polled every</dt><dd>4 min (2 failed polls in a row)</dd>" in page
    assert '<dt>Next poll</dt><dd><time datetime="2026-03-02T09:34:00Z">' in page
    # The error's text is GitHub's words: shown as text, never markup.
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'id="gist-aa11"' in page


async def test_the_users_page_without_the_poller_still_shows_the_gists(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    del peers.answers["query.poll_status"]
    response = await gateway.get("/users/OctoCat")
    assert response.status == 200
    page = await response.text()
    assert '<section class=polling id=polling data-state="unknown">' in page
    assert "Polling status unknown. The poller did not answer in time." in page
    assert 'id="gist-aa11"' in page


async def test_a_user_never_polled_nor_failing_reads_plainly(gateway: Client, world: World) -> None:
    world.polls["octocat"] = PollStatus(interval_seconds=5400.0)
    page = await (await gateway.get("/users/OctoCat")).text()
    assert "<dt>Last poll</dt><dd>not yet</dd>" in page
    assert "<dt>Last change seen</dt><dd>none yet</dd>" in page
    assert "<dt>Last error</dt><dd>none</dd>" in page
    assert "<dt>Polled every</dt><dd>1 h 30 min</dd>" in page
    assert "<dt>Next poll</dt><dd>running now</dd>" in page


# --- on the broker ----------------------------------------------------------------------------


async def test_through_the_broker_a_silent_poller_costs_one_timeout(
    start_broker_gateway: StartGateway, broker_peers: Peers
) -> None:
    world = World()
    world.add_user("OctoCat")
    world.track("OctoCat")
    world.polls["octocat"] = FAILING
    world.serve(broker_peers)
    gateway = await start_broker_gateway(request_timeout_seconds=1.0)
    body = await user(gateway)
    assert body["polling"]["state"] == "reported"
    assert body["polling"]["last_error"]["at"] == "2026-03-02T09:30:00Z"

    # The poller's stand-in stops answering: one request timeout (1 s), not two.
    del broker_peers.answers["query.poll_status"]
    started = time.monotonic()
    body = await user(gateway)
    took = time.monotonic() - started
    print(f"GET /api/users/octocat with a silent poller: {took:.2f} s")
    assert (body["unseen"], body["polling"]) == (0, UNKNOWN)
    assert 1.0 <= took < 1.9
