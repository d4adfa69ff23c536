"""The installed `gistsync` script as a process: `check` against the simulators and the
broker, and `run` starting a service that stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from sandbox import Sandbox
from tests.cli.conftest import SCRIPT, script
from tests.conftest import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.processes

WRONG_TOKEN = "ghp_wrong0123456789abcdef"


async def test_check_passes_against_the_simulators_and_the_broker(
    sandbox_env: dict[str, str],
) -> None:
    run = await script("check")
    assert run.code == 0, run.text
    assert len(run.out.splitlines()) == 7
    assert all(line.startswith("ok ") for line in run.out.splitlines()), run.out


async def test_check_with_a_wrong_token_exits_1_and_never_shows_it(
    sandbox_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN_GITHUB", WRONG_TOKEN)
    monkeypatch.setenv("API_TOKEN_PIPEDRIVE", WRONG_TOKEN + "-pd")
    run = await script("check")
    assert run.code == 1
    failed = [line.split()[1] for line in run.out.splitlines() if line.startswith("FAIL")]
    assert failed == ["github:", "pipedrive:"]
    assert WRONG_TOKEN not in run.text


async def test_run_starts_the_service_and_stops_it_on_sigterm(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("GATEWAY_HOST", "127.0.0.1")
    monkeypatch.setenv("GATEWAY_PORT", str(port))
    monkeypatch.setenv("GATEWAY_OPS_PORT", str(free_port()))
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "run",
        "gateway",
        env=dict(os.environ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=30, what="the gateway ready")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert '"message": "stopped"' in err.decode()


async def test_run_with_bad_settings_stops_with_the_services_own_line(
    broker_env: dict[str, str],
) -> None:
    run = await script("run", "github_poller")
    assert run.code == 2
    assert run.err == "gistsync: setting API_TOKEN_GITHUB is required but not set\n"
