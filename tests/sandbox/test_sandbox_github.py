"""Behaviour of the GitHub simulator: users, gist listing, pagination, ETags, auth."""

from __future__ import annotations

import re

import httpx

from sandbox import GitHubState, Sandbox, create_github_app
from sandbox.testing import FakeClock, start_app

NOT_FOUND_USER = {
    "message": "Not Found",
    "documentation_url": "https://docs.github.com/rest/users/users#get-a-user",
    "status": "404",
}
NOT_FOUND_GISTS = {
    "message": "Not Found",
    "documentation_url": "https://docs.github.com/rest/gists/gists#list-gists-for-a-user",
    "status": "404",
}
BAD_CREDENTIALS = {
    "message": "Bad credentials",
    "documentation_url": "https://docs.github.com/rest",
    "status": "401",
}


async def test_user_lookup_is_case_insensitive_and_keeps_canonical_login(
    sandbox: Sandbox, gh: httpx.AsyncClient
) -> None:
    sandbox.github.add_user("OctoCat")
    sandbox.github.add_gist("octocat", {"a.py": "1"})
    response = await gh.get("/users/octocat")
    assert response.status_code == 200
    user = response.json()
    assert (user["login"], user["id"], user["type"]) == ("OctoCat", 1001, "User")
    assert user["html_url"] == "https://github.com/OctoCat"
    assert user["url"] == f"{sandbox.github_url}/users/OctoCat"
    assert user["public_gists"] == 1


async def test_unknown_user_404_bodies(gh: httpx.AsyncClient) -> None:
    user = await gh.get("/users/ghost")
    assert (user.status_code, user.json()) == (404, NOT_FOUND_USER)
    gists = await gh.get("/users/ghost/gists")
    assert (gists.status_code, gists.json()) == (404, NOT_FOUND_GISTS)


