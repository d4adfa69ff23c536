"""`query.poll_status` over a real RabbitMQ, answered by the whole poller running in-process
against the simulator: what an operator reads of one user's polling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gistsync.broker import Broker
from gistsync.contracts import (
    PollNow,
    PollReport,
    PollStatus,
    PollStatusQuery,
    PollStatusReply,
    UserTracked,
    UserUntracked,
)
from github_poller.__main__ import lifespan
from tests.github_poller.conftest import TOKEN, World
from tests.waiting import eventually


async def status_of(gateway: Broker, login: str) -> PollStatus | None:
    reply = await gateway.request(PollStatusQuery(login=login), timeout=5)
    assert isinstance(reply, PollStatusReply)
    return reply.status


async def test_poll_status_says_when_polls_ran_changed_and_failed(world: World) -> None:
    world.sandbox.github.add_gists_bulk("alice", 2)
    world.sandbox.github.add_gists_bulk("gone", 1)
    world.sandbox.github.delete_user("gone")
    await world.start_writer()
    settings = world.settings(poll_interval_seconds=10.0, poll_failure_backoff_max_seconds=60.0)
    started = datetime.now(UTC)
    async with lifespan(settings) as poller:
        gateway = await world.gateway()
        await eventually(poller.loaded.is_set)
        await gateway.publish(UserTracked(login="alice"))
        await gateway.publish(UserTracked(login="gone"))
        await eventually(lambda: len(world.writer.events) == 2, timeout=5)

        async def polled(login: str) -> bool:
            status = await status_of(gateway, login)
            return status is not None and status.last_poll_at is not None

        await eventually(lambda: polled("alice"))
        await eventually(lambda: polled("gone"))
        alice = await status_of(gateway, "ALICE")  # any letter case
        assert alice is not None
        assert alice.last_poll_at is not None and alice.last_change_at is not None
        assert started <= alice.last_change_at <= alice.last_poll_at <= datetime.now(UTC)
        assert (alice.last_error, alice.failures, alice.interval_seconds) == (None, 0, 10.0)
        assert alice.next_poll_at is not None
        assert alice.next_poll_at - alice.last_poll_at <= timedelta(seconds=10.5)

        gone = await status_of(gateway, "gone")
        assert gone is not None and gone.last_error is not None
        assert gone.last_error.text == "GitHub answered 404 for user gone: Not Found"
        assert gone.last_poll_at is not None
        assert started <= gone.last_error.at <= gone.last_poll_at
        assert (gone.last_change_at, gone.failures) == (None, 1)
        assert gone.interval_seconds == 20.0  # backed off: 10 s, doubled by one failure

        # GitHub fails every request: the error and its time are the user's, then stay
        # (with their time) once polls succeed again; the failures in a row start over.
        world.sandbox.github.patch_config({"faults": {"error_rate": 1.0}})
        failing_since = datetime.now(UTC)
        report = await gateway.request(PollNow(), timeout=10)
        assert isinstance(report, PollReport) and report.users == 2
        failing = await status_of(gateway, "alice")
        assert failing is not None and failing.last_error is not None
        assert failing.last_error.text == "GitHub answered 500 for user alice: Server Error"
        assert failing.last_error.at >= failing_since
        assert failing.failures == 1 and failing.interval_seconds == 20.0
        assert failing.last_change_at == alice.last_change_at  # nothing new was seen
        world.sandbox.github.patch_config({"faults": {"error_rate": 0.0}})
        world.sandbox.github.add_gists_bulk("alice", 1)
        await gateway.request(PollNow(), timeout=10)
        again = await status_of(gateway, "alice")
        assert again is not None and again.last_change_at is not None
        assert again.last_change_at > failing.last_error.at
        assert (again.last_error, again.failures) == (failing.last_error, 0)
        assert TOKEN not in again.model_dump_json()

        # Nobody the poller polls: no status; an untracked user's status goes with them.
        assert await status_of(gateway, "nobody") is None
        await gateway.publish(UserUntracked(login="alice"))
        await eventually(lambda: "alice" not in poller.users)
        assert await status_of(gateway, "alice") is None


async def test_a_rate_limited_poll_is_the_users_last_error(world: World) -> None:
    world.sandbox.github.add_gists_bulk("alice", 1)
    await world.start_writer()
    async with lifespan(world.settings(poll_interval_seconds=0.3)) as poller:
        gateway = await world.gateway()
        await eventually(poller.loaded.is_set)
        await gateway.publish(UserTracked(login="alice"))
        await eventually(lambda: len(world.writer.events) == 1, timeout=5)
        world.sandbox.github.patch_config({"faults": {"rate_limit_burst": 1}})

        async def limited_then_polled() -> bool:
            # GitHub says "retry after 1 s"; the poll after the pause goes through.
            status = await status_of(gateway, "alice")
            error = None if status is None else status.last_error
            return error is not None and status is not None and status.failures == 0

        await eventually(limited_then_polled, timeout=10)
        status = await status_of(gateway, "alice")
    assert status is not None and status.last_error is not None
    assert status.last_error.text == "GitHub rate limit (429): paused for 1 s"
    assert status.last_poll_at is not None and status.last_error.at < status.last_poll_at
