"""The predecessor's endpoints, answered through RabbitMQ."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import TestClient

from gistsync.contracts import (
    AnyMessage,
    GistFile,
    MarkGistsSeen,
    PollReport,
    TrackedUser,
    TrackedUsersReply,
    TrackUser,
    UnseenGist,
    UnseenGistsQuery,
    UnseenGistsReply,
    UserExistsQuery,
    UserExistsReply,
)
from tests.gateway.conftest import Peers

Client = TestClient[web.Request, web.Application]
XSS = '<script>alert("x")</script>'


def tracking(*logins: str) -> TrackedUsersReply:
    return TrackedUsersReply(users=tuple(TrackedUser(login=x, unseen=0) for x in logins))


def exists(message: AnyMessage) -> UserExistsReply:
    assert isinstance(message, UserExistsQuery)
    if message.login.lower() == "octocat":
        return UserExistsReply(exists=True, login="OctoCat")
    return UserExistsReply(exists=False)


async def eventually(check: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_list_answers_the_predecessor_envelope(gateway: Client, peers: Peers) -> None:
    peers.answers["query.tracked_users"] = lambda _: tracking("alice", "OctoCat")
    response = await gateway.get("/list")
    assert response.status == 200
    assert await response.json() == {"success": True, "data": ["alice", "OctoCat"]}


async def test_new_tracks_a_user_under_the_canonical_login(gateway: Client, peers: Peers) -> None:
    peers.answers["query.user_exists"] = exists
    peers.answers["query.tracked_users"] = lambda _: tracking("alice")
    response = await gateway.get("/new", params={"user": "octocat"})
    assert response.status == 202
    assert "Now tracking OctoCat" in await response.text()
    await eventually(lambda: peers.of_type("command.track_user"))
    [command] = peers.of_type("command.track_user")
    assert isinstance(command, TrackUser)
    assert command.login == "OctoCat"
    assert command.correlation_id == response.headers["X-Request-Id"]


async def test_new_twice_changes_nothing(gateway: Client, peers: Peers) -> None:
    peers.answers["query.user_exists"] = exists
    peers.answers["query.tracked_users"] = lambda _: tracking("OctoCat")
    response = await gateway.get("/new", params={"user": "OCTOCAT"})
    assert response.status == 200
    assert "already tracked" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.track_user") == []


async def test_new_unknown_user_is_404_and_creates_nothing(gateway: Client, peers: Peers) -> None:
    peers.answers["query.user_exists"] = exists
    response = await gateway.get("/new", params={"user": "nobody-here"})
    assert response.status == 404
    assert "There is no GitHub user nobody-here" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.track_user") == []


async def test_new_without_or_with_a_bad_user_is_400(gateway: Client, peers: Peers) -> None:
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
    gateway: Client, peers: Peers
) -> None:
    gists = (
        UnseenGist(
            id="abc123",
            title=XSS,
            html_url="https://gist.github.com/abc123",
            files=(GistFile(filename="x.py", language="Python"),),
            created_at=datetime(2026, 3, 4, tzinfo=UTC),
        ),
        UnseenGist(id="def456", title="Notes", html_url="https://gist.github.com/def456"),
    )

    def unseen(message: AnyMessage) -> UnseenGistsReply:
        assert isinstance(message, UnseenGistsQuery)
        return UnseenGistsReply(tracked=True, login="OctoCat", gists=gists)

    peers.answers["query.unseen_gists"] = unseen
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


async def test_show_with_nothing_new_marks_nothing(gateway: Client, peers: Peers) -> None:
    peers.answers["query.unseen_gists"] = lambda _: UnseenGistsReply(tracked=True, login="a")
    response = await gateway.get("/show", params={"user": "a"})
    assert response.status == 200
    assert "No new gists for a" in await response.text()
    await asyncio.sleep(0.2)
    assert peers.of_type("command.mark_seen") == []


async def test_show_untracked_user_is_404(gateway: Client, peers: Peers) -> None:
    peers.answers["query.unseen_gists"] = lambda _: UnseenGistsReply(tracked=False)
    response = await gateway.get("/show", params={"user": "stranger"})
    assert response.status == 404
    assert "stranger is not tracked" in await response.text()


async def test_fetch_reports_new_gists(gateway: Client, peers: Peers) -> None:
    peers.answers["command.poll_now"] = lambda _: PollReport(users=2, new_gists=3)
    response = await gateway.get("/fetch")
    assert response.status == 200
    assert await response.text() == "New gists: <b>3</b>"


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


async def test_metrics_are_labelled_by_route_template(gateway: Client, peers: Peers) -> None:
    peers.answers["query.unseen_gists"] = lambda _: UnseenGistsReply(tracked=False)
    await gateway.get("/show", params={"user": "someone"})
    await gateway.get("/no/such/page")
    text = await (await gateway.get("/metrics")).text()
    assert 'gistsync_http_requests_total{method="GET",route="/show",status="404"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "someone" not in text


async def test_probes(gateway: Client) -> None:
    assert (await gateway.get("/healthz")).status == 200
    ready = await gateway.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}
