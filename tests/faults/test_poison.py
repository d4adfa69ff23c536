"""Poison messages against the running services: malformed JSON, a body that fails
validation, an unknown type, an unknown schema version, and a type the service does not
handle go to the dead-letter queue at once, with the reason and the time in headers; the
message right behind them on the same queue is handled as usual."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gistsync.contracts import Message, TrackUser, UserTracked, encode
from sandbox.launch import Suite
from tests.faults.harness import (
    DeadLetter,
    add_gists,
    as_datetime,
    audit,
    consumed,
    dead_letters,
    metric,
    pipedrive_state,
    publish_raw,
    routing_key,
    start_suite,
    suite_env,
)
from tests.faults.node import RabbitNode
from tests.suite import work_queues
from tests.waiting import wait_for

pytestmark = pytest.mark.faults

# The dead letters every test here made: nothing else may be in the queue.
POISONED: set[str] = set()


@pytest.fixture(scope="module")
def suite(rabbit: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    rabbit.ensure_running()
    # A retried message would take 15 s or more to be given up on: "at once" is measurable.
    env = suite_env(rabbit.url, RETRY_BASE_SECONDS="1", RETRY_MAX_SECONDS="5")
    suite = start_suite(
        env, tmp_path_factory.mktemp("poison"), ("sandbox", "pipedrive_writer", "github_poller")
    )
    yield suite
    suite.stop_all()


def envelope(kind: str, **fields: object) -> bytes:
    return json.dumps(
        {
            "type": kind,
            "version": 1,
            "message_id": uuid.uuid4().hex,
            "correlation_id": uuid.uuid4().hex,
            "sent_at": datetime.now(UTC).isoformat(),
            **fields,
        }
    ).encode()


def poisons(service: str, handled: str, other: Message) -> list[tuple[bytes, str]]:
    """(body, the start of the reason it must be dead-lettered with)."""
    return [
        (b'{"type": "' + handled.encode() + b'", "version": 1, "login": ', "malformed JSON"),
        (envelope(handled, login="not a login!"), f"invalid {handled}: login"),
        (envelope("command.explode", login="ann"), "unknown message type 'command.explode'"),
        (envelope(handled, version=2, login="ann"), f"unsupported schema version 2 for {handled}"),
        (encode(other), f"{service} does not handle {other.type}"),
    ]


def poison(suite: Suite, service: str, valid: Message, other: Message) -> list[DeadLetter]:
    """Publishes the poisons, then `valid`, under `valid`'s routing key (so to one queue, in
    that order); returns the poisons' dead letters once all five are there."""
    kind = valid.type
    key = routing_key(suite, valid)
    cases = poisons(service, kind, other)
    ids = [uuid.uuid4().hex for _ in cases]
    POISONED.update(ids)
    dead_before = consumed(suite, service, outcome="dead_lettered")
    sent = datetime.now(UTC)
    started = time.monotonic()
    bodies = [(i, body) for i, (body, _) in zip(ids, cases, strict=True)]
    publish_raw(suite, key, [*bodies, (valid.message_id, encode(valid))])

    def arrived() -> list[DeadLetter] | None:
        letters = {d.message_id: d for d in dead_letters(suite)}
        return [letters[i] for i in ids] if set(ids) <= set(letters) else None

    letters = wait_for(arrived, what="the five poisons dead-lettered", timeout=10)
    # At once: giving up on a transient failure takes 8.5 s or more with these settings.
    assert time.monotonic() - started < 5
    assert consumed(suite, service, outcome="dead_lettered") - dead_before == len(cases)
    for letter, (_, reason) in zip(letters, cases, strict=True):
        headers = letter.headers
        assert str(headers["x-dead-reason"]).startswith(reason), headers["x-dead-reason"]
        assert headers["x-dead-queue"] in work_queues(suite, service)
        assert headers["x-dead-service"] == service
        dead_at = as_datetime(headers.get("x-dead-at"))
        assert dead_at is not None, headers
        assert sent - timedelta(seconds=1) <= dead_at <= datetime.now(UTC) + timedelta(seconds=1)
    # Nothing but the poisons died, here or in the other tests of this module.
    assert {d.message_id for d in dead_letters(suite)} <= POISONED
    return letters


def test_the_writer_dead_letters_poison_and_keeps_consuming(suite: Suite) -> None:
    login = f"poison-{uuid.uuid4().hex[:6]}"
    [gist] = add_gists(suite, login, 1)
    valid = TrackUser(login=login)
    poison(suite, "pipedrive_writer", valid, UserTracked(login=login))

    # The message behind the poisons was handled: the user is tracked, its gist recorded.
    def recorded() -> bool:
        return audit(pipedrive_state(suite), {gist: login}).converged

    wait_for(recorded, what="the valid message's user and gist in Pipedrive")


def test_the_poller_dead_letters_poison_and_keeps_consuming(suite: Suite) -> None:
    login = f"poison-{uuid.uuid4().hex[:6]}"
    tracked = metric(suite, "github_poller", "gistsync_tracked_users")
    poison(suite, "github_poller", UserTracked(login=login), TrackUser(login=login))

    wait_for(
        lambda: metric(suite, "github_poller", "gistsync_tracked_users") == tracked + 1,
        what="the poller tracking the user of the valid message",
    )
