"""Gists edited and deleted by their owners (through the control API), users that appear
later, and what a poller sees of it: `updated_at`, the list's ETag, `since`."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.testing import FakeClock
from tests.contract import Contract
from tests.sandbox.test_sandbox_contract_github import public_user_schema
from tests.sandbox.test_sandbox_github import NOT_FOUND_GISTS, NOT_FOUND_USER


async def new_gist(gh_control: httpx.AsyncClient, login: str, **body: Any) -> dict[str, Any]:
    body.setdefault("files", {"a.py": {"content": "print(1)"}})
    created = await gh_control.post(f"/users/{login}/gists", json=body)
    assert created.status_code == 201, created.text
    gist: dict[str, Any] = created.json()
    return gist


async def test_an_edit_changes_updated_at_and_the_list_etag(
    gh: httpx.AsyncClient,
    gh_control: httpx.AsyncClient,
    clock: FakeClock,
    github_contract: Contract,
) -> None:
    gist = await new_gist(gh_control, "alice", description="first")
    other = await new_gist(gh_control, "alice", description="other")
    listed = await gh.get("/users/alice/gists")
    etag = listed.headers["etag"]
    assert (await gh.get("/users/alice/gists", headers={"If-None-Match": etag})).status_code == 304
    clock.advance(90)
    edited = await gh_control.patch(f"/gists/{gist['id']}", json={"description": "second"})
    assert edited.json()["updated_at"] == "2026-03-01T12:01:30Z"
    after = await gh.get("/users/alice/gists", headers={"If-None-Match": etag})
    assert after.status_code == 200  # the cached copy is stale: the poller sees the edit
    assert github_contract.check(after) == "operation"
    assert after.headers["etag"] != etag
    by_id = {g["id"]: g for g in after.json()}
    assert (by_id[gist["id"]]["description"], by_id[gist["id"]]["updated_at"]) == (
        "second",
        "2026-03-01T12:01:30Z",
    )
    assert by_id[other["id"]]["updated_at"] == "2026-03-01T12:00:00Z"
    cached = await gh.get("/users/alice/gists", headers={"If-None-Match": after.headers["etag"]})
    assert cached.status_code == 304
    # since: gists updated at or after the time, so the edited one comes back alone.
    since = await gh.get("/users/alice/gists", params={"since": "2026-03-01T12:01:30Z"})
    assert [g["id"] for g in since.json()] == [gist["id"]]
    assert github_contract.check(since) == "operation"


async def test_a_content_edit_of_the_same_size_changes_the_etag(
    gh: httpx.AsyncClient, gh_control: httpx.AsyncClient, clock: FakeClock
) -> None:
    gist = await new_gist(gh_control, "alice")
    before = await gh.get("/users/alice/gists")
    clock.advance(1)
    files = {"a.py": {"content": "print(2)"}}  # same size, same name: only the blob differs
    await gh_control.patch(f"/gists/{gist['id']}", json={"files": files})
    after = await gh.get("/users/alice/gists", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    old_file, new_file = before.json()[0]["files"]["a.py"], after.json()[0]["files"]["a.py"]
    assert old_file["size"] == new_file["size"]
    assert old_file["raw_url"] != new_file["raw_url"]
    renamed = await gh_control.patch(
        f"/gists/{gist['id']}", json={"files": {"a.py": None, "b.md": {"content": "# b"}}}
    )
    assert list(renamed.json()["files"]) == ["b.md"]
    assert renamed.json()["files"]["b.md"]["language"] == "Markdown"


async def test_a_deleted_gist_leaves_the_list(
    gh: httpx.AsyncClient,
    gh_control: httpx.AsyncClient,
    clock: FakeClock,
    github_contract: Contract,
) -> None:
    keep = await new_gist(gh_control, "alice")
    gone = await new_gist(gh_control, "alice")
    before = await gh.get("/users/alice/gists")
    assert [g["id"] for g in before.json()] == [gone["id"], keep["id"]]
    assert (await gh.get("/users/alice")).json()["public_gists"] == 2
    clock.advance(60)
    assert (await gh_control.delete(f"/gists/{gone['id']}")).status_code == 204
    after = await gh.get("/users/alice/gists", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert [g["id"] for g in after.json()] == [keep["id"]]
    assert github_contract.check(after) == "operation"
    # A deletion bumps nothing that `since` could see: only a full read shows it.
    since = await gh.get("/users/alice/gists", params={"since": "2026-03-01T12:01:00Z"})
    assert since.json() == []
    assert (await gh.get("/users/alice")).json()["public_gists"] == 1
    state = (await gh_control.get("/state")).json()
    assert [g["id"] for g in state["gists"]] == [keep["id"]]


async def test_a_user_created_later_is_found(
    gh: httpx.AsyncClient, gh_control: httpx.AsyncClient, github_contract: Contract
) -> None:
    schema = public_user_schema(github_contract)
    for path, body in [("/users/Bob", NOT_FOUND_USER), ("/users/Bob/gists", NOT_FOUND_GISTS)]:
        missing = await gh.get(path)
        assert (missing.status_code, missing.json()) == (404, body)
        assert github_contract.check(missing, schema=schema) == "fallback"
    assert (await gh_control.post("/users", json={"login": "Bob"})).status_code == 201
    user = await gh.get("/users/bob")
    assert (user.status_code, user.json()["login"], user.json()["public_gists"]) == (200, "Bob", 0)
    assert github_contract.check(user, schema=schema) == "schema"
    gists = await gh.get("/users/BOB/gists")
    assert (gists.status_code, gists.json()) == (200, [])
    assert github_contract.check(gists) == "operation"
    # Deleted, then back with a first gist (creating a gist creates its owner).
    assert (await gh_control.delete("/users/bob")).status_code == 204
    assert (await gh.get("/users/bob/gists")).status_code == 404
    gist = await new_gist(gh_control, "bob")
    assert [g["id"] for g in (await gh.get("/users/bob/gists")).json()] == [gist["id"]]
