"""The small HTTP server of the services that have no other: `/metrics`, `/healthz`, `/readyz`."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Ready = Callable[[], bool]


async def metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def readiness(ready: Ready) -> Callable[[web.Request], object]:
    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    return readyz


def add_ops_routes(app: web.Application, ready: Ready) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readiness(ready))  # type: ignore[arg-type]


async def start_ops_server(host: str, port: int, ready: Ready) -> web.AppRunner:
    app = web.Application()
    add_ops_routes(app, ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
