"""run_sandbox, the in-process helper other suites use."""

from __future__ import annotations

import httpx

from sandbox import GitHubState, run_sandbox


async def test_run_sandbox_serves_both_on_free_ports() -> None:
    github = GitHubState()
    github.add_gist("alice", {"a.py": "1"})
    async with run_sandbox(github_token="gh-t", pipedrive_token="pd-t", github_state=github) as sb:
        assert sb.github is github
        assert sb.pipedrive_url == f"{sb.pipedrive_root_url}/api/v2"
        assert (sb.github_token, sb.pipedrive_token) == ("gh-t", "pd-t")
        async with httpx.AsyncClient() as client:
            gists = await client.get(
                f"{sb.github_url}/users/alice/gists", headers={"Authorization": "Bearer gh-t"}
            )
            org = await client.post(
                f"{sb.pipedrive_url}/organizations",
                json={"name": "GITHUB_GISTS"},
                headers={"x-api-token": "pd-t"},
            )
        assert gists.status_code == 200 and len(gists.json()) == 1
        assert org.status_code == 200
        assert sb.pipedrive.organizations[1]["name"] == "GITHUB_GISTS"
        port = int(sb.github_url.rsplit(":", 1)[1])
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{port}/users/alice")
            raise AssertionError("the server should be down")
        except httpx.ConnectError:
            pass


async def test_two_sandboxes_are_independent() -> None:
    async with run_sandbox() as one, run_sandbox() as two:
        one.github.add_user("alice")
        assert two.github.user("alice") is None
        assert one.github_url != two.github_url
