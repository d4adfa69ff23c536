"""Deletes in the Pipedrive simulator: what GET by id, lists, searches and links show after
`DELETE /{entity}/{id}`, in each configurable behaviour (see the sandbox README)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.testing import FakeClock
from tests.contract import Contract

START = "2026-03-01T12:00:00Z"
LATER = "2026-03-01T12:01:00Z"


@pytest.fixture
def world(sandbox: Sandbox) -> None:
    """Org 1, persons 1 (Alice, in the org) and 2 (Bob), deals 1 (Alice's) and 2 (Bob's, won),
    activities 1 and 2 on deal 1."""
    pd = sandbox.pipedrive
    pd.create_organization({"name": "GITHUB_GISTS"})
    pd.create_person({"name": "Alice", "org_id": 1})
    pd.create_person({"name": "Bob"})
    pd.create_deal({"title": "Gists for alice", "org_id": 1, "person_id": 1})
    pd.create_deal({"title": "Gists for bob", "person_id": 2, "status": "won"})
    for n in (1, 2):
        pd.create_activity({"subject": f"gist {n}", "deal_id": 1, "org_id": 1})


async def ids(pd: httpx.AsyncClient, path: str, **params: Any) -> list[int]:
    response = await pd.get(path, params=params)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    if path.endswith("/search"):
        return [item["item"]["id"] for item in data["items"]]
    return [record["id"] for record in data]


async def test_deleted_deal_is_flagged_and_listed_only_with_status_deleted(
    sandbox: Sandbox,
    pd: httpx.AsyncClient,
    clock: FakeClock,
    world: None,
    pipedrive_contract: Contract,
) -> None:
    clock.advance(60)
    deleted = await pd.delete("/deals/1")
    assert deleted.json() == {"success": True, "data": {"id": 1}}
    assert pipedrive_contract.check(deleted) == "operation"
    assert sandbox.pipedrive.stats.tokens_spent == 3
    got = await pd.get("/deals/1")
    deal = got.json()["data"]
    assert (deal["is_deleted"], deal["status"], deal["update_time"]) == (True, "deleted", LATER)
    assert deal["add_time"] == START
    assert pipedrive_contract.check(got) == "operation"
    assert await ids(pd, "/deals") == [2]
    assert await ids(pd, "/deals", org_id=1) == []
    assert await ids(pd, "/deals", status="deleted") == [1]
    assert await ids(pd, "/deals", status="open") == []
    assert await ids(pd, "/deals/search", term="gists for") == [2]
    # "Multiple statuses can be included as a comma separated array" (the schema's enum
    # admits one value, so such a request does not conform; the answer still does).
    both = await pd.get("/deals", params={"status": "won,deleted"})
    assert [d["id"] for d in both.json()["data"]] == [1, 2]
    assert pipedrive_contract.check(both, request_valid=False) == "operation"
    # Deleting again changes nothing, so a retried delete succeeds.
    clock.advance(60)
    again = await pd.delete("/deals/1")
    assert again.json() == {"success": True, "data": {"id": 1}}
    assert (await pd.get("/deals/1")).json()["data"]["update_time"] == LATER


async def test_deleted_deal_can_keep_its_status(
    sandbox: Sandbox, pd: httpx.AsyncClient, world: None
) -> None:
    sandbox.pipedrive.config.behaviour.deleted_deal_status = "kept"
    await pd.delete("/deals/2")
    deal = (await pd.get("/deals/2")).json()["data"]
    assert (deal["is_deleted"], deal["status"]) == (True, "won")
    assert await ids(pd, "/deals", status="won") == []
    assert await ids(pd, "/deals", status="deleted") == [2]


async def test_deal_restored_through_patch_is_back_with_its_status(
    pd: httpx.AsyncClient, clock: FakeClock, world: None
) -> None:
    await pd.delete("/deals/2")
    clock.advance(60)
    # is_deleted is part of the spec's PATCH body.
    restored = (await pd.patch("/deals/2", json={"is_deleted": False})).json()["data"]
    assert (restored["is_deleted"], restored["status"]) == (False, "won")
    assert restored["update_time"] == LATER
    assert await ids(pd, "/deals", status="won") == [2]
    await pd.patch("/deals/1", json={"is_deleted": True})
    assert await ids(pd, "/deals", status="deleted") == [1]
    clock.advance(31 * 86_400)  # the restored deal is not purged with the deleted one
    assert (await pd.get("/deals/2")).status_code == 200
    assert (await pd.get("/deals/1")).status_code == 404


@pytest.mark.parametrize(
    ("path", "search"),
    [("/persons", "/persons/search"), ("/organizations", "/organizations/search"),
     ("/activities", None)],
)  # fmt: skip
async def test_deleted_records_leave_lists_and_searches(
    pd: httpx.AsyncClient,
    clock: FakeClock,
    world: None,
    pipedrive_contract: Contract,
    path: str,
    search: str | None,
) -> None:
    before = await ids(pd, path)
    clock.advance(60)
    deleted = await pd.delete(f"{path}/1")
    assert deleted.json() == {"success": True, "data": {"id": 1}}
    got = await pd.get(f"{path}/1")
    assert (got.json()["data"]["is_deleted"], got.json()["data"]["update_time"]) == (True, LATER)
    assert pipedrive_contract.check(got) == "operation"
    assert await ids(pd, path) == before[1:]
    assert await ids(pd, path, updated_since=LATER) == []
    assert await ids(pd, path, ids="1") == []
    if search is not None:
        term = "alice" if path == "/persons" else "github"
        assert await ids(pd, search, term=term) == []


async def test_deleted_activities_leave_the_deals_list(pd: httpx.AsyncClient, world: None) -> None:
    await pd.delete("/activities/2")
    assert await ids(pd, "/activities", deal_id=1) == [1]
    assert await ids(pd, "/activities", org_id=1, done="false") == [1]


async def test_incremental_reads_can_be_told_to_report_deletes(
    sandbox: Sandbox,
    pd: httpx.AsyncClient,
    clock: FakeClock,
    world: None,
    pipedrive_contract: Contract,
) -> None:
    sandbox.pipedrive.config.behaviour.deleted_in_updated_since = True
    clock.advance(60)
    for path in ("/persons/2", "/activities/1", "/organizations/1", "/deals/1"):
        assert (await pd.delete(path)).status_code == 200
    for path, deleted_id, live in [
        ("/persons", 2, [1]),
        ("/activities", 1, [2]),
        ("/organizations", 1, []),
    ]:
        changed = await pd.get(path, params={"updated_since": LATER})
        assert [(r["id"], r["is_deleted"]) for r in changed.json()["data"]] == [(deleted_id, True)]
        assert pipedrive_contract.check(changed) == "operation"
        # Without updated_since a list still leaves them out.
        assert await ids(pd, path) == live
    # Deals follow the spec whatever the setting: deleted ones only with status=deleted.
    assert await ids(pd, "/deals", updated_since=LATER) == []
    assert await ids(pd, "/deals", updated_since=LATER, status="deleted") == [1]


@pytest.mark.parametrize("path", ["/persons/2", "/activities/1", "/organizations/1", "/deals/1"])
async def test_deleted_records_can_answer_404_by_id(
    sandbox: Sandbox,
    pd: httpx.AsyncClient,
    pd_control: httpx.AsyncClient,
    world: None,
    pipedrive_contract: Contract,
    path: str,
) -> None:
    patched = await pd_control.patch("/config", json={"behaviour": {"deleted_by_id": "not_found"}})
    assert patched.status_code == 200
    assert (await pd.delete(path)).status_code == 200
    for response in (
        await pd.get(path),
        await pd.patch(path, json={}),
        await pd.delete(path),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == "Entity was not found"
        assert pipedrive_contract.check(response) == "fallback"
    kind = path.split("/")[1]
    held = {r["id"]: r["is_deleted"] for r in sandbox.pipedrive.snapshot()[kind]}
    assert held[int(path.split("/")[2])] is True  # still held, flagged


async def test_flagged_records_can_still_be_edited_and_stay_deleted(
    pd: httpx.AsyncClient, world: None
) -> None:
    await pd.delete("/activities/1")
    edited = await pd.patch("/activities/1", json={"done": True})
    assert edited.status_code == 200
    assert (edited.json()["data"]["done"], edited.json()["data"]["is_deleted"]) == (True, True)
    assert await ids(pd, "/activities", deal_id=1) == [2]


@pytest.mark.parametrize(
    ("first", "path", "body", "message"),
    [
        ("/deals/1", "/activities", {"subject": "s", "deal_id": 1},
         "Field 'deal_id': deal 1 does not exist"),
        ("/organizations/1", "/persons", {"name": "n", "org_id": 1},
         "Field 'org_id': organization 1 does not exist"),
        ("/persons/2", "/deals", {"title": "t", "person_id": 2},
         "Field 'person_id': person 2 does not exist"),
        ("/persons/1", "/activities", {"subject": "s", "participants": [{"person_id": 1}]},
         "Field 'participants[0].person_id': person 1 does not exist"),
    ],
)  # fmt: skip
async def test_deleted_records_cannot_be_linked_to(
    pd: httpx.AsyncClient, world: None, first: str, path: str, body: Any, message: str
) -> None:
    await pd.delete(first)
    refused = await pd.post(path, json=body)
    assert (refused.status_code, refused.json()["error"]) == (400, message)


async def test_no_cascade_and_the_state_shows_deleted_records(
    pd: httpx.AsyncClient, pd_control: httpx.AsyncClient, world: None
) -> None:
    await pd.delete("/organizations/1")
    await pd.delete("/deals/1")
    # Linked records are left alone: the spec describes no cascade.
    assert await ids(pd, "/persons", org_id=1) == [1]
    assert await ids(pd, "/activities", deal_id=1) == [1, 2]
    state = (await pd_control.get("/state")).json()
    assert [(o["id"], o["is_deleted"]) for o in state["organizations"]] == [(1, True)]
    assert [(d["id"], d["status"]) for d in state["deals"]] == [(1, "deleted"), (2, "won")]


async def test_delete_errors(pd: httpx.AsyncClient, world: None) -> None:
    for path in ("/deals/9", "/persons/9", "/organizations/9", "/activities/9"):
        missing = await pd.delete(path)
        assert (missing.status_code, missing.json()["error"]) == (404, "Entity was not found")
    bad = await pd.delete("/deals/x")
    assert (bad.status_code, bad.json()["error"]) == (400, "Parameter 'id' must be an integer")
    not_allowed = await pd.delete("/deals")
    assert not_allowed.status_code == 405


async def test_deleted_records_are_gone_after_30_days(
    pd: httpx.AsyncClient, pd_control: httpx.AsyncClient, clock: FakeClock, world: None
) -> None:
    await pd.delete("/deals/1")
    await pd.delete("/activities/1")
    clock.advance(30 * 86_400 - 1)
    assert await ids(pd, "/deals", status="deleted") == [1]
    assert (await pd.get("/activities/1")).json()["data"]["is_deleted"] is True
    clock.advance(1)  # "After 30 days, the deal will be permanently deleted."
    assert await ids(pd, "/deals", status="deleted") == []
    for path in ("/deals/1", "/activities/1"):
        assert (await pd.get(path)).status_code == 404
        assert (await pd.patch(path, json={})).status_code == 404
        assert (await pd.delete(path)).status_code == 404
    state = (await pd_control.get("/state")).json()
    assert ([d["id"] for d in state["deals"]], [a["id"] for a in state["activities"]]) == (
        [2],
        [2],
    )
