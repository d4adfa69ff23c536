"""Request/reply: an exclusive reply queue per connection, replies matched by correlation id.

A request to a shared queue expires when its requester stops waiting; one to a partition
does not (queued behind its key's work it may wait, and an expired message there would be
dead-lettered as a failure): its late answer is dropped."""

from __future__ import annotations

import asyncio
import uuid

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from gistsync.errors import InvalidMessage, PublishError, RemoteError, RequestTimeout
from gistsync.transport.codec import Codec, Envelope
from gistsync.transport.connection import Connection


class Rpc:
    def __init__(self, connection: Connection, codec: Codec) -> None:
        self._connection = connection
        self._codec = codec
        self._reply_queue: AbstractQueue | None = None
        self._pending: dict[str, asyncio.Future[Envelope]] = {}

    async def request(self, message: Envelope, routing_key: str, *, timeout: float) -> Envelope:
        """Send a query (or a command that answers) and wait for its reply.

        Raises `RequestTimeout` when nobody answers in time and `RemoteError` when the
        answer is an error reply."""
        reply_queue = await self._ensure_reply_queue()
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[message.message_id] = future
        partitioned = routing_key != message.type
        try:
            await self._connection.publish(
                self._codec.encode(message),
                kind=message.type,
                routing_key=routing_key,
                message_id=message.message_id,
                reply_to=reply_queue.name,
                correlation_id=message.message_id,
                expiration=None if partitioned else timeout,
                headers={"x-correlation-id": message.correlation_id},
            )
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeout(f"no answer to {message.type} within {timeout:g} s") from None
        finally:
            self._pending.pop(message.message_id, None)
        failure = self._codec.failure(reply)
        if failure is not None:
            raise RemoteError(*failure)
        return reply

    async def _ensure_reply_queue(self) -> AbstractQueue:
        if self._reply_queue is None:
            channel = self._connection.channel
            if channel is None:
                raise PublishError("not connected to the broker")
            # Named by us: a robust channel re-declares it under the same name on reconnect,
            # which the broker refuses for server-named (amq.gen-*) queues.
            top = self._connection.topology
            name = f"{top.prefix}.reply.{self._connection.name}.{uuid.uuid4().hex[:12]}"
            queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            await queue.consume(self._on_reply, no_ack=True)
            self._reply_queue = queue
        return self._reply_queue

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        future = self._pending.get(incoming.correlation_id or "")
        if future is None or future.done():
            return  # a late answer to a request that already timed out
        try:
            future.set_result(self._codec.decode(incoming.body))
        except InvalidMessage as exc:
            future.set_exception(RemoteError("invalid_reply", exc.reason))

    def cancel_all(self) -> None:
        for future in self._pending.values():
            future.cancel()
