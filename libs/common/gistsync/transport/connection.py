"""One connection to RabbitMQ: connect (retrying with capped backoff, for as long as it
takes), declare the topology, open channels, publish with confirms.

- A broker that is not there (at start, or lost later) is one WARNING per outage naming its
  address without credentials, and one INFO when it is back; the tries in between are DEBUG.

- Queues are durable quorum queues; work queues dead-letter into the dead exchange, request
  queues (`*.queries`) do not. Every process declares the whole topology at connect, so a
  publish never fails just because its consumer has not started yet.
- Publish: persistent, publisher-confirmed, mandatory (unroutable raises), with a timeout;
  done only when confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from pamqp.commands import Basic
from prometheus_client import Counter, Gauge

from gistsync.errors import PublishError
from gistsync.retry import capped
from gistsync.transport.topology import Topology, is_query_queue

log = logging.getLogger(__name__)

# A message requeued this often (by crashes, not by us) is dead-lettered by the broker.
DELIVERY_LIMIT = 20
# What a lost connection or a broker not there yet looks like.
CONNECTION_ERRORS = (TimeoutError, OSError, RuntimeError, aiormq.exceptions.AMQPError)

PUBLISHED = Counter(
    "gistsync_messages_published_total", "Messages confirmed by the broker.", ["type"]
)
CONNECTED = Gauge("gistsync_broker_connected", "1 while the broker connection is open.")
CONNECT_FAILURES = Counter(
    "gistsync_broker_connect_failures_total", "Failed tries to connect to the broker."
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def broker_address(url: str) -> str:
    """`scheme://host:port/vhost` of an AMQP URL: never its user name or password."""
    parts = urlsplit(url)
    scheme = parts.scheme or "amqp"
    port = parts.port or (5671 if scheme == "amqps" else 5672)
    return f"{scheme}://{parts.hostname or 'localhost'}:{port}{parts.path or '/'}"


class Outage:
    """Says once that the broker is gone and once that it is back, whatever the tries."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.since: float | None = None
        self.tries = 0

    def failed(self, exc: BaseException) -> None:
        CONNECT_FAILURES.inc()
        self.tries += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "broker %s not reachable; waiting for it (not ready meanwhile)",
                self.address,
                extra={"broker": self.address, "error": repr(exc)},
            )
        log.debug("broker not reachable, retrying", extra={"error": repr(exc)})

    def lost(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "lost the broker %s; reconnecting (not ready meanwhile)",
                self.address,
                extra={"broker": self.address},
            )

    def over(self) -> None:
        if self.since is not None:
            seconds = round(time.monotonic() - self.since, 1)
            log.info(
                "broker %s reachable again after %s s",
                self.address,
                seconds,
                extra={"broker": self.address, "tries": self.tries},
            )
        self.since, self.tries = None, 0


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    outage: Outage,
    *,
    retry_for: float = math.inf,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`attempt` again and again, with capped backoff, until it succeeds; a connection
    error is raised only past `retry_for` seconds, which by default never comes."""
    deadline = clock() + retry_for
    delay = 0.5
    while True:
        try:
            result = await attempt()
        except CONNECTION_ERRORS as exc:
            if clock() + delay > deadline:
                raise
            outage.failed(exc)
            await sleep(delay)
            delay = capped(delay)
        else:
            outage.over()
            return result


class _QuietTries(logging.Filter):
    """The client libraries log every failed try (aio-pika with the URL, aiormq as an
    ERROR); `Outage` says it once per outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(  # the format: its arguments may not print
            ("Connection attempt", "Reconnect attempt", "error when creating transport")
        )


for _library in ("aio_pika.robust_connection", "aiormq.connection"):
    logging.getLogger(_library).addFilter(_QuietTries())


