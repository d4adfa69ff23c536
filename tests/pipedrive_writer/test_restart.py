"""A writer starting over existing data: it rebuilds its cache from Pipedrive, reading pages
(not gists), and creates nothing that is already there."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from gistsync.contracts import (
    GistsQuery,
    GistsReply,
    GistView,
    MarkGistsSeen,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
)
from sandbox.pipedrive_state import DEAL
from tests.pipedrive_writer.conftest import Harness
from tests.pipedrive_writer.factories import discovered, make_gist, seed_user
from tests.waiting import eventually

LOGINS = ("ann", "bob", "cy")


async def test_a_restarted_writer_creates_nothing_and_reads_only_pages(harness: Harness) -> None:
    events = [discovered(n, login) for login in LOGINS for n in range(1, 5)]
    async with harness.run():
        await harness.send(*(TrackUser(login=login) for login in LOGINS))
        await harness.send(*events)
        await harness.send(MarkGistsSeen(login="bob", gist_ids=("bob0001", "bob0002")))
    before = harness.state()
    assert len(before["activities"]) == 12
    harness.reset_stats()

    await harness.start()
    # One search, one page of deals and one of deleted deals, one page of every activity:
    # 4, whatever the number of users.
    assert harness.requests() == {
        "GET /organizations/search": {"200": 1},
        "GET /deals": {"200": 2},
        "GET /activities": {"200": 1},
    }
    harness.reset_stats()
    await harness.send(*(TrackUser(login=login.upper()) for login in LOGINS))
    await harness.send(*events)
    assert harness.request_total() == 0
    assert harness.state() == before
    users = await harness.ask(TrackedUsersQuery())
    assert isinstance(users, TrackedUsersReply)
    assert users.users == (
        TrackedUser(login="ann", unseen=4),
        TrackedUser(login="bob", unseen=2),
        TrackedUser(login="cy", unseen=4),
    )


async def test_startup_reads_grow_with_pages_not_with_gists(harness: Harness) -> None:
    pipedrive = harness.pipedrive
    org = pipedrive.create_organization({"name": "GITHUB_GISTS"})
    sizes = {"ann": 1001, "bob": 500, "cy": 2}  # 1,503 activities: 4 pages of 500
    for login, size in sizes.items():
        seed_user(pipedrive, org["id"], login, [make_gist(n, login) for n in range(size)])

    await harness.start()
    assert harness.requests() == {
        "GET /organizations/search": {"200": 1},
        "GET /deals": {"200": 2},
        "GET /activities": {"200": 4},
    }
    users = await harness.ask(TrackedUsersQuery())
    assert isinstance(users, TrackedUsersReply)
    assert users.users == tuple(TrackedUser(login=k, unseen=v) for k, v in sizes.items())


async def test_small_pages_are_all_read(harness: Harness) -> None:
    pipedrive = harness.pipedrive
    org = pipedrive.create_organization({"name": "GITHUB_GISTS"})
    for login in ("ann", "bob", "cy", "dee", "eve"):
        seed_user(pipedrive, org["id"], login, [make_gist(n, login) for n in range(3)])

    await harness.start(harness.settings(pipedrive_page_limit=2))
    assert harness.requests() == {
        "GET /organizations/search": {"200": 1},
        "GET /deals": {"200": 4},  # 5 deals, then no deleted deal
        "GET /activities": {"200": 8},  # 15 activities, the whole account's, 2 a page
    }
    users = await harness.ask(TrackedUsersQuery())
    assert isinstance(users, TrackedUsersReply)
    assert [u.unseen for u in users.users] == [3] * 5


async def test_the_predecessors_activities_are_recognised(harness: Harness) -> None:
    pipedrive = harness.pipedrive
    org = pipedrive.create_organization({"name": "GITHUB_GISTS"})
    old = [make_gist(n, "ann") for n in (1, 2)]
    seed_user(pipedrive, org["id"], "ann", old, predecessor=True, done=frozenset({"ann0001"}))
    before = harness.state()

    await harness.start()
    harness.reset_stats()
    await harness.send(TrackUser(login="ann"), *(discovered(n, "ann") for n in (1, 2)))
    assert harness.request_total() == 0
    assert harness.state() == before

    unseen = await harness.ask(GistsQuery(login="Ann"))
    assert isinstance(unseen, GistsReply)
    assert unseen.gists == (
        GistView(
            id="ann0002",
            title=old[1].description or "",
            seen=False,
            html_url="https://gist.github.com/ann0002",
            files=(),
            created_at=None,
        ),
    )
    await harness.send(discovered(3, "ann"))
    assert harness.requests() == {"POST /activities": {"200": 1}}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_refresh_timer_notices_changes_made_by_hand(harness: Harness) -> None:
    pipedrive = harness.pipedrive
    org = pipedrive.create_organization({"name": "GITHUB_GISTS"})
    seed_user(pipedrive, org["id"], "ann", [make_gist(n, "ann") for n in (1, 2)])
    gone = seed_user(pipedrive, org["id"], "bob", [make_gist(1, "bob")])
    pipedrive.create_deal({"title": "Gists for ANN", "org_id": org["id"]})  # a duplicate
    duplicates = sample("gistsync_pipedrive_duplicates_ignored_total", entity="deal")
    await harness.start(harness.settings(refresh_interval_seconds=0.2))

    # By hand: a new user, gist ann0001 marked done, bob's deal deleted (bob stays
    # tracked: his deal is made again before his next write).
    seed_user(pipedrive, org["id"], "cy", [make_gist(1, "cy")])
    [first] = [a for a in pipedrive.activities.values() if "ann0001" in a["note"]]
    pipedrive.update_activity(first["id"], {"done": True})
    pipedrive.delete(DEAL, gone)

    async def users() -> tuple[TrackedUser, ...]:
        reply = await harness.ask(TrackedUsersQuery())
        assert isinstance(reply, TrackedUsersReply)
        return reply.users

    expected = (
        TrackedUser(login="ann", unseen=1),
        TrackedUser(login="bob", unseen=1),
        TrackedUser(login="cy", unseen=1),
    )
    for _ in range(100):
        if await users() == expected:
            break
        await asyncio.sleep(0.05)
    assert await users() == expected
    # Two more refreshes: the duplicate is still reported only once.
    refreshes = sample("gistsync_pipedrive_cache_loads_total", kind="refresh")
    await eventually(
        lambda: sample("gistsync_pipedrive_cache_loads_total", kind="refresh") >= refreshes + 2
    )
    assert sample("gistsync_pipedrive_duplicates_ignored_total", entity="deal") == duplicates + 1
