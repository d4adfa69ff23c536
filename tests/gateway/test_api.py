"""The JSON API: what each operation answers, what it sends to the other services, and its
failures as RFC 9457 problems."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientResponse

from gistsync.contracts import AnyMessage, MarkGistsSeen, UntrackUser
from tests.gateway.conftest import API_KEY, Client, StartGateway
from tests.gateway.fakes import FakeServices, World, gist
from tests.waiting import eventually

PROBLEM = "application/problem+json"


@pytest.fixture
def world(peers: FakeServices) -> World:
    world = World()
    world.add_user(
        "OctoCat",
        gist("aa11", "Hello", ("hello.py", "Python"), day=1),
        gist("bb22", "Notes", ("notes.md", None), day=2),
    )
    world.add_user("alice")
    world.track("alice")
    return world.serve(peers)


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


async def test_track_list_read_and_untrack(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    created = await gateway.post("/api/users", json={"login": "octocat"})
    assert created.status == 202
    assert await created.json() == {"login": "OctoCat", "state": "tracking"}
    assert created.headers["Location"] == "/api/users/OctoCat"
    await eventually(lambda: "octocat" in world.tracked)
    [command] = peers.of_type("command.track_user")
    assert command.correlation_id == created.headers["X-Request-Id"]

    listed = await gateway.get("/api/users")
    assert listed.status == 200
    users = (await listed.json())["users"]
    assert {"login": "OctoCat", "unseen": 2} in users
    assert {"login": "alice", "unseen": 0} in users

    one = await (await gateway.get("/api/users/OCTOCAT")).json()
    assert (one["login"], one["unseen"]) == ("OctoCat", 2)  # `polling`: test_user_status.py

    again = await problem(await gateway.post("/api/users", json={"login": "OctoCat"}), 409)
    assert again["type"] == "urn:gistsync:problem:already-tracked"
    assert again["login"] == "OctoCat"

    gone = await gateway.delete("/api/users/octocat")
    assert gone.status == 202
    assert await gone.json() == {"login": "OctoCat", "state": "untracking"}
    await eventually(lambda: "octocat" not in world.tracked)
    [untrack] = peers.of_type("command.untrack_user")
    assert isinstance(untrack, UntrackUser)
    assert untrack.login == "OctoCat"
    await problem(await gateway.get("/api/users/octocat"), 404)
    await problem(await gateway.delete("/api/users/octocat"), 404)


async def test_an_unknown_github_user_is_404_and_nothing_is_sent(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    body = await problem(await gateway.post("/api/users", json={"login": "nobody"}), 404)
    assert body["type"] == "urn:gistsync:problem:no-such-github-user"
    assert body["detail"] == "There is no GitHub user nobody; nothing was added."
    await asyncio.sleep(0.2)
    assert peers.of_type("command.track_user") == []


async def test_gists_unseen_or_all(gateway: Client, world: World) -> None:
    world.track("OctoCat")
    world.seen.add("aa11")
    unseen = await gateway.get("/api/users/octocat/gists")
    assert unseen.status == 200
    assert await unseen.json() == {
        "login": "OctoCat",
        "state": "unseen",
        "gists": [
            {
                "id": "bb22",
                "title": "Notes",
                "seen": False,
                "html_url": "https://gist.github.com/bb22",
                "files": [{"filename": "notes.md", "language": None}],
                "created_at": "2026-03-03T12:00:00Z",
            }
        ],
    }
    every = await (await gateway.get("/api/users/octocat/gists", params={"state": "all"})).json()
    assert [(g["id"], g["seen"]) for g in every["gists"]] == [("aa11", True), ("bb22", False)]
    bad = await problem(await gateway.get("/api/users/octocat/gists?state=new"), 400)
    assert bad["type"] == "urn:gistsync:problem:invalid-parameter"
    await problem(await gateway.get("/api/users/stranger/gists"), 404)


async def test_mark_all_or_some_seen(gateway: Client, world: World, peers: FakeServices) -> None:
    world.track("OctoCat")
    some = await gateway.post("/api/users/octocat/gists/seen", json={"gist_ids": ["bb22", "bb22"]})
    assert some.status == 202
    assert await some.json() == {"login": "OctoCat", "gist_ids": ["bb22"]}
    await eventually(lambda: world.seen == {"bb22"})
    every = await gateway.post("/api/users/OctoCat/gists/seen", json={"all": True})
    assert await every.json() == {"login": "OctoCat", "gist_ids": ["aa11"]}
    await eventually(lambda: world.seen == {"aa11", "bb22"})
    nothing_left = await gateway.post("/api/users/OctoCat/gists/seen", json={"all": True})
    assert await nothing_left.json() == {"login": "OctoCat", "gist_ids": []}
    commands = peers.of_type("command.mark_seen")
    assert [c.gist_ids for c in commands if isinstance(c, MarkGistsSeen)] == [
        ("bb22",),
        ("aa11",),
    ]

    unknown = await gateway.post(
        "/api/users/octocat/gists/seen", json={"gist_ids": ["aa11", "zz99"]}
    )
    body = await problem(unknown, 404)
    assert body["unknown"] == ["zz99"]
    assert body["type"] == "urn:gistsync:problem:unknown-gists"
    await problem(await gateway.post("/api/users/stranger/gists/seen", json={"all": True}), 404)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"all": False},
        {"all": 1},
        {"all": True, "gist_ids": ["aa11"]},
        {"all": None},
        {"gist_ids": []},
        {"gist_ids": ["not-an-id!"]},
        {"gist_ids": "aa11"},
        {"everything": True},
    ],
)
async def test_mark_seen_takes_all_or_a_list_of_ids(
    gateway: Client, world: World, body: dict[str, Any]
) -> None:
    world.track("OctoCat")
    answer = await problem(await gateway.post("/api/users/octocat/gists/seen", json=body), 422)
    assert answer["type"] == "urn:gistsync:problem:invalid-body"
    assert answer["errors"][0]["location"].startswith("body")


async def test_bodies_are_json_objects_of_known_fields(gateway: Client, world: World) -> None:
    text = await gateway.post("/api/users", data="login=octocat")
    assert (await problem(text, 415))["detail"].startswith("Send the body as JSON")
    no_type = await gateway.post("/api/users", data=b'{"login": "octocat"}')
    await problem(no_type, 415)
    headers = {"Content-Type": "application/json"}
    malformed = await gateway.post("/api/users", data=b'{"login": ', headers=headers)
    assert (await problem(malformed, 400))["type"] == "urn:gistsync:problem:malformed-json"
    deep = await gateway.post("/api/users", data=b"[" * 20_000, headers=headers)
    await problem(deep, 400)
    not_object = await gateway.post("/api/users", json=["octocat"])
    assert (await problem(not_object, 422))["detail"] == "body: must be a JSON object"
    extra = await gateway.post("/api/users", json={"login": "octocat", "admin": True})
    assert (await problem(extra, 422))["errors"] == [
        {"location": "body.admin", "message": "Extra inputs are not permitted"}
    ]
    bad_login = await problem(await gateway.post("/api/users", json={"login": "x_y"}), 422)
    assert bad_login["detail"].startswith("body.login: a GitHub login has 1 to 39 characters")
    number = await problem(await gateway.post("/api/users", json={"login": 42}), 422)
    assert number["errors"][0]["location"] == "body.login"


async def test_a_body_too_large_is_413(start_gateway: StartGateway, world: World) -> None:
    gateway = await start_gateway(gateway_max_body_bytes=1024)
    big = {"login": "octocat", "padding": "x" * 2000}
    body = await problem(await gateway.post("/api/users", json=big), 413)
    assert body["detail"] == "The request body is larger than this gateway accepts."

    async def chunks() -> Any:
        for _ in range(3):
            yield b" " * 600  # no Content-Length: the limit holds while reading

    headers = {"Content-Type": "application/json"}
    streamed = await gateway.post("/api/users", data=chunks(), headers=headers)
    await problem(streamed, 413)


async def test_path_logins_follow_githubs_rule(gateway: Client, world: World) -> None:
    for path in ("/api/users/bad_name", "/api/users/a.b/gists", "/api/users/" + "a" * 40):
        body = await problem(await gateway.get(path), 400)
        assert body["type"] == "urn:gistsync:problem:invalid-login"
    await problem(await gateway.delete("/api/users/bad_name"), 400)


async def test_unknown_paths_and_methods_are_problems(gateway: Client) -> None:
    await problem(await gateway.get("/api/nothing"), 404)
    wrong = await problem(await gateway.put("/api/users"), 405)
    assert wrong["title"] == "Method Not Allowed"
    response = await gateway.patch("/api/users/octocat")
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "DELETE"}


async def test_sync_asks_for_a_poll_without_waiting(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    response = await gateway.post("/api/sync")
    assert response.status == 202
    assert await response.json() == {"state": "polling"}
    await eventually(lambda: peers.of_type("command.poll_now"))


async def test_an_unreachable_broker_is_503_and_changes_nothing(
    gateway: Client, world: World, peers: FakeServices
) -> None:
    peers.reachable = False
    body = await problem(await gateway.post("/api/sync"), 503)
    assert body["type"] == "urn:gistsync:problem:broker-unavailable"
    assert "nothing was changed" in body["detail"]
    assert peers.of_type("command.poll_now") == []


async def test_an_unexpected_failure_is_500_without_a_trace(
    gateway: Client, peers: FakeServices
) -> None:
    def boom(_: AnyMessage) -> None:
        raise RuntimeError("secret internals")

    peers.answers["query.tracked_users"] = boom
    response = await gateway.get("/api/users")
    body = await problem(response, 500)
    assert "secret internals" not in await response.text()
    assert "Traceback" not in await response.text()
    assert body["request_id"] in body["detail"]


async def test_the_api_key_guards_changes_and_reads(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY)
    missing = await problem(await gateway.post("/api/users", json={"login": "octocat"}), 401)
    assert missing["type"] == "urn:gistsync:problem:unauthorized"
    wrong = await gateway.get("/api/users", headers={"X-API-Key": "x" * 23})
    await problem(wrong, 401)
    assert wrong.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    await asyncio.sleep(0.1)
    assert peers.received == []
    key = {"X-API-Key": API_KEY}
    assert (await gateway.get("/api/users", headers=key)).status == 200
    created = await gateway.post("/api/users", json={"login": "octocat"}, headers=key)
    assert created.status == 202
    # Probes and the API description stay open (the metrics are on the ops port only).
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert (await gateway.get(path)).status == 200, path
    assert (await gateway.get("/metrics", headers=key)).status == 404


async def test_reads_can_be_left_open(
    start_gateway: StartGateway, world: World, peers: FakeServices
) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY, gateway_protect_reads=False)
    assert (await gateway.get("/api/users")).status == 200
    assert (await gateway.get("/api/users/alice/gists")).status == 200
    await problem(await gateway.post("/api/sync"), 401)
    await problem(await gateway.delete("/api/users/alice"), 401)


async def test_changes_are_rate_limited_per_client(
    start_gateway: StartGateway, world: World
) -> None:
    gateway = await start_gateway(gateway_rate_limit_burst=2, gateway_rate_limit_per_minute=6)
    assert (await gateway.post("/api/sync")).status == 202
    assert (await gateway.post("/api/sync")).status == 202
    limited = await gateway.post("/api/sync")
    body = await problem(limited, 429)
    assert body["type"] == "urn:gistsync:problem:rate-limited"
    assert limited.headers["Retry-After"] == "10"
    # Reads are not limited.
    assert (await gateway.get("/api/users")).status == 200


async def test_a_proxy_can_name_the_client(start_gateway: StartGateway, world: World) -> None:
    gateway = await start_gateway(gateway_rate_limit_burst=1, gateway_trust_forwarded_for=True)
    first = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    second = {"X-Forwarded-For": "203.0.113.9, 198.51.100.2"}
    assert (await gateway.post("/api/sync", headers=first)).status == 202
    assert (await gateway.post("/api/sync", headers=first)).status == 429
    assert (await gateway.post("/api/sync", headers=second)).status == 202
