"""Mutual exclusion across processes, for the rare write no partition covers: an exclusive
queue only one connection can declare. Released on exit, or by the broker when the holder
dies."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiormq
from aio_pika.abc import AbstractIncomingMessage

from gistsync.errors import PublishError
from gistsync.transport.connection import Connection


@contextlib.asynccontextmanager
async def held(connection: Connection, name: str, *, timeout: float = 30.0) -> AsyncIterator[None]:
    queue_name = f"{connection.topology.prefix}.lock.{name}"
    deadline = time.monotonic() + timeout
    while True:
        if connection.amqp is None:
            raise PublishError("not connected to the broker")
        channel = await connection.amqp.channel()
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


async def _ignore(_: AbstractIncomingMessage) -> None:
    return None
