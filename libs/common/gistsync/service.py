"""How every service process runs: logging, tracing, signals, one lifespan, a clean exit.

A service is an async context manager (its lifespan): it starts everything on enter and stops
it on exit. `run` enters it, waits for SIGTERM or SIGINT, and exits it, so shutdown always
takes the same path: stop consuming, finish in-flight work, close connections. A signal that
comes while the lifespan is still starting (typically: waiting for a broker that is not there)
cancels the start-up, whose own clean-up then runs: the process never hangs on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from gistsync import tracing
from gistsync.logs import configure_logging
from gistsync.settings import CommonSettings

log = logging.getLogger(__name__)


def run(
    name: str,
    settings: CommonSettings,
    lifespan: Callable[[], AbstractAsyncContextManager[object]],
) -> None:
    configure_logging(name, settings.log_level, settings.secrets())
    # Before the lifespan makes its application and clients: those are what get traced.
    stop_tracing = tracing.setup(name)
    try:
        asyncio.run(_serve(name, lifespan))
    finally:
        stop_tracing()  # the last spans, the shutdown's included, are sent before exit


async def _serve(name: str, lifespan: Callable[[], AbstractAsyncContextManager[object]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    context = lifespan()
    starting = asyncio.ensure_future(context.__aenter__())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopping before start-up finished", extra={"service": name})
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        log.info("stopped")
        return
    stopping.cancel()
    starting.result()  # a start-up that failed fails the process
    try:
        log.info("started", extra={"service": name})
        await stop.wait()
        log.info("stopping")
    except BaseException as exc:
        if not await context.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await context.__aexit__(None, None, None)
    log.info("stopped")
