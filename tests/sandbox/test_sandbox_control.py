"""The /_sandbox/ control API of both simulators."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.testing import FakeClock


async def test_stats_by_route_template_and_reset(
    sandbox: Sandbox,
    gh: httpx.AsyncClient,
    gh_control: httpx.AsyncClient,
    pd: httpx.AsyncClient,
    pd_control: httpx.AsyncClient,
) -> None:
    sandbox.github.add_gist("alice", {"a.py": "1"})
    etag = (await gh.get("/users/alice/gists")).headers["etag"]
    await gh.get("/users/Alice/gists", headers={"If-None-Match": etag})
    await gh.get("/users/bob")
    await gh.get("/users/alice")
    await pd.post("/organizations", json={"name": "o"})
    await pd.get("/organizations/1")
    await pd.get("/organizations/2")
    assert (await gh_control.get("/stats")).json() == {
        "total": 4,
        "requests": {
            "GET /users/{username}": {"200": 1, "404": 1},
            "GET /users/{username}/gists": {"200": 1, "304": 1},
        },
        "max_concurrency_seen": 1,
    }
    assert (await pd_control.get("/stats")).json() == {
        "total": 3,
        "requests": {
            "GET /organizations/{id}": {"200": 1, "404": 1},
            "POST /organizations": {"200": 1},
        },
        "tokens_spent": 7,
        "max_concurrency_seen": 1,
    }
    assert (await gh_control.post("/stats/reset")).status_code == 204
    assert (await gh_control.get("/stats")).json() == {
        "total": 0,
        "requests": {},
        "max_concurrency_seen": 0,
    }
    # Stats reset keeps the data.
    assert (await gh.get("/users/alice")).status_code == 200


async def test_reset_clears_data_counters_and_windows(
    sandbox: Sandbox, pd: httpx.AsyncClient, pd_control: httpx.AsyncClient
) -> None:
    await pd_control.patch("/config", json={"limits": {"burst_limit": 2}})
    await pd.post("/organizations", json={"name": "o"})
    await pd.get("/organizations/1")
    assert (await pd.get("/organizations/1")).status_code == 429
    assert (await pd_control.post("/reset")).status_code == 204
    assert (await pd_control.get("/state")).json() == {
        "organizations": [],
        "persons": [],
        "deals": [],
        "activities": [],
    }
    assert (await pd_control.get("/stats")).json()["total"] == 0
    assert (await pd_control.get("/config")).json()["limits"]["burst_limit"] == 20
    fresh = await pd.post("/organizations", json={"name": "again"})
    assert fresh.json()["data"]["id"] == 1  # ids restart too
    assert fresh.headers["x-ratelimit-remaining"] == "19"
    assert fresh.headers["x-daily-requests-left"] == "29995"


async def test_github_reset(
    sandbox: Sandbox, gh: httpx.AsyncClient, gh_control: httpx.AsyncClient
) -> None:
    sandbox.github.add_user("alice")
    sandbox.github.config.limits.primary_limit = 1
    await gh.get("/users/alice")
    assert (await gh_control.post("/reset")).status_code == 204
    assert (await gh_control.get("/state")).json() == {"users": [], "gists": []}
    created = await gh_control.post("/users", json={"login": "alice"})
    assert created.json()["id"] == 1001
    response = await gh.get("/users/alice")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "4999"


async def test_config_get_and_patch(gh_control: httpx.AsyncClient) -> None:
    config = (await gh_control.get("/config")).json()
    assert config["limits"] == {
        "primary_limit": 5000,
        "primary_limit_unauthenticated": 60,
        "primary_window_seconds": 3600.0,
        "primary_status": 403,
        "secondary_points_limit": 900,
        "secondary_window_seconds": 60.0,
        "max_concurrent": 100,
        "secondary_status": 429,
        "concurrency_retry_after_seconds": 60,
    }
    assert config["faults"] == {
        "latency_ms": 0.0,
        "error_rate": 0.0,
        "error_status": 500,
        "timeout_rate": 0.0,
        "timeout_seconds": 30.0,
        "drop_rate": 0.0,
        "rate_limit_burst": 0,
        "seed": 0,
    }
    patched = await gh_control.patch(
        "/config", json={"limits": {"max_concurrent": 5}, "faults": {"latency_ms": 10}}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["limits"]["max_concurrent"], body["faults"]["latency_ms"]) == (5, 10.0)
    assert body["limits"]["primary_limit"] == 5000  # untouched siblings stay


async def test_pipedrive_config_defaults(pd_control: httpx.AsyncClient) -> None:
    assert (await pd_control.get("/config")).json()["limits"] == {
        "burst_limit": 20,
        "burst_window_seconds": 2.0,
        "search_burst_limit": 10,
        "search_window_seconds": 2.0,
        "daily_budget": 30000,
    }
    assert (await pd_control.get("/config")).json()["behaviour"] == {
        "deleted_by_id": "flagged",
        "deleted_deal_status": "deleted",
        "deleted_in_updated_since": False,
    }
    refused = await pd_control.patch("/config", json={"behaviour": {"deleted_by_id": "gone"}})
    assert refused.json() == {
        "error": "behaviour.deleted_by_id: Input should be 'flagged' or 'not_found'"
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"faults": {"error_rate": 1.5}},
            "faults.error_rate: Input should be less than or equal to 1",
        ),
        ({"faults": {"error_rate": "0.5"}}, "faults.error_rate: Input should be a valid number"),
        (
            {"faults": {"rate_limit_burst": True}},
            "faults.rate_limit_burst: Input should be a valid integer",
        ),
        ({"faults": {"typo": 1}}, "faults.typo: Extra inputs are not permitted"),
        ({"limits": {"primary_status": 500}}, "limits.primary_status: Input should be 403 or 429"),
        (
            {"faults": {"error_rate": 0.6, "drop_rate": 0.6}},
            "faults: Value error, error_rate + timeout_rate + drop_rate must not exceed 1",
        ),
        ({"limits": 3}, "limits: Input should be a valid dictionary or instance of GitHubLimits"),
    ],
)
async def test_config_patch_errors(
    gh_control: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    before = (await gh_control.get("/config")).json()
    response = await gh_control.patch("/config", json=body)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert (await gh_control.get("/config")).json() == before  # nothing half-applied


async def test_control_body_errors(gh_control: httpx.AsyncClient) -> None:
    not_json = await gh_control.patch("/config", content=b"{")
    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("body is not valid JSON")
    not_object = await gh_control.patch("/config", json=[1])
    assert not_object.json() == {"error": "body must be a JSON object"}
    unknown = await gh_control.get("/nothing-here")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Not Found"})


async def test_github_users(gh_control: httpx.AsyncClient, gh: httpx.AsyncClient) -> None:
    created = await gh_control.post("/users", json={"login": "Alice"})
    assert created.status_code == 201
    assert (created.json()["login"], created.json()["public_gists"]) == ("Alice", 0)
    duplicate = await gh_control.post("/users", json={"login": "ALICE"})
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"error": "user 'ALICE' already exists"},
    )
    for body, message in [
        ({}, "login (string) is required"),
        ({"login": 5}, "login (string) is required"),
        ({"login": "a b"}, "invalid login 'a b': use 1-39 letters, digits or hyphens"),
        ({"login": "x" * 40}, f"invalid login '{'x' * 40}': use 1-39 letters, digits or hyphens"),
        ({"login": "x", "admin": True}, "unknown field(s): admin"),
    ]:
        response = await gh_control.post("/users", json=body)
        assert (response.status_code, response.json()) == (400, {"error": message})
    assert (await gh_control.delete("/users/alice")).status_code == 204
    assert (await gh.get("/users/alice")).status_code == 404
    missing = await gh_control.delete("/users/alice")
    assert (missing.status_code, missing.json()) == (404, {"error": "no user 'alice'"})


async def test_github_gists(
    gh_control: httpx.AsyncClient, gh: httpx.AsyncClient, clock: FakeClock
) -> None:
    created = await gh_control.post(
        "/users/NewUser/gists",
        json={"description": None, "files": {"a.rb": {"content": "puts 1"}}, "public": True},
    )
    assert created.status_code == 201
    gist = created.json()
    assert gist["owner"]["login"] == "NewUser"  # created on the fly
    assert gist["files"]["a.rb"]["language"] == "Ruby"
    assert gist["description"] is None
    clock.advance(30)
    edited = await gh_control.patch(f"/gists/{gist['id']}", json={"description": "now described"})
    assert edited.status_code == 200
    assert edited.json()["description"] == "now described"
    assert edited.json()["updated_at"] == "2026-03-01T12:00:30Z"
    assert edited.json()["created_at"] == "2026-03-01T12:00:00Z"
    files = await gh_control.patch(
        f"/gists/{gist['id']}", json={"files": {"a.rb": None, "b.md": {"content": "# b"}}}
    )
    assert list(files.json()["files"]) == ["b.md"]
    listed = (await gh.get("/users/newuser/gists")).json()
    assert listed == [files.json()]
    backdated = await gh_control.post(
        "/users/newuser/gists",
        json={"files": {"old.txt": {"content": "x"}}, "created_at": "2020-01-01T00:00:00Z"},
    )
    assert backdated.json()["created_at"] == "2020-01-01T00:00:00Z"
    assert (await gh_control.delete(f"/gists/{gist['id']}")).status_code == 204
    assert [g["id"] for g in (await gh.get("/users/newuser/gists")).json()] == [
        backdated.json()["id"]
    ]
    for method, path in [("PATCH", f"/gists/{gist['id']}"), ("DELETE", f"/gists/{gist['id']}")]:
        response = await gh_control.request(method, path, json={"description": "x"})
        assert (response.status_code, response.json()) == (
            404,
            {"error": f"no gist '{gist['id']}'"},
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'files must be an object like {"a.py": {"content": "print(1)"}}'),
        ({"files": {}}, "files must name at least one file"),
        ({"files": {"a.py": {"content": ""}}}, "files.a.py.content must be a non-empty string"),
        ({"files": {"a.py": None}}, "files.a.py.content must be a non-empty string"),
        ({"files": {"a.py": {"content": "1"}}, "public": "yes"}, "public must be a boolean"),
        (
            {"files": {"a.py": {"content": "1"}}, "description": 3},
            "description must be a string or null",
        ),
        (
            {"files": {"a.py": {"content": "1"}}, "created_at": "soon"},
            "created_at must be an ISO 8601 timestamp",
        ),
        ({"files": {"a.py": {"content": "1"}}, "owner": "x"}, "unknown field(s): owner"),
    ],
)
async def test_github_gist_errors(
    gh_control: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await gh_control.post("/users/alice/gists", json=body)
    assert (response.status_code, response.json()) == (400, {"error": message})


async def test_bulk_gists(gh_control: httpx.AsyncClient, gh: httpx.AsyncClient) -> None:
    bulk = await gh_control.post("/users/alice/gists/bulk", json={"count": 40})
    assert bulk.status_code == 201
    ids = bulk.json()["ids"]
    assert len(ids) == len(set(ids)) == 40
    page = (await gh.get("/users/alice/gists", params={"per_page": 100})).json()
    assert [g["id"] for g in page] == ids[::-1]
    assert page[-1]["description"] == "gist 1"
    for count in (0, -1, "5", True, 100_001):
        response = await gh_control.post("/users/alice/gists/bulk", json={"count": count})
        assert (response.status_code, response.json()) == (
            400,
            {"error": "count must be an integer from 1 to 100000"},
        )
    empty_patch = await gh_control.patch(f"/gists/{ids[0]}", json={})
    assert empty_patch.json() == {"error": "give description and/or files"}


async def test_control_requests_are_not_counted_or_limited(
    sandbox: Sandbox, gh_control: httpx.AsyncClient, pd_control: httpx.AsyncClient
) -> None:
    sandbox.github.config.limits.secondary_points_limit = 0
    sandbox.pipedrive.config.limits.burst_limit = 0
    for _ in range(5):
        assert (await gh_control.get("/state")).status_code == 200
        assert (await pd_control.get("/state")).status_code == 200
    assert (await gh_control.get("/stats")).json()["total"] == 0
    assert (await pd_control.get("/stats")).json()["total"] == 0


async def test_polls_per_user_with_the_longest_gap(
    sandbox: Sandbox, gh: httpx.AsyncClient, gh_control: httpx.AsyncClient
) -> None:
    sandbox.github.add_gists_bulk("alice", 120)  # two pages: only page 1 counts as a poll
    sandbox.github.add_user("bob")
    await gh.get("/users/alice/gists")
    await gh.get("/users/alice/gists", params={"page": 2})
    await asyncio.sleep(0.2)
    await gh.get("/users/Alice/gists")
    await gh.get("/users/bob/gists")
    polls = (await gh_control.get("/stats/polls")).json()
    assert sorted(polls) == ["alice", "bob"]
    assert (polls["alice"]["count"], polls["bob"]["count"]) == (2, 1)
    assert 0.2 <= polls["alice"]["longest_gap"] < 1.0
    assert polls["alice"]["last"] - polls["alice"]["first"] == polls["alice"]["longest_gap"]
    assert polls["bob"]["longest_gap"] == 0.0
    assert (await gh_control.post("/reset")).status_code == 204
    assert (await gh_control.get("/stats/polls")).json() == {}
