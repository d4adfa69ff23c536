"""The dead-letter CLI on a real broker: list removes nothing, replay puts a message back on
its original route and only then off the dead-letter queue, exit codes say what happened."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from aiormq.abc import FieldValue

from gistsync.broker import Broker, Retry, Topology
from gistsync.contracts import AnyMessage, Message, PollNow, TrackUser
from gistsync.deadletters import list_dead_letters, replay_dead_letters
from gistsync.errors import PermanentError
from tests.conftest import BrokerFactory

FAST = Retry(max_attempts=2, base_seconds=0.01, max_seconds=0.02)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def cli(broker: Broker, *args: str, url: str | None = None) -> Run:
    """The real command, as an operator runs it: `gistsync deadletters ARGS`."""
    env = dict(os.environ, AMQP_URL=url or broker.url, AMQP_PREFIX=broker.topology.prefix)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "gistsync"),
        "deadletters",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def count(broker: Broker, queue: str) -> int:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count is not None
        return declared.declaration_result.message_count


async def settle(broker: Broker, queue: str, expected: int, timeout: float = 5.0) -> None:
    """Quorum queues report their count a little after a publish is confirmed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await count(broker, queue)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"{queue}: {found} != {expected}"
        await asyncio.sleep(0.05)


async def raw_publish(broker: Broker, body: bytes, routing_key: str, **props: object) -> None:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(broker.topology.bus)
        await exchange.publish(aio_pika.Message(body, **props), routing_key)  # type: ignore[arg-type]


class Refusing:
    """A handler that refuses every message until fixed, then records what it gets."""

    def __init__(self) -> None:
        self.fixed = False
        self.handled: list[AnyMessage] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: AnyMessage) -> Message | None:
        if not self.fixed:
            raise PermanentError(f"cannot handle {message.type} yet")
        self.handled.append(message)
        self.arrived.set()
        return None


async def dead_lettered(brokers: BrokerFactory, *messages: Message) -> tuple[Broker, Refusing]:
    """A writer-queue consumer that dead-letters `messages`, which are then in the queue."""
    broker = brokers("pipedrive_writer")
    await broker.connect()
    handler = Refusing()
    await broker.consume_partitions("pipedrive_writer", handler, retry=FAST)
    for message in messages:
        await broker.publish(message)
    await settle(broker, broker.topology.dead_queue, len(messages))
    return broker, handler


async def test_list_shows_each_dead_letter_and_removes_nothing(brokers: BrokerFactory) -> None:
    track = TrackUser(login="octocat")
    broker, _ = await dead_lettered(brokers, track)
    await raw_publish(broker, b"{not json", "event.gist_discovered.p0", message_id="poison-1")
    await settle(broker, broker.topology.dead_queue, 2)

    run = await cli(broker, "list")
    assert run.code == 0, run.err
    header, *rows = run.out.splitlines()
    assert header.split()[:3] == ["ID", "TYPE", "QUEUE"]
    assert len(rows) == 2
    assert rows[0].split()[:3] == [
        track.message_id,
        "command.track_user",
        broker.topology.partition("pipedrive_writer", 0),
    ]
    assert "cannot handle command.track_user yet" in rows[0]
    assert rows[1].startswith("poison-1 ")
    assert "malformed JSON" in rows[1]
    assert "2 dead letter(s)" in run.err

    listed = await list_dead_letters(broker.url, broker.topology.prefix)
    assert [d.id for d in listed] == [track.message_id, "poison-1"]
    assert listed[0].routing_key == "command.track_user.p0"
    assert listed[0].first_seen  # the message's own sent_at at least
    assert listed[1].type == "event.gist_discovered"  # no type anywhere but its route
    await settle(broker, broker.topology.dead_queue, 2)  # still all there


async def test_list_as_json_lines(brokers: BrokerFactory) -> None:
    track = TrackUser(login="octocat")
    broker, _ = await dead_lettered(brokers, track)
    run = await cli(broker, "list", "--json")
    assert run.code == 0, run.err
    [line] = run.out.splitlines()
    entry = json.loads(line)
    assert entry["id"] == track.message_id
    assert entry["type"] == "command.track_user"
    assert entry["reason"] == "cannot handle command.track_user yet"
    assert entry["replayed"] == 0


