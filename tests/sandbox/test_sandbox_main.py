"""`python -m sandbox` as a process: env configuration, seeding, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

SERVICE_ROOT = Path(__file__).parents[2] / "services" / "sandbox"
LISTENING = re.compile(r"(github|pipedrive) simulator listening on (\S+)")


async def start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(SERVICE_ROOT),
        "SANDBOX_GITHUB_PORT": "0",
        "SANDBOX_PIPEDRIVE_PORT": "0",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", env=full_env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    urls: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(urls) < 2:
            line = (await process.stderr.readline()).decode()
            assert line, "sandbox exited before listening"
            match = LISTENING.search(line)
            if match:
                urls[match.group(1)] = match.group(2)
    return process, urls


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_seeds_and_stops_cleanly(signum: signal.Signals) -> None:
    process, urls = await start(
        {
            "SANDBOX_SEED": "alice, Bob",
            "SANDBOX_GITHUB_TOKEN": "gh",
            "SANDBOX_PIPEDRIVE_TOKEN": "pd",
        }
    )
    try:
        assert urls["pipedrive"].endswith("/api/v2")
        async with httpx.AsyncClient() as client:
            gists = await client.get(
                f"{urls['github']}/users/bob/gists", headers={"Authorization": "Bearer gh"}
            )
            assert gists.status_code == 200
            assert [g["owner"]["login"] for g in gists.json()] == ["Bob"] * 3
            assert gists.json()[0]["description"] == "Bob's gist #3"
            deals = await client.get(f"{urls['pipedrive']}/deals", headers={"x-api-token": "pd"})
            assert deals.json() == {
                "success": True,
                "data": [],
                "additional_data": {"next_cursor": None},
            }
            wrong = await client.get(f"{urls['pipedrive']}/deals", headers={"x-api-token": "x"})
            assert wrong.status_code == 401
    finally:
        process.send_signal(signum)
        async with asyncio.timeout(10):
            code = await process.wait()
    assert code == 0


async def test_default_tokens() -> None:
    process, urls = await start({})
    try:
        async with httpx.AsyncClient() as client:
            deals = await client.get(
                f"{urls['pipedrive']}/deals", headers={"x-api-token": "sandbox-pipedrive-token"}
            )
            user = await client.get(
                f"{urls['github']}/users/nobody",
                headers={"Authorization": "Bearer sandbox-github-token"},
            )
        assert (deals.status_code, user.status_code) == (200, 404)
        assert urls["github"].startswith("http://127.0.0.1:")
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            assert await process.wait() == 0


async def test_bad_port_exits_with_2() -> None:
    env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT), "SANDBOX_GITHUB_PORT": "http"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(10):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"bad configuration" in stderr


async def test_taken_port_exits_with_1() -> None:
    process, urls = await start({})
    try:
        taken = urls["github"].rsplit(":", 1)[1]
        env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT), "SANDBOX_GITHUB_PORT": taken,
               "SANDBOX_PIPEDRIVE_PORT": "0"}  # fmt: skip
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", env=env, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(10):
            _, stderr = await second.communicate()
        assert second.returncode == 1
        assert b"cannot listen" in stderr
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
