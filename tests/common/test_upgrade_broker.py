"""Rolling upgrades on a real RabbitMQ: a consumer of this build handles what a producer of
the next minor publishes, and dead-letters, with the reason, only another version."""

from __future__ import annotations

from datetime import UTC, datetime

from gistsync.contracts import AnyMessage, Gist, GistDiscovered, Message, TrackUser
from tests.common.next_build import INCOMPATIBLE, next_discovered, with_version
from tests.common.test_broker import FAST, dead_letters, raw_publish
from tests.conftest import BrokerFactory
from tests.waiting import eventually

GIST = Gist(
    id="bb5a315d61ae9438b18d",
    html_url="https://gist.github.com/bb5a315d61ae9438b18d",
    created_at=datetime(2026, 1, 2, tzinfo=UTC),
)


async def test_a_newer_minor_is_handled_and_another_version_dead_lettered(
    brokers: BrokerFactory,
) -> None:
    producer, consumer = brokers("next_build"), brokers("pipedrive_writer")
    await producer.connect()
    await consumer.connect()
    handled: list[AnyMessage] = []

    async def handle(message: AnyMessage) -> Message | None:
        handled.append(message)
        return None

    await consumer.consume_partitions("pipedrive_writer", handle, retry=FAST)
    newer = next_discovered(GIST, login="ann")
    await producer.publish(newer)  # through the codec, as the next build would
    await eventually(lambda: len(handled) == 1, what="the newer message handled")
    [message] = handled
    assert isinstance(message, GistDiscovered)
    assert (message.message_id, message.login, message.gist) == (newer.message_id, "ann", GIST)

    older = GistDiscovered(login="ann", gist=GIST)
    key = f"event.gist_discovered.p{consumer.topology.partition_of('ann')}"
    await raw_publish(consumer, with_version(older, INCOMPATIBLE), key)
    [dead] = await dead_letters(consumer, 1)
    assert str(dead.headers["x-dead-reason"]) == (
        f"unsupported schema version {INCOMPATIBLE} for event.gist_discovered (this build reads "
        "version 1; a message of another version needs a build of that version)"
    )
    assert dead.headers["x-dead-service"] == "pipedrive_writer"
    # Consuming goes on, and nothing else died.
    await producer.publish(TrackUser(login="ann"))
    await eventually(lambda: len(handled) == 2)
    assert await dead_letters(consumer, 1, timeout=0.3) == []
