"""Partitions: how replicas of one service share the users, with RabbitMQ as the referee.

Per-user messages go to one of `partitions` durable quorum queues per service, chosen by a
hash of the login, and each partition queue has a *single active consumer*. Every replica
subscribes to every partition; the broker delivers each partition to one of them and hands
it to the next in line the moment that one goes (its connection or channel closes). So one
user's messages are handled by one replica at a time, in order, and nobody coordinates by
hand.

The broker does not tell a consumer that it became active, and it gives every partition to
whoever subscribed first. Two small things fill the gaps:

- Ticks: every replica sends a `partition.tick` to every partition of its service every few
  seconds. The first delivery on a partition (a tick or real work) tells a replica it now
  owns it (`on_gain`); the ticks' senders tell the owner how many replicas are alive.
- Release: a replica that owns more than its fair share (`ceil(partitions / replicas)`)
  lets the excess go. It stops starting work on that partition, waits for what runs to
  finish, then closes that partition's channel: unstarted deliveries go back to the head of
  the queue for the next replica in line, so order holds, and it subscribes again at the
  back of the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from prometheus_client import Gauge

from gistsync.contracts import InvalidMessage, PartitionTick, new_id, parse_message

if TYPE_CHECKING:
    from gistsync.broker import Broker, Handler, Retry

log = logging.getLogger(__name__)

OWNED = Gauge("gistsync_partitions_owned", "Partitions this replica is the active consumer of.")
REPLICAS = Gauge("gistsync_partition_replicas", "Replicas of this service heard from lately.")


def partition_of(key: str, partitions: int) -> int:
    """The partition of a login key: stable across processes and versions (crc32)."""
    return zlib.crc32(key.encode()) % partitions


def fair_share(partitions: int, replicas: int) -> int:
    return math.ceil(partitions / max(1, replicas))


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
    """What a service does when it gains or loses a partition (both optional to act on)."""

    async def on_gain(self, partition: int) -> None: ...

    def on_loss(self, partition: int) -> None: ...


@dataclass
class _Subscription:
    channel: AbstractRobustChannel
    queue: AbstractQueue
    tag: str
    running: set[asyncio.Task[None]] = field(default_factory=set)
    gain: asyncio.Task[None] | None = None
    releasing: bool = False


class PartitionConsumer:
    """Consumes every partition queue of one service, as described in the module doc."""

    def __init__(
        self,
        broker: Broker,
        service: str,
        handler: Handler,
        retry: Retry,
        *,
        hooks: PartitionHooks | None = None,
        tick_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self.service = service
        self._handler = handler
        self._retry = retry
        self._hooks = hooks
        self._clock = clock
        self.ownership = Ownership(broker.partitions, f"{service}-{new_id()[:8]}", tick_seconds)
        self._subscriptions: dict[int, _Subscription] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_gain = -math.inf

    @property
    def owned(self) -> set[int]:
        return set(self.ownership.owned)

    async def start(self) -> None:
        for partition in range(self._broker.partitions):
            await self._subscribe(partition)
        self._ticker = asyncio.create_task(self._tick_forever())

    async def settle(self, timeout: float) -> None:
        """Wait until this replica owns partitions and caught up with them (no gain for a
        moment), or `timeout` passes: one in line behind others may own nothing."""
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            gains = [s.gain for s in self._subscriptions.values() if s.gain is not None]
            quiet = self._clock() - self._last_gain > 0.2
            if self.ownership.owned and quiet and all(gain.done() for gain in gains):
                return
            await asyncio.sleep(0.02)

    async def caught_up(self) -> None:
        """Wait for the gains under way (a service catching up with a partition)."""
        gains = [s.gain for s in self._subscriptions.values() if s.gain is not None]
        await asyncio.gather(*gains, return_exceptions=True)

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

    async def drain(self, grace: float) -> None:
        """Wait (up to `grace`) for the work already started to finish."""
        running = {task for s in self._subscriptions.values() for task in s.running}
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- subscribing ------------------------------------------------------------------------

    async def _subscribe(self, partition: int) -> None:
        channel = await self._broker.open_channel()
        # Passive: declared (with its arguments) by `Broker.connect`; a robust channel
        # re-declares it on reconnect, so the consumer comes back too.
        queue = await channel.declare_queue(
            self._broker.topology.partition(self.service, partition), passive=True
        )
        channel.close_callbacks.add(lambda *_: self._lost(partition))
        on_message = partial(self._on_message, partition)
        tag = await self._broker.start_consuming(queue, on_message)
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
        if incoming.type == PartitionTick.model_fields["type"].default:
            await self._on_tick(incoming)
            return
        task = asyncio.create_task(self._work(partition, subscription, incoming))
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

    async def _work(
        self, partition: int, subscription: _Subscription, incoming: AbstractIncomingMessage
    ) -> None:
        if subscription.gain is not None:
            # Work waits until the service caught up with what the last owner did.
            await asyncio.shield(subscription.gain)
        await self._broker.handle(self.service, incoming, self._handler, self._retry)

    async def _on_tick(self, incoming: AbstractIncomingMessage) -> None:
        with contextlib.suppress(Exception):  # a tick is worth nothing once the channel is gone
            await incoming.ack()
        try:
            tick = parse_message(incoming.body)
        except InvalidMessage:
            return
        if not isinstance(tick, PartitionTick):
            return
        now = self._clock()
        self.ownership.heard(tick.replica, now)
        REPLICAS.set(self.ownership.replicas(now))
        excess = self.ownership.excess(now)
        if excess and (self._releaser is None or self._releaser.done()) and not self._stopping:
            self.ownership.hold(now)
            self._releaser = asyncio.create_task(self._release(excess))

    # --- ticking and releasing ----------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            for partition in range(self._broker.partitions):
                tick = PartitionTick(replica=self.ownership.replica)
                try:
                    await self._broker.publish(
                        tick, routing_key=self._broker.topology.tick_key(self.service, partition)
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
            if subscription.running:
                await asyncio.wait(set(subscription.running))
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
                delay = min(delay * 2, 5.0)
