"""A writer running in-process against the Pipedrive simulator and a real RabbitMQ.

`Harness.send` publishes messages and waits until the writer has finished them (acked or
dead-lettered), read from the consumer metrics, so tests assert on a settled state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY

from gistsync.broker import Broker, Topology
from gistsync.contracts import AnyMessage, Message
from pipedrive_writer.__main__ import lifespan, make_client
from pipedrive_writer.handlers import Writer
from pipedrive_writer.notes import parse_note
from pipedrive_writer.pipedrive import PipedriveClient
from pipedrive_writer.settings import Settings
from sandbox import Sandbox, run_sandbox
from tests.conftest import PARTITIONS, BrokerFactory, free_port
from tests.waiting import eventually

OUTCOMES = ("ok", "retried", "dead_lettered", "error_reply", "unacked")
FAST: dict[str, Any] = {
    "max_attempts": 4,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "pipedrive_backoff_base_seconds": 0.02,
    "pipedrive_backoff_max_seconds": 0.1,
    "pipedrive_timeout_seconds": 2.0,
}


def consumed(queue: str = "pipedrive_writer") -> float:
    return sum(
        REGISTRY.get_sample_value(
            "gistsync_messages_consumed_total", {"queue": queue, "outcome": outcome}
        )
        or 0.0
        for outcome in OUTCOMES
    )


@dataclass
class Harness:
    sb: Sandbox
    amqp_url: str
    prefix: str
    broker: Broker  # the test's own connection: publishes and asks
    stack: AsyncExitStack
    writers: list[Writer] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_token_pipedrive": self.sb.pipedrive_token,
            "pipedrive_api_url": self.sb.pipedrive_url,
            "amqp_url": self.amqp_url,
            "amqp_prefix": self.prefix,
            "partitions": PARTITIONS,
            "pipedrive_writer_host": "127.0.0.1",
            "pipedrive_writer_port": free_port(),
            **FAST,
            **overrides,
        }
        return Settings(**values)

    def run(
        self, settings: Settings | None = None, client: PipedriveClient | None = None
    ) -> AbstractAsyncContextManager[Writer]:
        """A writer as `python -m pipedrive_writer` runs it, ready on enter."""
        return lifespan(settings or self.settings(), client=client)

    async def start(
        self, settings: Settings | None = None, client: PipedriveClient | None = None
    ) -> Writer:
        """Like `run`, stopped at the end of the test."""
        writer = await self.stack.enter_async_context(self.run(settings, client))
        self.writers.append(writer)
        return writer

    async def send(self, *messages: Message, timeout: float = 20.0) -> None:
        before = consumed()
        for message in messages:
            await self.broker.publish(message)
        await eventually(lambda: consumed() >= before + len(messages), timeout)

    async def ask(self, query: Message) -> AnyMessage:
        return await self.broker.request(query, timeout=5)

    @property
    def pipedrive(self) -> Any:
        return self.sb.pipedrive

    def state(self) -> dict[str, list[dict[str, Any]]]:
        snapshot: dict[str, list[dict[str, Any]]] = self.sb.pipedrive.snapshot()
        return snapshot

    def activities(self) -> dict[str, dict[str, Any]]:
        """Pipedrive's activities by the gist id their note holds (every one must hold one)."""
        found: dict[str, dict[str, Any]] = {}
        for activity in self.state()["activities"]:
            note = parse_note(activity["note"])
            assert note is not None, activity
            assert note.gist_id not in found, f"two activities for {note.gist_id}"
            found[note.gist_id] = activity
        return found

    def done(self) -> dict[str, bool]:
        return {gist_id: a["done"] for gist_id, a in self.activities().items()}

    def requests(self) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = self.sb.pipedrive.stats.snapshot(with_tokens=True)[
            "requests"
        ]
        return stats

    def request_total(self) -> int:
        return int(self.sb.pipedrive.stats.total)

    def reset_stats(self) -> None:
        self.sb.pipedrive.stats.reset()

    def configure(self, patch: dict[str, Any]) -> None:
        self.sb.pipedrive.patch_config(patch)

    def api(self) -> httpx.AsyncClient:
        """A plain client, for making records 'by hand' through the API."""
        return httpx.AsyncClient(
            base_url=self.sb.pipedrive_url, headers={"x-api-token": self.sb.pipedrive_token}
        )

    async def drain(self, *queues: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Everything waiting in some of the topology's queues (read and acked). Consumed,
        not fetched: a partition (single active consumer) refuses `basic.get`."""
        got: list[aio_pika.abc.AbstractIncomingMessage] = []
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                amqp_queue = await channel.get_queue(queue)
                async with amqp_queue.iterator() as messages:
                    while True:
                        try:
                            message = await asyncio.wait_for(anext(messages), 0.3)
                        except TimeoutError:
                            break
                        await message.ack()
                        got.append(message)
        return got

    async def ready_in(self, queue: str) -> bool:
        """Whether `queue` holds no message ready to deliver (all delivered, or none)."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return not declared.declaration_result.message_count

    async def events_for_poller(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """What the writer told the poller, from every partition."""
        topology = Topology(self.prefix, PARTITIONS)
        partitions = [topology.partition("github_poller", n) for n in range(PARTITIONS)]
        return await self.drain(*partitions)


@pytest.fixture
async def harness(amqp_url: str, prefix: str, brokers: BrokerFactory) -> AsyncIterator[Harness]:
    async with run_sandbox() as sb, AsyncExitStack() as stack:
        broker = brokers("tests")
        await broker.connect()
        yield Harness(sb, amqp_url, prefix, broker, stack)


__all__ = ["Harness", "consumed", "eventually", "make_client"]
