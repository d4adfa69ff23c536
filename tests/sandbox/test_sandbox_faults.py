"""Injected faults, for both simulators: latency, errors, timeouts, drops, 429 bursts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sandbox import FaultConfig, Sandbox
from sandbox.faults import Fault, expected_faults
from sandbox.simulator import SimulatorState


@dataclass
class Target:
    name: str
    api: httpx.AsyncClient
    control: httpx.AsyncClient
    state: SimulatorState[Any]
    path: str  # an API path answering 200
    route: str  # its key in /_sandbox/stats
    server_error: dict[str, Any]  # body of an injected 500


@pytest.fixture(params=["github", "pipedrive"])
async def target(
    request: pytest.FixtureRequest,
    sandbox: Sandbox,
    gh: httpx.AsyncClient,
    pd: httpx.AsyncClient,
    gh_control: httpx.AsyncClient,
    pd_control: httpx.AsyncClient,
) -> AsyncIterator[Target]:
    if request.param == "github":
        sandbox.github.add_user("alice")
        yield Target("github", gh, gh_control, sandbox.github, "/users/alice",
                     "GET /users/{username}",
                     {"message": "Server Error", "documentation_url": "https://docs.github.com/rest",
                      "status": "500"})  # fmt: skip
    else:
        sandbox.pipedrive.config.limits.burst_limit = 1000
        yield Target("pipedrive", pd, pd_control, sandbox.pipedrive, "/deals", "GET /deals",
                     {"success": False, "error": "Internal server error",
                      "error_info": "Please check developers.pipedrive.com", "data": None,
                      "additional_data": None})  # fmt: skip


async def stats(target: Target) -> dict[str, Any]:
    body = (await target.control.get("/stats")).json()
    assert isinstance(body, dict)
    return body


async def test_latency_applies_to_the_api_only(target: Target) -> None:
    target.state.config.faults.latency_ms = 200
    started = time.perf_counter()
    assert (await target.api.get(target.path)).status_code == 200
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    assert (await target.control.get("/config")).status_code == 200
    assert time.perf_counter() - started < 0.15


async def test_error_rate_one_and_error_status(target: Target) -> None:
    faults = target.state.config.faults
    faults.error_rate = 1.0
    response = await target.api.get(target.path)
    assert (response.status_code, response.json()) == (500, target.server_error)
    faults.error_status = 503
    assert (await target.api.get(target.path)).status_code == 503
    # Never the control API.
    assert (await target.control.get("/stats")).status_code == 200


async def test_error_rate_is_seeded_and_exact(target: Target) -> None:
    await target.control.patch("/config", json={"faults": {"error_rate": 0.3, "seed": 7}})
    statuses = [(await target.api.get(target.path)).status_code for _ in range(40)]
    predicted = expected_faults(7, 40, FaultConfig(error_rate=0.3, seed=7))
    assert statuses == [500 if f is Fault.ERROR else 200 for f in predicted]
    failures = predicted.count(Fault.ERROR)
    assert 0 < failures < 40
    assert (await stats(target))["requests"][target.route] == {
        "200": 40 - failures,
        "500": failures,
    }


async def test_timeout_then_504(target: Target) -> None:
    faults = target.state.config.faults
    faults.timeout_rate = 1.0
    faults.timeout_seconds = 0.2
    started = time.perf_counter()
    response = await target.api.get(target.path)
    assert response.status_code == 504
    assert time.perf_counter() - started >= 0.2


async def test_client_giving_up_on_a_hang_is_recorded(target: Target) -> None:
    faults = target.state.config.faults
    faults.timeout_rate = 1.0
    faults.timeout_seconds = 5.0
    with pytest.raises(httpx.ReadTimeout):
        await target.api.get(target.path, timeout=0.2)
    faults.timeout_rate = 0.0
    for _ in range(50):  # the server notices the disconnect a moment later
        if (await stats(target))["requests"].get(target.route):
            break
        await asyncio.sleep(0.01)
    assert (await stats(target))["requests"][target.route] == {"cancelled": 1}


async def test_drop_closes_the_connection(target: Target) -> None:
    target.state.config.faults.drop_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        await target.api.get(target.path)
    target.state.config.faults.drop_rate = 0.0
    assert (await target.api.get(target.path)).status_code == 200
    assert (await stats(target))["requests"][target.route] == {"dropped": 1, "200": 1}


async def test_rate_limit_burst(target: Target) -> None:
    patched = await target.control.patch("/config", json={"faults": {"rate_limit_burst": 2}})
    assert patched.json()["faults"]["rate_limit_burst"] == 2
    for _ in range(2):
        limited = await target.api.get(target.path)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
    assert (await target.api.get(target.path)).status_code == 200
    assert (await target.control.get("/config")).json()["faults"]["rate_limit_burst"] == 0


async def test_reset_restores_start_up_faults(target: Target) -> None:
    await target.control.patch("/config", json={"faults": {"error_rate": 1.0}})
    assert (await target.api.get(target.path)).status_code == 500
    assert (await target.control.post("/reset")).status_code == 204
    assert (await target.control.get("/config")).json()["faults"] == FaultConfig().model_dump()
