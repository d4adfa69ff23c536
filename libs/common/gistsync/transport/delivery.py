"""The one path of a delivered message, for shared and partitioned queues alike:
parse → handle → retry → ack, or dead-letter; and the order it runs in.

- Order: deliveries of one key run strictly one after another, in the order they arrived,
  retries included: a retry waits in place (delay, then handle again), so the key stays
  blocked until its message is acked or dead-lettered, whatever the prefetch. Other keys go
  on meanwhile. A request (someone waits for its reply) is a read answered from what the
  service holds now: it does not queue behind its key's work, whose retries can take long.
- A body that cannot be parsed, or whose handler raises `PermanentError`, is dead-lettered at
  once with the reason in a header; any other failure is retried with jittered backoff a
  bounded number of times (counted here: RabbitMQ does not count `nack`s everywhere), then
  dead-lettered. A failed request is answered with the codec's error reply instead.
- Dead-lettering copies the message to the dead exchange, confirmed, and only then acks it,
  so a message is never in neither place.
- Every log line written while a message is handled names it (`logcontext`: its message id,
  correlation id, and user when it has one), and with tracing on the handling is a consumer
  span, child of the span that published it (its `traceparent` header).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import Counter, Histogram

from gistsync import tracing
from gistsync.errors import InvalidMessage, PermanentError, PublishError
from gistsync.logcontext import bound
from gistsync.retry import Retry
from gistsync.transport.codec import Codec, Envelope
from gistsync.transport.connection import Connection

log = logging.getLogger(__name__)

CONSUMED = Counter(
    "gistsync_messages_consumed_total",
    "Messages taken from a queue, by how their handling ended.",
    ["queue", "outcome"],
)
HANDLING = Histogram(
    "gistsync_message_handling_seconds",
    "Time from the start of handling to the ack, retries included.",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEAD_LETTERED = Counter(
    "gistsync_dead_letters_total", "Messages this service sent to the dead-letter queue.", ["queue"]
)

Handler = Callable[[Any], Awaitable[Envelope | None]]
Job = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Received:
    """One delivery and what to do with it."""

    queue: str  # names it in metrics and dead letters: a shared queue, or a service
    incoming: AbstractIncomingMessage
    message: Envelope | InvalidMessage  # parsed, or why it could not be
    handler: Handler
    retry: Retry | None


class KeyedSerial:
    """Runs jobs so that those of one key run one after another, in the order submitted,
    while other keys' jobs (and jobs of no key) run meanwhile.

    A job returns whether its message was settled (acked or dead-lettered). One that was
    not (the connection went, or it was cancelled at shutdown) comes back from the broker;
    the jobs queued behind it on its key then do not run either, and come back after it."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Task[bool]] = {}
        self.tasks: set[asyncio.Task[bool]] = set()

    def submit(
        self, key: str | None, job: Job, skip: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[bool]:
        """Run `job` after the key's last job; `skip` instead if that one did not settle."""
        before = self._last.get(key) if key is not None else None
        task = asyncio.create_task(self._after(before, job, skip))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if key is not None:
            self._last[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: str, task: asyncio.Task[bool]) -> None:
        if self._last.get(key) is task:
            del self._last[key]

    @staticmethod
    async def _after(
        before: asyncio.Task[bool] | None, job: Job, skip: Callable[[], Awaitable[None]]
    ) -> bool:
        if before is not None:
            await asyncio.wait([before])
            if before.cancelled() or before.exception() is not None or not before.result():
                await skip()
                return False
        return await job()

    async def drain(self, grace: float) -> None:
        """Wait (up to `grace`) for the jobs submitted; cancel the rest (they come back)."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Delivery:
    """Handles deliveries for one process: `accept` each one as it arrives."""

    def __init__(self, connection: Connection, codec: Codec, service: str) -> None:
        self._connection = connection
        self._codec = codec
        self._service = service
        self.serial = KeyedSerial()

    def accept(
        self,
        queue: str,
        incoming: AbstractIncomingMessage,
        handler: Handler,
        retry: Retry | None,
        *,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> asyncio.Task[bool]:
        """Queue one delivery behind its key's (see the module doc); `before` is awaited
        first (a partition's catch-up). `queue` names it in metrics and dead letters."""
        try:
            message: Envelope | InvalidMessage = self._codec.decode(incoming.body)
        except InvalidMessage as exc:
            message = exc
        key = None
        if not isinstance(message, InvalidMessage) and not incoming.reply_to:
            key = self._codec.key(message)

        received = Received(queue, incoming, message, handler, retry)

        async def job() -> bool:
            if before is not None:
                await before()
            return await self.handle(received)

        async def skip() -> None:
            await _requeue(incoming)

        return self.serial.submit(key, job, skip)

    async def handle(self, received: Received) -> bool:
        """Run the handler for one delivery and settle it; whether it was settled."""
        started = time.monotonic()
        with about(received):
            try:
                outcome = await self._run(received)
            except Exception:
                # Typically the connection went away mid-handling: not acked, so it comes back.
                log.exception("message left unacked", extra={"queue": received.queue})
                await _requeue(received.incoming)
                outcome = "unacked"
        CONSUMED.labels(received.queue, outcome).inc()
        HANDLING.labels(received.queue).observe(time.monotonic() - started)
        return outcome != "unacked"

    async def _run(self, received: Received) -> str:
        queue, incoming, message = received.queue, received.incoming, received.message
        handler, retry = received.handler, received.retry
        if isinstance(message, InvalidMessage):
            await self._reply_error(incoming, "invalid_message", message.reason, None)
            await self.dead_letter(queue, incoming, message.reason)
            return "dead_lettered"
        attempt = 1
        while True:
            try:
                reply = await handler(message)
            except PermanentError as exc:
                await self._reply_error(incoming, "rejected", str(exc), message)
                await self.dead_letter(queue, incoming, str(exc))
                return "dead_lettered"
            except Exception as exc:
                if retry is None or incoming.reply_to:
                    log.exception("query failed", extra={"queue": queue, "type": message.type})
                    await self._reply_error(incoming, "failed", str(exc), message)
                    await incoming.ack()
                    return "error_reply"
                if attempt >= retry.max_attempts:
                    reason = f"gave up after {attempt} attempts: {exc}"
                    await self.dead_letter(queue, incoming, reason)
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
                await asyncio.sleep(delay)  # in place: the key stays blocked meanwhile
                attempt += 1
                continue
            if reply is not None and incoming.reply_to:
                await self.send_reply(incoming, self._codec.answer(reply, message))
            await incoming.ack()
            return "ok" if attempt == 1 else "retried"

    async def send_reply(self, incoming: AbstractIncomingMessage, reply: Envelope) -> None:
        assert incoming.reply_to is not None
        try:
            await self._connection.publish(
                self._codec.encode(reply),
                kind=reply.type,
                routing_key=incoming.reply_to,
                message_id=reply.message_id,
                correlation_id=incoming.correlation_id,
                direct=True,
            )
        except PublishError as exc:
            # The requester is gone or gave up; it will ask again.
            log.warning("reply not delivered", extra={"error": str(exc)})

    async def _reply_error(
        self, incoming: AbstractIncomingMessage, code: str, detail: str, message: Envelope | None
    ) -> None:
        if incoming.reply_to:
            await self.send_reply(incoming, self._codec.error(code, detail, message))

    async def dead_letter(self, queue: str, incoming: AbstractIncomingMessage, reason: str) -> None:
        """Copy to the dead-letter exchange with the reason, confirmed, then ack the original."""
        assert self._connection.dead is not None
        log.error(
            "dead-lettered",
            extra={"queue": queue, "reason": reason, "message_id": incoming.message_id},
        )
        routing_key = incoming.routing_key or ""
        headers: dict[str, Any] = dict(incoming.headers or {})
        headers.update(
            {
                "x-dead-reason": reason[:1000],
                "x-dead-queue": self._connection.topology.dead_queue_of(queue, routing_key),
                "x-dead-routing-key": routing_key,
                "x-dead-service": self._service,
                "x-dead-at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        await self._connection.confirm(self._connection.dead, copy(incoming, headers), routing_key)
        await incoming.ack()
        DEAD_LETTERED.labels(queue).inc()


@contextmanager
def about(received: Received) -> Iterator[None]:
    """The handling's log fields and consumer span. The user is read from the message
    generically (a `login` it may carry): the transport knows no message type."""
    incoming, message = received.incoming, received.message
    if isinstance(message, InvalidMessage):
        kind, message_id = incoming.type or "invalid", incoming.message_id
        correlation_id, login = incoming.correlation_id, None
    else:
        kind, message_id = message.type, message.message_id
        correlation_id = message.correlation_id
        login = getattr(message, "login", None)
    fields = {
        "message_id": message_id,
        "correlation_id": correlation_id,
        "login": login if isinstance(login, str) else None,
    }
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "process",
        "messaging.destination.name": received.queue,
        "messaging.message.id": message_id or "",
        "messaging.message.conversation_id": correlation_id or "",
    }
    with bound(**fields), tracing.consuming(f"{kind} process", incoming.headers, attributes):
        yield


async def _requeue(incoming: AbstractIncomingMessage) -> None:
    """Give a delivery back (on a channel that is gone, it comes back by itself)."""
    try:
        await incoming.nack(requeue=True)
    except Exception as exc:
        log.debug("requeue failed", extra={"error": repr(exc)})


def copy(
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
