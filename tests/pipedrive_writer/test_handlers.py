"""The writer end to end: real RabbitMQ, the Pipedrive simulator over HTTP, exact counts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gistsync.contracts import (
    GistsQuery,
    GistsReply,
    MarkGistsSeen,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserStatusQuery,
    UserStatusReply,
    login_key,
)
from gistsync.transport.topology import partition_of
from pipedrive_writer.__main__ import make_client
from pipedrive_writer.handlers import UserNotTracked
from pipedrive_writer.notes import format_note, parse_note
from tests.conftest import PARTITIONS
from tests.pipedrive_writer.conftest import Harness
from tests.pipedrive_writer.factories import discovered, make_gist


def names(records: list[dict[str, Any]], key: str = "name") -> list[str]:
    return [record[key] for record in records]


# --- command.track_user -------------------------------------------------------------------


async def test_tracking_a_user_makes_one_org_person_and_deal(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="Alice", correlation_id="req-1"))
    state = harness.state()
    [org] = state["organizations"]
    [person] = state["persons"]
    [deal] = state["deals"]
    assert org["name"] == "GITHUB_GISTS"
    assert (person["name"], person["org_id"]) == ("Alice", org["id"])
    assert (deal["title"], deal["person_id"], deal["org_id"]) == (
        "Gists for Alice",
        person["id"],
        org["id"],
    )
    [tracked] = await harness.events_for_poller()
    body = json.loads(tracked.body)
    assert (body["type"], body["login"], body["correlation_id"]) == (
        "event.user_tracked",
        "Alice",
        "req-1",
    )


async def test_tracking_again_in_any_case_creates_nothing(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="Alice"))
    await harness.send(TrackUser(login="Alice"), TrackUser(login="alice"), TrackUser(login="ALICE"))
    state = harness.state()
    assert names(state["organizations"]) == ["GITHUB_GISTS"]
    assert names(state["persons"]) == ["Alice"]
    assert names(state["deals"], "title") == ["Gists for Alice"]
    events = await harness.events_for_poller()
    assert [json.loads(e.body)["login"] for e in events] == ["Alice"] * 4


async def test_two_users_tracked_at_once_share_one_org(harness: Harness) -> None:
    await harness.start()
    await harness.send(*(TrackUser(login=login) for login in ("ann", "bob", "cy")))
    state = harness.state()
    assert names(state["organizations"]) == ["GITHUB_GISTS"]
    assert sorted(names(state["persons"])) == ["ann", "bob", "cy"]
    assert len(state["deals"]) == 3


async def test_records_made_by_hand_are_reused_lowest_id_first(harness: Harness) -> None:
    async with harness.api() as pd:
        for name in ("GITHUB_GISTS", "github_gists"):  # org 1 wins, org 2 ignored
            (await pd.post("/organizations", json={"name": name})).raise_for_status()
        for name, org in (("bob", 1), ("BOB", 1), ("carol", 1)):
            (await pd.post("/persons", json={"name": name, "org_id": org})).raise_for_status()
        for title in ("Gists for bob", "gists for BOB"):  # deal 1 wins
            deal = {"title": title, "org_id": 1, "person_id": 1}
            (await pd.post("/deals", json=deal)).raise_for_status()
    before = harness.state()
    await harness.start()

    await harness.send(TrackUser(login="Bob"))
    assert harness.state() == before  # bob: known from the start, nothing made

    await harness.send(TrackUser(login="Carol"))  # person exists, deal does not
    state = harness.state()
    assert len(state["organizations"]) == 2
    assert len(state["persons"]) == 3
    assert [(d["id"], d["title"], d["person_id"], d["org_id"]) for d in state["deals"]] == [
        (1, "Gists for bob", 1, 1),
        (2, "gists for BOB", 1, 1),
        (3, "Gists for Carol", 3, 1),
    ]
    reply = await harness.ask(TrackedUsersQuery())
    assert isinstance(reply, TrackedUsersReply)
    assert reply.users == (TrackedUser(login="bob", unseen=0), TrackedUser(login="Carol", unseen=0))


async def test_a_deal_made_by_hand_after_start_is_found_not_duplicated(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="ann"))
    async with harness.api() as pd:
        person = (await pd.post("/persons", json={"name": "dan", "org_id": 1})).json()["data"]
        deal = {"title": "Gists for Dan", "org_id": 1, "person_id": person["id"]}
        (await pd.post("/deals", json=deal)).raise_for_status()
    await harness.send(TrackUser(login="dan"))
    state = harness.state()
    assert names(state["persons"]) == ["ann", "dan"]
    assert names(state["deals"], "title") == ["Gists for ann", "Gists for Dan"]
    reply = await harness.ask(TrackedUsersQuery())
    assert isinstance(reply, TrackedUsersReply)
    assert [u.login for u in reply.users] == ["ann", "Dan"]


# --- event.gist_discovered ----------------------------------------------------------------


async def test_each_gist_becomes_one_activity_with_the_right_fields(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"))
    events = [discovered(n) for n in range(1, 6)]
    await harness.send(*events)
    state = harness.state()
    [org], [person], [deal] = state["organizations"], state["persons"], state["deals"]
    activities = state["activities"]
    assert len(activities) == 5
    by_gist = {}
    for activity in activities:
        note = parse_note(activity["note"])
        assert note is not None
        by_gist[note.gist_id] = (activity, note)
    assert sorted(by_gist) == sorted(e.gist.id for e in events)
    for event in events:
        activity, note = by_gist[event.gist.id]
        gist = event.gist
        assert activity["subject"] == gist.title
        assert activity["type"] == "task"
        assert activity["done"] is False
        assert activity["due_date"] == gist.created_at.date().isoformat()
        assert (activity["deal_id"], activity["org_id"]) == (deal["id"], org["id"])
        assert activity["participants"] == [{"person_id": person["id"], "primary": True}]
        assert activity["person_id"] == person["id"]
        assert activity["note"] == format_note(gist)
        assert (note.html_url, note.created_at, note.files) == (
            gist.html_url,
            gist.created_at,
            gist.files,
        )


async def test_the_same_event_twice_makes_one_activity(harness: Harness) -> None:
    writer = await harness.start()
    await harness.send(TrackUser(login="alice"))
    event = discovered(1)
    await harness.send(event, event)  # redelivered by the broker
    await asyncio.gather(*(writer.handle(discovered(2)) for _ in range(5)))  # at once
    assert sorted(harness.activities()) == ["alice0001", "alice0002"]


async def test_a_new_gist_on_a_warm_cache_costs_exactly_one_request(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1))
    harness.reset_stats()
    await harness.send(discovered(2))
    assert harness.requests() == {"POST /activities": {"200": 1}}
    assert harness.sb.pipedrive.stats.tokens_spent == 5


async def test_a_gist_for_a_user_not_tracked_yet_fails_for_now_then_lands(
    harness: Harness,
) -> None:
    # The transport keeps a user's messages in order, so the event waits (retried in place)
    # rather than being overtaken by the user's later track_user: here both by hand.
    writer = await harness.start()
    event = discovered(1, login="zed")
    with pytest.raises(UserNotTracked):
        await writer.handle(event)
    assert harness.state()["activities"] == []
    await harness.send(TrackUser(login="zed"))
    await writer.handle(event)
    assert list(harness.activities()) == ["zed0001"]


async def test_an_untracked_user_forever_ends_in_dead_letters(harness: Harness) -> None:
    await harness.start(harness.settings(max_attempts=2))
    await harness.send(discovered(1, login="nobody"))
    [dead] = await harness.drain(f"{harness.prefix}.dead_letters")
    assert dead.headers["x-dead-reason"] == "gave up after 2 attempts: nobody is not tracked (yet)"
    assert harness.request_total() == 1  # the start-up search; nothing for the event


async def test_a_400_from_pipedrive_dead_letters_the_message_with_the_reason(
    harness: Harness,
) -> None:
    # The simulator answers no 4xx on its own but for a deleted record (which the writer
    # mends): a refusal the writer cannot mend is made here, in front of it.
    class Refusing(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/activities"):
                return httpx.Response(400, json={"success": False, "error": "Refused here"})
            return await super().handle_async_request(request)

    settings = harness.settings()
    await harness.start(settings, make_client(settings, transport=Refusing()))
    await harness.send(TrackUser(login="alice"))
    await harness.send(discovered(1))
    [dead] = await harness.drain(f"{harness.prefix}.dead_letters")
    assert dead.headers["x-dead-reason"] == "Pipedrive answered 400 to addActivity: Refused here"
    assert harness.sb.pipedrive_token not in json.dumps(dict(dead.headers))
    assert json.loads(dead.body)["gist"]["id"] == "alice0001"


# --- queries -------------------------------------------------------------------------------


async def test_queries_cost_no_pipedrive_request(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="bob"), TrackUser(login="Alice"))
    await harness.send(*(discovered(n, login="Alice") for n in (1, 2, 3)), discovered(1, "bob"))
    harness.reset_stats()

    users = await harness.ask(TrackedUsersQuery())
    unseen = await harness.ask(GistsQuery(login="alice"))
    unknown = await harness.ask(GistsQuery(login="carol"))

    assert harness.request_total() == 0
    assert users == TrackedUsersReply(
        users=(TrackedUser(login="Alice", unseen=3), TrackedUser(login="bob", unseen=1)),
        message_id=users.message_id,
        correlation_id=users.correlation_id,
        sent_at=users.sent_at,
    )
    assert isinstance(unseen, GistsReply)
    assert (unseen.tracked, unseen.login) == (True, "Alice")
    assert [g.id for g in unseen.gists] == ["alice0003", "alice0002", "alice0001"]  # newest first
    first = make_gist(3, "Alice")
    assert (unseen.gists[0].title, unseen.gists[0].html_url, unseen.gists[0].files) == (
        first.title,
        first.html_url,
        first.files,
    )
    assert unseen.gists[0].created_at == first.created_at
    assert isinstance(unknown, GistsReply)
    assert (unknown.tracked, unknown.gists) == (False, ())


async def test_one_users_status_and_one_partitions_users_cost_no_request(
    harness: Harness,
) -> None:
    await harness.start()
    logins = ["Alice", "bob", "carol", "dave", "erin"]
    await harness.send(*(TrackUser(login=login) for login in logins))
    await harness.send(discovered(1, login="Alice"))
    harness.reset_stats()

    alice = await harness.ask(UserStatusQuery(login="ALICE"))
    nobody = await harness.ask(UserStatusQuery(login="zed"))
    shares = [await harness.ask(TrackedUsersQuery(partition=n)) for n in range(PARTITIONS)]

    assert harness.request_total() == 0
    assert isinstance(alice, UserStatusReply) and isinstance(nobody, UserStatusReply)
    assert (alice.user, nobody.user) == (TrackedUser(login="Alice", unseen=1), None)
    for n, share in enumerate(shares):
        assert isinstance(share, TrackedUsersReply)
        expected = [u for u in logins if partition_of(login_key(u), PARTITIONS) == n]
        assert [user.login for user in share.users] == expected


# --- command.mark_seen ---------------------------------------------------------------------


async def test_mark_seen_sets_done_and_the_gists_leave_the_unseen_list(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), *(discovered(n) for n in (1, 2, 3)))
    harness.reset_stats()
    seen = MarkGistsSeen(login="ALICE", gist_ids=("alice0001", "alice0003", "nosuchgist"))
    await harness.send(seen)
    assert harness.requests() == {"PATCH /activities/{id}": {"200": 2}}
    assert harness.done() == {"alice0001": True, "alice0002": False, "alice0003": True}
    unseen = await harness.ask(GistsQuery(login="alice"))
    assert isinstance(unseen, GistsReply)
    assert [g.id for g in unseen.gists] == ["alice0002"]

    harness.reset_stats()
    await harness.send(seen)  # again: already done, nothing to send
    assert harness.request_total() == 0


async def test_mark_seen_with_a_stale_activity_id_refreshes_and_carries_on(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), *(discovered(n) for n in (1, 2, 3)))
    activities = harness.activities()
    # By hand: gist 1's activity deleted; gist 2's deleted and made again under a new id.
    del harness.pipedrive.activities[activities["alice0001"]["id"]]
    old = activities["alice0002"]
    del harness.pipedrive.activities[old["id"]]
    keep = ("subject", "type", "deal_id", "org_id", "participants", "note", "due_date")
    harness.pipedrive.create_activity({k: old[k] for k in keep})
    harness.reset_stats()

    await harness.send(MarkGistsSeen(login="alice", gist_ids=("alice0001", "alice0002")))

    # Gist 1's activity is added again, seen; gist 2's new activity is marked.
    assert harness.requests() == {
        "PATCH /activities/{id}": {"404": 1, "200": 1},
        "GET /activities": {"200": 1},
        "POST /activities": {"200": 1},
    }
    assert harness.done() == {"alice0001": True, "alice0002": True, "alice0003": False}
    unseen = await harness.ask(GistsQuery(login="alice"))
    assert isinstance(unseen, GistsReply)
    assert [g.id for g in unseen.gists] == ["alice0003"]
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []


# --- query.gists and command.untrack_user --------------------------------------------------


async def test_gists_query_gives_unseen_or_all_newest_first(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), *(discovered(n) for n in (1, 2, 3)))
    await harness.send(MarkGistsSeen(login="alice", gist_ids=("alice0002",)))
    harness.reset_stats()
    unseen = await harness.ask(GistsQuery(login="ALICE"))
    everything = await harness.ask(GistsQuery(login="alice", include_seen=True))
    stranger = await harness.ask(GistsQuery(login="bob", include_seen=True))
    assert isinstance(unseen, GistsReply)
    assert isinstance(everything, GistsReply)
    assert isinstance(stranger, GistsReply)
    assert (unseen.login, [(g.id, g.seen) for g in unseen.gists]) == (
        "alice",
        [("alice0003", False), ("alice0001", False)],
    )
    assert [(g.id, g.seen) for g in everything.gists] == [
        ("alice0003", False),
        ("alice0002", True),
        ("alice0001", False),
    ]
    assert (stranger.tracked, stranger.gists) == (False, ())
    assert harness.request_total() == 0


async def test_untrack_marks_the_deal_lost_and_tracking_again_reopens_it(
    harness: Harness,
) -> None:
    async with harness.run():
        await harness.send(TrackUser(login="Alice"), discovered(1, "Alice"))
        await harness.events_for_poller()
        harness.reset_stats()

        await harness.send(UntrackUser(login="alice", correlation_id="req-7"))
        assert harness.requests() == {"PATCH /deals/{id}": {"200": 1}}
        [deal] = harness.state()["deals"]
        assert deal["status"] == "lost"
        assert len(harness.state()["activities"]) == 1  # the records stay
        [event] = await harness.events_for_poller()
        body = json.loads(event.body)
        assert (body["type"], body["login"], body["correlation_id"]) == (
            "event.user_untracked",
            "Alice",
            "req-7",
        )
        reply = await harness.ask(TrackedUsersQuery())
        assert isinstance(reply, TrackedUsersReply)
        assert reply.users == ()
        # A late gist of the untracked user is dropped, not retried into dead letters.
        await harness.send(discovered(2, "Alice"))
        assert len(harness.state()["activities"]) == 1

    # A restart does not bring the user back: a lost deal is not a tracked user.
    await harness.start()
    reply = await harness.ask(TrackedUsersQuery())
    assert isinstance(reply, TrackedUsersReply)
    assert reply.users == ()

    await harness.send(TrackUser(login="Alice"))
    state = harness.state()
    [deal] = state["deals"]
    assert deal["status"] == "open"
    assert len(state["persons"]) == 1
    unseen = await harness.ask(GistsQuery(login="alice"))
    assert isinstance(unseen, GistsReply)
    assert [g.id for g in unseen.gists] == ["alice0001"]