class Connection:
    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        name: str,
        publish_timeout: float = 5.0,
        prefetch: int = 16,
    ) -> None:
        self.url = url
        self.topology = topology
        self.name = name
        self.publish_timeout = publish_timeout
        self.prefetch = prefetch
        self.amqp: AbstractRobustConnection | None = None
        # Strong references: a channel or exchange only held weakly can vanish under us.
        self.channel: AbstractRobustChannel | None = None
        self.bus: AbstractExchange | None = None
        self.dead: AbstractExchange | None = None
        self.queues: dict[str, AbstractQueue] = {}  # the shared queues, by their short name
        self._closing = False

    async def connect(self, *, retry_for: float = math.inf, sleep: Sleep = asyncio.sleep) -> None:
        """Connect and declare the topology, waiting (by default for as long as it takes)
        while the broker is not there yet, or goes away again halfway through."""
        outage = Outage(broker_address(self.url))
        connection = await until_done(self._attempt, outage, retry_for=retry_for, sleep=sleep)
        self.amqp = connection

        def closed(*_: object) -> None:
            CONNECTED.set(0)
            if not self._closing:
                outage.lost()

        def reconnected(*_: object) -> None:
            CONNECTED.set(1)
            outage.over()

        connection.close_callbacks.add(closed)
        connection.reconnect_callbacks.add(reconnected)
        CONNECTED.set(1)

    async def _attempt(self) -> AbstractRobustConnection:
        connection: AbstractRobustConnection | None = None
        try:
            connection = await aio_pika.connect_robust(
                self.url, client_properties={"connection_name": self.name}, timeout=10
            )
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await channel.set_qos(prefetch_count=self.prefetch)
            await self._declare(channel)
        except CONNECTION_ERRORS:
            # Nothing of a half-made connection may be used (publish checks these).
            self.channel = self.bus = self.dead = None
            self.queues.clear()
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            raise
        self.channel = channel
        return connection

    async def _declare(self, channel: AbstractRobustChannel) -> None:
        top = self.topology
        self.bus = await channel.declare_exchange(
            top.bus, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.dead = await channel.declare_exchange(
            top.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await channel.declare_queue(
            top.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(self.dead)
        for name, kinds in top.table.shared.items():
            arguments: dict[str, Any] = {
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
            }
            if not is_query_queue(name):
                arguments["x-dead-letter-exchange"] = top.dead_exchange
            queue = await channel.declare_queue(top.queue(name), durable=True, arguments=arguments)
            for kind in kinds:
                await queue.bind(self.bus, routing_key=kind)
            self.queues[name] = queue
        for service in top.table.partitioned:
            for n in range(top.partitions):
                queue = await channel.declare_queue(
                    top.partition(service, n),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-single-active-consumer": True,
                        "x-dead-letter-exchange": top.dead_exchange,
                        "x-delivery-limit": DELIVERY_LIMIT,
                    },
                )
                for key in top.partition_keys(service, n):
                    await queue.bind(self.bus, routing_key=key)

    @property
    def ready(self) -> bool:
        return (
            self.amqp is not None
            and not self.amqp.is_closed
            and self.channel is not None
            and not self.channel.is_closed
        )

    async def open_channel(self) -> AbstractRobustChannel:
        """Another channel on the connection, with the same prefetch."""
        if self.amqp is None:
            raise PublishError("not connected to the broker")
        channel = await self.amqp.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        return channel

    async def close(self) -> None:
        self._closing = True
        if self.amqp is not None:
            await self.amqp.close()
        CONNECTED.set(0)

    async def publish(
        self,
        body: bytes,
        *,
        kind: str,
        routing_key: str,
        message_id: str,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: float | None = None,
        direct: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish and wait for the broker's confirm; `PublishError` if it does not come.

        `direct` sends to the default exchange (replies go straight to a reply queue)."""
        if self.bus is None or self.channel is None:
            raise PublishError("not connected to the broker")
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=kind,
            app_id=self.name,
            reply_to=reply_to,
            correlation_id=correlation_id,
            expiration=expiration,
            headers=headers or {},
        )
        exchange = self.channel.default_exchange if direct else self.bus
        # Broadcasts reach whoever listens; none may be.
        mandatory = not direct and kind not in self.topology.table.broadcast
        await self.confirm(exchange, message, routing_key, mandatory=mandatory)
        PUBLISHED.labels(kind).inc()

    async def confirm(
        self,
        exchange: AbstractExchange,
        message: aio_pika.Message,
        routing_key: str,
        *,
        mandatory: bool = True,
    ) -> None:
        try:
            result = await exchange.publish(
                message, routing_key, mandatory=mandatory, timeout=self.publish_timeout
            )
        except (TimeoutError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            raise PublishError(f"publish of {routing_key} not confirmed: {exc!r}") from exc
        if not isinstance(result, Basic.Ack):
            raise PublishError(f"publish of {routing_key} not confirmed: {result!r}")

    async def start_consuming(
        self,
        queue: AbstractQueue,
        on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        retry_for: float = math.inf,
    ) -> str:
        """`basic.consume`, waiting out a connection that drops between connect and now
        (the robust connection comes back by itself and then restores this consumer)."""
        deadline = time.monotonic() + retry_for
        tries = 0
        while True:
            try:
                return await queue.consume(on_message)
            except CONNECTION_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                tries += 1
                level = logging.WARNING if tries == 1 else logging.DEBUG
                log.log(level, "consume failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                if self.amqp is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.amqp.connected.wait(), 10)
