"""GitHub primary (hourly) and secondary (points per window, concurrency) rate limits."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sandbox import Sandbox


@pytest.fixture
def alice(sandbox: Sandbox) -> str:
    sandbox.github.add_gist("alice", {"a.py": "1"})
    return "alice"


async def test_primary_limit_then_403_with_remaining_zero(
    sandbox: Sandbox, gh: httpx.AsyncClient, alice: str
) -> None:
    sandbox.github.config.limits.primary_limit = 3
    before = time.time()
    remaining = [
        (await gh.get("/users/alice/gists")).headers["x-ratelimit-remaining"] for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    blocked = await gh.get("/users/alice/gists")
    assert blocked.status_code == 403
    assert blocked.json() == {
        "message": "API rate limit exceeded for user ID 1.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        "status": "403",
    }
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    assert blocked.headers["x-ratelimit-used"] == "3"  # refused requests are not charged
    reset = int(blocked.headers["x-ratelimit-reset"])
    assert before + 3600 <= reset <= time.time() + 3601
    sandbox.github.config.limits.primary_status = 429
    assert (await gh.get("/users/alice/gists")).status_code == 429


async def test_primary_window_resets(sandbox: Sandbox, gh: httpx.AsyncClient, alice: str) -> None:
    sandbox.github.config.limits.primary_limit = 1
    sandbox.github.config.limits.primary_window_seconds = 0.3
    assert (await gh.get("/users/alice")).status_code == 200
    assert (await gh.get("/users/alice")).status_code == 403
    await asyncio.sleep(0.35)
    recovered = await gh.get("/users/alice")
    assert recovered.status_code == 200
    assert recovered.headers["x-ratelimit-used"] == "1"


async def test_unauthenticated_limit_is_60(
    sandbox: Sandbox, gh_anon: httpx.AsyncClient, gh: httpx.AsyncClient, alice: str
) -> None:
    statuses = [(await gh_anon.get("/users/alice")).status_code for _ in range(61)]
    assert statuses == [200] * 60 + [403]
    blocked = await gh_anon.get("/users/alice")
    assert blocked.json()["message"].startswith("API rate limit exceeded for 127.0.0.1. (But")
    assert blocked.headers["x-ratelimit-limit"] == "60"
    # The token has its own budget.
    assert (await gh.get("/users/alice")).headers["x-ratelimit-remaining"] == "4999"


async def test_secondary_points_window_counts_304s_then_recovers(
    sandbox: Sandbox, gh: httpx.AsyncClient, alice: str
) -> None:
    limits = sandbox.github.config.limits
    limits.secondary_points_limit = 4
    limits.secondary_window_seconds = 0.4
    etag = (await gh.get("/users/alice/gists")).headers["etag"]
    cached = [
        (await gh.get("/users/alice/gists", headers={"If-None-Match": etag})).status_code
        for _ in range(3)
    ]
    assert cached == [304, 304, 304]
    limited = await gh.get("/users/alice/gists")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert limited.headers["x-ratelimit-used"] == "1"  # primary untouched
    limits.secondary_status = 403
    assert (await gh.get("/users/alice/gists")).status_code == 403
    await asyncio.sleep(0.45)
    assert (await gh.get("/users/alice/gists")).status_code == 200


async def test_secondary_retry_after_counts_down_to_the_oldest_point(
    sandbox: Sandbox, gh: httpx.AsyncClient, alice: str
) -> None:
    sandbox.github.config.limits.secondary_points_limit = 2
    await gh.get("/users/alice")
    await gh.get("/users/alice")
    limited = await gh.get("/users/alice")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"  # the default 60 s window


async def test_concurrency_limit(sandbox: Sandbox, gh: httpx.AsyncClient, alice: str) -> None:
    sandbox.github.config.limits.max_concurrent = 2
    sandbox.github.config.faults.latency_ms = 300  # held while in flight
    responses = await asyncio.gather(*(gh.get("/users/alice") for _ in range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "60"
    stats = (await gh.get(f"{sandbox.github_url}/_sandbox/stats")).json()
    assert stats["max_concurrency_seen"] == 5
    assert stats["requests"]["GET /users/{username}"] == {"200": 2, "429": 3}
