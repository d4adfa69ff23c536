"""Hand edits a person makes in Pipedrive that the product must reconcile, sent the way the
web app would: PATCH of organizations, persons, deals and activities with the token."""

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
    pd = sandbox.pipedrive
    pd.create_organization({"name": "GITHUB_GISTS"})
    pd.create_organization({"name": "Elsewhere"})
    pd.create_person({"name": "Alice", "org_id": 1})
    pd.create_deal({"title": "Gists for alice", "org_id": 1, "person_id": 1})
    pd.create_activity({"subject": "hello.py", "deal_id": 1, "participants": [{"person_id": 1}]})


async def test_organization_renamed_by_hand(
    pd: httpx.AsyncClient, clock: FakeClock, world: None, pipedrive_contract: Contract
) -> None:
    clock.advance(60)
    renamed = await pd.patch("/organizations/1", json={"name": "Gists (old)", "add_time": LATER})
    assert pipedrive_contract.check(renamed) == "operation"
    org = renamed.json()["data"]
    # add_time is not part of the PATCH body: ignored like any unknown property.
    assert (org["name"], org["add_time"], org["update_time"]) == ("Gists (old)", START, LATER)
    assert (await pd.get("/organizations/1")).json()["data"] == org

    async def found(term: str) -> list[int]:
        response = await pd.get("/organizations/search", params={"term": term, "exact_match": 1})
        return [item["item"]["id"] for item in response.json()["data"]["items"]]

    assert await found("GITHUB_GISTS") == []
    assert await found("gists (OLD)") == [1]
    person = await pd.get("/persons/search", params={"term": "Alice"})
    assert person.json()["data"]["items"][0]["item"]["organization"]["name"] == "Gists (old)"
    changed = await pd.get("/organizations", params={"updated_since": LATER})
    assert [o["name"] for o in changed.json()["data"]] == ["Gists (old)"]


async def test_person_edited_by_hand(
    pd: httpx.AsyncClient, clock: FakeClock, world: None, pipedrive_contract: Contract
) -> None:
    clock.advance(60)
    emails = [{"value": "alice@example.com", "primary": True, "label": "work"}]
    edited = await pd.patch(
        "/persons/1", json={"name": "Alice  Liddell", "emails": emails, "org_id": 2}
    )
    assert pipedrive_contract.check(edited) == "operation"
    person = edited.json()["data"]
    assert (person["first_name"], person["last_name"], person["org_id"]) == ("Alice", "Liddell", 2)
    assert (person["emails"], person["update_time"], person["add_time"]) == (emails, LATER, START)
    single = (await pd.patch("/persons/1", json={"name": "Al"})).json()["data"]
    assert (single["first_name"], "last_name" in single) == ("Al", False)
    assert single["emails"] == emails  # untouched
    moved = await pd.get("/persons", params={"org_id": 2})
    assert [p["name"] for p in moved.json()["data"]] == ["Al"]
    assert (await pd.get("/persons", params={"org_id": 1})).json()["data"] == []


async def test_activity_and_deal_edited_by_hand(
    pd: httpx.AsyncClient, clock: FakeClock, world: None
) -> None:
    clock.advance(60)
    activity = (await pd.patch("/activities/1", json={"done": True})).json()["data"]
    assert (activity["done"], activity["marked_as_done_time"]) == (True, LATER)
    assert activity["person_id"] == 1  # participants untouched: the person stays
    deal = (await pd.patch("/deals/1", json={"title": "renamed", "status": "won"})).json()["data"]
    assert (deal["title"], deal["won_time"], deal["update_time"]) == ("renamed", LATER, LATER)
    done = await pd.get("/activities", params={"done": "true"})
    assert [a["id"] for a in done.json()["data"]] == [1]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/organizations/1", {"name": " "}, "Field 'name' must not be empty"),
        ("/organizations/1", {"name": None}, "Field 'name' must not be null"),
        ("/organizations/1", {"website": 5}, "Field 'website' must be of type string"),
        ("/persons/1", {"name": ""}, "Field 'name' must not be empty"),
        ("/persons/1", {"org_id": 9}, "Field 'org_id': organization 9 does not exist"),
        ("/persons/1", {"emails": "a@x.io"}, "Field 'emails' must be of type array"),
        ("/persons/1", [{"name": "x"}], "Request body must be a JSON object"),
    ],
)
async def test_edit_validation(
    pd: httpx.AsyncClient, world: None, path: str, body: Any, message: str
) -> None:
    response = await pd.patch(path, json=body)
    assert (response.status_code, response.json()["error"]) == (400, message)
    assert response.json()["success"] is False


async def test_edit_of_an_unknown_id_and_a_form_body(pd: httpx.AsyncClient, world: None) -> None:
    for path in ("/organizations/9", "/persons/9"):
        response = await pd.patch(path, json={"name": "x"})
        assert (response.status_code, response.json()["error"]) == (404, "Entity was not found")
    form = await pd.patch("/persons/1", data={"name": "x"})
    assert form.status_code == 415
