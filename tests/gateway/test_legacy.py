"""The predecessor's endpoints, as its clients know them (over `FakeServices`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY, generate_latest

from gistsync.contracts import (
    AnyMessage,
    GistFile,
    GistsQuery,
    GistsReply,
    GistView,
    MarkGistsSeen,
    PollReport,
    TrackedUser,
    TrackedUsersReply,
    TrackUser,
    UserExistsQuery,
    UserExistsReply,
    UserStatusQuery,
    UserStatusReply,
    login_key,
)
from tests.gateway.conftest import API_KEY, StartGateway
from tests.gateway.fakes import FakeServices
from tests.waiting import eventually

Client = TestClient[web.Request, web.Application]
XSS = '<script>alert("x")</script>'


def tracking(peers: FakeServices, *logins: str) -> None:
    """The writer tracks these users: in its list, and one by one."""
    users = tuple(TrackedUser(login=x, unseen=0) for x in logins)

    def status(message: AnyMessage) -> UserStatusReply:
        assert isinstance(message, UserStatusQuery)
        key = login_key(message.login)
        return UserStatusReply(user=next((u for u in users if login_key(u.login) == key), None))

    peers.answers["query.tracked_users"] = lambda _: TrackedUsersReply(users=users)
    peers.answers["query.user_status"] = status


def exists(message: AnyMessage) -> UserExistsReply:
    assert isinstance(message, UserExistsQuery)
    if message.login.lower() == "octocat":
        return UserExistsReply(exists=True, login="OctoCat")
    return UserExistsReply(exists=False)


async def test_list_answers_the_predecessor_envelope(gateway: Client, peers: FakeServices) -> None:
    tracking(peers, "alice", "OctoCat")
    response = await gateway.get("/list")
    assert response.status == 200
    assert await response.json() == {"success": True, "data": ["alice", "OctoCat"]}


async def test_new_tracks_a_user_under_the_canonical_login(
    gateway: Client, peers: FakeServices
) -> None:
    peers.answers["query.user_exists"] = exists
    tracking(peers, "alice")
    response = await gateway.get("/new", params={"user": "octocat"})
    assert response.status == 202
    assert "Now tracking OctoCat" in await response.text()
    await eventually(lambda: peers.of_type("command.track_user"))
    [command] = peers.of_type("command.track_user")
    assert isinstance(command, TrackUser)
    assert command.login == "OctoCat"
    assert command.correlation_id == response.headers["X-Request-Id"]


async def test_new_twice_changes_nothing(gateway: Client, peers: FakeServices) -> None:
    peers.answers["query.user_exists"] = exists
    tracking(peers, "OctoCat")
    response = await gateway.get("/new", params={"user": "OCTOCAT"})
    assert response.status == 200
    assert "already tracked" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.track_user") == []


async def test_new_unknown_user_is_404_and_creates_nothing(
    gateway: Client, peers: FakeServices
) -> None:
    peers.answers["query.user_exists"] = exists
    tracking(peers, "alice")
    response = await gateway.get("/new", params={"user": "nobody-here"})
    assert response.status == 404
    assert "There is no GitHub user nobody-here" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.track_user") == []


async def test_new_without_or_with_a_bad_user_is_400(gateway: Client, peers: FakeServices) -> None:
    missing = await gateway.get("/new")
    assert missing.status == 400
    assert "Say which GitHub user" in await missing.text()
    bad = await gateway.get("/new", params={"user": XSS})
    assert bad.status == 400
    body = await bad.text()
    assert "<script>" not in body
    assert "is not a GitHub login" in body
    assert peers.received == []


async def test_show_renders_escaped_gists_then_marks_them_seen(
    gateway: Client, peers: FakeServices
) -> None:
    gists = (
        GistView(
            id="abc123",
            title=XSS,
            seen=False,
            html_url="https://gist.github.com/abc123",
            files=(GistFile(filename="x.py", language="Python"),),
            created_at=datetime(2026, 3, 4, tzinfo=UTC),
        ),
        GistView(id="def456", title="Notes", seen=False, html_url="https://gist.github.com/def456"),
    )

    def unseen(message: AnyMessage) -> GistsReply:
        assert isinstance(message, GistsQuery)
        assert message.include_seen is False
        return GistsReply(tracked=True, login="OctoCat", gists=gists)

    peers.answers["query.gists"] = unseen
    response = await gateway.get("/show", params={"user": "octocat"})
    assert response.status == 200
    body = await response.text()
    assert "2 new gists for OctoCat" in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<script>" not in body
    assert "x.py (Python) · 2026-03-04" in body
    await eventually(lambda: peers.of_type("command.mark_seen"))
    [seen] = peers.of_type("command.mark_seen")
    assert isinstance(seen, MarkGistsSeen)
    assert seen.login == "OctoCat"
    assert seen.gist_ids == ("abc123", "def456")


async def test_show_with_nothing_new_marks_nothing(gateway: Client, peers: FakeServices) -> None:
    peers.answers["query.gists"] = lambda _: GistsReply(tracked=True, login="a")
    response = await gateway.get("/show", params={"user": "a"})
    assert response.status == 200
    assert "No new gists for a" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.mark_seen") == []


async def test_show_untracked_user_is_404(gateway: Client, peers: FakeServices) -> None:
    peers.answers["query.gists"] = lambda _: GistsReply(tracked=False)
    response = await gateway.get("/show", params={"user": "stranger"})
    assert response.status == 404
    assert "stranger is not tracked" in await response.text()


def exposition() -> str:
    """What the ops port would serve: the metrics of this process (the test's gateway)."""
    return generate_latest(REGISTRY).decode()


async def test_metrics_are_labelled_by_route_template(gateway: Client, peers: FakeServices) -> None:
    in_flight: list[float | None] = []

    def answer(_: object) -> GistsReply:
        in_flight.append(REGISTRY.get_sample_value("gistsync_http_requests_in_flight"))
        return GistsReply(tracked=False)

    peers.answers["query.gists"] = answer
    await gateway.get("/show", params={"user": "someone"})
    await gateway.get("/no/such/page")
    text = exposition()
    assert in_flight == [1.0]  # the request being answered
    assert 'gistsync_http_requests_total{method="GET",route="/show",status="404"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "someone" not in text


async def test_probes(gateway: Client) -> None:
    assert (await gateway.get("/healthz")).status == 200
    ready = await gateway.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}


