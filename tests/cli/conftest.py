"""The command line against a real broker and the real simulators (in-process): settings
as an operator sets them, each command run through `gistsync_cli.main.main` in a thread of
its own (it runs its own event loop, as from a shell), or as the installed script."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gistsync.settings import SECRETS_DIR_VARIABLE
from gistsync_cli.main import main
from sandbox import Sandbox, run_sandbox
from tests.gateway.conftest import Peers, broker_peers

__all__ = ["Peers", "Run", "broker_peers", "gistsync", "script"]

SCRIPT = Path(sys.executable).parent / "gistsync"
# Every variable a test may set; cleared first, so the machine's own settings never leak in.
VARIABLES = (
    "AMQP_URL",
    "AMQP_PREFIX",
    "PARTITIONS",
    "API_TOKEN_GITHUB",
    "API_TOKEN_PIPEDRIVE",
    "GITHUB_API_URL",
    "PIPEDRIVE_API_URL",
    "GATEWAY_API_KEY",
    "GATEWAY_SESSION_SECRET",
    "REQUEST_TIMEOUT_SECONDS",
    "GATEWAY_HOST",
    "GATEWAY_PORT",
    "GATEWAY_OPS_PORT",
    "GITHUB_POLLER_PORT",
    "PIPEDRIVE_WRITER_PORT",
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


async def gistsync(*args: str) -> Run:
    """`gistsync ARGS` in this process, with the environment as the test set it."""
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(main, list(args), out, err)
    return Run(code, out.getvalue(), err.getvalue())


async def script(*args: str, timeout: float = 60.0) -> Run:
    """The installed console script, as a process of its own."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


@pytest.fixture
def broker_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, amqp_url: str, prefix: str
) -> dict[str, str]:
    """The test's broker and prefix, no settings files, and nothing else set."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    values = {
        "AMQP_URL": amqp_url,
        "AMQP_PREFIX": prefix,
        "PARTITIONS": "2",  # as tests.conftest.PARTITIONS: the peers' queues
        SECRETS_DIR_VARIABLE: str(secrets),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as running:
        yield running


@pytest.fixture
def sandbox_env(
    broker_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The broker's settings plus both simulators with their right tokens."""
    values = {
        "API_TOKEN_GITHUB": sandbox.github_token,
        "API_TOKEN_PIPEDRIVE": sandbox.pipedrive_token,
        "GITHUB_API_URL": sandbox.github_url,
        "PIPEDRIVE_API_URL": sandbox.pipedrive_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**broker_env, **values}
