"""Behaviour of the Pipedrive simulator: objects, validation, lists, cursors, search, auth."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.testing import FakeClock

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UNAUTHORIZED = {
    "success": False,
    "error": "unauthorized access",
    "errorCode": 401,
    "error_info": "Please check developers.pipedrive.com",
}


async def post(pd: httpx.AsyncClient, path: str, body: Any) -> dict[str, Any]:
    response = await pd.post(path, json=body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert isinstance(data, dict)
    return data


async def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None and body["additional_data"] is None
    assert isinstance(body["error"], str)
    return body["error"]


@pytest.fixture
async def world(pd: httpx.AsyncClient) -> dict[str, int]:
    """One org with two persons, a deal each, and activities on Alice's deal."""
    org = await post(pd, "/organizations", {"name": "GITHUB_GISTS"})
    alice = await post(pd, "/persons", {"name": "Alice", "org_id": org["id"]})
    bob = await post(pd, "/persons", {"name": "Bob"})
    deal_a = await post(
        pd, "/deals", {"title": "Gists for alice", "org_id": org["id"], "person_id": alice["id"]}
    )
    deal_b = await post(pd, "/deals", {"title": "Gists for bob", "person_id": bob["id"]})
    return {
        "org": org["id"],
        "alice": alice["id"],
        "bob": bob["id"],
        "deal_a": deal_a["id"],
        "deal_b": deal_b["id"],
    }


async def test_objects_get_ids_timestamps_and_defaults(
    pd: httpx.AsyncClient, world: dict[str, int]
) -> None:
    org = (await pd.get(f"/organizations/{world['org']}")).json()["data"]
    assert org["id"] == 1 and org["name"] == "GITHUB_GISTS"
    assert RFC3339.match(org["add_time"]) and RFC3339.match(org["update_time"])
    assert org["website"] is None  # nullable in the spec: sent as null
    person = (await pd.get(f"/persons/{world['alice']}")).json()["data"]
    assert (person["org_id"], person["first_name"], person["emails"]) == (1, "Alice", [])
    assert "last_name" not in person  # not nullable in the spec: left out when unset
    deal = (await pd.get(f"/deals/{world['deal_a']}")).json()["data"]
    assert (deal["status"], deal["person_id"], deal["org_id"]) == ("open", 1, 1)
    assert deal["close_time"] is None


async def test_activity_person_comes_from_the_primary_participant(
    pd: httpx.AsyncClient, world: dict[str, int]
) -> None:
    activity = await post(
        pd,
        "/activities",
        {
            "subject": "hello.py",
            "deal_id": world["deal_a"],
            "person_id": world["bob"],
            "participants": [
                {"person_id": world["bob"], "primary": False},
                {"person_id": world["alice"], "primary": True},
            ],
        },
    )
    # person_id is read-only: the body's value is ignored, the primary participant wins.
    assert activity["person_id"] == world["alice"]
    assert activity["type"] == "call" and activity["done"] is False
    assert "marked_as_done_time" not in activity
    first_only = await post(
        pd,
        "/activities",
        {
            "subject": "x",
            "participants": [{"person_id": world["bob"]}],
        },
    )
    assert first_only["person_id"] == world["bob"]
    nobody = await post(pd, "/activities", {"subject": "y"})
    assert "person_id" not in nobody and nobody["participants"] == []


