"""The RabbitMQ layer, written once for every service.

- One topic exchange, `{prefix}.bus`. Per-user work goes to partition queues
  (`{prefix}.{service}.p{n}`, single active consumer), routed by `{type}.p{n}` where `n` comes
  from the login (`partitions.py` says how replicas share them); the rest goes to shared
  queues routed by type. `PARTITIONED` and `ROUTES` are the whole topology. Every service
  declares all of it at connect, so a publish never fails just because its consumer has not
  started yet.
- Queues are durable quorum queues; work queues dead-letter into `{prefix}.dead` →
  `{prefix}.dead_letters`. Request queues do not: an expired request is nobody's failure.
- Publish: persistent, publisher-confirmed, mandatory (unroutable raises), with a timeout.
- Consume: the handler runs first, the ack comes after. A message that cannot be parsed, or
  whose handler raises `PermanentError`, is dead-lettered at once with the reason in a header;
  any other failure is retried here with jittered backoff, a bounded number of times (we count
  attempts ourselves: RabbitMQ does not count `nack`s everywhere), then dead-lettered.
- Request/reply: an exclusive reply queue per connection, replies matched by correlation id,
  requests to shared queues expire when the requester stops waiting.
- `lock`: mutual exclusion across processes, for the rare write no partition covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
from prometheus_client import Counter, Gauge, Histogram

from gistsync.contracts import (
    AnyMessage,
    ErrorReply,
    InvalidMessage,
    Message,
    encode,
    login_key,
    parse_message,
)
from gistsync.errors import PermanentError, PublishError, RemoteError, RequestTimeout
from gistsync.partitions import PartitionConsumer, PartitionHooks, partition_of
from gistsync.settings import CommonSettings

log = logging.getLogger(__name__)

# Per-user work: each service's partition queues (`{prefix}.{service}.p{n}`, single active
# consumer) and the message types they receive, routed by `{type}.p{n}` (see partitions.py).
PARTITIONED: dict[str, tuple[str, ...]] = {
    "pipedrive_writer": (
        "command.track_user",
        "command.untrack_user",
        "command.mark_seen",
        "event.gist_discovered",
        "query.gists",
    ),
    "github_poller": ("event.user_tracked", "event.user_untracked", "command.poll_now"),
}
# Shared queues (after the prefix) → the message types routed to them: any replica answers.
ROUTES: dict[str, tuple[str, ...]] = {
    "pipedrive_writer.queries": ("query.tracked_users",),
    "github_poller.queries": ("query.user_exists", "command.poll_now"),
}
PARTITIONED_TYPES = frozenset(kind for kinds in PARTITIONED.values() for kind in kinds)
# Not consumed from a durable queue: every writer keeps its list of users current with them,
# through a queue of its own (`Broker.consume_broadcast`).
BROADCAST_TYPES = frozenset({"event.unseen_changed"})


def is_query_queue(name: str) -> bool:
    """Queues of requests that someone waits for; they are answered, never retried."""
    return name.endswith(".queries")


async def _replace_if_declared_differently(
    connection: AbstractRobustConnection, name: str, arguments: dict[str, Any]
) -> None:
    """Delete `name` if it exists with other arguments than `arguments`.

    Tried on a throwaway channel, since the broker closes the channel that declares a
    queue inequivalently."""
    try:
        async with connection.channel() as probe:
            await probe.declare_queue(name, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelPreconditionFailed:
        log.warning("replacing a queue declared with other arguments", extra={"queue": name})
        async with connection.channel() as channel:
            await channel.queue_delete(name)


# A message requeued this often (by crashes, not by us) is dead-lettered by the broker.
DELIVERY_LIMIT = 20

CONSUMED = Counter(
    "gistsync_messages_consumed_total",
    "Messages taken from a queue, by how their handling ended.",
    ["queue", "outcome"],
)
HANDLING = Histogram(
    "gistsync_message_handling_seconds",
    "Time from delivery to ack, retries included.",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PUBLISHED = Counter(
    "gistsync_messages_published_total", "Messages confirmed by the broker.", ["type"]
)
DEAD_LETTERED = Counter(
    "gistsync_dead_letters_total", "Messages this service sent to the dead-letter queue.", ["queue"]
)
CONNECTED = Gauge("gistsync_broker_connected", "1 while the broker connection is open.")

Handler = Callable[[AnyMessage], Awaitable[Message | None]]


@dataclass(frozen=True)
class Retry:
    """Bounded, jittered exponential backoff for transient failures."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Topology:
    prefix: str
    partitions: int = 1

    @property
    def bus(self) -> str:
        return f"{self.prefix}.bus"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead_letters"

    def queue(self, name: str) -> str:
        if name not in ROUTES:
            raise KeyError(f"no queue {name!r} in the topology")
        return f"{self.prefix}.{name}"

    def partition(self, service: str, partition: int) -> str:
        if service not in PARTITIONED or not 0 <= partition < self.partitions:
            raise KeyError(f"no partition {partition} of {service!r} in the topology")
        return f"{self.prefix}.{service}.p{partition}"

    def tick_key(self, service: str, partition: int) -> str:
        return f"tick.{service}.p{partition}"

    def routing_key(self, message: Message) -> str:
        """A message's type, plus the partition of its user for per-user work."""
        kind = str(getattr(message, "type", ""))
        if kind in PARTITIONED_TYPES:
            partition = getattr(message, "partition", None)
            login = getattr(message, "login", None)
            if partition is None and login is not None:
                partition = partition_of(login_key(login), self.partitions)
            if partition is not None:
                return f"{kind}.p{partition}"
        return kind

    def queue_names(self) -> list[str]:
        """Every durable queue of the topology, dead letters included (to delete it whole)."""
        partitions = [
            self.partition(service, n) for service in PARTITIONED for n in range(self.partitions)
        ]
        return partitions + [self.queue(name) for name in ROUTES] + [self.dead_queue]

    def exchange_names(self) -> list[str]:
        return [self.bus, self.dead_exchange]


