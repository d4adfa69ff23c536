"""The dead letters: list them, replay them once the cause is fixed, or discard them.

The command line is `gistsync deadletters list|replay|discard` (`gistsync_cli.deadletters`);
`python -m gistsync.deadletters` still runs it, for the runbooks that spell it so. The
broker and the names come from `AMQP_URL` and `AMQP_PREFIX`, as for the services.

`list` reads every message of `{AMQP_PREFIX}.dead_letters` without removing any: id, type, the
queue it died in, when it was dead-lettered (or, when unknown, when it was sent) and why.
Reading never costs a dead letter, on any RabbitMQ version and whatever the queue's delivery
limit: see `DeadLetterQueue.put_back`.
`replay` publishes each chosen message again to the bus under its original routing key
(persistent, mandatory, confirmed) and only then acks it off the dead-letter queue, so a
message is never in neither place. A replayed message that fails again is dead-lettered again.
`discard` acks the chosen messages off the queue for good; the others are put back.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic

from gistsync.broker import Topology

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_BROKER = 3

# Headers that describe a death, not the message: dropped on replay, so a message that dies
# again is described by its new death alone.
DEATH_HEADERS = ("x-death", "x-delivery-count", "x-replayed")
DEATH_PREFIXES = ("x-dead-", "x-first-death-", "x-last-death-")


class BrokerUnavailable(Exception):
    """The broker could not be reached, or did not confirm a publish."""


@dataclass(frozen=True)
class DeadLetter:
    id: str
    type: str
    queue: str
    routing_key: str
    reason: str
    first_seen: str  # ISO 8601, or "" when nothing says
    replayed: int  # how often it was replayed before dying this time


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.unknown or self.failed else EXIT_OK


# --- reading one dead letter ---------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _body(message: AbstractIncomingMessage) -> dict[str, Any]:
    try:
        raw = json.loads(message.body)
    except (UnicodeDecodeError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    """The oldest entry RabbitMQ wrote when it dead-lettered by itself (delivery limit)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], Mapping):
        return deaths[-1]
    return {}


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return _text(value)


def message_id(message: AbstractIncomingMessage) -> str:
    """The message's own id; a digest of the body for the rare message that has none."""
    if message.message_id:
        return message.message_id
    return "sha256-" + hashlib.sha256(message.body).hexdigest()[:16]


def _type_of(key: str) -> str:
    """A routing key's message type: per-user work carries its partition (`….p3`)."""
    return re.sub(r"\.p\d+$", "", key)


def routing_key(message: AbstractIncomingMessage) -> str:
    """The key it was first published under: ours, else RabbitMQ's record, else its type."""
    headers = message.headers or {}
    key = _text(headers.get("x-dead-routing-key"))
    if key:
        return key
    keys = _first_death(headers).get("routing-keys")
    if isinstance(keys, list) and keys:
        return _text(keys[0])
    return message.type or _text(_body(message).get("type"))


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    death = _first_death(headers)
    reason = _text(headers.get("x-dead-reason")) or _text(
        headers.get("x-first-death-reason") or death.get("reason")
    )
    queue = _text(headers.get("x-dead-queue")) or _text(
        headers.get("x-first-death-queue") or death.get("queue")
    )
    body = _body(message)
    seen = headers.get("x-dead-at") or death.get("time") or message.timestamp
    first_seen = _iso(seen) if seen else _text(body.get("sent_at"))
    replayed = headers.get("x-replayed")
    return DeadLetter(
        id=message_id(message),
        type=message.type or _text(body.get("type")) or _type_of(routing_key(message)) or "?",
        queue=queue or "?",
        routing_key=routing_key(message),
        reason=reason or "?",
        first_seen=first_seen,
        replayed=replayed if isinstance(replayed, int) else 0,
    )


def replay_copy(message: AbstractIncomingMessage, previous: int) -> aio_pika.Message:
    """The message as first published: same body and properties, the death headers dropped."""
    headers = {
        name: value
        for name, value in (message.headers or {}).items()
        if name not in DEATH_HEADERS and not name.startswith(DEATH_PREFIXES)
    }
    headers["x-replayed"] = previous + 1
    return aio_pika.Message(
        message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
        headers=headers,
    )


# --- talking to the broker -------------------------------------------------------------------


def kept_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The dead letter as it is, for the dead-letter queue again: every header of its death
    kept, only the broker's delivery count dropped (it starts again from nothing)."""
    headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