async def test_done_and_marked_as_done_time(
    pd: httpx.AsyncClient, world: dict[str, int], clock: FakeClock
) -> None:
    done = await post(pd, "/activities", {"subject": "a", "done": True})
    assert done["marked_as_done_time"] == "2026-03-01T12:00:00Z"
    todo = await post(pd, "/activities", {"subject": "b", "deal_id": world["deal_a"]})
    clock.advance(90)
    patched = await pd.patch(f"/activities/{todo['id']}", json={"done": True, "note": "<p>n</p>"})
    data = patched.json()["data"]
    assert (data["done"], data["note"]) == (True, "<p>n</p>")
    assert data["marked_as_done_time"] == data["update_time"] == "2026-03-01T12:01:30Z"
    assert data["add_time"] == "2026-03-01T12:00:00Z"
    assert data["subject"] == "b" and data["deal_id"] == world["deal_a"]  # untouched fields
    undone = (await pd.patch(f"/activities/{todo['id']}", json={"done": False})).json()["data"]
    assert "marked_as_done_time" not in undone
    moved = await pd.patch(
        f"/activities/{todo['id']}", json={"participants": [{"person_id": world["bob"]}]}
    )
    assert moved.json()["data"]["person_id"] == world["bob"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/organizations", {}, "Field 'name' is required"),
        ("/organizations", {"name": "  "}, "Field 'name' is required"),
        ("/persons", {"org_id": 1}, "Field 'name' is required"),
        ("/deals", {"person_id": 1}, "Field 'title' is required"),
        ("/activities", {"done": True}, "Field 'subject' is required"),
        ("/activities", {"subject": "s", "done": 1}, "Field 'done' must be of type boolean"),
        ("/activities", {"subject": "s", "done": "true"}, "Field 'done' must be of type boolean"),
        (
            "/activities",
            {"subject": "s", "deal_id": "1"},
            "Field 'deal_id' must be of type integer",
        ),
        (
            "/activities",
            {"subject": "s", "deal_id": True},
            "Field 'deal_id' must be of type integer",
        ),
        ("/activities", {"subject": "s", "deal_id": None}, "Field 'deal_id' must not be null"),
        (
            "/activities",
            {"subject": "s", "participants": [{"person_id": "1"}]},
            "Field 'participants[0].person_id' must be of type integer",
        ),
        (
            "/activities",
            {"subject": "s", "due_date": "01/02/2026"},
            "Field 'due_date' must be a date in YYYY-MM-DD format",
        ),
        ("/activities", {"subject": "s", "deal_id": 99}, "Field 'deal_id': deal 99 does not exist"),
        (
            "/persons",
            {"name": "n", "emails": [{"value": 5}]},
            "Field 'emails[0].value' must be of type string",
        ),
        ("/persons", {"name": "n", "org_id": 42}, "Field 'org_id': organization 42 does not exist"),
        (
            "/persons",
            {"name": "n", "marketing_status": "spam"},
            "Field 'marketing_status' must be one of: "
            "no_consent, unsubscribed, subscribed, archived",
        ),
        (
            "/deals",
            {"title": "t", "status": "maybe"},
            "Field 'status' must be one of: open, won, lost",
        ),
        ("/deals", {"title": "t", "value": "10"}, "Field 'value' must be of type number"),
        ("/deals", [{"title": "t"}], "Request body must be a JSON object"),
    ],
)
async def test_post_validation(
    pd: httpx.AsyncClient, world: dict[str, int], path: str, body: Any, message: str
) -> None:
    assert await error_of(await pd.post(path, json=body), 400) == message


async def test_bad_json_wrong_content_type_and_unknown_fields(pd: httpx.AsyncClient) -> None:
    bad_json = await pd.post(
        "/organizations", content=b"{name:", headers={"content-type": "application/json"}
    )
    assert await error_of(bad_json, 400) == "Request body is not valid JSON"
    form = await pd.post("/organizations", data={"name": "x"})
    assert await error_of(form, 415) == "Unsupported Media Type: send application/json"
    # Properties the spec does not list are ignored, as its schemas allow them.
    org = await post(pd, "/organizations", {"name": "x", "colour": "red"})
    assert "colour" not in org


async def test_unknown_ids_and_routes(pd: httpx.AsyncClient) -> None:
    for path in ("/persons/7", "/deals/7", "/organizations/7", "/activities/7"):
        assert await error_of(await pd.get(path), 404) == "Entity was not found"
    patched = await pd.patch("/activities/7", json={"done": True})
    assert await error_of(patched, 404) == "Entity was not found"
    assert await error_of(await pd.get("/persons/seven"), 400) == (
        "Parameter 'id' must be an integer"
    )
    assert await error_of(await pd.get("/leads"), 404) == "Unknown method ."


async def test_deal_list_filters(pd: httpx.AsyncClient, world: dict[str, int]) -> None:
    won = await post(pd, "/deals", {"title": "won", "status": "won", "org_id": world["org"]})
    assert won["won_time"] == won["close_time"] == "2026-03-01T12:00:00Z"

    async def ids(**params: Any) -> list[int]:
        response = await pd.get("/deals", params=params)
        assert response.status_code == 200
        return [d["id"] for d in response.json()["data"]]

    assert await ids() == [1, 2, 3]
    assert await ids(org_id=world["org"]) == [1, 3]
    assert await ids(person_id=world["bob"]) == [2]
    assert await ids(org_id=world["org"], status="open") == [1]
    assert await ids(status="won") == [3]
    assert await ids(status="deleted") == []
    assert await error_of(await pd.get("/deals", params={"status": "gone"}), 400) == (
        "Parameter 'status' must be a comma-separated list of: open, won, lost, deleted"
    )