class Broker:
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        service: str,
        publish_timeout: float = 5.0,
        prefetch: int = 16,
        partitions: int = 1,
    ) -> None:
        self.url = url
        self.topology = Topology(prefix, partitions)
        self.service = service
        self.publish_timeout = publish_timeout
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        # Strong references: a channel or exchange only held weakly can vanish under us.
        self._channel: AbstractRobustChannel | None = None
        self._bus: AbstractExchange | None = None
        self._dead: AbstractExchange | None = None
        self._queues: dict[str, AbstractQueue] = {}
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._partitioned: list[PartitionConsumer] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._reply_queue: AbstractQueue | None = None
        self._pending: dict[str, asyncio.Future[AnyMessage]] = {}

    @classmethod
    def from_settings(cls, settings: CommonSettings, service: str) -> Broker:
        return cls(
            settings.amqp_url.get_secret_value(),
            prefix=settings.amqp_prefix,
            service=service,
            publish_timeout=settings.publish_timeout_seconds,
            prefetch=settings.prefetch,
            partitions=settings.partitions,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def connect(self, *, retry_for: float = 60.0) -> None:
        """Connect and declare the topology, retrying while the broker is not there yet
        (or goes away again halfway through: a cut during start-up must not kill us)."""
        deadline = time.monotonic() + retry_for
        delay = 0.5
        while True:
            connection: AbstractRobustConnection | None = None
            try:
                connection = await aio_pika.connect_robust(
                    self.url, client_properties={"connection_name": self.service}, timeout=10
                )
                self._channel = await connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                await self._channel.set_qos(prefetch_count=self.prefetch)
                await self._declare(connection)
                break
            except (TimeoutError, OSError, RuntimeError, aiormq.exceptions.AMQPError) as exc:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("broker not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._connection = connection
        connection.close_callbacks.add(lambda *_: CONNECTED.set(0))
        connection.reconnect_callbacks.add(lambda *_: CONNECTED.set(1))
        CONNECTED.set(1)

    async def _declare(self, connection: AbstractRobustConnection) -> None:
        assert self._channel is not None
        top = self.topology
        self._bus = await self._channel.declare_exchange(
            top.bus, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._dead = await self._channel.declare_exchange(
            top.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await self._channel.declare_queue(
            top.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(self._dead)
        for name, types in ROUTES.items():
            arguments: dict[str, Any] = {
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
            }
            if is_query_queue(name):
                # Requests expire when their requester stops waiting; an expired request
                # is not a failure to keep. Older versions declared these with a DLX, and
                # arguments cannot change: such a queue (requests only) is replaced.
                await _replace_if_declared_differently(connection, top.queue(name), arguments)
            else:
                arguments["x-dead-letter-exchange"] = top.dead_exchange
            queue = await self._channel.declare_queue(
                top.queue(name), durable=True, arguments=arguments
            )
            for message_type in types:
                await queue.bind(self._bus, routing_key=message_type)
            self._queues[name] = queue
        for service, types in PARTITIONED.items():
            for n in range(top.partitions):
                queue = await self._channel.declare_queue(
                    top.partition(service, n),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-single-active-consumer": True,
                        "x-dead-letter-exchange": top.dead_exchange,
                        "x-delivery-limit": DELIVERY_LIMIT,
                    },
                )
                for key in [f"{kind}.p{n}" for kind in types] + [top.tick_key(service, n)]:
                    await queue.bind(self._bus, routing_key=key)
            await self._move_from_unpartitioned(connection, service)

    async def _move_from_unpartitioned(
        self, connection: AbstractRobustConnection, service: str
    ) -> None:
        """Older versions had one queue per service (`{prefix}.{service}`): move whatever
        it still holds to the partitions, then delete it."""
        old = f"{self.topology.prefix}.{service}"
        try:
            async with connection.channel() as probe:
                await probe.declare_queue(old, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return
        moved = 0
        async with connection.channel() as channel:
            queue = await channel.declare_queue(old, passive=True)
            while (incoming := await queue.get(fail=False)) is not None:
                try:
                    key = self.topology.routing_key(parse_message(incoming.body))
                except InvalidMessage:
                    key = incoming.routing_key or ""  # the consumer dead-letters it
                await self._confirm(self._bus_exchange(), _copy(incoming), key)
                await incoming.ack()
                moved += 1
            await channel.queue_delete(old)
        log.warning("moved an unpartitioned queue", extra={"queue": old, "messages": moved})

    def _bus_exchange(self) -> AbstractExchange:
        assert self._bus is not None
        return self._bus

    @property
    def partitions(self) -> int:
        return self.topology.partitions

    async def open_channel(self) -> AbstractRobustChannel:
        """Another channel on the connection, with the same prefetch."""
        if self._connection is None:
            raise PublishError("not connected to the broker")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        return channel

    @property
    def ready(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop consuming, let in-flight handlers finish (up to `grace`), then disconnect.

        Whatever is still unfinished is left unacked, so the broker delivers it again.
        """
        for partitioned in self._partitioned:
            await partitioned.stop()
        for queue, tag in self._consumers:
            try:
                # Bounded: on a lost connection a robust channel waits to be restored.
                await asyncio.wait_for(queue.cancel(tag), 2.0)
            except Exception as exc:  # the connection may already be gone
                log.debug("cancel failed", extra={"error": str(exc)})
        self._consumers.clear()
        for partitioned in self._partitioned:
            await partitioned.drain(grace)
        self._partitioned.clear()
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for future in self._pending.values():
            future.cancel()
        if self._connection is not None:
            await self._connection.close()
        CONNECTED.set(0)

    # --- publishing ----------------------------------------------------------------------

    async def publish(
        self,
        message: Message,
        *,
        routing_key: str | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        expiration: float | None = None,
        direct: bool = False,
    ) -> None:
        """Publish and wait for the broker's confirm; `PublishError` if it does not come.

        `direct` sends to the default exchange (replies go straight to a reply queue).
        """
        if self._bus is None or self._channel is None:
            raise PublishError("not connected to the broker")
        kind = str(getattr(message, "type", ""))
        amqp_message = aio_pika.Message(
            encode(message),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=kind,
            app_id=self.service,
            reply_to=reply_to,
            correlation_id=correlation_id,
            expiration=expiration,
            headers={"x-correlation-id": message.correlation_id},
        )
        exchange = self._channel.default_exchange if direct else self._bus
        routing_key = routing_key or self.topology.routing_key(message)
        # Only the lists of users kept by each writer hear a broadcast; none may be running.
        mandatory = not direct and kind not in BROADCAST_TYPES
        await self._confirm(exchange, amqp_message, routing_key, mandatory=mandatory)
        PUBLISHED.labels(kind).inc()

    async def _confirm(
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

    # --- consuming -----------------------------------------------------------------------

    async def consume(self, queue: str, handler: Handler, *, retry: Retry | None) -> None:
        """Handle every message of a shared queue. `retry=None` is for queries: a failure
        is answered at once with an `ErrorReply` instead of being retried."""
        amqp_queue = self._queues[queue]
        tag = await self.start_consuming(amqp_queue, self._dispatcher(queue, handler, retry))
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
            self, service, handler, retry, hooks=hooks, tick_seconds=tick_seconds
        )
        self._partitioned.append(consumer)
        await consumer.start()
        return consumer

    async def consume_broadcast(self, types: tuple[str, ...], handler: Handler) -> None:
        """Hear every message of `types` (any partition) through a queue of this process
        only; it goes away with the process. Failures are logged, never retried."""
        assert self._channel is not None
        name = f"{self.topology.prefix}.broadcast.{self.service}.{uuid.uuid4().hex[:12]}"
        queue = await self._channel.declare_queue(name, exclusive=True, auto_delete=True)
        for kind in types:
            await queue.bind(self._bus_exchange(), routing_key=kind)
            if kind in PARTITIONED_TYPES:
                await queue.bind(self._bus_exchange(), routing_key=f"{kind}.*")

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            async with incoming.process(ignore_processed=True):
                try:
                    await handler(parse_message(incoming.body))
                except Exception:
                    log.exception("broadcast not applied", extra={"type": incoming.type})

        tag = await self.start_consuming(queue, on_message)
        self._consumers.append((queue, tag))

    def _dispatcher(
        self, queue: str, handler: Handler, retry: Retry | None
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(incoming: AbstractIncomingMessage) -> None:
            # Each delivery gets its own task, so up to `prefetch` run at once and
            # `close` can wait for them.
            task = asyncio.create_task(self.handle(queue, incoming, handler, retry))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        return on_message

    async def start_consuming(
        self,
        queue: AbstractQueue,
        on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
        *,
        retry_for: float = 60.0,
    ) -> str:
        """`basic.consume`, waiting out a connection that drops between connect and now
        (the robust connection comes back by itself and then restores this consumer)."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return await queue.consume(on_message)
            except (TimeoutError, OSError, RuntimeError, aiormq.exceptions.AMQPError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("consume failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._connection.connected.wait(), 10)

    async def handle(
        self,
        queue: str,
        incoming: AbstractIncomingMessage,
        handler: Handler,
        retry: Retry | None,
    ) -> None:
        """Run the handler for one delivery and ack it (`queue` names it in metrics)."""
        started = time.monotonic()
        try:
            outcome = await self._run(queue, incoming, handler, retry)
        except Exception:
            # Typically the connection went away mid-handling: the message was not acked,
            # so the broker delivers it again.
            log.exception("message left unacked", extra={"queue": queue})
            outcome = "unacked"
        CONSUMED.labels(queue, outcome).inc()
        HANDLING.labels(queue).observe(time.monotonic() - started)

    async def _run(
        self,
        queue: str,
        incoming: AbstractIncomingMessage,
        handler: Handler,
        retry: Retry | None,
    ) -> str:
        try:
            message = parse_message(incoming.body)
        except InvalidMessage as exc:
            await self._reply_error(incoming, "invalid_message", exc.reason, None)
            await self._dead_letter(queue, incoming, exc.reason)
            return "dead_lettered"
        attempt = 1
        while True:
            try:
                reply = await handler(message)
            except PermanentError as exc:
                await self._reply_error(incoming, "rejected", str(exc), message)
                await self._dead_letter(queue, incoming, str(exc))
                return "dead_lettered"
            except Exception as exc:
                if retry is None or incoming.reply_to:
                    log.exception("query failed", extra={"queue": queue, "type": message.type})
                    await self._reply_error(incoming, "failed", str(exc), message)
                    await incoming.ack()
                    return "error_reply"
                if attempt >= retry.max_attempts:
                    reason = f"gave up after {attempt} attempts: {exc}"
                    await self._dead_letter(queue, incoming, reason)
                    return "dead_lettered"
                delay = retry.delay(attempt)
                log.warning(
                    "handler failed, will retry",
                    extra={
                        "queue": queue,
                        "type": message.type,
                        "attempt": attempt,
                        "retry_in": round(delay, 2),
                        "error": repr(exc),
                    },
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if reply is not None and incoming.reply_to:
                reply = reply.model_copy(update={"correlation_id": message.correlation_id})
                await self._send_reply(incoming, reply)
            await incoming.ack()
            return "ok" if attempt == 1 else "retried"

    async def _send_reply(self, incoming: AbstractIncomingMessage, reply: Message) -> None:
        assert incoming.reply_to is not None
        try:
            await self.publish(
                reply,
                routing_key=incoming.reply_to,
                correlation_id=incoming.correlation_id,
                direct=True,
            )
        except PublishError as exc:
            # The requester is gone or gave up; it will ask again.
            log.warning("reply not delivered", extra={"error": str(exc)})

    async def _reply_error(
        self,
        incoming: AbstractIncomingMessage,
        code: str,
        detail: str,
        message: AnyMessage | None,
    ) -> None:
        if incoming.reply_to:
            correlation = message.correlation_id if message is not None else "unknown"
            error = ErrorReply(code=code, detail=detail, correlation_id=correlation)
            await self._send_reply(incoming, error)

    async def _dead_letter(
        self, queue: str, incoming: AbstractIncomingMessage, reason: str
    ) -> None:
        """Copy to the dead-letter exchange with the reason, then ack the original.

        Confirmed before the ack, so the message is never in neither place.
        """
        assert self._dead is not None
        log.error(
            "dead-lettered",
            extra={"queue": queue, "reason": reason, "message_id": incoming.message_id},
        )
        headers: dict[str, Any] = dict(incoming.headers or {})
        headers.update(
            {
                "x-dead-reason": reason[:1000],
                "x-dead-queue": self._queue_name(queue, incoming),
                "x-dead-routing-key": incoming.routing_key or "",
                "x-dead-service": self.service,
                "x-dead-at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        await self._confirm(self._dead, _copy(incoming, headers), incoming.routing_key or "")
        await incoming.ack()
        DEAD_LETTERED.labels(queue).inc()

    def _queue_name(self, queue: str, incoming: AbstractIncomingMessage) -> str:
        if queue in ROUTES:
            return self.topology.queue(queue)
        # A partition: its number is the routing key's last word.
        suffix = (incoming.routing_key or "").rpartition(".")[2]
        return f"{self.topology.prefix}.{queue}.{suffix}" if suffix.startswith("p") else queue

    # --- a lock across processes -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
        """Held by one process at a time across every replica: an exclusive queue only one
        connection can declare. Released on exit, or by the broker when the holder dies."""
        queue_name = f"{self.topology.prefix}.lock.{name}"
        deadline = time.monotonic() + timeout
        while True:
            if self._connection is None:
                raise PublishError("not connected to the broker")
            channel = await self._connection.channel()
            try:
                queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
                # A consumer, so the queue (the lock) goes when this channel closes.
                await queue.consume(_ignore, no_ack=True)
                break
            except aiormq.exceptions.ChannelLockedResource:
                with contextlib.suppress(Exception):
                    await channel.close()  # else a robust channel would reopen itself
                if time.monotonic() > deadline:
                    raise PublishError(f"lock {name!r} not free within {timeout:g} s") from None
                await asyncio.sleep(0.05)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    # --- request/reply -------------------------------------------------------------------

    async def request(self, message: Message, *, timeout: float) -> AnyMessage:
        """Send a query (or a command that answers) and wait for its reply.

        Raises `RequestTimeout` when nobody answers in time and `RemoteError` when the
        answer is an `ErrorReply`.
        """
        reply_queue = await self._ensure_reply_queue()
        future: asyncio.Future[AnyMessage] = asyncio.get_running_loop().create_future()
        self._pending[message.message_id] = future
        try:
            # A request to a partition is not given an expiry: queued behind its user's
            # work it may wait; its late answer is dropped, and expired messages there
            # would be dead-lettered as failures.
            kind = str(getattr(message, "type", ""))
            partitioned = self.topology.routing_key(message) != kind
            await self.publish(
                message,
                reply_to=reply_queue.name,
                correlation_id=message.message_id,
                expiration=None if partitioned else timeout,
            )
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"no answer to {getattr(message, 'type', 'request')} within {timeout:g} s"
            ) from None
        finally:
            self._pending.pop(message.message_id, None)
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.code, reply.detail)
        return reply

    async def _ensure_reply_queue(self) -> AbstractQueue:
        if self._reply_queue is None:
            if self._channel is None:
                raise PublishError("not connected to the broker")
            # Named by us: a robust channel re-declares it under the same name on reconnect,
            # which the broker refuses for server-named (amq.gen-*) queues.
            name = f"{self.topology.prefix}.reply.{self.service}.{uuid.uuid4().hex[:12]}"
            queue = await self._channel.declare_queue(name, exclusive=True, auto_delete=True)
            await queue.consume(self._on_reply, no_ack=True)
            self._reply_queue = queue
        return self._reply_queue

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        future = self._pending.get(incoming.correlation_id or "")
        if future is None or future.done():
            return  # a late answer to a request that already timed out
        try:
            future.set_result(parse_message(incoming.body))
        except InvalidMessage as exc:
            future.set_exception(RemoteError("invalid_reply", exc.reason))


def _copy(
    incoming: AbstractIncomingMessage, headers: dict[str, Any] | None = None
) -> aio_pika.Message:
    return aio_pika.Message(
        incoming.body,
        content_type=incoming.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=incoming.message_id,
        type=incoming.type,
        headers=headers if headers is not None else dict(incoming.headers or {}),
    )


async def _ignore(_: AbstractIncomingMessage) -> None:
    return None
