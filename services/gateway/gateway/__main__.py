"""`python -m gateway`: wiring only."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.app import create_app
from gateway.bus import BrokerServices
from gateway.server import GatewayRunner
from gateway.settings import Settings
from gistsync.broker import Broker
from gistsync.ops import start_ops_server
from gistsync.service import run
from gistsync.settings import load


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[None]:
    broker = Broker.from_settings(settings, "gateway")
    services = BrokerServices(broker, settings)
    runner = GatewayRunner(create_app(settings, services), settings)
    await runner.setup()
    # Both ports are served from the start: alive, not ready, and 503 for the broker's work
    # until the broker is there, however long that takes.
    ops = await start_ops_server(
        settings.gateway_host, settings.gateway_ops_port, lambda: services.ready
    )
    try:
        await web.TCPSite(runner, settings.gateway_host, settings.gateway_port).start()
        await broker.connect(retry_for=math.inf)
        yield
    finally:
        await runner.cleanup()  # stops accepting, lets requests finish
        await broker.close()
        await ops.cleanup()  # last: metrics and probes answer until the end


def main() -> None:
    settings = load(Settings)
    run("gateway", settings, lambda: lifespan(settings))


if __name__ == "__main__":
    main()
