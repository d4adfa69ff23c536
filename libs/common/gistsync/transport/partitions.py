"""Partitioned queues: how replicas of one service share the keys, with RabbitMQ as referee.

Work of one key goes to one of `partitions` durable quorum queues per service, chosen by a
hash of the key, and each has a *single active consumer*. Every replica subscribes to every
partition; the broker delivers each partition to one of them and hands it to the next in
line the moment that one goes (its connection or channel closes). Within the owner, the
delivery path keeps each key's messages in order (`delivery.KeyedSerial`).

The broker does not tell a consumer that it became active, and it gives every partition to
whoever subscribed first. Two small things fill the gaps:

- Ticks: every replica sends a tick to every partition of its service every few seconds.
  The first delivery on a partition (a tick or real work) tells a replica it now owns it
  (`on_gain`); the ticks' senders tell the owner how many replicas are alive.
- Release: a replica that owns more than its fair share (`ceil(partitions / replicas)`)
  lets the excess go. It stops starting work on that partition, waits for what runs to
  finish, then closes that partition's channel: unstarted deliveries go back to the head of
  the queue for the next replica in line, so order holds, and it subscribes again at the
  back of the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from prometheus_client import Gauge

from gistsync.retry import Retry, capped
from gistsync.transport.connection import Connection
from gistsync.transport.delivery import Delivery, Handler
from gistsync.transport.topology import TICK, fair_share

log = logging.getLogger(__name__)

OWNED = Gauge("gistsync_partitions_owned", "Partitions this replica is the active consumer of.")
REPLICAS = Gauge("gistsync_partition_replicas", "Replicas of this service heard from lately.")


@dataclass
class Ownership:
    """What one replica knows: the partitions it owns, the replicas it heard from."""

    partitions: int
    replica: str
    tick_seconds: float
    owned: set[int] = field(default_factory=set)
    _heard: dict[str, float] = field(default_factory=dict)
    _judged_at: float = -math.inf

    def heard(self, replica: str, now: float) -> None:
        self._heard[replica] = now

    def replicas(self, now: float) -> int:
        """Replicas that ticked within the last few tick periods, this one included."""
        horizon = now - 2.5 * self.tick_seconds
        alive = {name for name, at in self._heard.items() if at >= horizon}
        return len(alive | {self.replica})

    def excess(self, now: float) -> list[int]:
        """The partitions to let go of now: what this replica owns beyond its fair share.

        Not within three tick periods of a release or a gain, so ownership settles (and a
        replica that just died stops counting) before it is judged again."""
        if now - self._judged_at < 3 * self.tick_seconds:
            return []
        extra = len(self.owned) - fair_share(self.partitions, self.replicas(now))
        return sorted(self.owned)[-extra:] if extra > 0 else []

    def hold(self, now: float) -> None:
        """Ownership just changed: judge it again only once it has settled."""
        self._judged_at = now


class PartitionHooks(Protocol):
    """What a service does when it gains or loses a partition."""

    async def on_gain(self, partition: int) -> None: ...

    def on_loss(self, partition: int) -> None: ...


def tick_body(replica: str) -> bytes:
    return json.dumps({"replica": replica}).encode()


def tick_sender(incoming: AbstractIncomingMessage) -> str | None:
    try:
        replica = json.loads(incoming.body).get("replica")
    except (ValueError, AttributeError):
        return None
    return replica if isinstance(replica, str) and 0 < len(replica) <= 64 else None


@dataclass
class _Subscription:
    channel: AbstractRobustChannel
    queue: AbstractQueue
    tag: str
    gain: asyncio.Task[None] | None = None
    releasing: bool = False
    running: set[asyncio.Task[bool]] = field(default_factory=set)


class PartitionConsumer:
    """Consumes every partition queue of one service, as described in the module doc."""

    def __init__(
        self,
        connection: Connection,
        delivery: Delivery,
        service: str,
        handler: Handler,
        retry: Retry,
        *,
        hooks: PartitionHooks | None = None,
        tick_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._delivery = delivery
        self.service = service
        self._handler = handler
        self._retry = retry
        self._hooks = hooks
        self._clock = clock
        self._partitions = connection.topology.partitions
        replica = f"{service}-{uuid.uuid4().hex[:8]}"
        self.ownership = Ownership(self._partitions, replica, tick_seconds)
        self._subscriptions: dict[int, _Subscription] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_gain = -math.inf

    @property
    def owned(self) -> set[int]:
        return set(self.ownership.owned)

    async def start(self) -> None:
        for partition in range(self._partitions):
            await self._subscribe(partition)
        self._ticker = asyncio.create_task(self._tick_forever())

    async def settle(self, timeout: float) -> None:
        """Wait until this replica owns partitions and caught up with them (no gain for a
        moment), or `timeout` passes: one in line behind others may own nothing."""
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            quiet = self._clock() - self._last_gain > 0.2
            if self.ownership.owned and quiet and all(g.done() for g in self._gains()):
                return
            await asyncio.sleep(0.02)

    async def caught_up(self) -> None:
        """Wait for the gains under way (a service catching up with a partition)."""
        await asyncio.gather(*self._gains(), return_exceptions=True)

    def _gains(self) -> list[asyncio.Task[None]]:
        return [s.gain for s in self._subscriptions.values() if s.gain is not None]

    async def stop(self) -> None:
        """Stop ticking and consuming; deliveries not started go back to their queues."""
        self._stopping = True
        for task in (self._ticker, self._releaser):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for subscription in self._subscriptions.values():
            subscription.releasing = True
            # Bounded: on a connection that is gone, a robust channel waits to be restored.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(subscription.queue.cancel(subscription.tag), 2.0)

    # --- subscribing ------------------------------------------------------------------------

    async def _subscribe(self, partition: int) -> None:
        channel = await self._connection.open_channel()
        # Passive: declared (with its arguments) at connect; a robust channel re-declares
        # it on reconnect, so the consumer comes back too.
        name = self._connection.topology.partition(self.service, partition)
        queue = await channel.declare_queue(name, passive=True)
        channel.close_callbacks.add(lambda *_: self._lost(partition))
        on_message = partial(self._on_message, partition)
        tag = await self._connection.start_consuming(queue, on_message)
        self._subscriptions[partition] = _Subscription(channel, queue, tag)

    def _lost(self, partition: int) -> None:
        """The channel closed (released, or the connection dropped): whatever comes next on
        this partition may come after another replica's work."""
        if partition in self.ownership.owned and not self._stopping:
            self.ownership.owned.discard(partition)
            OWNED.set(len(self.ownership.owned))
            log.info("partition lost", extra={"service": self.service, "partition": partition})
            if self._hooks is not None:
                self._hooks.on_loss(partition)

    # --- deliveries -------------------------------------------------------------------------

    async def _on_message(self, partition: int, incoming: AbstractIncomingMessage) -> None:
        subscription = self._subscriptions.get(partition)
        if subscription is None or subscription.releasing:
            return  # left unacked: back to the queue, for the next owner, when we let go
        if partition not in self.ownership.owned:
            self._gained(partition, subscription)
        if incoming.type == TICK:
            await self._on_tick(incoming)
            return
        gain = subscription.gain

        async def caught_up() -> None:
            if gain is not None:  # work waits until we caught up with the last owner's
                await asyncio.shield(gain)

        task = self._delivery.accept(
            self.service, incoming, self._handler, self._retry, before=caught_up
        )
        # Released only once the deliveries it took are settled or given back.
        subscription.running.add(task)
        task.add_done_callback(subscription.running.discard)

    def _gained(self, partition: int, subscription: _Subscription) -> None:
        self.ownership.owned.add(partition)
        self._last_gain = self._clock()
        self.ownership.hold(self._last_gain)
        OWNED.set(len(self.ownership.owned))
        log.info("partition gained", extra={"service": self.service, "partition": partition})
        if self._hooks is not None:
            subscription.gain = asyncio.create_task(self._hooks.on_gain(partition))

    async def _on_tick(self, incoming: AbstractIncomingMessage) -> None:
        with contextlib.suppress(Exception):  # a tick is worth nothing once the channel is gone
            await incoming.ack()
        sender = tick_sender(incoming)
        if sender is None:
            return
        now = self._clock()
        self.ownership.heard(sender, now)
        REPLICAS.set(self.ownership.replicas(now))
        excess = self.ownership.excess(now)
        if excess and (self._releaser is None or self._releaser.done()) and not self._stopping:
            self.ownership.hold(now)
            self._releaser = asyncio.create_task(self._release(excess))

    # --- ticking and releasing ----------------------------------------------------------

    async def _tick_forever(self) -> None:
        body = tick_body(self.ownership.replica)
        while True:
            for partition in range(self._partitions):
                try:
                    await self._connection.publish(
                        body,
                        kind=TICK,
                        routing_key=self._connection.topology.tick_key(self.service, partition),
                        message_id=uuid.uuid4().hex,
                    )
                except Exception as exc:  # disconnected: the next round tries again
                    log.debug("tick not sent", extra={"error": repr(exc)})
                    break
            await asyncio.sleep(self.ownership.tick_seconds)

    async def _release(self, partitions: list[int]) -> None:
        for partition in partitions:
            subscription = self._subscriptions.get(partition)
            if subscription is None or self._stopping:
                return
            log.info(
                "releasing partition: more than a fair share",
                extra={"service": self.service, "partition": partition},
            )
            subscription.releasing = True
            if subscription.gain is not None:
                await asyncio.gather(subscription.gain, return_exceptions=True)
            running = {task for task in subscription.running if not task.done()}
            if running:
                await asyncio.wait(running)
            self._lost(partition)
            with contextlib.suppress(Exception):
                await subscription.channel.close()
            del self._subscriptions[partition]
            await self._subscribe_until_done(partition)

    async def _subscribe_until_done(self, partition: int) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                await self._subscribe(partition)
                return
            except Exception as exc:  # the connection is down: it comes back by itself
                log.warning("subscribe failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = capped(delay)
