"""The RabbitMQ layer on a real broker: confirms, routing, retries, dead letters, replies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from gistsync.broker import BROADCAST_TYPES, PARTITIONED, ROUTES, Broker, Retry
from gistsync.contracts import (
    MESSAGE_TYPES,
    AnyMessage,
    Message,
    PollNow,
    PollReport,
    TrackedUsersQuery,
    TrackUser,
    UserExistsQuery,
    UserExistsReply,
)
from gistsync.errors import PermanentError, PublishError, RemoteError, RequestTimeout
from tests.conftest import BrokerFactory, free_port
from tests.waiting import eventually

FAST = Retry(max_attempts=3, base_seconds=0.01, max_seconds=0.02)


async def dead_letters(
    broker: Broker, count: int, timeout: float = 5.0
) -> list[AbstractIncomingMessage]:
    """Reads `count` messages from the dead-letter queue."""
    got: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(broker.topology.dead_queue)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    return got


async def waiting(broker: Broker, queue: str, count: int) -> bool:
    """Whether `queue` holds `count` messages ready."""
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return (declared.declaration_result.message_count or 0) == count


async def raw_publish(broker: Broker, body: bytes, routing_key: str) -> None:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(broker.topology.bus)
        await exchange.publish(aio_pika.Message(body), routing_key)


async def test_published_command_reaches_its_queue_and_is_acked(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    received: list[AnyMessage] = []
    done = asyncio.Event()

    async def handle(message: AnyMessage) -> Message | None:
        received.append(message)
        done.set()
        return None

    await broker.consume_partitions("pipedrive_writer", handle, retry=FAST)
    sent = TrackUser(login="octocat", correlation_id="req-1")
    await broker.publish(sent)
    await asyncio.wait_for(done.wait(), 5)
    assert received == [sent]
    assert received[0].correlation_id == "req-1"


async def test_unroutable_publish_raises(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    with pytest.raises(PublishError):
        await broker.publish(TrackUser(login="octocat"), routing_key="nobody.listens")


async def test_transient_failures_are_retried_then_succeed(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    attempts = 0
    done = asyncio.Event()

    async def flaky(message: AnyMessage) -> Message | None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("upstream hiccup")
        done.set()
        return None

    await broker.consume_partitions("pipedrive_writer", flaky, retry=FAST)
    await broker.publish(TrackUser(login="octocat"))
    await asyncio.wait_for(done.wait(), 5)
    assert attempts == 3
    assert await dead_letters(broker, 1, timeout=0.3) == []


async def test_retries_are_bounded_then_dead_lettered(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    attempts = 0

    async def failing(message: AnyMessage) -> Message | None:
        nonlocal attempts
        attempts += 1
        raise TimeoutError("upstream down")

    await broker.consume_partitions("pipedrive_writer", failing, retry=FAST)
    await broker.publish(TrackUser(login="octocat"))
    [dead] = await dead_letters(broker, 1)
    assert attempts == FAST.max_attempts
    assert dead.headers["x-dead-reason"] == "gave up after 3 attempts: upstream down"
    assert json.loads(dead.body)["login"] == "octocat"


async def test_permanent_error_is_dead_lettered_at_once(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    attempts = 0

    async def reject(message: AnyMessage) -> Message | None:
        nonlocal attempts
        attempts += 1
        raise PermanentError("Pipedrive said 400: title is required")

    await broker.consume_partitions("pipedrive_writer", reject, retry=FAST)
    await broker.publish(TrackUser(login="octocat"))
    [dead] = await dead_letters(broker, 1)
    assert attempts == 1
    assert dead.headers["x-dead-reason"] == "Pipedrive said 400: title is required"
    assert dead.headers["x-dead-queue"] == broker.topology.partition("pipedrive_writer", 0)
    dead_at = datetime.fromisoformat(str(dead.headers["x-dead-at"]))
    assert abs((datetime.now(UTC) - dead_at).total_seconds()) < 60


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"type": "command.launch_rockets", "version": 1}', "unknown message type"),
        (
            b'{"type": "command.track_user", "version": 7, "login": "a"}',
            "unsupported schema version 7",
        ),
        (
            b'{"type": "command.track_user", "version": 1, "login": "not a login!"}',
            "invalid command.track_user: login",
        ),
    ],
)
async def test_poison_messages_go_to_dead_letters_and_consuming_goes_on(
    brokers: BrokerFactory, body: bytes, reason: str
) -> None:
    broker = brokers()
    await broker.connect()
    handled = asyncio.Event()

    async def handle(message: AnyMessage) -> Message | None:
        handled.set()
        return None

    await broker.consume_partitions("pipedrive_writer", handle, retry=FAST)
    await raw_publish(broker, body, "command.track_user.p0")
    [dead] = await dead_letters(broker, 1)
    assert reason in str(dead.headers["x-dead-reason"])
    assert dead.body == body
    await broker.publish(TrackUser(login="octocat"))
    await asyncio.wait_for(handled.wait(), 5)


async def test_request_gets_the_reply(brokers: BrokerFactory) -> None:
    server, client = brokers("poller"), brokers("gateway")
    await server.connect()
    await client.connect()

    async def answer(message: AnyMessage) -> Message | None:
        assert isinstance(message, UserExistsQuery)
        return UserExistsReply(exists=True, login="OctoCat")

    await server.consume("github_poller.queries", answer, retry=None)
    reply = await client.request(
        UserExistsQuery(login="octocat", correlation_id="req-9"), timeout=5
    )
    assert isinstance(reply, UserExistsReply)
    assert reply.login == "OctoCat"
    assert reply.correlation_id == "req-9"


async def test_failed_query_answers_with_an_error(brokers: BrokerFactory) -> None:
    server, client = brokers("writer"), brokers("gateway")
    await server.connect()
    await client.connect()

    async def broken(message: AnyMessage) -> Message | None:
        raise RuntimeError("cache not loaded")

    await server.consume("pipedrive_writer.queries", broken, retry=None)
    with pytest.raises(RemoteError, match="cache not loaded"):
        await client.request(TrackedUsersQuery(), timeout=5)


async def test_request_times_out_when_nobody_answers(brokers: BrokerFactory) -> None:
    client = brokers("gateway")
    await client.connect()
    with pytest.raises(RequestTimeout, match=r"query\.tracked_users within 0\.3 s"):
        await client.request(TrackedUsersQuery(), timeout=0.3)


async def test_close_waits_for_in_flight_work(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(message: AnyMessage) -> Message | None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(message.message_id)
        return PollReport(users=0, new_gists=0)

    await broker.consume("github_poller.queries", slow, retry=FAST)
    message = PollNow()
    await broker.publish(message)
    await asyncio.wait_for(started.wait(), 5)
    await broker.close(grace=5)
    assert finished == [message.message_id]
    assert not broker.ready


def test_every_command_event_and_query_has_exactly_one_queue() -> None:
    routed = [kind for kinds in (*ROUTES.values(), *PARTITIONED.values()) for kind in kinds]
    # Broadcasts go to per-process queues.
    unqueued = BROADCAST_TYPES
    sendable = {kind for kind in MESSAGE_TYPES if not kind.startswith("reply.")} - unqueued
    # A poll of everything goes to any poller; a poll of one partition, to its owner.
    assert sorted(routed) == sorted([*sendable, "command.poll_now"])


async def test_an_expired_request_is_dropped_not_dead_lettered(brokers: BrokerFactory) -> None:
    client = brokers("gateway")
    await client.connect()
    with pytest.raises(RequestTimeout):
        await client.request(TrackedUsersQuery(), timeout=0.2)
    # Past its expiration the broker drops it: nothing waits, nothing is dead-lettered.
    queue = client.topology.queue("pipedrive_writer.queries")
    await eventually(lambda: waiting(client, queue, 0), 10, "the request dropped")
    assert await dead_letters(client, 1, timeout=0.5) == []


async def test_connect_waits_for_a_broker_that_comes_up_late(
    amqp_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A port that nothing listens on yet, forwarded to the real broker a moment later.
    port = free_port()
    target = urlsplit(amqp_url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port or 5672)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    broker = Broker(
        amqp_url.replace(f"{target.hostname}:{target.port or 5672}", f"127.0.0.1:{port}"),
        prefix=prefix,
        service="late",
    )
    # Each failed try is a DEBUG line (an outage is one WARNING): count the tries there.
    caplog.set_level(logging.DEBUG, "gistsync.transport.connection")
    connecting = asyncio.create_task(broker.connect(retry_for=30))

    def tries() -> int:
        return sum(r.getMessage() == "broker not reachable, retrying" for r in caplog.records)

    await eventually(lambda: tries() >= 2, 20, "two failed tries")
    assert not connecting.done()
    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        await asyncio.wait_for(connecting, 10)
        assert broker.ready
        await broker.publish(PollNow())
    finally:
        await broker.close(grace=1)
        server.close()
