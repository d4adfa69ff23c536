"""Per-key order is the transport's guarantee: one key's messages run one after another,
retries included, whatever the prefetch; other keys go on meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gistsync.broker import Retry
from gistsync.contracts import AnyMessage, Message, TrackUser
from gistsync.transport.delivery import KeyedSerial
from tests.conftest import BrokerFactory
from tests.waiting import eventually


async def test_jobs_of_one_key_run_in_turn_and_other_keys_meanwhile() -> None:
    serial = KeyedSerial()
    gate = asyncio.Event()
    ran: list[str] = []

    def job(name: str, wait: bool = False) -> Callable[[], Awaitable[bool]]:
        async def run() -> bool:
            if wait:
                await gate.wait()
            ran.append(name)
            return True

        return run

    async def skip() -> None:
        ran.append("skipped")

    serial.submit("alice", job("a1", wait=True), skip)
    serial.submit("alice", job("a2"), skip)
    serial.submit("bob", job("b1"), skip)
    serial.submit(None, job("n1"), skip)
    await eventually(lambda: sorted(ran) == ["b1", "n1"], what="the other keys ran")
    gate.set()
    await serial.drain(5)
    assert ran[2:] == ["a1", "a2"]


async def test_behind_a_delivery_given_back_the_key_is_given_back_too() -> None:
    serial = KeyedSerial()
    outcome: list[str] = []

    async def unsettled() -> bool:
        outcome.append("first, not acked")
        return False  # the connection went: it comes back from the broker

    async def later() -> bool:
        outcome.append("second ran")
        return True

    async def skip() -> None:
        outcome.append("second given back")

    serial.submit("alice", unsettled, skip)
    serial.submit("alice", later, skip)
    await serial.drain(5)
    assert outcome == ["first, not acked", "second given back"]


async def test_a_retry_keeps_the_users_later_messages_waiting(brokers: BrokerFactory) -> None:
    broker = brokers("pipedrive_writer", prefetch=16, partitions=1)
    await broker.connect()
    handled: list[str] = []
    failures = {"alice-1": 3}

    async def handle(message: AnyMessage) -> Message | None:
        assert isinstance(message, TrackUser)
        name = f"{message.login}-{message.correlation_id}"
        if failures.get(name, 0) > 0:
            failures[name] -= 1
            raise ConnectionError("Pipedrive answered 503")
        handled.append(name)
        return None

    retry = Retry(max_attempts=10, base_seconds=0.1, max_seconds=0.2)
    await broker.consume_partitions("pipedrive_writer", handle, retry=retry)
    for n in range(1, 6):
        await broker.publish(TrackUser(login="alice", correlation_id=str(n)))
    await broker.publish(TrackUser(login="bob", correlation_id="1"))
    await eventually(lambda: len(handled) == 6, 20, "every message handled")
    assert [name for name in handled if name.startswith("alice")] == [
        f"alice-{n}" for n in range(1, 6)
    ]
    # bob did not wait for alice's retries.
    assert handled.index("bob-1") < handled.index("alice-1")