async def test_with_a_key_the_state_changing_gets_need_it(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    peers.answers["command.poll_now"] = lambda _: PollReport(users=1, new_gists=0)
    tracking(peers, "alice")
    gateway = await start_gateway(gateway_api_key=API_KEY)
    for path, params in (("/new", {"user": "octocat"}), ("/show", {"user": "a"}), ("/fetch", {})):
        response = await gateway.get(path, params=params)
        assert response.status == 401, path
        assert response.content_type == "text/html"
        assert "send it in the X-API-Key header" in await response.text()
    listed = await gateway.get("/list")
    assert listed.status == 401
    assert (await listed.json())["success"] is False
    await asyncio.sleep(0.1)
    assert peers.received == []
    key = {"X-API-Key": API_KEY}
    assert (await gateway.get("/fetch", headers=key)).status == 200
    assert (await gateway.get("/list", headers=key)).status == 200


async def test_list_can_stay_open_while_changes_need_the_key(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    tracking(peers, "alice")
    gateway = await start_gateway(gateway_api_key=API_KEY, gateway_protect_reads=False)
    assert await (await gateway.get("/list")).json() == {"success": True, "data": ["alice"]}
    assert (await gateway.get("/new", params={"user": "bob"})).status == 401


async def test_the_state_changing_gets_are_rate_limited(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    peers.answers["command.poll_now"] = lambda _: PollReport(users=1, new_gists=0)
    gateway = await start_gateway(gateway_rate_limit_burst=1)
    assert (await gateway.get("/fetch")).status == 200
    limited = await gateway.get("/fetch")
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "Too many changes from this client" in await limited.text()
    assert (await gateway.get("/fetch")).status == 429
    tracking(peers, "alice")
    assert (await gateway.get("/list")).status == 200  # a read


async def test_latency_and_in_flight_are_measured_per_route(
    gateway: Client, peers: FakeServices
) -> None:
    tracking(peers, "alice")
    await gateway.get("/api/users/alice")
    await gateway.get("/api/users/BoB")
    text = exposition()
    labels = 'method="GET",route="/api/users/{login}"'
    for status in ("200", "404"):
        assert f'gistsync_http_request_duration_seconds_count{{{labels},status="{status}"}}' in text
        assert f'gistsync_http_requests_total{{{labels},status="{status}"}}' in text
    assert "BoB" not in text
    assert "gistsync_http_requests_in_flight 0.0" in text  # every request answered
    await gateway.request("PROPFIND", "/api/users")
    text = exposition()
    assert 'method="other",route="unmatched",status="405"' in text
    assert "PROPFIND" not in text
