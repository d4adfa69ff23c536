"""aiohttp plumbing shared by both simulators: JSON replies, the API wrapper, control routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.faults import Fault
from sandbox.simulator import InvalidConfig, SimulatorState

CONTROL_PREFIX = "/_sandbox/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return web.Response(text=body, status=status, headers=headers, content_type="application/json")


def control_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


class ControlError(Exception):
    """Bad input to the control API; becomes a JSON 4xx."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def route_key(request: web.Request, strip_prefix: str = "") -> str:
    """`GET /users/{username}/gists`: method plus the route template, as in the specs."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} <unmatched>"
    return f"{request.method} {resource.canonical.removeprefix(strip_prefix)}"


def drop_connection(request: web.Request) -> None:
    # Closing the transport before any byte is written is what a crashed proxy looks like.
    if request.transport is not None:
        request.transport.close()


async def run_api_request(
    request: web.Request,
    sim: SimulatorState[Any],
    route: str,
    inner: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Count the request, add latency, maybe inject a fault, else run `inner`."""
    sim.stats.enter()
    outcome = "cancelled"
    try:
        faults = sim.config.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        fault = sim.injector.draw(faults)
        if fault is Fault.DROP:
            drop_connection(request)
            outcome = "dropped"
            return web.Response(status=500)  # never reaches the client
        if fault is Fault.TIMEOUT:
            await asyncio.sleep(faults.timeout_seconds)
        if fault is not Fault.NONE:
            response: web.StreamResponse = sim.fault_response(fault)
        else:
            response = await inner()
        outcome = str(response.status)
        return response
    except web.HTTPException as exc:
        outcome = str(exc.status)
        raise
    except Exception:
        outcome = "500"  # a simulator bug; aiohttp answers 500
        raise
    finally:
        sim.stats.leave(route, outcome)


def add_control_routes(
    app: web.Application, sim: SimulatorState[Any], *, with_tokens: bool
) -> None:
    """Routes both simulators share: stats, reset and config."""

    async def get_stats(_: web.Request) -> web.Response:
        return json_response(sim.stats.snapshot(with_tokens=with_tokens))

    async def reset_stats(_: web.Request) -> web.Response:
        sim.stats.reset()
        return web.Response(status=204)

    async def reset_all(_: web.Request) -> web.Response:
        sim.reset()
        return web.Response(status=204)

    async def get_config(_: web.Request) -> web.Response:
        return json_response(sim.config.model_dump(mode="json"))

    async def patch_config(request: web.Request) -> web.Response:
        patch = await read_json_object(request)
        try:
            new = sim.patch_config(patch)
        except InvalidConfig as exc:
            raise ControlError(str(exc)) from exc
        return json_response(new.model_dump(mode="json"))

    app.router.add_get("/_sandbox/stats", get_stats)
    app.router.add_post("/_sandbox/stats/reset", reset_stats)
    app.router.add_post("/_sandbox/reset", reset_all)
    app.router.add_get("/_sandbox/config", get_config)
    app.router.add_patch("/_sandbox/config", patch_config)


@web.middleware
async def control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors for the control API (the API itself renders vendor-shaped errors)."""
    if not request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ControlError as exc:
        return control_error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return control_error(exc.status, exc.reason)
