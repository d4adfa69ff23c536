"""Run both simulators in-process on free ports, for test suites and benchmarks.

async with run_sandbox() as sb:
    sb.github.add_gist("alice", {"a.py": "print(1)"})
    async with httpx.AsyncClient(base_url=sb.pipedrive_url,
                                 headers={"x-api-token": sb.pipedrive_token}) as pd: ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from sandbox.github import create_github_app
from sandbox.github_state import GitHubState
from sandbox.pipedrive import API_PREFIX, create_pipedrive_app
from sandbox.pipedrive_state import PipedriveState

DEFAULT_GITHUB_TOKEN = "sandbox-github-token"
DEFAULT_PIPEDRIVE_TOKEN = "sandbox-pipedrive-token"


@dataclass(frozen=True)
class Sandbox:
    github_url: str  # API root, e.g. http://127.0.0.1:41234 (also hosts /_sandbox/)
    pipedrive_url: str  # API v2 base, e.g. http://127.0.0.1:41235/api/v2
    pipedrive_root_url: str  # where Pipedrive's /_sandbox/ lives
    github_token: str
    pipedrive_token: str
    github: GitHubState
    pipedrive: PipedriveState


async def start_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app`; returns the runner (call .cleanup()) and the bound port."""
    # handler_cancellation: a client that gives up on a hanging (timeout-fault) request must
    # not keep the handler, or shutdown, waiting.
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # aiohttp has no public accessor for the bound port; the runner's addresses hold it.
    address = runner.addresses[0]
    return runner, int(address[1])


@asynccontextmanager
async def run_sandbox(
    host: str = "127.0.0.1",
    github_port: int = 0,
    pipedrive_port: int = 0,
    *,
    github_token: str = DEFAULT_GITHUB_TOKEN,
    pipedrive_token: str = DEFAULT_PIPEDRIVE_TOKEN,
    github_state: GitHubState | None = None,
    pipedrive_state: PipedriveState | None = None,
) -> AsyncIterator[Sandbox]:
    github = github_state or GitHubState()
    pipedrive = pipedrive_state or PipedriveState()
    async with AsyncExitStack() as stack:
        gh_runner, gh_port = await start_app(
            create_github_app(github, token=github_token), host, github_port
        )
        stack.push_async_callback(gh_runner.cleanup)
        pd_runner, pd_port = await start_app(
            create_pipedrive_app(pipedrive, token=pipedrive_token), host, pipedrive_port
        )
        stack.push_async_callback(pd_runner.cleanup)
        pd_root = f"http://{_netloc(host)}:{pd_port}"
        yield Sandbox(
            github_url=f"http://{_netloc(host)}:{gh_port}",
            pipedrive_url=f"{pd_root}{API_PREFIX}",
            pipedrive_root_url=pd_root,
            github_token=github_token,
            pipedrive_token=pipedrive_token,
            github=github,
            pipedrive=pipedrive,
        )


def _netloc(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class FakeClock:
    """A settable wall clock for GitHubState/PipedriveState(clock=...)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
