"""The small HTTP server every service runs on a port of its own (the ops port):
`/metrics`, `/healthz`, `/readyz`. The gateway's public port serves the probes too, never
the metrics."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gistsync.metrics import record_build_info

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


def add_probe_routes(app: web.Application, ready: Ready) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readiness(ready))  # type: ignore[arg-type]


def add_ops_routes(app: web.Application, ready: Ready) -> None:
    app.router.add_get("/metrics", metrics)
    add_probe_routes(app, ready)


async def start_ops_server(host: str, port: int, ready: Ready) -> web.AppRunner:
    record_build_info()
    app = web.Application()
    add_ops_routes(app, ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
