"""Concurrent deliveries: the same gist delivered several times at once to one writer is
handled one copy at a time and makes one activity; two writer processes on the same work make
one organization, one deal per user and one activity per gist."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gistsync.contracts import Gist, GistDiscovered, GistFile, TrackUser
from sandbox.launch import Suite
from tests.faults.harness import (
    audit,
    configure,
    consumed,
    dead_letters,
    metric,
    pipedrive_state,
    publish,
    requests_made,
    reset_stats,
    routing_key,
    start_suite,
    suite_env,
    wait_converged,
    wait_quiet,
)
from tests.faults.node import RabbitNode
from tests.suite import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.faults
PREFETCH = 16
COPIES = 8  # deliveries of each gist, all published before the first is handled


def gist(login: str) -> Gist:
    gist_id = uuid.uuid4().hex[:20]
    return Gist(
        id=gist_id,
        html_url=f"https://gist.github.com/{gist_id}",
        description=f"a gist of {login}",
        files=(GistFile(filename="a.py", language="Python"),),
        created_at=datetime.now(UTC),
    )


@pytest.fixture
def writer(rabbit: RabbitNode, tmp_path: Path) -> Iterator[Suite]:
    rabbit.ensure_running()
    env = suite_env(rabbit.url, PREFETCH=str(PREFETCH))
    suite = start_suite(env, tmp_path / "one", ("sandbox", "pipedrive_writer"))
    yield suite
    suite.stop_all()


def test_one_gist_delivered_many_times_at_once_makes_one_activity(writer: Suite) -> None:
    login = f"conc-{uuid.uuid4().hex[:6]}"
    publish(writer, TrackUser(login=login))
    wait_for(lambda: pipedrive_state(writer)["deals"], what="the user's deal")
    wait_quiet(writer)
    # Each create takes a while, so the copies are all in the writer's hands at once.
    configure(writer, "pipedrive", {"faults": {"latency_ms": 150.0}})
    reset_stats(writer, "pipedrive")
    first, second = gist(login), gist(login)
    copies = [GistDiscovered(login=login, gist=g) for _ in range(COPIES) for g in (first, second)]
    assert len(copies) == PREFETCH
    handled = consumed(writer)
    handling = metric(
        writer,
        "pipedrive_writer",
        "gistsync_message_handling_seconds_sum",
        queue="pipedrive_writer",
    )

    started = time.monotonic()
    publish(writer, *copies)
    wait_for(lambda: consumed(writer) == handled + len(copies), what="every copy handled")
    wall = time.monotonic() - started

    busy = (
        metric(
            writer,
            "pipedrive_writer",
            "gistsync_message_handling_seconds_sum",
            queue="pipedrive_writer",
        )
        - handling
    )
    # All were delivered at once (PREFETCH), and handled one after another: one user's
    # messages are run in turn by the transport, so their handling adds up to no more than
    # the time taken.
    assert busy <= wall, (busy, wall)
    owners = {first.id: login, second.id: login}
    result = audit(pipedrive_state(writer), owners)
    assert result.converged, result.summary()
    assert requests_made(writer, "pipedrive") == {"POST /activities": {"200": 2}}
    assert dead_letters(writer) == []


def owned(writer: Suite) -> float:
    return metric(writer, "pipedrive_writer", "gistsync_partitions_owned")


def spread_logins(suite: Suite, per_route: int = 2) -> list[str]:
    """Logins whose work covers every route to the writers (every partition), `per_route`
    each, so that each writer gets some of it."""
    routes = int(suite.env["PARTITIONS"])
    by_route: dict[str, list[str]] = {}
    while len(by_route) < routes or any(len(v) < per_route for v in by_route.values()):
        login = f"two-{uuid.uuid4().hex[:8]}"
        group = by_route.setdefault(routing_key(suite, TrackUser(login=login)), [])
        if len(group) < per_route:
            group.append(login)
    return [login for group in by_route.values() for login in group]


def test_two_writer_processes_make_everything_once(rabbit: RabbitNode, tmp_path: Path) -> None:
    rabbit.ensure_running()
    env = suite_env(rabbit.url, PREFETCH=str(PREFETCH))
    first = start_suite(env, tmp_path / "first", ("sandbox", "pipedrive_writer"))
    second = Suite({**env, "PIPEDRIVE_WRITER_PORT": str(free_port())}, tmp_path / "second")
    try:
        second.start("pipedrive_writer")
        writers = (first, second)
        # The second one gets its share once the first hears of it.
        wait_for(lambda: all(owned(w) > 0 for w in writers), what="both writers own partitions")
        # Slow answers: both writers look before either creates.
        configure(first, "pipedrive", {"faults": {"latency_ms": 300.0}})
        logins = spread_logins(first)
        gists = {login: [gist(login) for _ in range(3)] for login in logins}
        publish(first, *(TrackUser(login=login) for login in logins))
        events = [GistDiscovered(login=login, gist=g) for login in logins for g in gists[login]]
        publish(first, *events, *events)

        owners = {g.id: login for login in logins for g in gists[login]}
        wait_converged(first, owners, timeout=30)
        wait_quiet(first)
        assert audit(pipedrive_state(first), owners).converged
        assert dead_letters(first) == []
        # The premise: both writers did part of the work.
        assert all(consumed(w) > 0 for w in writers)
    finally:
        second.stop_all()
        first.stop_all()
