"""Changes made by hand in Pipedrive (through its API, as the web app makes them): noticed on
a write, at start or by a refresh, and put right without a dead letter or a duplicate."""

from __future__ import annotations

from typing import Any

from gistsync.contracts import (
    GistDeleted,
    GistsQuery,
    GistsReply,
    MarkGistsSeen,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
)
from pipedrive_writer.notes import parse_note
from sandbox.pipedrive_state import ACTIVITY, DEAL, PERSON
from tests.pipedrive_writer.conftest import Harness
from tests.pipedrive_writer.factories import discovered, make_gist, seed_user


def live(harness: Harness, kind: str) -> list[dict[str, Any]]:
    return [r for r in harness.state()[kind] if not r["is_deleted"]]


def gists_on(harness: Harness, deal_id: int) -> dict[str, bool]:
    """Gist id → done, of the live activities on one deal; one activity per gist."""
    found: dict[str, bool] = {}
    for activity in live(harness, "activities"):
        if activity["deal_id"] == deal_id:
            note = parse_note(activity["note"])
            assert note is not None
            assert note.gist_id not in found, f"two activities for {note.gist_id}"
            found[note.gist_id] = activity["done"]
    return found


async def tracked(harness: Harness) -> tuple[TrackedUser, ...]:
    reply = await harness.ask(TrackedUsersQuery())
    assert isinstance(reply, TrackedUsersReply)
    return reply.users


async def test_a_deal_deleted_by_hand_is_made_again_on_the_next_write(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1), discovered(2))
    await harness.send(MarkGistsSeen(login="alice", gist_ids=("alice0001",)))
    [deal] = live(harness, "deals")
    harness.pipedrive.delete(DEAL, deal["id"])
    harness.reset_stats()

    await harness.send(discovered(3))

    assert harness.requests() == {
        "POST /activities": {"400": 1, "200": 3},  # refused; 2 added again, then the new one
        "GET /deals/search": {"200": 1},
        "GET /persons/search": {"200": 1},  # the person is still there
        "POST /deals": {"200": 1},
    }
    [new] = live(harness, "deals")
    assert new["id"] != deal["id"] and new["person_id"] == deal["person_id"]
    assert gists_on(harness, new["id"]) == {
        "alice0001": True,
        "alice0002": False,
        "alice0003": False,
    }
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []
    harness.reset_stats()
    await harness.send(discovered(1), discovered(3))
    assert harness.request_total() == 0


async def test_a_deleted_deal_keeps_its_user_tracked_across_a_restart(harness: Harness) -> None:
    pipedrive = harness.pipedrive
    org = pipedrive.create_organization({"name": "GITHUB_GISTS"})
    deal_id = seed_user(pipedrive, org["id"], "ann", [make_gist(n, "ann") for n in (1, 2)])
    seed_user(pipedrive, org["id"], "bob", [make_gist(1, "bob")])
    pipedrive.delete(DEAL, deal_id)

    await harness.start()
    assert await tracked(harness) == (
        TrackedUser(login="ann", unseen=2),
        TrackedUser(login="bob", unseen=1),
    )
    await harness.send(discovered(3, "ann"))

    [new] = [d for d in live(harness, "deals") if d["title"] == "Gists for ann"]
    assert gists_on(harness, new["id"]) == {"ann0001": False, "ann0002": False, "ann0003": False}
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []
    assert await tracked(harness) == (
        TrackedUser(login="ann", unseen=3),
        TrackedUser(login="bob", unseen=1),
    )


async def test_a_person_deleted_by_hand_is_made_again(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1))
    [deal] = live(harness, "deals")
    harness.pipedrive.delete(PERSON, deal["person_id"])
    harness.reset_stats()

    await harness.send(discovered(2))

    assert harness.requests() == {
        "POST /activities": {"400": 1, "200": 1},
        "GET /deals/search": {"200": 1},
        "GET /persons/search": {"200": 1},
        "POST /persons": {"200": 1},
        "PATCH /deals/{id}": {"200": 1},  # the same deal, linked to the new person
    }
    [person] = live(harness, "persons")
    assert [d["person_id"] for d in live(harness, "deals")] == [person["id"]]
    assert gists_on(harness, deal["id"]) == {"alice0001": False, "alice0002": False}
    assert await harness.drain(f"{harness.prefix}.dead_letters") == []


async def test_an_activity_deleted_by_hand_is_added_again_when_marked_seen(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1), discovered(2))
    first = harness.activities()["alice0001"]
    harness.pipedrive.delete(ACTIVITY, first["id"])
    harness.reset_stats()

    await harness.send(MarkGistsSeen(login="alice", gist_ids=("alice0001",)))

    # Pipedrive keeps a deleted record 30 days: the PATCH answers it, flagged.
    assert harness.requests() == {
        "PATCH /activities/{id}": {"200": 1},
        "POST /activities": {"200": 1},
    }
    [deal] = live(harness, "deals")
    assert gists_on(harness, deal["id"]) == {"alice0001": True, "alice0002": False}


async def test_a_refresh_sees_activities_done_renamed_or_deleted_by_hand(harness: Harness) -> None:
    writer = await harness.start()
    await harness.send(TrackUser(login="alice"), *(discovered(n) for n in (1, 2, 3)))
    await writer.refresh()  # the first reads everything; the next ones what changed
    activities = harness.activities()
    harness.pipedrive.update_activity(activities["alice0001"]["id"], {"done": True})
    harness.pipedrive.update_activity(activities["alice0002"]["id"], {"subject": "by hand"})
    harness.pipedrive.delete(ACTIVITY, activities["alice0003"]["id"])
    harness.configure({"behaviour": {"deleted_in_updated_since": True}})
    harness.reset_stats()

    await writer.refresh()

    requests = harness.requests()
    assert requests.pop("POST /activities") == {"200": 1}  # alice0003 added again
    assert requests == {
        "GET /organizations/{id}": {"200": 1},
        "GET /deals": {"200": 2},
        "GET /activities": {"200": 1},
    }
    reply = await harness.ask(GistsQuery(login="alice", include_seen=True))
    assert isinstance(reply, GistsReply)
    assert {g.id: (g.title, g.seen) for g in reply.gists} == {
        "alice0001": ("Gist number 1 <b>of</b> alice", True),
        "alice0002": ("by hand", False),
        "alice0003": ("Gist number 3 <b>of</b> alice", False),
    }


async def test_an_edited_gist_patches_its_subject_once(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1))
    harness.reset_stats()

    await harness.send(discovered(1, description="A better title"))
    await harness.send(discovered(1, description="A better title"))  # again: nothing

    assert harness.requests() == {"PATCH /activities/{id}": {"200": 1}}
    [activity] = harness.state()["activities"]
    assert activity["subject"] == "A better title"
    assert parse_note(activity["note"]) is not None


async def test_a_gist_deleted_on_github_marks_its_activity_once(harness: Harness) -> None:
    await harness.start()
    await harness.send(TrackUser(login="alice"), discovered(1))
    harness.reset_stats()

    await harness.send(
        GistDeleted(login="Alice", gist_id="alice0001"),
        GistDeleted(login="alice", gist_id="alice0001"),  # again: nothing
        GistDeleted(login="alice", gist_id="alice0009"),  # never known: nothing
    )

    assert harness.requests() == {"PATCH /activities/{id}": {"200": 1}}
    [activity] = harness.state()["activities"]
    assert activity["subject"] == "[deleted on GitHub] Gist number 1 <b>of</b> alice"
    note = parse_note(activity["note"])
    assert note is not None and note.gist_id == "alice0001"
