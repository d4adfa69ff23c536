"""The GitHub client against the simulator (real HTTP): headers, ETags, pages, errors,
rate limits, pacing, and the token kept out of everything but the Authorization header."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY, generate_latest

from github_poller.github import (
    GitHubError,
    GitHubUnavailable,
    RateLimited,
    UserNotFound,
    is_rate_limited,
    rate_limit_pause,
)
from sandbox.github_render import public_user
from sandbox.github_state import User
from sandbox.testing import Sandbox, start_app
from tests.github_poller import contract
from tests.github_poller.conftest import TOKEN, ClientFactory


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_request_carries_the_token_as_bearer_and_the_github_headers(
    sandbox: Sandbox, clients: ClientFactory
) -> None:
    sandbox.github.add_user("OctoCat")
    client, recorder = clients()
    assert await client.user_login("octocat") == "OctoCat"
    await client.list_gists("octocat")
    assert [str(e.request.url) for e in recorder.exchanges] == [
        f"{sandbox.github_url}/users/octocat",
        f"{sandbox.github_url}/users/octocat/gists?per_page=100",
    ]
    for exchange in recorder.exchanges:
        headers = exchange.request.headers
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["user-agent"] == "gistsync"
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
        assert "if-none-match" not in headers
    assert recorder.statuses() == [200, 200]


async def test_every_exchange_fits_the_contract(sandbox: Sandbox, clients: ClientFactory) -> None:
    sandbox.github.add_gists_bulk("alice", 150)
    client, recorder = clients()
    assert await client.user_login("alice") == "alice"
    assert await client.user_login("nobody") is None
    listing = await client.list_gists("alice")
    assert (await client.list_gists("alice", listing.etag)).not_modified
    with pytest.raises(UserNotFound):
        await client.list_gists("nobody")
    assert recorder.statuses() == [200, 404, 200, 200, 304, 404]
    assert [contract.check(e.response) for e in recorder.exchanges] == [
        "schema",  # /users/{username}: public-user
        "fallback",  # its 404: basic-error
        "operation",  # list-gists 200, page 1 (with its Link header)...
        "operation",  # ...and page 2
        "fallback",  # 304: no body
        "fallback",  # 404: basic-error
    ]


async def test_the_contract_check_catches_a_wrong_shape(clients: ClientFactory) -> None:
    def answer(n: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, {"login": "alice"}, {}  # not a whole public-user

    async with fake_github(answer) as fake:
        client, recorder = clients(fake.url)
        assert await client.user_login("alice") == "alice"
    with pytest.raises(Exception, match="'avatar_url' is a required property"):
        contract.check(recorder.exchanges[0].response)
    recorder.exchanges.clear()


async def test_unknown_user(sandbox: Sandbox, clients: ClientFactory) -> None:
    client, recorder = clients()
    assert await client.user_login("nobody") is None
    with pytest.raises(UserNotFound, match="GitHub answered 404 for user nobody: Not Found"):
        await client.list_gists("nobody")
    assert recorder.statuses() == [404, 404]


async def test_gists_become_contract_gists(sandbox: Sandbox, clients: ClientFactory) -> None:
    made = sandbox.github.add_gist(
        "alice", {"b.md": "# hi", "a.py": "print(1)"}, description="two files"
    )
    client, _ = clients()
    [gist] = (await client.list_gists("alice")).gists
    assert gist.id == made.id
    assert gist.html_url == f"https://gist.github.com/{made.id}"
    assert gist.description == "two files"
    assert [(f.filename, f.language) for f in gist.files] == [
        ("a.py", "Python"),
        ("b.md", "Markdown"),
    ]
    assert gist.created_at == made.created_at.astimezone(UTC)
    assert gist.title == "two files"


async def test_a_known_etag_makes_the_read_a_free_304(
    sandbox: Sandbox, clients: ClientFactory
) -> None:
    sandbox.github.add_gist("alice", {"a.py": "print(1)"})
    client, recorder = clients()
    first = await client.list_gists("alice")
    assert not first.not_modified
    assert first.etag is not None and first.etag.startswith('W/"')
    assert len(first.gists) == 1

    again = await client.list_gists("alice", first.etag)
    assert again.not_modified
    assert again.gists == ()
    assert again.etag == first.etag
    assert recorder.exchanges[1].request.headers["if-none-match"] == first.etag

    sandbox.github.add_gist("alice", {"b.py": "print(2)"})
    third = await client.list_gists("alice", first.etag)
    assert not third.not_modified
    assert len(third.gists) == 2
    assert third.etag != first.etag
    assert recorder.statuses() == [200, 304, 200]
    # Only the two 200s spent primary budget.
    assert [int(e.response.headers["x-ratelimit-used"]) for e in recorder.exchanges] == [1, 1, 2]


async def test_250_gists_are_three_pages_of_100(sandbox: Sandbox, clients: ClientFactory) -> None:
    sandbox.github.add_gists_bulk("bob", 250)
    client, recorder = clients()
    listing = await client.list_gists("bob")
    assert listing.requests == 3
    assert len(listing.gists) == 250
    assert len({gist.id for gist in listing.gists}) == 250
    params = [e.request.url.params for e in recorder.exchanges]
    assert [p.get("per_page") for p in params] == ["100", "100", "100"]
    assert [p.get("page") for p in params] == [None, "2", "3"]
    assert listing.etag == recorder.exchanges[0].response.headers["etag"]
    assert [e.request.headers.get("if-none-match") for e in recorder.exchanges] == [None] * 3

    again = await client.list_gists("bob", listing.etag)
    assert again.not_modified
    assert again.requests == 1
    assert sandbox.github.stats.snapshot(with_tokens=False)["requests"] == {
        "GET /users/{username}/gists": {"200": 3, "304": 1}
    }


async def test_retry_after_pauses_every_request(sandbox: Sandbox, clients: ClientFactory) -> None:
    sandbox.github.add_user("alice")
    client, recorder = clients()
    before = metric("gistsync_github_rate_limited_total")
    sandbox.github.config.faults.rate_limit_burst = 1  # the next answer: 429, retry-after 1
    with pytest.raises(RateLimited) as caught:
        await client.user_login("alice")
    assert caught.value.wait == 1.0
    assert caught.value.status == 429
    limited_at = time.monotonic()
    assert await client.user_login("alice") == "alice"
    assert recorder.statuses() == [429, 200]
    assert recorder.exchanges[1].sent_at >= limited_at + 0.95
    assert metric("gistsync_github_rate_limited_total") == before + 1
    assert metric("gistsync_github_requests_total", status="429") >= 1


async def test_no_budget_left_pauses_until_the_reset(
    sandbox: Sandbox, clients: ClientFactory
) -> None:
    sandbox.github.add_user("alice")
    sandbox.github.patch_config({"limits": {"primary_limit": 1, "primary_window_seconds": 30}})
    client, recorder = clients()
    assert await client.user_login("alice") == "alice"
    with pytest.raises(RateLimited) as caught:
        await client.user_login("alice")
    assert caught.value.status == 403
    headers = recorder.exchanges[1].response.headers
    assert headers["x-ratelimit-remaining"] == "0"
    assert "retry-after" not in headers
    assert caught.value.wait == pytest.approx(
        int(headers["x-ratelimit-reset"]) - time.time(), abs=1
    )
    assert 25 < caught.value.wait <= 31
    assert metric("gistsync_github_rate_limit_remaining") == 0
    assert metric("gistsync_github_rate_limit_reset_timestamp_seconds") == int(
        headers["x-ratelimit-reset"]
    )
    # Paused: a query that cannot wait that long fails at once, and nothing is sent.
    with pytest.raises(RateLimited, match="paused for"):
        await client.user_login("alice", max_wait=1.0)
    assert len(recorder.exchanges) == 2


@dataclass
class FakeGitHub:
    url: str
    arrivals: list[float] = field(default_factory=list)


@asynccontextmanager
async def fake_github(
    answer: Callable[[int], tuple[int, dict[str, Any], dict[str, str]]],
) -> AsyncIterator[FakeGitHub]:
    """A tiny server for answers the simulator never gives (the n-th request gets
    `answer(n)`); it records when each request arrived."""
    arrivals: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        status, body, headers = answer(len(arrivals))
        limits = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
        }
        return web.json_response(body, status=status, headers={**limits, **headers})

    app = web.Application()
    app.router.add_get("/users/{username}", handle)
    runner, port = await start_app(app, "127.0.0.1", 0)
    try:
        yield FakeGitHub(f"http://127.0.0.1:{port}", arrivals)
    finally:
        await runner.cleanup()


SECONDARY = {"message": "You have exceeded a secondary rate limit.", "status": "403"}
# A whole `public-user`, as GitHub documents it.
USER = public_user(User(1, "alice", datetime.now(UTC), datetime.now(UTC)), "https://x", 0)


async def test_a_limit_without_advice_backs_off_exponentially(clients: ClientFactory) -> None:
    def answer(n: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        return (403, SECONDARY, {}) if n in (1, 2, 3, 5) else (200, USER, {})

    async with fake_github(answer) as fake:
        client, _ = clients(fake.url, backoff=0.2, backoff_max=0.5)
        waits = []
        for _ in range(3):
            with pytest.raises(RateLimited) as caught:
                await client.user_login("alice")
            waits.append(caught.value.wait)
        assert await client.user_login("alice") == "alice"
        with pytest.raises(RateLimited) as caught:
            await client.user_login("alice")
        waits.append(caught.value.wait)
    assert waits == [0.2, 0.4, 0.5, 0.2]  # doubling, capped; a success starts over
    # Nothing was sent during a pause.
    assert [round(b - a, 1) for a, b in pairwise(fake.arrivals)] == [0.2, 0.4, 0.5, 0.0]


async def test_a_403_that_is_not_a_rate_limit_is_an_ordinary_failure(
    clients: ClientFactory,
) -> None:
    def answer(n: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 403, {"message": "Resource not accessible", "status": "403"}, {}

    async with fake_github(answer) as fake:
        client, _ = clients(fake.url)
        with pytest.raises(GitHubError) as caught:
            await client.user_login("alice")
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status == 403
    assert client.paused_until == float("-inf")


def test_rate_limit_rule() -> None:
    now = 1_000.0
    common: dict[str, Any] = {"now": now, "backoff": 60.0, "backoff_max": 900.0}
    assert rate_limit_pause({"retry-after": "7"}, strikes=3, **common) == 7.0
    exhausted = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1042"}
    assert rate_limit_pause(exhausted, strikes=0, **common) == 42.0
    assert rate_limit_pause({**exhausted, "x-ratelimit-reset": "990"}, strikes=0, **common) == 1.0
    left = {"x-ratelimit-remaining": "12"}
    assert [rate_limit_pause(left, strikes=k, **common) for k in range(6)] == [
        60.0,
        120.0,
        240.0,
        480.0,
        900.0,
        900.0,
    ]
    assert is_rate_limited(429, {}, "")
    assert is_rate_limited(403, {"retry-after": "60"}, "")
    assert is_rate_limited(403, {"x-ratelimit-remaining": "0"}, "")
    assert is_rate_limited(403, {}, "You have exceeded a secondary rate limit")
    assert not is_rate_limited(403, {"x-ratelimit-remaining": "4999"}, "Forbidden")
    assert not is_rate_limited(404, {"x-ratelimit-remaining": "0"}, "Not Found")


async def test_requests_are_paced_and_bounded(sandbox: Sandbox, clients: ClientFactory) -> None:
    sandbox.github.add_user("alice")
    sandbox.github.config.faults.latency_ms = 100
    client, recorder = clients(requests_per_second=20.0, max_in_flight=2)
    await asyncio.gather(*(client.user_login("alice") for _ in range(6)))
    starts = sorted(e.sent_at for e in recorder.exchanges)
    # Booked 0.05 s apart: one send may lag its slot, but never runs ahead of the pace.
    assert starts[-1] - starts[0] >= 5 * 0.05 * 0.98
    assert min(b - a for a, b in pairwise(starts)) >= 0.04
    assert sandbox.github.stats.snapshot(with_tokens=False)["max_concurrency_seen"] == 2


async def test_the_token_appears_in_no_log_error_or_metric(
    sandbox: Sandbox, clients: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.github.add_gist("alice", {"a.py": "print(1)"})
    client, _ = clients(timeout=0.3)
    errors: list[BaseException] = []
    await client.user_login("alice")
    await client.list_gists("alice")
    try:
        await client.list_gists("nobody")
    except GitHubError as exc:
        errors.append(exc)
    sandbox.github.config.faults.rate_limit_burst = 1
    try:
        await client.list_gists("alice")
    except RateLimited as exc:
        errors.append(exc)
    sandbox.github.patch_config({"faults": {"error_rate": 1.0}})
    try:
        await client.user_login("alice", max_wait=2.0)
    except GitHubUnavailable as exc:
        errors.append(exc)
    sandbox.github.patch_config(
        {"faults": {"error_rate": 0.0, "timeout_rate": 1.0, "timeout_seconds": 2.0}}
    )
    try:
        await client.user_login("alice")
    except GitHubUnavailable as exc:
        errors.append(exc)
    assert [type(e).__name__ for e in errors] == [
        "UserNotFound",
        "RateLimited",
        "GitHubUnavailable",
        "GitHubUnavailable",
    ]
    assert str(errors[-1]) == "GitHub did not answer in time"
    for error in errors:
        assert TOKEN not in f"{error} {error!r} {error.args}"
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(vars(record))
    assert TOKEN not in generate_latest(REGISTRY).decode()
