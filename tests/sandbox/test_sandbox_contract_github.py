"""Every status the GitHub simulator can give, validated against github-gists-subset.json."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Sandbox
from tests.contract import Contract


def public_user_schema(contract: Contract) -> dict[str, object]:
    # The subset has no /users/{username}; GitHub's full description answers it with
    # public-user (or private-user for the token's owner), which the subset does include.
    return {"$ref": "#/components/schemas/public-user"}


@pytest.fixture
def alice(sandbox: Sandbox) -> str:
    sandbox.github.add_gist("Alice", {"hello.py": "print('hi')\n"}, description="hello")
    sandbox.github.add_gist("Alice", {"notes.md": "# notes\n", "x.unknown": "?"})
    return "Alice"


async def test_list_gists_200_validates_each_item_as_base_gist(
    gh: httpx.AsyncClient, github_contract: Contract, alice: str
) -> None:
    response = await gh.get(f"/users/{alice}/gists", params={"per_page": 1})
    assert response.status_code == 200
    assert "link" in response.headers  # two gists, one per page: the header is validated too
    assert github_contract.check(response) == "operation"


async def test_list_gists_304_has_no_body(
    gh: httpx.AsyncClient, github_contract: Contract, alice: str
) -> None:
    first = await gh.get(f"/users/{alice}/gists")
    again = await gh.get(f"/users/{alice}/gists", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert github_contract.check(again) == "fallback"


async def test_list_gists_404_401_422(
    gh: httpx.AsyncClient, github_contract: Contract, alice: str
) -> None:
    missing = await gh.get("/users/nobody/gists")
    assert missing.status_code == 404
    assert github_contract.check(missing) == "fallback"
    bad_token = await gh.get(f"/users/{alice}/gists", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert github_contract.check(bad_token) == "fallback"
    # since=yesterday is not a date-time: the spec rejects the request and so do we, with 422.
    invalid = await gh.get(f"/users/{alice}/gists", params={"since": "yesterday"})
    assert invalid.status_code == 422
    assert github_contract.check(invalid, request_valid=False) == "operation"


async def test_list_gists_403_primary_and_429_secondary(
    gh: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox, alice: str
) -> None:
    sandbox.github.config.limits.primary_limit = 0
    primary = await gh.get(f"/users/{alice}/gists")
    assert primary.status_code == 403
    assert github_contract.check(primary) == "fallback"
    sandbox.github.config.limits.secondary_points_limit = 0
    secondary = await gh.get(f"/users/{alice}/gists")
    assert secondary.status_code == 429
    assert github_contract.check(secondary) == "fallback"


async def test_list_gists_injected_500_and_504(
    gh: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox, alice: str
) -> None:
    sandbox.github.config.faults.error_rate = 1.0
    error = await gh.get(f"/users/{alice}/gists")
    assert error.status_code == 500
    assert github_contract.check(error) == "fallback"
    sandbox.github.config.faults.error_rate = 0.0
    sandbox.github.config.faults.timeout_rate = 1.0
    sandbox.github.config.faults.timeout_seconds = 0.0
    timeout = await gh.get(f"/users/{alice}/gists")
    assert timeout.status_code == 504
    assert github_contract.check(timeout) == "fallback"


async def test_get_user_every_status(
    gh: httpx.AsyncClient, github_contract: Contract, sandbox: Sandbox, alice: str
) -> None:
    schema = public_user_schema(github_contract)
    ok = await gh.get("/users/alice")
    assert ok.status_code == 200
    assert github_contract.check(ok, schema=schema) == "schema"
    not_modified = await gh.get("/users/alice", headers={"If-None-Match": ok.headers["etag"]})
    assert not_modified.status_code == 304
    assert github_contract.check(not_modified, schema=schema) == "fallback"
    for status, response in [
        (404, await gh.get("/users/nobody")),
        (401, await gh.get("/users/alice", headers={"Authorization": "token nope"})),
    ]:
        assert response.status_code == status
        assert github_contract.check(response, schema=schema) == "fallback"
    sandbox.github.config.limits.secondary_points_limit = 0
    secondary = await gh.get("/users/alice")
    assert secondary.status_code == 429
    assert github_contract.check(secondary, schema=schema) == "fallback"
    sandbox.github.config.limits.secondary_points_limit = 900
    sandbox.github.config.limits.primary_limit = 0
    primary = await gh.get("/users/alice")
    assert primary.status_code == 403
    assert github_contract.check(primary, schema=schema) == "fallback"


async def test_public_user_schema_rejects_extra_fields(
    gh: httpx.AsyncClient, github_contract: Contract, alice: str
) -> None:
    # public-user has additionalProperties: false; make sure the check would notice.
    body = (await gh.get("/users/alice")).json()
    github_contract.validate_schema(body, public_user_schema(github_contract))
    with pytest.raises(Exception, match="Additional properties"):
        github_contract.validate_schema({**body, "extra": 1}, public_user_schema(github_contract))


async def test_contract_check_catches_a_broken_gist(
    gh: httpx.AsyncClient, github_contract: Contract, alice: str
) -> None:
    # Guards the guard: a 200 missing a required base-gist field must not validate.
    response = await gh.get(f"/users/{alice}/gists")
    items = response.json()
    del items[0]["node_id"]
    broken = httpx.Response(
        200, json=items, headers={"content-type": "application/json"}, request=response.request
    )
    with pytest.raises(Exception, match="node_id"):
        github_contract.check(broken)
