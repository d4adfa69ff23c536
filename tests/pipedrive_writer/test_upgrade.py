"""The writer of this build while producers of the next roll out: it writes the activity of a
gist published by the next minor (new fields and all), and dead-letters, with the reason,
only a message of another version."""

from __future__ import annotations

import json

from gistsync.contracts import TrackUser
from tests.common.next_build import INCOMPATIBLE, next_discovered, with_version
from tests.common.test_broker import raw_publish
from tests.pipedrive_writer.conftest import Harness, consumed
from tests.pipedrive_writer.factories import discovered, make_gist
from tests.waiting import eventually


async def test_the_next_minors_gist_becomes_an_activity_another_version_dead_letters(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"))
    dead = f"{harness.prefix}.dead_letters"

    await harness.send(next_discovered(make_gist(1)))
    [activity] = harness.activities().values()
    assert activity["subject"] == make_gist(1).title
    assert await harness.drain(dead) == []

    before = consumed()
    key = f"event.gist_discovered.p{harness.broker.topology.partition_of('alice')}"
    await raw_publish(harness.broker, with_version(discovered(2), INCOMPATIBLE), key)
    await eventually(lambda: consumed() > before)
    [letter] = await harness.drain(dead)
    assert str(letter.headers["x-dead-reason"]).startswith(
        f"unsupported schema version {INCOMPATIBLE} for event.gist_discovered (this build reads"
    )
    assert json.loads(letter.body)["gist"]["id"] == "alice0002"
    assert sorted(harness.activities()) == ["alice0001"]
