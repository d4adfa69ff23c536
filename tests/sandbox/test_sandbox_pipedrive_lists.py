"""Org-wide, incremental reads of the Pipedrive simulator: `updated_since`/`updated_until`,
`ids`, `sort_by`/`sort_direction` with their cursors, `limit` up to 500, and the checks of
every list parameter. Time comes from a fake clock: no test sleeps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.testing import FakeClock
from tests.contract import Contract

T0, T1, T2 = "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z", "2026-03-01T12:02:00Z"
LISTS = ["/organizations", "/persons", "/deals", "/activities"]


async def ids(pd: httpx.AsyncClient, path: str, **params: Any) -> list[int]:
    response = await pd.get(path, params=params)
    assert response.status_code == 200, response.text
    return [record["id"] for record in response.json()["data"]]


async def read_all(pd: httpx.AsyncClient, path: str, **params: Any) -> tuple[list[int], int]:
    """Every page: the ids in order and the number of requests."""
    seen: list[int] = []
    pages = 0
    while True:
        body = (await pd.get(path, params=params)).json()
        pages += 1
        seen += [record["id"] for record in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return seen, pages
        params["cursor"] = cursor


@pytest.fixture
def three_of_each(sandbox: Sandbox, clock: FakeClock) -> None:
    """Ids 1 and 2 of every kind created at T0, id 3 at T2; id 1 edited at T1."""
    pd = sandbox.pipedrive

    def create(n: int) -> None:
        pd.create_organization({"name": f"org {n}"})
        pd.create_person({"name": f"person {n}"})
        pd.create_deal({"title": f"deal {n}"})
        pd.create_activity({"subject": f"activity {n}"})

    create(1)
    create(2)
    clock.advance(60)
    pd.update_organization(1, {"name": "org 1 renamed"})
    pd.update_person(1, {"name": "person 1 renamed"})
    pd.update_deal(1, {"status": "lost"})
    pd.update_activity(1, {"done": True})
    clock.advance(60)
    create(3)


@pytest.mark.parametrize("path", LISTS)
async def test_updated_since_and_until_compare_update_time(
    pd: httpx.AsyncClient, three_of_each: None, pipedrive_contract: Contract, path: str
) -> None:
    assert await ids(pd, path) == [1, 2, 3]
    assert await ids(pd, path, updated_since=T0) == [1, 2, 3]  # later than or equal
    assert await ids(pd, path, updated_since=T1) == [1, 3]
    assert await ids(pd, path, updated_since="2026-03-01T12:01:00.5Z") == [3]
    assert await ids(pd, path, updated_since="2026-03-01T13:01:00+01:00") == [1, 3]
    assert await ids(pd, path, updated_until=T1) == [2]  # earlier than
    assert await ids(pd, path, updated_since=T1, updated_until=T2) == [1]
    assert await ids(pd, path, updated_since="2026-03-01T12:03:00Z") == []
    latest_first = await pd.get(path, params={"updated_since": T1, "sort_by": "update_time",
                                              "sort_direction": "desc"})  # fmt: skip
    assert [r["id"] for r in latest_first.json()["data"]] == [3, 1]
    assert pipedrive_contract.check(latest_first) == "operation"


async def test_every_change_bumps_update_time(
    sandbox: Sandbox, pd: httpx.AsyncClient, clock: FakeClock
) -> None:
    org = (await pd.post("/organizations", json={"name": "o"})).json()["data"]
    assert org["update_time"] == org["add_time"] == T0
    steps = [
        ("PATCH", "/organizations/1", {"name": "p"}),
        ("POST", "/persons", {"name": "n", "org_id": 1}),
        ("PATCH", "/persons/1", {"name": "m"}),
        ("POST", "/deals", {"title": "d", "person_id": 1}),
        ("PATCH", "/deals/1", {"title": "e"}),
        ("POST", "/activities", {"subject": "s", "deal_id": 1}),
        ("PATCH", "/activities/1", {"done": True}),
        ("DELETE", "/activities/1", None),
        ("DELETE", "/deals/1", None),
        ("DELETE", "/persons/1", None),
        ("DELETE", "/organizations/1", None),
    ]
    for minute, (method, path, body) in enumerate(steps, start=1):
        clock.advance(60)
        response = await pd.request(method, path, json=body)
        assert response.status_code == 200, response.text
        kind = path.split("/")[1]
        record = sandbox.pipedrive.snapshot()[kind][0]
        assert record["update_time"] == f"2026-03-01T12:{minute:02d}:00Z", (method, path)


async def test_org_wide_read_in_pages_of_500(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    pd_state = sandbox.pipedrive
    pd_state.create_organization({"name": "GITHUB_GISTS"})
    for deal in range(1, 4):
        pd_state.create_deal({"title": f"deal {deal}", "org_id": 1})
        for n in range(400):
            pd_state.create_activity({"subject": f"{deal}/{n}", "deal_id": deal, "org_id": 1})
    seen, pages = await read_all(pd, "/activities", org_id=1, limit=500)
    assert (len(seen), pages) == (1200, 3)
    assert seen == sorted(seen) == list(range(1, 1201))
    assert sandbox.pipedrive.stats.tokens_spent == 30  # 10 per page, whatever the users


@pytest.mark.parametrize(
    ("sort_by", "direction", "expected"),
    [
        ("id", "asc", [1, 2, 3, 4, 5]),
        ("id", "desc", [5, 4, 3, 2, 1]),
        ("update_time", "asc", [3, 4, 5, 1, 2]),  # ties by id
        ("update_time", "desc", [2, 1, 5, 4, 3]),
        ("add_time", "desc", [5, 4, 3, 2, 1]),
        ("due_date", "asc", [4, 5, 2, 3, 1]),  # no due date first
        ("due_date", "desc", [1, 3, 2, 5, 4]),
    ],
)
async def test_sorting_and_cursors_per_sort(
    sandbox: Sandbox,
    pd: httpx.AsyncClient,
    clock: FakeClock,
    pipedrive_contract: Contract,
    sort_by: str,
    direction: str,
    expected: list[int],
) -> None:
    dates = ["2026-05-01", "2026-04-01", "2026-04-01", None, None]
    for due_date in dates:
        body = {"subject": "s"} | ({"due_date": due_date} if due_date else {})
        sandbox.pipedrive.create_activity(body)
        clock.advance(1)
    clock.advance(60)
    sandbox.pipedrive.update_activity(1, {"note": "edited"})
    sandbox.pipedrive.update_activity(2, {"note": "edited"})
    params: dict[str, str | int] = {"sort_by": sort_by, "sort_direction": direction, "limit": 2}
    assert await read_all(pd, "/activities", **params) == (expected, 3)
    first = await pd.get("/activities", params=params)
    assert pipedrive_contract.check(first) == "operation"
    # A cursor belongs to its sort: used with another it is refused.
    other = "add_time" if sort_by != "add_time" else "id"
    mixed = await pd.get(
        "/activities",
        params={"sort_by": other, "cursor": first.json()["additional_data"]["next_cursor"]},
    )
    assert (mixed.status_code, mixed.json()["error"]) == (400, "Invalid cursor")


async def test_a_record_updated_while_paging_by_update_time_moves_to_the_end(
    sandbox: Sandbox, pd: httpx.AsyncClient, clock: FakeClock
) -> None:
    for n in range(4):
        sandbox.pipedrive.create_deal({"title": f"d{n}"})
    params: dict[str, Any] = {"sort_by": "update_time", "limit": 2}
    first = (await pd.get("/deals", params=params)).json()
    clock.advance(60)
    sandbox.pipedrive.update_deal(1, {"title": "edited"})  # already seen: comes again
    params["cursor"] = first["additional_data"]["next_cursor"]
    rest, _ = await read_all(pd, "/deals", **params)
    assert [d["id"] for d in first["data"]] + rest == [1, 2, 3, 4, 1]


async def test_filters(sandbox: Sandbox, pd: httpx.AsyncClient) -> None:
    state = sandbox.pipedrive
    state.create_organization({"name": "o1"})
    state.create_organization({"name": "o2", "owner_id": 7})
    state.create_person({"name": "alice", "org_id": 1})
    state.create_person({"name": "bob", "org_id": 2, "owner_id": 7})
    state.create_deal({"title": "d1", "person_id": 1, "org_id": 1, "stage_id": 2})
    state.create_deal({"title": "d2", "person_id": 2, "pipeline_id": 3})
    state.create_activity({"subject": "a1", "lead_id": "lead-1", "owner_id": 7})
    state.create_activity({"subject": "a2", "participants": [{"person_id": 2}]})
    assert await ids(pd, "/organizations", owner_id=7) == [2]
    assert await ids(pd, "/organizations", ids="2,1,9") == [1, 2]
    assert await ids(pd, "/persons", org_id=2) == [2]
    assert await ids(pd, "/persons", deal_id=1) == [1]
    assert await ids(pd, "/persons", deal_id=9) == []
    assert await ids(pd, "/persons", owner_id=7) == [2]
    assert await ids(pd, "/deals", stage_id=2) == [1]
    assert await ids(pd, "/deals", pipeline_id=3) == [2]
    assert await ids(pd, "/deals", ids="2") == [2]
    assert await ids(pd, "/activities", lead_id="lead-1") == [1]
    assert await ids(pd, "/activities", owner_id=7) == [1]
    assert await ids(pd, "/activities", person_id=2) == [2]
    # Accepted, and without effect here: no counters, custom fields or labels to add.
    plain = (await pd.get("/deals")).json()
    extras = {"include_fields": "activities_count,notes_count", "custom_fields": "a,b",
              "include_labels": "true", "include_option_labels": "false"}  # fmt: skip
    assert (await pd.get("/deals", params=extras)).json() == plain


# (path, params, error, whether the request still conforms to the spec's parameter schemas)
PARAMETER_ERRORS = [
    ("/deals", {"updated_since": "2026-03-01"},
     "Parameter 'updated_since' must be an RFC 3339 date-time", True),
    ("/persons", {"updated_until": "yesterday"},
     "Parameter 'updated_until' must be an RFC 3339 date-time", True),
    ("/organizations", {"updated_since": "2026-03-01T12:00:00"},
     "Parameter 'updated_since' must be an RFC 3339 date-time", True),
    ("/activities", {"sort_by": "subject"},
     "Parameter 'sort_by' must be one of: id, update_time, add_time, due_date", False),
    ("/deals", {"sort_by": "due_date"},
     "Parameter 'sort_by' must be one of: id, update_time, add_time", False),
    ("/persons", {"sort_direction": "up"},
     "Parameter 'sort_direction' must be one of: asc, desc", False),
    ("/activities", {"include_fields": "attendees,notes"},
     "Parameter 'include_fields' must be a comma-separated list of: attendees", False),
    ("/deals", {"status": "open,gone"},
     "Parameter 'status' must be a comma-separated list of: open, won, lost, deleted", False),
    ("/organizations", {"ids": ",".join(str(n) for n in range(1, 102))},
     "Parameter 'ids' must be a comma-separated list of up to 100 ids", True),
    ("/persons", {"deal_id": "x"}, "Parameter 'deal_id' must be an integer", False),
    ("/deals", {"filter_id": 3}, "Parameter 'filter_id': the sandbox has no saved filters", True),
    ("/persons", {"custom_fields": ",".join("k" * n for n in range(1, 17))},
     "Parameter 'custom_fields' allows at most 15 keys", True),
    ("/organizations", {"include_labels": "maybe"},
     "Parameter 'include_labels' must be a boolean (true or false)", False),
    ("/persons", {"limit": 501}, "Parameter 'limit' must be between 1 and 500", True),
]  # fmt: skip


@pytest.mark.parametrize(("path", "params", "message", "conforms"), PARAMETER_ERRORS)
async def test_list_parameter_errors(
    pd: httpx.AsyncClient,
    pipedrive_contract: Contract,
    path: str,
    params: Any,
    message: str,
    conforms: bool,
) -> None:
    response = await pd.get(path, params=params)
    assert (response.status_code, response.json()["error"]) == (400, message)
    assert pipedrive_contract.check(response, request_valid=conforms) == "fallback"


@pytest.mark.parametrize(
    "cursor",
    [
        # {"field":"id","fieldValue":"7","sortDirection":"asc","id":7}: id value not a number
        "eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6IjciLCJzb3J0RGlyZWN0aW9uIjoiYXNjIiwiaWQiOjd9",
        # {"field":"id","fieldValue":7,"sortDirection":"desc","id":7}: made for another direction
        "eyJmaWVsZCI6ImlkIiwiZmllbGRWYWx1ZSI6Nywic29ydERpcmVjdGlvbiI6ImRlc2MiLCJpZCI6N30",
    ],
)
async def test_cursor_of_another_sort_is_invalid(pd: httpx.AsyncClient, cursor: str) -> None:
    response = await pd.get("/deals", params={"cursor": cursor})
    assert (response.status_code, response.json()["error"]) == (400, "Invalid cursor")