async def test_activity_list_filters(pd: httpx.AsyncClient, world: dict[str, int]) -> None:
    alice = [{"person_id": world["alice"], "primary": True}]
    await post(
        pd, "/activities", {"subject": "1", "deal_id": world["deal_a"], "participants": alice}
    )
    await post(pd, "/activities", {"subject": "2", "deal_id": world["deal_a"], "done": True})
    await post(
        pd, "/activities", {"subject": "3", "deal_id": world["deal_b"], "org_id": world["org"]}
    )

    async def subjects(**params: Any) -> list[str]:
        response = await pd.get("/activities", params=params)
        assert response.status_code == 200
        return [a["subject"] for a in response.json()["data"]]

    assert await subjects() == ["1", "2", "3"]
    assert await subjects(deal_id=world["deal_a"]) == ["1", "2"]
    assert await subjects(deal_id=world["deal_a"], done="false") == ["1"]
    assert await subjects(done="true") == ["2"]
    assert await subjects(person_id=world["alice"]) == ["1"]
    assert await subjects(org_id=world["org"]) == ["3"]
    assert await subjects(deal_id=999) == []
    assert await error_of(await pd.get("/activities", params={"deal_id": "x"}), 400) == (
        "Parameter 'deal_id' must be an integer"
    )


async def test_cursor_pagination(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    for n in range(7):
        sandbox.pipedrive.create_activity({"subject": f"a{n}", "done": n % 2 == 0})
    seen: list[str] = []
    cursors: list[str | None] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        body = (await pd.get("/activities", params=params)).json()
        seen += [a["subject"] for a in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break
        params["cursor"] = cursor
        if len(cursors) == 1:  # added mid-iteration: shows up at the end, shifts nothing
            sandbox.pipedrive.create_activity({"subject": "late"})
    assert seen == ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "late"]
    assert len(cursors) == 3 and cursors[-1] is None
    done = (await pd.get("/activities", params={"done": "true", "limit": 2})).json()
    assert [a["subject"] for a in done["data"]] == ["a0", "a2"]
    rest = await pd.get(
        "/activities", params={"done": "true", "cursor": done["additional_data"]["next_cursor"]}
    )
    assert [a["subject"] for a in rest.json()["data"]] == ["a4", "a6"]


async def test_default_and_maximum_limit(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    for n in range(150):
        sandbox.pipedrive.create_activity({"subject": f"a{n}"})
    first = (await pd.get("/activities")).json()
    assert len(first["data"]) == 100
    second = (
        await pd.get("/activities", params={"cursor": first["additional_data"]["next_cursor"]})
    ).json()
    assert len(second["data"]) == 50 and second["additional_data"]["next_cursor"] is None
    assert len((await pd.get("/activities", params={"limit": 500})).json()["data"]) == 150
    for limit in (501, 0, -1):
        assert await error_of(await pd.get("/activities", params={"limit": limit}), 400) == (
            "Parameter 'limit' must be between 1 and 500"
        )


@pytest.mark.parametrize("cursor", ["%%%", "bm9wZQ", "eyJmaWVsZCI6ImlkIn0", "eyJpZCI6IngifQ"])
async def test_invalid_cursor_is_400(pd: httpx.AsyncClient, cursor: str) -> None:
    response = await pd.get("/activities", params={"cursor": cursor})
    assert await error_of(response, 400) == "Invalid cursor"


async def test_search_exact_and_substring_case_insensitive(
    pd: httpx.AsyncClient, world: dict[str, int]
) -> None:
    async def names(path: str, **params: Any) -> list[tuple[str, float]]:
        response = await pd.get(path, params=params)
        assert response.status_code == 200, response.text
        items = response.json()["data"]["items"]
        key = "title" if path.startswith("/deals") else "name"
        return [(i["item"][key], i["result_score"]) for i in items]

    await post(pd, "/persons", {"name": "Alice Cooper"})
    assert await names("/persons/search", term="ALICE", exact_match="true") == [("Alice", 1.0)]
    assert await names("/persons/search", term="lic") == [("Alice", 0.6), ("Alice Cooper", 0.25)]
    assert await names("/persons/search", term="lic", exact_match="true") == []
    assert await names("/persons/search", term="ali", organization_id=world["org"]) == [
        ("Alice", 0.6)
    ]
    assert await names(
        "/organizations/search", term="github_gists", exact_match="true", fields="name"
    ) == [("GITHUB_GISTS", 1.0)]
    assert await names("/deals/search", term="gists for BOB", exact_match="true") == [
        ("Gists for bob", 1.0)
    ]
    assert await names("/deals/search", term="gists", person_id=world["alice"]) == [
        ("Gists for alice", 0.3333)
    ]
    assert await names("/deals/search", term="gists", status="won") == []
    assert await names("/deals/search", term="b", exact_match="true") == []  # 1 char is fine


async def test_search_items_have_the_spec_shape(
    pd: httpx.AsyncClient, world: dict[str, int]
) -> None:
    person = (await pd.get("/persons/search", params={"term": "Alice"})).json()
    assert person == {
        "success": True,
        "data": {
            "items": [
                {
                    "result_score": 1.0,
                    "item": {
                        "id": 1,
                        "type": "person",
                        "name": "Alice",
                        "phones": [],
                        "emails": [],
                        "visible_to": 3,
                        "owner": {"id": 1},
                        "organization": {"id": 1, "name": "GITHUB_GISTS", "address": None},
                        "custom_fields": [],
                        "notes": [],
                    },
                }
            ]
        },
        "additional_data": {"next_cursor": None},
    }
    deal = (await pd.get("/deals/search", params={"term": "for bob"})).json()
    item = deal["data"]["items"][0]["item"]
    assert (item["person"], item["organization"]) == ({"id": 2, "name": "Bob"}, None)


async def test_search_by_email_and_pagination(pd: httpx.AsyncClient) -> None:
    for n in range(5):
        emails = [{"value": f"dev{n}@example.com", "primary": True, "label": "work"}]
        await post(pd, "/persons", {"name": f"Dev {n}", "emails": emails})
    by_email = await pd.get(
        "/persons/search",
        params={"term": "dev3@EXAMPLE.com", "fields": "email", "exact_match": "true"},
    )
    assert [i["item"]["emails"] for i in by_email.json()["data"]["items"]] == [["dev3@example.com"]]
    not_by_name = await pd.get("/persons/search", params={"term": "Dev 3", "fields": "email"})
    assert not_by_name.json()["data"]["items"] == []
    found: list[int] = []
    params: dict[str, Any] = {"term": "dev", "fields": "name", "limit": 2}
    pages = 0
    while True:
        body = (await pd.get("/persons/search", params=params)).json()
        pages += 1
        found += [i["item"]["id"] for i in body["data"]["items"]]
        if body["additional_data"]["next_cursor"] is None:
            break
        params["cursor"] = body["additional_data"]["next_cursor"]
    assert (pages, found) == (3, [1, 2, 3, 4, 5])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"term": "a"}, "Parameter 'term' must be at least 2 characters long"),
        ({"term": " "}, "Parameter 'term' must be at least 1 character long"),
        ({}, "Parameter 'term' must be at least 2 characters long"),
        (
            {"term": "al", "fields": "title"},
            "Parameter 'fields' must be a comma-separated list of: "
            "custom_fields, email, notes, phone, name",
        ),
        (
            {"term": "al", "exact_match": "yes"},
            "Parameter 'exact_match' must be a boolean (true or false)",
        ),
        # A list cursor ({"field":"id","id":1}) is not a search cursor.
        ({"term": "al", "cursor": "eyJmaWVsZCI6ImlkIiwiaWQiOjF9"}, "Invalid cursor"),
    ],
)
async def test_search_errors(pd: httpx.AsyncClient, params: dict[str, str], message: str) -> None:
    if params.get("term") == " ":
        params = {**params, "exact_match": "true"}
    assert await error_of(await pd.get("/persons/search", params=params), 400) == message


async def test_auth_header_only(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    token = sandbox.pipedrive_token
    async with httpx.AsyncClient(base_url=sandbox.pipedrive_url) as bare:
        missing = await bare.get("/deals")
        wrong = await bare.get("/deals", headers={"x-api-token": "nope"})
        in_query = await bare.get("/deals", params={"api_token": token})
        oauth_style = await bare.get("/deals", headers={"Authorization": f"Bearer {token}"})
    both = await pd.get("/deals", params={"api_token": token})
    for response in (missing, wrong, in_query, oauth_style, both):
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert (await pd.get("/deals")).status_code == 200


async def test_control_state_shows_objects_as_the_api_does(
    pd: httpx.AsyncClient, pd_control: httpx.AsyncClient, world: dict[str, int]
) -> None:
    activity = await post(pd, "/activities", {"subject": "s", "deal_id": world["deal_a"]})
    state = (await pd_control.get("/state")).json()
    assert [o["name"] for o in state["organizations"]] == ["GITHUB_GISTS"]
    assert [p["name"] for p in state["persons"]] == ["Alice", "Bob"]
    assert state["deals"][0] == (await pd.get("/deals/1")).json()["data"]
    assert state["activities"] == [activity]