async def test_replay_by_id_after_a_fix_delivers_it_and_removes_it(
    brokers: BrokerFactory,
) -> None:
    first, second = TrackUser(login="octocat"), TrackUser(login="hubot")
    broker, handler = await dead_lettered(brokers, first, second)
    handler.fixed = True

    run = await cli(broker, "replay", "--id", second.message_id)
    assert run.code == 0, run.err
    assert run.out.strip() == f"replayed {second.message_id}"
    await asyncio.wait_for(handler.arrived.wait(), 5)
    assert handler.handled == [second]  # the same message: id, correlation id, body
    await settle(broker, broker.topology.dead_queue, 1)
    [left] = await list_dead_letters(broker.url, broker.topology.prefix)
    assert left.id == first.message_id


async def test_a_replayed_message_that_fails_again_is_dead_lettered_again(
    brokers: BrokerFactory,
) -> None:
    track = TrackUser(login="octocat")
    broker, _ = await dead_lettered(brokers, track)
    report = await replay_dead_letters(broker.url, broker.topology.prefix, [track.message_id])
    assert report.replayed == [track.message_id]
    await settle(broker, broker.topology.dead_queue, 1)
    [again] = await list_dead_letters(broker.url, broker.topology.prefix)
    assert again.id == track.message_id
    assert again.replayed == 1
    assert again.reason == "cannot handle command.track_user yet"


async def test_replay_all_empties_the_queue(brokers: BrokerFactory) -> None:
    messages = [TrackUser(login=f"user{n}") for n in range(5)]
    broker, handler = await dead_lettered(brokers, *messages)
    handler.fixed = True
    run = await cli(broker, "replay", "--all")
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == 5
    await settle(broker, broker.topology.dead_queue, 0)
    for _ in range(50):
        if len(handler.handled) == 5:
            break
        await asyncio.sleep(0.1)
    assert sorted(m.message_id for m in handler.handled) == sorted(m.message_id for m in messages)


async def test_unknown_ids_are_named_and_exit_1_while_known_ones_replay(
    brokers: BrokerFactory,
) -> None:
    track = TrackUser(login="octocat")
    broker, handler = await dead_lettered(brokers, track)
    handler.fixed = True
    run = await cli(broker, "replay", "--id", "no-such-id", "--id", track.message_id)
    assert run.code == 1
    assert "no dead letter with id no-such-id" in run.err
    assert f"replayed {track.message_id}" in run.out
    await settle(broker, broker.topology.dead_queue, 0)


async def test_a_message_with_no_route_stays_dead_lettered(brokers: BrokerFactory) -> None:
    broker = brokers()
    await broker.connect()
    # Dead-lettered by hand under a key nothing is bound to.
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.get_exchange(broker.topology.dead_exchange)
        headers: dict[str, FieldValue] = {
            "x-dead-reason": "by hand",
            "x-dead-routing-key": "event.nobody_listens",
        }
        await dead.publish(aio_pika.Message(b"{}", message_id="stray", headers=headers), "")
    await settle(broker, broker.topology.dead_queue, 1)

    run = await cli(broker, "replay", "--id", "stray")
    assert run.code == 1
    assert "not replayed stray: not routable under 'event.nobody_listens'" in run.err
    await settle(broker, broker.topology.dead_queue, 1)


async def test_what_the_broker_dead_lettered_by_itself_is_described_and_replayable(
    brokers: BrokerFactory,
) -> None:
    """RabbitMQ's own dead-lettering (the delivery limit) writes `x-death`, not our headers."""
    broker = brokers("github_poller")
    await broker.connect()
    poll = PollNow()
    death: dict[str, FieldValue] = {
        "x-first-death-reason": "delivery_limit",
        "x-first-death-queue": broker.topology.queue("github_poller.queries"),
        "x-death": [
            {
                "reason": "delivery_limit",
                "queue": broker.topology.queue("github_poller.queries"),
                "routing-keys": ["command.poll_now"],
                "count": 1,
                "exchange": broker.topology.bus,
            }
        ],
    }
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.get_exchange(broker.topology.dead_exchange)
        await dead.publish(
            aio_pika.Message(
                poll.model_dump_json().encode(), message_id=poll.message_id, headers=death
            ),
            "command.poll_now",
        )
    await settle(broker, broker.topology.dead_queue, 1)
    [letter] = await list_dead_letters(broker.url, broker.topology.prefix)
    assert (letter.id, letter.type, letter.reason) == (
        poll.message_id,
        "command.poll_now",
        "delivery_limit",
    )
    assert letter.queue == broker.topology.queue("github_poller.queries")

    received: list[AnyMessage] = []
    done = asyncio.Event()

    async def handle(message: AnyMessage) -> Message | None:
        received.append(message)
        done.set()
        return None

    await broker.consume("github_poller.queries", handle, retry=None)
    report = await replay_dead_letters(broker.url, broker.topology.prefix, None)
    assert report.replayed == [poll.message_id]
    await asyncio.wait_for(done.wait(), 5)
    assert received == [poll]


