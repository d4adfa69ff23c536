"""`GET /rate_limit` on the GitHub simulator: GitHub's shape, its statuses validated as the
other routes are, and free as on GitHub (the primary limit neither counts nor refuses it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from tests.contract import Contract

# GitHub's description answers GET /rate_limit with `rate-limit-overview`, which the subset
# in specs/ does not carry: its `rate-limit` and `rate-limit-overview` components as
# published (description 1.1.4), the resources we do not simulate left out as optional.
RATE_LIMIT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "limit": {"type": "integer"},
        "remaining": {"type": "integer"},
        "reset": {"type": "integer"},
        "used": {"type": "integer"},
    },
    "required": ["limit", "remaining", "reset", "used"],
}
RATE_LIMIT_OVERVIEW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resources": {
            "type": "object",
            "properties": {
                name: RATE_LIMIT
                for name in (
                    "core",
                    "graphql",
                    "search",
                    "code_search",
                    "source_import",
                    "integration_manifest",
                    "code_scanning_upload",
                    "actions_runner_registration",
                    "scim",
                    "dependency_snapshots",
                    "code_scanning_autofix",
                )
            },
            "required": ["core", "search"],
        },
        "rate": RATE_LIMIT,
    },
    "required": ["rate", "resources"],
}


async def test_rate_limit_200_is_githubs_overview(
    gh: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox
) -> None:
    await gh.get("/users/nobody")  # one request counted against the primary limit
    response = await gh.get("/rate_limit")
    assert response.status_code == 200
    assert github_contract.check(response, schema=RATE_LIMIT_OVERVIEW) == "schema"
    core = response.json()["resources"]["core"]
    limit = sandbox.github.config.limits.primary_limit
    assert (core["limit"], core["used"], core["remaining"]) == (limit, 1, limit - 1)
    assert response.json()["rate"] == core
    assert response.headers["x-ratelimit-remaining"] == str(limit - 1)


async def test_rate_limit_costs_nothing_and_answers_when_the_limit_is_spent(
    gh: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox
) -> None:
    for _ in range(3):
        assert (await gh.get("/rate_limit")).status_code == 200
    assert (await gh.get("/rate_limit")).json()["resources"]["core"]["used"] == 0
    sandbox.github.config.limits.primary_limit = 0
    spent = await gh.get("/rate_limit")
    assert spent.status_code == 200
    assert spent.json()["rate"]["remaining"] == 0
    assert (await gh.get("/users/nobody")).status_code == 403  # the others are refused


async def test_rate_limit_401_for_a_wrong_token(
    gh: httpx.AsyncClient, github_contract: Contract
) -> None:
    refused = await gh.get("/rate_limit", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert github_contract.check(refused, schema=RATE_LIMIT_OVERVIEW) == "fallback"


async def test_rate_limit_anonymous_shows_the_anonymous_quota(
    gh_anon: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox
) -> None:
    response = await gh_anon.get("/rate_limit")
    assert response.status_code == 200
    assert github_contract.check(response, schema=RATE_LIMIT_OVERVIEW) == "schema"
    expected = sandbox.github.config.limits.primary_limit_unauthenticated
    assert response.json()["rate"]["limit"] == expected


def test_the_schema_rejects_a_body_without_rate(github_contract: Contract) -> None:
    window = {"limit": 60, "remaining": 60, "reset": 1, "used": 0}
    body = {"resources": {"core": window, "search": window}, "rate": window}
    github_contract.validate_schema(body, RATE_LIMIT_OVERVIEW)
    del body["rate"]
    with pytest.raises(Exception, match="'rate' is a required property"):
        github_contract.validate_schema(body, RATE_LIMIT_OVERVIEW)
