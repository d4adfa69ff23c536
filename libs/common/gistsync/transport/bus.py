"""The transport as one object: a connection, the delivery path, consumers, RPC and a lock,
for an application that passes in its `Codec` and its `Topology` table."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from contextlib import AbstractAsyncContextManager

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from gistsync.retry import Retry
from gistsync.transport.codec import Codec, Envelope
from gistsync.transport.connection import Connection
from gistsync.transport.delivery import Delivery, Handler
from gistsync.transport.lock import held
from gistsync.transport.partitions import PartitionConsumer, PartitionHooks
from gistsync.transport.rpc import Rpc
from gistsync.transport.topology import Topology

log = logging.getLogger(__name__)


class Transport:
    """Over one `Connection`, named after the service it serves."""

    def __init__(self, connection: Connection, codec: Codec) -> None:
        self.service = connection.name
        self.codec = codec
        self.connection = connection
        self.delivery = Delivery(connection, codec, connection.name)
        # For queues and exchanges of the caller's own (a robust channel, a consumer that
        # rides out a reconnect).
        self.open_channel = connection.open_channel
        self.start_consuming = connection.start_consuming
        self.rpc = Rpc(self.connection, codec)
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._partitioned: list[PartitionConsumer] = []

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def topology(self) -> Topology:
        return self.connection.topology

    @property
    def partitions(self) -> int:
        return self.topology.partitions

    @property
    def ready(self) -> bool:
        return self.connection.ready

    async def connect(self, *, retry_for: float = math.inf) -> None:
        await self.connection.connect(retry_for=retry_for)

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop consuming, let in-flight handlers finish (up to `grace`), then disconnect.

        Whatever is still unfinished is left unacked, so the broker delivers it again."""
        for partitioned in self._partitioned:
            await partitioned.stop()
        for queue, tag in self._consumers:
            try:
                # Bounded: on a lost connection a robust channel waits to be restored.
                await asyncio.wait_for(queue.cancel(tag), 2.0)
            except Exception as exc:  # the connection may already be gone
                log.debug("cancel failed", extra={"error": str(exc)})
        self._consumers.clear()
        self._partitioned.clear()
        await self.delivery.serial.drain(grace)
        self.rpc.cancel_all()
        await self.connection.close()

    # --- sending ---------------------------------------------------------------------------

    def routing_key(self, message: Envelope) -> str:
        """Its type, plus the partition of its key for partitioned types."""
        partition = self.codec.partition(message)
        if partition is None:
            key = self.codec.key(message)
            partition = None if key is None else self.topology.partition_of(key)
        return self.topology.routing_key(message.type, partition)

    async def publish(self, message: Envelope, *, routing_key: str | None = None) -> None:
        """Publish and wait for the broker's confirm; `PublishError` if it does not come."""
        await self.connection.publish(
            self.codec.encode(message),
            kind=message.type,
            routing_key=routing_key or self.routing_key(message),
            message_id=message.message_id,
            headers={"x-correlation-id": message.correlation_id},
        )

    async def request(self, message: Envelope, *, timeout: float) -> Envelope:
        return await self.rpc.request(message, self.routing_key(message), timeout=timeout)

    def lock(self, name: str, *, timeout: float = 30.0) -> AbstractAsyncContextManager[None]:
        return held(self.connection, name, timeout=timeout)

    # --- consuming -------------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler, *, retry: Retry | None) -> None:
        """Handle every message of a shared queue. `retry=None` is for queries: a failure
        is answered at once with an error reply instead of being retried."""
        amqp_queue = self.connection.queues[queue]

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            self.delivery.accept(queue, incoming, handler, retry)

        tag = await self.connection.start_consuming(amqp_queue, on_message)
        self._consumers.append((amqp_queue, tag))

    async def consume_partitions(
        self,
        service: str,
        handler: Handler,
        *,
        retry: Retry,
        hooks: PartitionHooks | None = None,
        tick_seconds: float = 2.0,
    ) -> PartitionConsumer:
        """Take part in handling `service`'s partitions (see partitions.py)."""
        consumer = PartitionConsumer(
            self.connection,
            self.delivery,
            service,
            handler,
            retry,
            hooks=hooks,
            tick_seconds=tick_seconds,
        )
        self._partitioned.append(consumer)
        await consumer.start()
        return consumer

    async def consume_broadcast(self, types: tuple[str, ...], handler: Handler) -> None:
        """Hear every message of `types` (any partition) through a queue of this process
        only; it goes away with the process. Failures are logged, never retried."""
        channel, bus = self.connection.channel, self.connection.bus
        assert channel is not None and bus is not None
        name = f"{self.topology.prefix}.broadcast.{self.service}.{uuid.uuid4().hex[:12]}"
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        for kind in types:
            await queue.bind(bus, routing_key=kind)
            if self.topology.is_partitioned(kind):
                await queue.bind(bus, routing_key=f"{kind}.*")

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            async with incoming.process(ignore_processed=True):
                try:
                    await handler(self.codec.decode(incoming.body))
                except Exception:
                    log.exception("broadcast not applied", extra={"type": incoming.type})

        tag = await self.connection.start_consuming(queue, on_message)
        self._consumers.append((queue, tag))