async def test_no_dead_letter_queue_yet_is_an_empty_list(brokers: BrokerFactory) -> None:
    broker = brokers()  # never connected: nothing declared under this prefix
    run = await cli(broker, "list")
    assert run.code == 0, run.err
    assert "0 dead letter(s)" in run.err


@pytest.mark.parametrize(
    ("args", "code"),
    [(("replay",), 2), (("replay", "--all", "--id", "x"), 2), (("purge",), 2)],
)
async def test_bad_usage_exits_2(brokers: BrokerFactory, args: tuple[str, ...], code: int) -> None:
    run = await cli(brokers(), *args)
    assert run.code == code
    assert "usage:" in run.err


async def test_an_unreachable_broker_exits_3(brokers: BrokerFactory) -> None:
    run = await cli(brokers(), "list", url="amqp://guest:guest@127.0.0.1:1/")
    assert run.code == 3
    assert run.err.startswith("gistsync deadletters: cannot reach the broker")
    assert "guest:guest" not in run.err


async def test_first_seen_is_when_it_was_dead_lettered_when_the_header_says(
    brokers: BrokerFactory,
) -> None:
    broker = brokers()
    await broker.connect()
    headers: dict[str, FieldValue] = {
        "x-dead-reason": "by hand",
        "x-dead-routing-key": "command.track_user",
        "x-dead-at": "2026-01-02T03:04:05+00:00",
    }
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.get_exchange(broker.topology.dead_exchange)
        await dead.publish(aio_pika.Message(b"{}", message_id="dated", headers=headers), "")
    await settle(broker, broker.topology.dead_queue, 1)
    [letter] = await list_dead_letters(broker.url, broker.topology.prefix)
    assert letter.first_seen == "2026-01-02T03:04:05+00:00"


async def _declare_limited(
    channel: aio_pika.abc.AbstractChannel, name: str, ids: list[str]
) -> None:
    """A quorum queue with a delivery limit of 3, as RabbitMQ 4 sets 20 on every one."""
    await channel.declare_queue(
        name, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 3}
    )
    for message_id in ids:
        message = aio_pika.Message(b"{}", message_id=message_id, headers={"x-dead-reason": "t"})
        await channel.default_exchange.publish(message, name)


async def test_a_hundred_listings_lose_nothing_under_a_delivery_limit(
    amqp_url: str, prefix: str
) -> None:
    top = Topology(prefix)
    ids = [f"dead-{n}" for n in range(5)]
    control = f"{top.dead_queue}.control"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await _declare_limited(channel, top.dead_queue, ids)
        # The limit is real: reading by get-and-requeue (the channel's closing) loses a
        # message within a few reads.
        await _declare_limited(channel, control, ["doomed"])
        try:
            for _ in range(6):
                reader = await connection.channel()
                queue = await reader.get_queue(control, ensure=False)
                await queue.get(no_ack=False, fail=False, timeout=5)
                await reader.close()
            declared = await channel.declare_queue(control, passive=True)
            assert declared.declaration_result.message_count == 0
        finally:
            await channel.queue_delete(control)

        for _ in range(100):
            listed = await list_dead_letters(amqp_url, prefix)
            assert [letter.id for letter in listed] == ids
        declared = await channel.declare_queue(top.dead_queue, passive=True)
        assert declared.declaration_result.message_count == len(ids)


async def test_a_copy_left_twice_is_listed_once_and_replayed_once(brokers: BrokerFactory) -> None:
    broker = brokers("github_poller")
    await broker.connect()
    poll = PollNow()
    headers: dict[str, FieldValue] = {
        "x-dead-reason": "by hand",
        "x-dead-routing-key": "command.poll_now",
    }
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.get_exchange(broker.topology.dead_exchange)
        for _ in range(2):  # as a put-back cut between its confirm and its ack leaves it
            body = poll.model_dump_json().encode()
            await dead.publish(
                aio_pika.Message(body, message_id=poll.message_id, headers=headers), ""
            )
    await settle(broker, broker.topology.dead_queue, 2)
    assert [d.id for d in await list_dead_letters(broker.url, broker.topology.prefix)] == [
        poll.message_id
    ]
    report = await replay_dead_letters(broker.url, broker.topology.prefix, [poll.message_id])
    assert report.replayed == [poll.message_id] and not report.failed
    await settle(broker, broker.topology.dead_queue, 0)
