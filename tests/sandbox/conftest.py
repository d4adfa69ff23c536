"""Fixtures for the sandbox tests: the specs (loaded once), a running sandbox, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox import GitHubState, PipedriveState, Sandbox, run_sandbox
from sandbox.testing import FakeClock
from tests.contract import (
    Contract,
    github_fallbacks,
    pipedrive_errata,
    pipedrive_fallbacks,
)
from tests.specs import GITHUB_SPEC, PIPEDRIVE_SPEC, spec_file


@pytest.fixture(scope="session")
def github_contract() -> Contract:
    return Contract.load(spec_file(GITHUB_SPEC), "https://api.github.com", github_fallbacks)


@pytest.fixture(scope="session")
def pipedrive_contract() -> Contract:
    # The spec's server is https://api.pipedrive.com/api/v2; our paths keep the /api/v2.
    return Contract.load(
        spec_file(PIPEDRIVE_SPEC),
        "https://api.pipedrive.com",
        pipedrive_fallbacks,
        pipedrive_errata,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with run_sandbox(
        github_state=GitHubState(clock=clock), pipedrive_state=PipedriveState(clock=clock)
    ) as running:
        yield running


@pytest.fixture
async def gh(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """GitHub API client, authorized, with the headers GitHub asks for."""
    headers = {
        "Authorization": f"Bearer {sandbox.github_token}",
        "Accept": "application/vnd.github+json",
        "User-Agent": "gistsync-tests",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    async with httpx.AsyncClient(base_url=sandbox.github_url, headers=headers) as client:
        yield client


@pytest.fixture
async def gh_anon(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"User-Agent": "gistsync-tests"}
    async with httpx.AsyncClient(base_url=sandbox.github_url, headers=headers) as client:
        yield client


@pytest.fixture
async def pd(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"x-api-token": sandbox.pipedrive_token}
    async with httpx.AsyncClient(base_url=sandbox.pipedrive_url, headers=headers) as client:
        yield client


@pytest.fixture
async def gh_control(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox.github_url}/_sandbox") as client:
        yield client


@pytest.fixture
async def pd_control(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox.pipedrive_root_url}/_sandbox") as client:
        yield client
