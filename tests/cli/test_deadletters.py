"""`gistsync deadletters discard`, and the commands' one way in: `list` and `replay` are
proven in tests/common/test_deadletters.py (through the installed script); here what is
new: discarding needs an explicit choice, removes only what was chosen, and the old
spelling `python -m gistsync.deadletters` still runs the same command."""

from __future__ import annotations

import asyncio
import os
import sys

from gistsync.contracts import TrackUser
from gistsync.deadletters import list_dead_letters
from tests.cli.conftest import Run, gistsync
from tests.common.test_deadletters import dead_lettered, settle
from tests.conftest import BrokerFactory


async def test_discard_by_id_removes_only_that_one(
    broker_env: dict[str, str], brokers: BrokerFactory
) -> None:
    first, second = TrackUser(login="octocat"), TrackUser(login="hubot")
    broker, _ = await dead_lettered(brokers, first, second)
    run = await gistsync("deadletters", "discard", "--id", first.message_id)
    assert run.code == 0, run.text
    assert run.out == f"discarded {first.message_id}\n"
    assert run.err == f"1 dead letter(s) discarded from {broker.topology.prefix}.dead_letters\n"
    await settle(broker, broker.topology.dead_queue, 1)
    [left] = await list_dead_letters(broker.url, broker.topology.prefix)
    assert left.id == second.message_id


async def test_discard_all_needs_yes_and_removes_nothing_without_it(
    broker_env: dict[str, str], brokers: BrokerFactory
) -> None:
    messages = [TrackUser(login=f"user{n}") for n in range(3)]
    broker, _ = await dead_lettered(brokers, *messages)
    refused = await gistsync("deadletters", "discard", "--all")
    assert refused.code == 2
    assert "add --yes" in refused.err
    await settle(broker, broker.topology.dead_queue, 3)

    run = await gistsync("deadletters", "discard", "--all", "--yes")
    assert run.code == 0, run.text
    assert sorted(run.out.split()) == sorted(["discarded"] * 3 + [m.message_id for m in messages])
    await settle(broker, broker.topology.dead_queue, 0)


async def test_discard_an_unknown_id_exits_1_and_keeps_the_rest(
    broker_env: dict[str, str], brokers: BrokerFactory
) -> None:
    track = TrackUser(login="octocat")
    broker, _ = await dead_lettered(brokers, track)
    run = await gistsync("deadletters", "discard", "--id", "no-such-id")
    assert run.code == 1
    assert run.err.splitlines() == [
        "no dead letter with id no-such-id",
        f"0 dead letter(s) discarded from {broker.topology.prefix}.dead_letters",
    ]
    await settle(broker, broker.topology.dead_queue, 1)


async def test_discard_without_a_choice_is_bad_usage(broker_env: dict[str, str]) -> None:
    run = await gistsync("deadletters", "discard")
    assert run.code == 2
    assert "one of the arguments --id --all is required" in run.err


async def test_list_in_process(broker_env: dict[str, str], brokers: BrokerFactory) -> None:
    track = TrackUser(login="octocat")
    await dead_lettered(brokers, track)
    run = await gistsync("deadletters", "list", "--json")
    assert run.code == 0, run.text
    assert track.message_id in run.out


async def test_the_old_spelling_runs_the_same_command(
    broker_env: dict[str, str], brokers: BrokerFactory
) -> None:
    track = TrackUser(login="octocat")
    await dead_lettered(brokers, track)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gistsync.deadletters",
        "list",
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    run = Run(process.returncode or 0, out.decode(), err.decode())
    assert run.code == 0, run.text
    assert run.out.splitlines()[1].startswith(track.message_id)
    assert run.err.endswith("1 dead letter(s) in " + broker_env["AMQP_PREFIX"] + ".dead_letters\n")
