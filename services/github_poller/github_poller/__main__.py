"""`python -m github_poller`: wiring only."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from gistsync.broker import Broker, Retry
from gistsync.ops import start_ops_server
from gistsync.service import run
from gistsync.settings import load
from github_poller.github import GitHubClient
from github_poller.handlers import Handlers, Handover
from github_poller.poller import Poller
from github_poller.schedule import Schedule
from github_poller.settings import Settings


def make_client(settings: Settings) -> GitHubClient:
    return GitHubClient(
        str(settings.github_api_url),
        settings.api_token_github.get_secret_value(),
        timeout=settings.github_timeout_seconds,
        max_in_flight=settings.github_max_in_flight,
        requests_per_second=settings.github_requests_per_second,
        backoff=settings.github_rate_limit_backoff_seconds,
        backoff_max=settings.github_rate_limit_backoff_max_seconds,
    )


def make_schedule(settings: Settings) -> Schedule:
    return Schedule(
        interval=settings.poll_interval_seconds,
        rate=settings.github_requests_per_second,
        max_in_flight=settings.github_max_in_flight,
        failure_backoff_max=settings.poll_failure_backoff_max_seconds,
    )


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[Poller]:
    broker = Broker.from_settings(settings, "github_poller")
    client = make_client(settings)
    poller = Poller(client, broker.publish, make_schedule(settings))
    ops = await start_ops_server(
        settings.github_poller_host,
        settings.github_poller_port,
        lambda: broker.ready and poller.loaded.is_set(),
    )
    try:
        await broker.connect(retry_for=math.inf)  # alive, not ready, until the broker is
        handlers = Handlers(
            poller,
            client,
            query_wait=settings.request_timeout_seconds,
            partitions=settings.partitions,
            unknown_user_ttl=settings.unknown_user_cache_seconds,
        )
        handover = Handover(
            poller,
            broker.request,
            settings.partitions,
            timeout=settings.request_timeout_seconds,
            retry_base=settings.retry_base_seconds,
            retry_max=settings.retry_max_seconds,
        )
        scheduler = asyncio.create_task(poller.run())
        retry = Retry(
            settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds
        )
        # Ticks four times an interval: the partitions of a poller that died are picked up
        # (and their users polled) well within two intervals of their last poll.
        tick = max(0.2, settings.poll_interval_seconds / 4)
        consumer = await broker.consume_partitions(
            "github_poller", handlers.on_event, retry=retry, hooks=handover, tick_seconds=tick
        )
        await broker.consume("github_poller.queries", handlers.on_query, retry=None)

        async def load() -> None:
            # Ready once the users of the partitions we own at start are known.
            await consumer.settle(timeout=min(3 * tick, 10.0))
            await consumer.caught_up()
            handover.started = True
            poller.loaded.set()

        loader = asyncio.create_task(load())
        try:
            yield poller
        finally:
            loader.cancel()
            with suppress(asyncio.CancelledError):
                await loader
            await poller.stop(grace=5.0)
            await scheduler
    finally:
        await broker.close()
        await client.aclose()
        await ops.cleanup()


def main() -> None:
    settings = load(Settings)
    run("github_poller", settings, lambda: lifespan(settings))


if __name__ == "__main__":
    main()
