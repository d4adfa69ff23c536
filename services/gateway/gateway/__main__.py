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
from gistsync.service import run
from gistsync.settings import load


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[None]:
    broker = Broker.from_settings(settings, "gateway")
    runner = GatewayRunner(create_app(settings, BrokerServices(broker, settings)), settings)
    await runner.setup()
    # The port is served from the start: alive, not ready, and 503 for the broker's work
    # until the broker is there, however long that takes.
    await web.TCPSite(runner, settings.gateway_host, settings.gateway_port).start()
    try:
        await broker.connect(retry_for=math.inf)
        yield
    finally:
        await runner.cleanup()  # stops accepting, lets requests finish
        await broker.close()


def main() -> None:
    settings = load(Settings)
    run("gateway", settings, lambda: lifespan(settings))


if __name__ == "__main__":
    main()
