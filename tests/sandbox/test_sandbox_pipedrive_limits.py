"""Pipedrive burst windows, the search window, the daily token budget and their headers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from sandbox import Sandbox
from sandbox.pipedrive_schema import TOKEN_COSTS
from sandbox.testing import FakeClock


async def test_every_operation_spends_its_x_token_cost(
    sandbox: Sandbox, pd: httpx.AsyncClient, pd_control: httpx.AsyncClient
) -> None:
    sandbox.pipedrive.config.limits.burst_limit = 100
    calls = [
        ("POST", "/organizations", {"name": "o"}),
        ("GET", "/organizations/1", None),
        ("GET", "/organizations/search?term=oo", None),
        ("GET", "/organizations", None),
        ("PATCH", "/organizations/1", {"name": "oo"}),
        ("POST", "/persons", {"name": "p"}),
        ("GET", "/persons/1", None),
        ("GET", "/persons/search?term=pp", None),
        ("GET", "/persons", None),
        ("PATCH", "/persons/1", {"name": "pp"}),
        ("POST", "/deals", {"title": "d"}),
        ("GET", "/deals", None),
        ("GET", "/deals/1", None),
        ("PATCH", "/deals/1", {"status": "lost"}),
        ("GET", "/deals/search?term=dd", None),
        ("POST", "/activities", {"subject": "a"}),
        ("GET", "/activities", None),
        ("GET", "/activities/1", None),
        ("PATCH", "/activities/1", {"done": True}),
        ("DELETE", "/activities/1", None),
        ("DELETE", "/deals/1", None),
        ("DELETE", "/persons/1", None),
        ("DELETE", "/organizations/1", None),
    ]
    left = []
    for method, path, body in calls:
        response = await pd.request(method, path, json=body)
        assert response.status_code == 200, (path, response.text)
        left.append(int(response.headers["x-daily-requests-left"]))
    total = sum(TOKEN_COSTS.values())
    assert total == 5 * 8 + 1 * 4 + 10 * 4 + 20 * 3 + 3 * 4  # 156
    assert left[-1] == 30_000 - total
    assert left[:3] == [29_995, 29_994, 29_974]
    stats = (await pd_control.get("/stats")).json()
    assert stats["tokens_spent"] == total
    # Failed requests are charged too (the server did the work), refused ones are not.
    assert (await pd.get("/persons/999")).status_code == 404
    del pd.headers["x-api-token"]
    assert (await pd.get("/persons/2")).status_code == 401
    assert (await pd_control.get("/stats")).json()["tokens_spent"] == total + 1


async def test_burst_window_429_then_recovery(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    limits = sandbox.pipedrive.config.limits
    limits.burst_limit = 3
    limits.burst_window_seconds = 0.4
    remaining = [(await pd.get("/deals")).headers["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = await pd.get("/deals")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-limit"] == "3"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == "1"
    assert limited.json() == {
        "success": False,
        "error": "Request over limit",
        "error_info": "Please check developers.pipedrive.com",
        "data": None,
        "additional_data": None,
    }
    assert sandbox.pipedrive.stats.tokens_spent == 30  # the 429 cost nothing
    await asyncio.sleep(0.45)
    recovered = await pd.get("/deals")
    assert recovered.status_code == 200
    assert recovered.headers["x-ratelimit-remaining"] == "2"


async def test_default_burst_is_20_per_2_seconds(pd: httpx.AsyncClient) -> None:
    statuses = [(await pd.get("/activities")).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]


async def test_search_has_its_own_window(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    sandbox.pipedrive.config.limits.search_burst_limit = 2
    searches = [
        (await pd.get("/persons/search", params={"term": "al"})).status_code for _ in range(3)
    ]
    assert searches == [200, 200, 429]
    limited = await pd.get("/deals/search", params={"term": "al"})
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-limit"] == "2"
    assert limited.headers["retry-after"] == "2"
    other = await pd.get("/deals")  # the general window still has room
    assert other.status_code == 200
    assert other.headers["x-ratelimit-limit"] == "20"
    assert other.headers["x-ratelimit-remaining"] == "17"  # two searches + this request


async def test_default_search_burst_is_10(pd: httpx.AsyncClient) -> None:
    statuses = [
        (await pd.get("/organizations/search", params={"term": "gi"})).status_code
        for _ in range(11)
    ]
    assert statuses == [200] * 10 + [429]


async def test_daily_budget_runs_out_and_resets_at_midnight_utc(
    sandbox: Sandbox, pd: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)
    sandbox.pipedrive.config.limits.daily_budget = 12
    for _ in range(2):
        assert (await pd.post("/organizations", json={"name": "o"})).status_code == 200
    last_get = await pd.get("/organizations/1")
    assert last_get.headers["x-daily-requests-left"] == "1"
    too_dear = await pd.post("/organizations", json={"name": "o"})
    assert too_dear.status_code == 429
    assert too_dear.headers["retry-after"] == "60"
    assert too_dear.json()["error"] == "Daily token budget exhausted"
    assert (await pd.get("/organizations/1")).headers["x-daily-requests-left"] == "0"
    assert (await pd.get("/organizations/1")).status_code == 429
    clock.advance(60)
    fresh = await pd.get("/organizations/1")
    assert fresh.status_code == 200
    assert fresh.headers["x-daily-requests-left"] == "11"


async def test_rate_headers_on_every_api_response(pd: httpx.AsyncClient) -> None:
    responses = [
        await pd.get("/persons/1"),  # 404
        await pd.get("/persons/x"),  # 400
        await pd.get("/nowhere"),  # 404, unknown route
        await pd.get("/persons/1", headers={"x-api-token": "bad"}),  # 401
    ]
    assert [r.status_code for r in responses] == [404, 400, 404, 401]
    for response in responses:
        assert {
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-daily-requests-left",
        } <= set(response.headers)
    assert responses[-1].headers["x-daily-requests-left"] == "29998"  # unknown route: free
