"""Wiring only: settings, ops server, broker, Pipedrive client, cache, consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gistsync.broker import Broker, Retry
from gistsync.errors import PermanentError, TransientError
from gistsync.ops import start_ops_server
from gistsync.service import run
from gistsync.settings import load
from pipedrive_writer.handlers import Writer
from pipedrive_writer.limiter import Limiter
from pipedrive_writer.pipedrive import PipedriveClient, RetryPolicy
from pipedrive_writer.settings import Settings

SERVICE = "pipedrive_writer"
TICK_SECONDS = 2.0
log = logging.getLogger(SERVICE)


def make_client(settings: Settings, **http: Any) -> PipedriveClient:
    """The client as configured; `http` passes event hooks or a transport (tests)."""
    return PipedriveClient(
        str(settings.pipedrive_api_url),
        settings.api_token_pipedrive.get_secret_value(),
        limiter=Limiter(
            settings.pipedrive_burst_limit,
            settings.pipedrive_search_burst_limit,
            settings.pipedrive_burst_window_seconds,
        ),
        timeout=settings.pipedrive_timeout_seconds,
        retry=RetryPolicy(
            settings.pipedrive_max_attempts,
            settings.pipedrive_backoff_base_seconds,
            settings.pipedrive_backoff_max_seconds,
            settings.pipedrive_max_rate_limit_wait_seconds,
        ),
        page_limit=settings.pipedrive_page_limit,
        **http,
    )


async def load_until_done(writer: Writer, settings: Settings) -> None:
    """Keep trying while Pipedrive is unreachable (not ready meanwhile); a bad token stops us."""
    delay = settings.retry_base_seconds
    while True:
        try:
            await writer.load()
            return
        except PermanentError as exc:
            log.error("Pipedrive refused the start-up read", extra={"error": str(exc)})
            raise
        except TransientError as exc:
            log.warning("cannot load from Pipedrive yet", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_max_seconds)


@asynccontextmanager
async def lifespan(
    settings: Settings, *, client: PipedriveClient | None = None
) -> AsyncIterator[Writer]:
    broker = Broker.from_settings(settings, SERVICE)
    client = client or make_client(settings)
    writer = Writer(
        client, broker, org_name=settings.pipedrive_org_name, partitions=settings.partitions
    )
    runner = await start_ops_server(
        settings.pipedrive_writer_host,
        settings.pipedrive_writer_port,
        lambda: writer.ready and broker.ready,
    )
    refresher: asyncio.Task[None] | None = None
    try:
        await broker.connect(retry_for=math.inf)  # alive, not ready, until the broker is
        await broker.consume_broadcast(
            ("event.user_tracked", "event.user_untracked", "event.unseen_changed"),
            writer.on_broadcast,
        )
        retry = Retry(
            settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds
        )
        # Learn which partitions are ours first: those the start-up read then covers need
        # no re-read; work waits for that read (`Writer.handle`).
        consumer = await broker.consume_partitions(
            SERVICE, writer.handle, retry=retry, hooks=writer, tick_seconds=TICK_SECONDS
        )
        await consumer.settle(timeout=3 * TICK_SECONDS)
        await load_until_done(writer, settings)
        await broker.consume(f"{SERVICE}.queries", writer.handle, retry=None)
        if settings.refresh_interval_seconds:
            interval = settings.refresh_interval_seconds
            refresher = asyncio.create_task(writer.refresh_forever(interval))
        yield writer
    finally:
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await broker.close()
        await client.aclose()
        await runner.cleanup()


def main() -> None:
    settings = load(Settings)
    run(SERVICE, settings, lambda: lifespan(settings))


if __name__ == "__main__":
    main()
