"""`python -m github_poller` as a real process: settings from the environment, readiness,
metrics, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx

from gistsync.contracts import UserExistsQuery, UserExistsReply
from tests.conftest import free_port
from tests.github_poller.conftest import TOKEN, World, status
from tests.waiting import eventually


async def test_python_m_runs_the_service_from_the_environment(world: World, tmp_path: Path) -> None:
    world.sandbox.github.add_gists_bulk("alice", 2)
    world.writer.users = ["alice"]
    await world.start_writer()
    port = free_port()
    ops = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "API_TOKEN_GITHUB": TOKEN,
        "GITHUB_API_URL": world.sandbox.github_url,
        "AMQP_URL": world.amqp_url,
        "AMQP_PREFIX": world.prefix,
        "PARTITIONS": "2",
        "GITHUB_POLLER_HOST": "127.0.0.1",
        "GITHUB_POLLER_PORT": str(port),
        "POLL_INTERVAL_SECONDS": "0.5",
    }
    log = tmp_path / "github_poller.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "github_poller", env=env, stderr=out
        )
    try:
        await eventually(lambda: ready(ops), timeout=15)
        await eventually(lambda: len(world.writer.events) == 2, timeout=5)
        gateway = await world.gateway()
        reply = await gateway.request(UserExistsQuery(login="ALICE"), timeout=5)
        assert isinstance(reply, UserExistsReply)
        assert reply.login == "alice"
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{ops}/metrics")).text
        for name in (
            "gistsync_tracked_users 1.0",
            "gistsync_gists_discovered_total 2.0",
            'gistsync_polls_total{outcome="ok"} 1.0',
            "gistsync_poll_interval_effective_seconds 0.5",
            'gistsync_github_requests_total{status="200"}',
            "gistsync_github_rate_limit_remaining",
            "gistsync_github_rate_limit_reset_timestamp_seconds",
        ):
            assert name in metrics
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["message"] for line in lines][-2:] == ["stopping", "stopped"]
    assert any(line["message"] == "tracked users loaded" for line in lines)
    assert TOKEN not in log.read_text()


async def test_a_missing_token_stops_it_at_once_with_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN_GITHUB"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "github_poller", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 2
    assert stderr.decode() == "gistsync: setting API_TOKEN_GITHUB is required but not set\n"


async def ready(ops: str) -> bool:
    return await status(f"{ops}/readyz") == 200
