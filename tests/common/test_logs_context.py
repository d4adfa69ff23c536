"""What a log line is about: fields set once where work starts (`logcontext.bound`), found by
every line written inside, in the tasks it starts too, gone after; set by the delivery path
for every message it handles, on a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gistsync.broker import Broker, Retry
from gistsync.contracts import AnyMessage, Message, TrackUser
from gistsync.logcontext import bound, current
from gistsync.logs import JsonFormatter
from tests.conftest import BrokerFactory

Json = dict[str, Any]
log = logging.getLogger("tests.logcontext")


class Lines(logging.Handler):
    """Formats each record as it is logged, in the context of the code that logs it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.entries: list[Json] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))

    def saying(self, message: str) -> list[Json]:
        return [e for e in self.entries if e["message"] == message]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)


def test_fields_hold_inside_the_block_nest_and_go_after(lines: Lines) -> None:
    with bound(correlation_id="req-1", login=None):
        log.info("outer")
        with bound(message_id="m-1", login="octocat"):
            log.info("inner")
        log.info("outer again")
    log.info("after")
    [outer, inner, again, after] = lines.entries
    assert (outer["correlation_id"], "login" in outer) == ("req-1", False)
    assert (inner["correlation_id"], inner["message_id"], inner["login"]) == (
        "req-1",
        "m-1",
        "octocat",
    )
    assert "message_id" not in again
    assert not {"correlation_id", "message_id", "login"} & set(after)
    assert current() == {}


def test_a_field_the_line_passes_itself_wins(lines: Lines) -> None:
    with bound(login="octocat"):
        log.info("about another", extra={"login": "hubot"})
    assert lines.entries[0]["login"] == "hubot"


async def test_tasks_started_inside_keep_the_fields_and_do_not_leak_them(lines: Lines) -> None:
    async def work(name: str) -> None:
        await asyncio.sleep(0)
        log.info(name)

    with bound(correlation_id="req-a"):
        first = asyncio.create_task(work("a"))
    with bound(correlation_id="req-b"):
        second = asyncio.create_task(work("b"))
    await asyncio.gather(first, second)
    assert lines.saying("a")[0]["correlation_id"] == "req-a"
    assert lines.saying("b")[0]["correlation_id"] == "req-b"


async def test_every_line_of_a_handled_message_names_it(
    brokers: BrokerFactory, lines: Lines
) -> None:
    broker: Broker = brokers()
    await broker.connect()
    done = asyncio.Event()
    attempts = 0

    async def handle(message: AnyMessage) -> Message | None:
        nonlocal attempts
        attempts += 1
        log.info("handling", extra={"attempt": attempts})
        if attempts == 1:
            raise RuntimeError("once")  # the retry's warning names the message too
        done.set()
        return None

    fast = Retry(max_attempts=3, base_seconds=0.01, max_seconds=0.02)
    await broker.consume_partitions("pipedrive_writer", handle, retry=fast)
    transport = logging.getLogger("gistsync.transport.delivery")
    transport.addHandler(lines)
    try:
        sent = TrackUser(login="OctoCat", correlation_id="req-42")
        await broker.publish(sent)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        transport.removeHandler(lines)
    log.info("after")

    handled = lines.saying("handling") + lines.saying("handler failed, will retry")
    assert len(handled) == 3
    for entry in handled:
        assert entry["correlation_id"] == "req-42"
        assert entry["message_id"] == sent.message_id
        assert entry["login"] == "OctoCat"
    assert "correlation_id" not in lines.saying("after")[0]
