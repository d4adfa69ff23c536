"""The cache and the duplicate rule: exact, case-insensitive, lowest id wins."""

from __future__ import annotations

from datetime import UTC, datetime

from gistsync.contracts import GistView, TrackedUser
from pipedrive_writer.notes import format_note
from pipedrive_writer.state import (
    Cache,
    CachedGist,
    UserRecord,
    deal_login,
    deal_title,
    gists_from_activities,
    group_deals,
    pick,
)
from tests.pipedrive_writer.test_notes import gist


def test_pick_is_exact_case_insensitive_and_lowest_id_wins() -> None:
    records = [
        {"id": 9, "name": "GITHUB_GISTS"},
        {"id": 4, "name": "github_gists"},
        {"id": 2, "name": "GITHUB_GISTS (old)"},
        {"id": 1, "name": "GITHUB GISTS"},
        {"id": 7, "name": "Github_Gists"},
    ]
    winner, ignored = pick(records, "name", "GITHUB_GISTS")
    assert winner == {"id": 4, "name": "github_gists"}
    assert [r["id"] for r in ignored] == [7, 9]


def test_pick_finds_nothing() -> None:
    assert pick([{"id": 1, "name": "alicia"}, {"id": 2, "name": None}], "name", "alice") == (
        None,
        [],
    )


def test_deal_titles() -> None:
    assert deal_title("Alice") == "Gists for Alice"
    assert deal_login("Gists for Alice") == "Alice"
    assert deal_login("gists FOR alice") == "alice"
    assert deal_login("Gists for ") is None
    assert deal_login("Gists for not a login") is None
    assert deal_login("Gists for undefined2") == "undefined2"
    assert deal_login("Other deal") is None
    assert deal_login(None) is None


def test_group_deals_keeps_the_lowest_id_per_login() -> None:
    deals = [
        {"id": 30, "title": "Gists for alice", "person_id": 3},
        {"id": 10, "title": "Gists for Alice", "person_id": 1},
        {"id": 20, "title": "Gists for bob", "person_id": 2},
        {"id": 5, "title": "Something else"},
        {"id": 4, "title": "Gists for bob", "is_deleted": True},
    ]
    grouped = group_deals(deals)
    assert sorted(grouped) == ["alice", "bob"]
    winner, ignored = grouped["alice"]
    assert winner["id"] == 10
    assert [d["id"] for d in ignored] == [30]
    assert grouped["bob"][0]["id"] == 20
    assert grouped["bob"][1] == []


def test_activities_become_gists_and_duplicates_lose() -> None:
    note = format_note(gist(id="g1"))
    activities = [
        {"id": 12, "subject": "dup", "done": False, "note": note},
        {"id": 11, "subject": "Hello", "done": True, "note": note, "due_date": "2024-05-01"},
        {
            "id": 13,
            "subject": "old one",
            "done": False,
            "note": "<p>abc123</p>",
            "due_date": "2020-01-02",
        },
        {"id": 14, "subject": "by hand", "done": False, "note": "call back"},
        {"id": 15, "subject": "no note", "done": False},
    ]
    gists, ignored = gists_from_activities(activities)
    assert sorted(gists) == ["abc123", "g1"]
    assert gists["g1"].activity_id == 11
    assert gists["g1"].done is True
    assert gists["g1"].title == "Hello"
    assert gists["g1"].created_at == datetime(2024, 5, 1, 23, 30, tzinfo=UTC)
    assert gists["abc123"] == CachedGist(
        id="abc123",
        activity_id=13,
        done=False,
        title="old one",
        html_url="https://gist.github.com/abc123",
        files=(),
        created_at=datetime(2020, 1, 2, tzinfo=UTC),
    )
    assert [g.activity_id for g in ignored] == [12]


def cached(gist_id: str, activity_id: int, day: int | None, done: bool = False) -> CachedGist:
    created = datetime(2024, 1, day, tzinfo=UTC) if day else None
    return CachedGist(gist_id, activity_id, done, f"t{gist_id}", None, (), created)


def test_unseen_is_newest_first_and_queries_sort_by_login() -> None:
    bob = UserRecord("bob", deal_id=2, person_id=None, org_id=1)
    alice = UserRecord("Alice", deal_id=1, person_id=None, org_id=1)
    alice.gists = {
        g.id: g
        for g in (
            cached("a", 1, 3),
            cached("b", 2, 5),
            cached("c", 3, None),
            cached("d", 4, 9, done=True),
            cached("e", 5, 5),
        )
    }
    cache = Cache(org_id=1, users={"bob": bob, "alice": alice})
    assert [g.id for g in alice.unseen()] == ["e", "b", "a", "c"]
    assert cache.tracked_users() == (
        TrackedUser(login="Alice", unseen=4),
        TrackedUser(login="bob", unseen=0),
    )
    assert cache.get("ALICE") is alice
    assert alice.gists["a"].view() == GistView(
        id="a", title="ta", seen=False, created_at=datetime(2024, 1, 3, tzinfo=UTC), files=()
    )