class DeadLetterQueue:
    """One connection; messages taken with basic.get stay held (unacked) until replayed or,
    on the way out, put back by `put_back`: listing removes nothing."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.topology = Topology(prefix)
        self.timeout = timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._held: list[AbstractIncomingMessage] = []

    async def __aenter__(self) -> DeadLetterQueue:
        try:
            self._connection = await aio_pika.connect(self.url, timeout=self.timeout)
            self._channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
            raise BrokerUnavailable(f"cannot reach the broker: {exc!r}") from exc
        return self

    async def __aexit__(self, error: type[BaseException] | None, *_: object) -> None:
        try:
            if error is None and self._held:
                await self.put_back()
        finally:
            # Whatever is still held (a failure midway) goes back by the channel's closing.
            if self._connection is not None:
                await self._connection.close()

    async def put_back(self) -> None:
        """Every held message back at the tail as a fresh copy, confirmed, and only then
        the original acked, in the order they were read.

        Why not simply let the channel's closing requeue them: a quorum queue counts every
        return as a delivery, and drops (or, with no dead-letter exchange of its own, loses)
        a message past its delivery limit: 20 by default from RabbitMQ 4.0, whatever
        `x-delivery-limit` the queue was declared with before. Twenty listings would then
        destroy what they list. A copy starts with no delivery count, and changes no queue
        argument, so existing queues need no migration (a re-declare with new arguments is
        refused with PRECONDITION_FAILED). The worst a failure midway can do is leave a
        message twice (its copy confirmed, the original not yet acked): never none. Listing
        shows such a pair once, and replay acks the second after replaying the first."""
        assert self._channel is not None
        exchange = self._channel.default_exchange
        for message in self._held:
            try:
                confirm = await exchange.publish(
                    kept_copy(message),
                    self.topology.dead_queue,
                    mandatory=True,
                    timeout=self.timeout,
                )
            except (TimeoutError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
                raise BrokerUnavailable(f"could not put {message_id(message)} back") from exc
            if not isinstance(confirm, Basic.Ack):
                raise BrokerUnavailable(f"the broker refused {message_id(message)} back")
        for message in self._held:
            await message.ack()
        self._held.clear()

    async def _queue(self) -> AbstractQueue | None:
        assert self._connection is not None
        # A failed passive declare closes its channel: probe on a channel of its own.
        probe = await self._connection.channel()
        try:
            await probe.get_queue(self.topology.dead_queue, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            if not probe.is_closed:
                await probe.close()
        assert self._channel is not None
        return await self._channel.get_queue(self.topology.dead_queue, ensure=False)

    async def take_all(self) -> list[AbstractIncomingMessage]:
        """Every message now in the queue, oldest first, held unacked."""
        queue = await self._queue()
        if queue is None:
            return []
        taken: list[AbstractIncomingMessage] = []
        while True:
            message = await queue.get(no_ack=False, fail=False, timeout=self.timeout)
            if message is None:
                return taken
            taken.append(message)
            self._held.append(message)

    async def replay(self, message: AbstractIncomingMessage) -> str | None:
        """Republish, confirmed, then ack; None when done, else why not (left in place)."""
        assert self._channel is not None
        key = routing_key(message)
        if not key:
            return "no routing key to replay it under"
        bus = await self._channel.get_exchange(self.topology.bus, ensure=False)
        copy = replay_copy(message, describe(message).replayed)
        try:
            confirm = await bus.publish(copy, key, mandatory=True, timeout=self.timeout)
        except aio_pika.exceptions.DeliveryError as exc:
            return f"not routable under {key!r}: {exc}"
        except (TimeoutError, aiormq.exceptions.AMQPError, RuntimeError) as exc:
            raise BrokerUnavailable(f"replay of {message_id(message)} not confirmed") from exc
        if not isinstance(confirm, Basic.Ack):
            return f"the broker refused it ({confirm!r})"
        await self.drop(message)
        return None

    async def drop(self, message: AbstractIncomingMessage) -> None:
        """Off the queue for good: replayed, or a second copy of one replayed."""
        await message.ack()
        self._held.remove(message)


async def list_dead_letters(url: str, prefix: str) -> list[DeadLetter]:
    async with DeadLetterQueue(url, prefix) as dlq:
        letters = {message_id(m): describe(m) for m in reversed(await dlq.take_all())}
    return list(reversed(letters.values()))  # oldest first, a copy left twice shown once


async def replay_dead_letters(url: str, prefix: str, ids: Iterable[str] | None) -> ReplayReport:
    """Replays the dead letters with these ids (every one of them when `ids` is None)."""
    report = ReplayReport()
    wanted = None if ids is None else list(dict.fromkeys(ids))
    async with DeadLetterQueue(url, prefix) as dlq:
        messages = await dlq.take_all()
        chosen = [m for m in messages if wanted is None or message_id(m) in wanted]
        found = {message_id(m) for m in chosen}
        report.unknown = [i for i in wanted or () if i not in found]
        for message in chosen:
            if message_id(message) in report.replayed:
                await dlq.drop(message)  # a second copy (see `put_back`): replayed already
                continue
            problem = await dlq.replay(message)
            if problem is None:
                report.replayed.append(message_id(message))
                report.failed.pop(message_id(message), None)
            else:
                report.failed.setdefault(message_id(message), problem)
    return report


@dataclass
class DiscardReport:
    discarded: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.unknown else EXIT_OK


async def discard_dead_letters(url: str, prefix: str, ids: Iterable[str] | None) -> DiscardReport:
    """Removes the dead letters with these ids for good (every one when `ids` is None);
    every copy of a chosen id goes, every other message is put back."""
    report = DiscardReport()
    wanted = None if ids is None else list(dict.fromkeys(ids))
    async with DeadLetterQueue(url, prefix) as dlq:
        for message in await dlq.take_all():
            if wanted is None or message_id(message) in wanted:
                await dlq.drop(message)
                if message_id(message) not in report.discarded:
                    report.discarded.append(message_id(message))
        report.unknown = [i for i in wanted or () if i not in report.discarded]
    return report


if __name__ == "__main__":
    # Imported here only: the library knows nothing of its command line otherwise.
    from gistsync_cli.main import main

    sys.exit(main(["deadletters", *sys.argv[1:]]))
