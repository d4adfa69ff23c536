"""How every service process runs: logging, signals, one lifespan, a clean exit.

A service is an async context manager (its lifespan): it starts everything on enter and stops
it on exit. `run` enters it, waits for SIGTERM or SIGINT, and exits it, so shutdown always
takes the same path: stop consuming, finish in-flight work, close connections.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from gistsync.logs import configure_logging
from gistsync.settings import CommonSettings

log = logging.getLogger(__name__)


def run(
    name: str,
    settings: CommonSettings,
    lifespan: Callable[[], AbstractAsyncContextManager[object]],
) -> None:
    configure_logging(name, settings.log_level, settings.secrets())
    asyncio.run(_serve(name, lifespan))


async def _serve(name: str, lifespan: Callable[[], AbstractAsyncContextManager[object]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with lifespan():
        log.info("started", extra={"service": name})
        await stop.wait()
        log.info("stopping")
    log.info("stopped")