async def test_gist_shape(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    gist = sandbox.github.add_gist(
        "Alice", {"hello.py": "print('hé')\n", "README": "x"}, description=None
    )
    [item] = (await gh.get("/users/ALICE/gists")).json()
    assert re.fullmatch(r"[0-9a-f]{32}", item["id"])
    assert item["id"] == gist.id
    assert item["html_url"] == f"https://gist.github.com/{gist.id}"
    assert item["git_pull_url"] == f"https://gist.github.com/{gist.id}.git"
    assert item["url"] == f"{sandbox.github_url}/gists/{gist.id}"
    assert item["description"] is None
    assert item["public"] is True
    assert item["user"] is None
    assert item["truncated"] is False
    assert item["created_at"] == item["updated_at"] == "2026-03-01T12:00:00Z"
    assert item["owner"]["login"] == "Alice"
    assert item["files"]["hello.py"] == {
        "filename": "hello.py",
        "type": "application/x-python",
        "language": "Python",
        "raw_url": item["files"]["hello.py"]["raw_url"],
        "size": 13,  # bytes, not characters: é is two
    }
    assert item["files"]["hello.py"]["raw_url"].startswith(
        f"https://gist.githubusercontent.com/Alice/{gist.id}/raw/"
    )
    assert item["files"]["README"]["language"] == "Text"


async def test_private_gists_are_not_listed(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    sandbox.github.add_gist("bob", {"a.txt": "x"}, public=False)
    public = sandbox.github.add_gist("bob", {"b.txt": "y"})
    assert [g["id"] for g in (await gh.get("/users/bob/gists")).json()] == [public.id]


async def test_250_gists_paginate_over_3_pages_with_github_link_headers(
    sandbox: Sandbox, gh: httpx.AsyncClient
) -> None:
    created = [g.id for g in sandbox.github.add_gists_bulk("alice", 250)]
    base = f"{sandbox.github_url}/users/alice/gists?per_page=100"
    first = await gh.get("/users/alice/gists", params={"per_page": 100})
    assert first.headers["link"] == (f'<{base}&page=2>; rel="next", <{base}&page=3>; rel="last"')
    second = await gh.get(first.links["next"]["url"])
    assert second.headers["link"] == (
        f'<{base}&page=1>; rel="prev", <{base}&page=3>; rel="next", '
        f'<{base}&page=3>; rel="last", <{base}&page=1>; rel="first"'
    )
    third = await gh.get(second.links["next"]["url"])
    assert third.headers["link"] == f'<{base}&page=2>; rel="prev", <{base}&page=1>; rel="first"'
    pages = [first.json(), second.json(), third.json()]
    assert [len(p) for p in pages] == [100, 100, 50]
    listed = [g["id"] for page in pages for g in page]
    # Same created_at second: creation order breaks the tie, newest first.
    assert listed == created[::-1]
    assert [g["description"] for g in pages[0][:2]] == ["gist 250", "gist 249"]


async def test_per_page_default_clamp_and_single_page(
    sandbox: Sandbox, gh: httpx.AsyncClient
) -> None:
    sandbox.github.add_gists_bulk("alice", 120)
    default = await gh.get("/users/alice/gists")
    assert len(default.json()) == 30
    assert default.links["last"]["url"].endswith("/users/alice/gists?page=4")
    clamped = await gh.get("/users/alice/gists", params={"per_page": 500})
    assert len(clamped.json()) == 100
    assert clamped.links["last"]["url"].endswith("per_page=500&page=2")
    beyond = await gh.get("/users/alice/gists", params={"page": 9})
    assert beyond.json() == []
    assert set(beyond.links) == {"prev", "first"}
    sandbox.github.add_gists_bulk("carol", 3)
    single = await gh.get("/users/carol/gists")
    assert len(single.json()) == 3
    assert "link" not in single.headers


async def test_since_filters_on_updated_at_and_links_keep_it(
    sandbox: Sandbox, gh: httpx.AsyncClient, clock: FakeClock
) -> None:
    old = sandbox.github.add_gist("alice", {"old.py": "1"})
    clock.advance(60)
    middle = sandbox.github.add_gist("alice", {"mid.py": "2"})
    clock.advance(60)
    sandbox.github.update_gist(old.id, description="edited", set_description=True)
    since_edit = await gh.get("/users/alice/gists", params={"since": "2026-03-01T12:02:00Z"})
    assert [g["id"] for g in since_edit.json()] == [old.id]
    assert since_edit.json()[0]["updated_at"] == "2026-03-01T12:02:00Z"
    since_middle = await gh.get(
        "/users/alice/gists", params={"since": "2026-03-01T12:01:00Z", "per_page": 1}
    )
    # Newest *created* first, even though the older gist was updated later.
    assert [g["id"] for g in since_middle.json()] == [middle.id]
    assert "since=2026-03-01T12:01:00Z" in since_middle.links["next"]["url"]
    later = await gh.get("/users/alice/gists", params={"since": "2026-03-01T13:00:00+00:00"})
    assert later.json() == []


async def test_invalid_since_is_422(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    sandbox.github.add_user("alice")
    response = await gh.get("/users/alice/gists", params={"since": "last tuesday"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"resource": "Gist", "field": "since", "code": "invalid"}]


async def test_etag_and_304(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    gist = sandbox.github.add_gist("alice", {"a.py": "1"})
    first = await gh.get("/users/alice/gists")
    etag = first.headers["etag"]
    assert re.fullmatch(r'W/"[0-9a-f]{64}"', etag)
    assert (await gh.get("/users/alice/gists")).headers["etag"] == etag  # stable
    for header in (etag, etag.removeprefix("W/"), f'"nope", {etag}', "*"):
        cached = await gh.get("/users/alice/gists", headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == etag
    stale = await gh.get("/users/alice/gists", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200
    sandbox.github.update_gist(gist.id, description="changed", set_description=True)
    changed = await gh.get("/users/alice/gists", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    page2 = await gh.get("/users/alice/gists", params={"page": 2})
    assert page2.headers["etag"] != changed.headers["etag"]  # per representation


async def test_authorized_304_does_not_spend_primary_budget(
    sandbox: Sandbox, gh: httpx.AsyncClient, gh_anon: httpx.AsyncClient
) -> None:
    sandbox.github.add_gist("alice", {"a.py": "1"})
    first = await gh.get("/users/alice/gists")
    assert (first.headers["x-ratelimit-remaining"], first.headers["x-ratelimit-used"]) == (
        "4999",
        "1",
    )
    etag = first.headers["etag"]
    for _ in range(3):
        cached = await gh.get("/users/alice/gists", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.headers["x-ratelimit-remaining"] == "4999"
        assert cached.headers["x-ratelimit-used"] == "1"
    # Without a token the same 304 is charged.
    anon_first = await gh_anon.get("/users/alice/gists")
    assert anon_first.headers["x-ratelimit-limit"] == "60"
    anon_cached = await gh_anon.get("/users/alice/gists", headers={"If-None-Match": etag})
    assert anon_cached.status_code == 304
    assert anon_cached.headers["x-ratelimit-remaining"] == "58"
    # 3 authorized + 1 anonymous 304s, all served and counted.
    assert sandbox.github.stats.count("GET /users/{username}/gists", "304") == 4


async def test_rate_limit_headers_on_every_api_response(
    sandbox: Sandbox, gh: httpx.AsyncClient, clock: FakeClock
) -> None:
    for path in ("/users/ghost", "/users/ghost/gists", "/not/a/route"):
        response = await gh.get(path)
        assert response.status_code == 404
        assert response.headers["x-ratelimit-limit"] == "5000"
        assert response.headers["x-ratelimit-resource"] == "core"
        assert int(response.headers["x-ratelimit-reset"]) > 1_700_000_000
    assert response.headers["x-ratelimit-used"] == "3"


async def test_bad_credentials(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    sandbox.github.add_user("alice")
    for header in ("Bearer wrong", "token wrong", "Basic abc", "Bearer"):
        response = await gh.get("/users/alice", headers={"Authorization": header})
        assert (response.status_code, response.json()) == (401, BAD_CREDENTIALS), header
        assert response.headers["x-ratelimit-limit"] == "60"
    ok = await gh.get("/users/alice", headers={"Authorization": f"token {sandbox.github_token}"})
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-limit"] == "5000"


async def test_without_configured_token_any_token_is_accepted() -> None:
    state = GitHubState()
    state.add_user("alice")
    runner, port = await start_app(create_github_app(state, token=None), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.get("/users/alice", headers={"Authorization": "Bearer one"})
            second = await client.get("/users/alice", headers={"Authorization": "Bearer two"})
    finally:
        await runner.cleanup()
    assert (first.status_code, second.status_code) == (200, 200)
    # Separate tokens, separate budgets.
    assert first.headers["x-ratelimit-used"] == second.headers["x-ratelimit-used"] == "1"


async def test_deleted_users_and_gists_disappear(sandbox: Sandbox, gh: httpx.AsyncClient) -> None:
    keep = sandbox.github.add_gist("alice", {"a.py": "1"})
    gone = sandbox.github.add_gist("alice", {"b.py": "2"})
    assert sandbox.github.delete_gist(gone.id)
    assert [g["id"] for g in (await gh.get("/users/alice/gists")).json()] == [keep.id]
    assert sandbox.github.delete_user("ALICE")
    assert (await gh.get("/users/alice/gists")).status_code == 404
    assert sandbox.github.gists == {}
