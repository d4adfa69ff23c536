"""Partitions on a real broker: one active replica per partition, failover, rebalancing,
order, the cross-process lock and broadcasts."""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict

import pytest

from gistsync.broker import Broker, Retry
from gistsync.contracts import (
    AnyMessage,
    GistsQuery,
    GistsReply,
    Message,
    TrackUser,
    UnseenChanged,
    UserTracked,
    login_key,
)
from gistsync.transport.partitions import Ownership
from gistsync.transport.topology import fair_share, partition_of
from tests.conftest import BrokerFactory
from tests.waiting import eventually

FAST = Retry(max_attempts=3, base_seconds=0.01, max_seconds=0.02)
# Long enough that a loaded machine still hears every replica within 2.5 ticks.
TICK = 0.5
LOGINS = [f"user{n}" for n in range(24)]


def test_a_partition_is_the_crc32_of_the_login_key() -> None:
    assert partition_of("octocat", 8) == zlib.crc32(b"octocat") % 8
    # Stable across processes (unlike hash()), and the same for every spelling of a login.
    assert partition_of(login_key("OctoCat"), 16) == partition_of("octocat", 16)
    spread = {partition_of(login, 4) for login in LOGINS}
    assert spread == {0, 1, 2, 3}


def test_fair_share_rounds_up() -> None:
    assert [fair_share(8, r) for r in (1, 2, 3, 4, 8, 9)] == [8, 4, 3, 2, 1, 1]
    assert fair_share(8, 0) == 8


def test_the_owner_lets_go_of_what_exceeds_its_share_then_waits() -> None:
    ownership = Ownership(partitions=8, replica="a", tick_seconds=1.0, owned=set(range(8)))
    assert ownership.excess(now=10.0) == []  # alone: all eight are its share
    ownership.heard("b", 10.0)
    ownership.heard("c", 10.0)
    assert ownership.replicas(10.0) == 3
    assert ownership.excess(10.0) == [3, 4, 5, 6, 7]  # keeps ceil(8/3) = 3
    ownership.hold(10.0)
    assert ownership.excess(12.0) == []  # settling
    # A replica silent for 2.5 ticks no longer counts.
    ownership.heard("b", 12.5)
    assert ownership.replicas(13.0) == 2
    assert ownership.excess(13.0) == [4, 5, 6, 7]


class Recorder:
    """A replica's handler: which messages it handled, in which order."""

    def __init__(self, name: str, seen: dict[str, list[tuple[str, str]]]) -> None:
        self.name = name
        self.seen = seen
        self.gained: list[int] = []
        self.lost: list[int] = []
        self.delay = 0.0

    async def handle(self, message: AnyMessage) -> Message | None:
        if isinstance(message, GistsQuery):
            return GistsReply(tracked=True, login=message.login)
        assert isinstance(message, TrackUser)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.seen[message.login].append((self.name, message.correlation_id))
        return None

    async def on_gain(self, partition: int) -> None:
        self.gained.append(partition)

    def on_loss(self, partition: int) -> None:
        self.lost.append(partition)


async def replica(
    brokers: BrokerFactory, name: str, seen: dict[str, list[tuple[str, str]]]
) -> tuple[Broker, Recorder]:
    broker = brokers("pipedrive_writer", partitions=4)
    await broker.connect()
    recorder = Recorder(name, seen)
    await broker.consume_partitions(
        "pipedrive_writer", recorder.handle, retry=FAST, hooks=recorder, tick_seconds=TICK
    )
    return broker, recorder


async def send_rounds(publisher: Broker, rounds: range) -> None:
    for n in rounds:
        for login in LOGINS:
            await publisher.publish(TrackUser(login=login, correlation_id=f"{n:04d}"))


def in_order(seen: dict[str, list[tuple[str, str]]], rounds: int) -> bool:
    return all(
        [correlation for _, correlation in seen[login]] == [f"{n:04d}" for n in range(rounds)]
        for login in LOGINS
    )


