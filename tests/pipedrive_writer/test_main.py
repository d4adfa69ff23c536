"""The service as it runs: readiness waits for the cache, `python -m pipedrive_writer` works."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest

from gistsync.contracts import TrackedUsersQuery, TrackedUsersReply, TrackUser
from pipedrive_writer.pipedrive import PipedriveRejected
from tests.pipedrive_writer.conftest import Harness, eventually


async def status(url: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(url)).status_code
    except httpx.TransportError:
        return 0


async def test_ready_only_once_the_cache_is_loaded(harness: Harness) -> None:
    harness.configure({"faults": {"error_rate": 1.0}})  # Pipedrive down at start
    settings = harness.settings()
    ops = f"http://127.0.0.1:{settings.pipedrive_writer_port}"
    stop = asyncio.Event()

    async def serve() -> None:
        async with harness.run(settings):
            await stop.wait()

    task = asyncio.create_task(serve())
    try:
        for _ in range(100):
            if await status(f"{ops}/healthz") == 200:
                break
            await asyncio.sleep(0.02)
        assert await status(f"{ops}/readyz") == 503
        early = TrackUser(login="early")
        await harness.broker.publish(early)
        # Delivered to the writer (nothing left ready in its partition), and held there
        # until the start-up read is done.
        partition = harness.broker.routing_key(early).rpartition(".p")[2]
        queue = f"{harness.prefix}.pipedrive_writer.p{partition}"
        await eventually(lambda: harness.ready_in(queue), what="the message delivered")
        search = harness.requests
        await eventually(
            lambda: search().get("GET /organizations/search", {}).get("500", 0) >= 1,
            what="the start-up read failing",
        )
        assert harness.state()["deals"] == []

        harness.configure({"faults": {"error_rate": 0.0}})
        for _ in range(200):
            if await status(f"{ops}/readyz") == 200:
                break
            await asyncio.sleep(0.05)
        assert await status(f"{ops}/readyz") == 200
        await eventually(lambda: len(harness.state()["deals"]) == 1)
        reply = await harness.ask(TrackedUsersQuery())
        assert isinstance(reply, TrackedUsersReply)
        assert [u.login for u in reply.users] == ["early"]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{ops}/metrics")).text
        assert 'gistsync_pipedrive_requests_total{operation="searchOrganization",status="500"}' in (
            metrics
        )
        assert "gistsync_gist_propagation_seconds_bucket" in metrics
    finally:
        stop.set()
        await task


async def test_python_m_runs_the_service_from_the_environment(harness: Harness) -> None:
    settings = harness.settings()
    env = {
        **os.environ,
        "API_TOKEN_PIPEDRIVE": harness.sb.pipedrive_token,
        "PIPEDRIVE_API_URL": harness.sb.pipedrive_url,
        "AMQP_URL": harness.amqp_url,
        "AMQP_PREFIX": harness.prefix,
        "PARTITIONS": "2",
        "PIPEDRIVE_WRITER_HOST": "127.0.0.1",
        "PIPEDRIVE_WRITER_PORT": str(settings.pipedrive_writer_port),
        "REFRESH_INTERVAL_SECONDS": "600",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipedrive_writer",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = f"http://127.0.0.1:{settings.pipedrive_writer_port}/readyz"
        for _ in range(300):
            if await status(ready) == 200 or process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert await status(ready) == 200
        # Handled in the child process, so watch Pipedrive rather than our metrics.
        await harness.broker.publish(TrackUser(login="octocat"))
        await eventually(lambda: len(harness.state()["deals"]) == 1)
        assert [d["title"] for d in harness.state()["deals"]] == ["Gists for octocat"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert harness.sb.pipedrive_token.encode() not in stderr


def test_a_missing_token_stops_the_service_with_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN_PIPEDRIVE"}
    done = subprocess.run(
        [sys.executable, "-m", "pipedrive_writer"], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "gistsync: setting API_TOKEN_PIPEDRIVE is required but not set"
    )


async def test_a_token_pipedrive_refuses_stops_the_start(harness: Harness) -> None:
    with pytest.raises(PipedriveRejected, match="401 to searchOrganization"):
        async with harness.run(harness.settings(api_token_pipedrive="not-the-token")):
            pass