async def test_replicas_share_the_partitions_and_each_user_stays_in_order(
    brokers: BrokerFactory,
) -> None:
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    _, a = await replica(brokers, "a", seen)
    await eventually(lambda: len(a.gained) == 4, what="a owns all four partitions")
    _, b = await replica(brokers, "b", seen)
    # a hears b's ticks, keeps its share (2) and lets the other two go to b.
    await eventually(lambda: len(b.gained) == 2 and len(a.lost) == 2, 30, "rebalance")
    publisher = brokers("gateway", partitions=4)
    await publisher.connect()
    await send_rounds(publisher, range(20))
    await eventually(lambda: in_order(seen, 20), 20, "every message, in order")
    for login in LOGINS:
        handlers = {who for who, _ in seen[login]}
        owner = "b" if partition_of(login, 4) in b.gained else "a"
        assert handlers == {owner}, login
    assert sorted(a.lost) == sorted(b.gained)


async def test_when_a_replica_goes_the_other_takes_over_with_nothing_lost_or_reordered(
    brokers: BrokerFactory,
) -> None:
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    first, a = await replica(brokers, "a", seen)
    await eventually(lambda: len(a.gained) == 4, what="a owns all four partitions")
    _, b = await replica(brokers, "b", seen)
    await eventually(lambda: len(b.gained) == 2 and len(a.lost) == 2, 30, "rebalance")
    publisher = brokers("gateway", partitions=4)
    await publisher.connect()
    a.delay = b.delay = 0.005
    await send_rounds(publisher, range(10))
    # a goes mid-stream, abruptly: its unacked deliveries return to the queues.
    await first.connection.amqp.close()  # type: ignore[union-attr]
    await send_rounds(publisher, range(10, 20))
    await eventually(lambda: set(b.gained) == {0, 1, 2, 3}, 30, "b owns all four partitions")
    # At least once: a message a handled but could not ack is handled again by b, right
    # after; so per user the order holds once repeats are folded.
    await eventually(
        lambda: all(len({c for _, c in seen[login]}) == 20 for login in LOGINS), 20, "all"
    )
    for login in LOGINS:
        folded = list(dict.fromkeys(correlation for _, correlation in seen[login]))
        assert folded == [f"{n:04d}" for n in range(20)], login


async def test_a_query_to_a_partition_is_answered_by_its_owner(brokers: BrokerFactory) -> None:
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    await replica(brokers, "a", seen)
    asker = brokers("gateway", partitions=4)
    await asker.connect()
    reply = await asker.request(GistsQuery(login="octocat"), timeout=5)
    assert isinstance(reply, GistsReply)
    assert reply.login == "octocat"


async def test_the_lock_is_held_by_one_process_at_a_time(brokers: BrokerFactory) -> None:
    one, two = brokers("one"), brokers("two")
    await one.connect()
    await two.connect()
    events: list[str] = []

    async def hold(broker: Broker, name: str) -> None:
        async with broker.lock("organization"):
            events.append(f"{name} in")
            await asyncio.sleep(0.3)
            events.append(f"{name} out")

    await asyncio.gather(hold(one, "one"), hold(two, "two"))
    assert events in (
        ["one in", "one out", "two in", "two out"],
        ["two in", "two out", "one in", "one out"],
    )


async def test_a_lock_holder_that_dies_releases_the_lock(brokers: BrokerFactory) -> None:
    one, two = brokers("one"), brokers("two")
    await one.connect()
    await two.connect()
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with one.lock("organization"):
            entered.set()
            await asyncio.sleep(60)

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    await one.connection.amqp.close()  # type: ignore[union-attr]
    async with two.lock("organization", timeout=5):
        pass
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_broadcasts_reach_every_listener_from_any_partition(
    brokers: BrokerFactory,
) -> None:
    heard: dict[str, list[str]] = {"x": [], "y": []}
    publisher = brokers("writer", partitions=4)
    await publisher.connect()
    for name in heard:
        listener = brokers(name, partitions=4)
        await listener.connect()

        async def on(message: AnyMessage, name: str = name) -> Message | None:
            heard[name].append(message.type)
            return None

        await listener.consume_broadcast(("event.user_tracked", "event.unseen_changed"), on)
    for login in LOGINS[:8]:  # several partitions
        await publisher.publish(UserTracked(login=login))
    await publisher.publish(UnseenChanged(login="octocat", unseen=3))
    expected = ["event.user_tracked"] * 8 + ["event.unseen_changed"]
    await eventually(lambda: heard == {"x": expected, "y": expected}, what="both heard all")
