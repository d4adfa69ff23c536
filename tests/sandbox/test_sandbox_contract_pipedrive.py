"""Every Pipedrive operation the simulator serves, each status it can give, validated
against pipedrive-v2.yaml (requests as well as responses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sandbox import Sandbox
from sandbox.pipedrive_schema import TOKEN_COSTS
from tests.contract import (
    CURSOR_OPERATIONS,
    Contract,
    next_cursor_schema,
)


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # relative to /api/v2, ids filled in
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    bad: dict[str, Any] | None = None  # params (GET) or body (POST/PATCH) answered 400
    bad_path: str | None = None  # or a path answered 400
    bad_request_valid: bool = True  # whether that 400 request still conforms to the spec
    missing: str | None = None  # a path answered 404

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


SINCE = "2026-03-01T00:00:00Z"
OPS = [
    Op("POST", "/organizations", body={"name": "GITHUB_GISTS"}, bad={"name": 7},
       bad_request_valid=False),
    Op("GET", "/organizations", {"owner_id": 1, "ids": "1,2", "updated_since": SINCE,
                                 "updated_until": "2026-03-02T00:00:00+01:00",
                                 "sort_by": "update_time", "sort_direction": "desc",
                                 "include_fields": "people_count", "limit": 1},
       bad={"updated_since": "2026-03-01"}),
    Op("GET", "/organizations/1", missing="/organizations/999", bad_path="/organizations/one",
       bad_request_valid=False),
    Op("PATCH", "/organizations/1", body={"name": "GITHUB_GISTS (renamed)", "website": None},
       bad={"name": "  "}, missing="/organizations/999"),
    Op("DELETE", "/organizations/1", missing="/organizations/999",
       bad_path="/organizations/one", bad_request_valid=False),
    Op("GET", "/organizations/search", {"term": "github", "fields": "name"},
       bad={"term": "g"}),
    Op("POST", "/persons", body={"name": "Alice", "org_id": 1,
                                 "emails": [{"value": "a@x.io", "primary": True, "label": "work"}]},
       bad={"org_id": 1}),
    Op("GET", "/persons", {"org_id": 1, "deal_id": 1, "updated_since": SINCE,
                           "sort_by": "add_time", "limit": 1},
       bad={"ids": "1,one"}),
    Op("GET", "/persons/1", missing="/persons/999", bad_path="/persons/one",
       bad_request_valid=False),
    Op("PATCH", "/persons/1", body={"name": "Alice Liddell", "emails": [{"value": "a@x.io"}]},
       bad={"org_id": 42}, missing="/persons/999"),
    Op("DELETE", "/persons/1", missing="/persons/999", bad_path="/persons/one",
       bad_request_valid=False),
    Op("GET", "/persons/search", {"term": "alice", "exact_match": "true", "organization_id": 1},
       bad={"term": "alice", "cursor": "%%%"}),
    Op("POST", "/deals", body={"title": "Gists for Alice", "org_id": 1, "person_id": 1},
       bad={"title": "x", "status": "maybe"}),
    Op("GET", "/deals/1", missing="/deals/999", bad_path="/deals/one",
       bad_request_valid=False),
    Op("PATCH", "/deals/1", body={"status": "lost"}, bad={"status": "maybe"},
       missing="/deals/999"),
    Op("DELETE", "/deals/1", missing="/deals/999", bad_path="/deals/one",
       bad_request_valid=False),
    Op("GET", "/deals", {"org_id": 1, "person_id": 1, "status": "open", "limit": 1,
                         "updated_since": SINCE, "sort_by": "update_time"},
       bad={"limit": 501}),
    Op("GET", "/deals/search", {"term": "Gists for", "organization_id": 1, "status": "open"},
       bad={"term": "gists", "limit": 0}),
    Op("POST", "/activities",
       body={"subject": "hello.py", "type": "task", "deal_id": 1, "org_id": 1, "done": False,
             "participants": [{"person_id": 1, "primary": True}], "note": "<p>x</p>",
             "due_date": "2026-03-01"},
       bad={"subject": "x", "done": 1}, bad_request_valid=False),
    Op("GET", "/activities/1", missing="/activities/999", bad_path="/activities/one",
       bad_request_valid=False),
    Op("PATCH", "/activities/1", body={"done": True, "note": "<b>edited</b>"},
       bad={"participants": [{"primary": True}]}, missing="/activities/999"),
    Op("DELETE", "/activities/1", missing="/activities/999", bad_path="/activities/one",
       bad_request_valid=False),
    Op("GET", "/activities", {"deal_id": 1, "done": "false", "limit": 1,
                              "updated_since": SINCE, "sort_by": "due_date",
                              "sort_direction": "desc", "include_fields": "attendees"},
       bad={"done": "maybe"}, bad_request_valid=False),
]  # fmt: skip


def seed(sandbox: Sandbox) -> None:
    pd = sandbox.pipedrive
    pd.create_organization({"name": "GITHUB_GISTS"})
    pd.create_person({"name": "Alice", "org_id": 1})
    pd.create_deal({"title": "Gists for Alice", "org_id": 1, "person_id": 1})
    for n in range(2):
        pd.create_activity(
            {"subject": f"gist {n}", "deal_id": 1, "participants": [{"person_id": 1}]}
        )


async def send(client: httpx.AsyncClient, op: Op, **overrides: Any) -> httpx.Response:
    params = overrides.get("params", op.params)
    body = overrides.get("body", op.body)
    path = overrides.get("path", op.path)
    if op.method == "GET":
        return await client.get(path, params=params)
    if op.method == "DELETE":
        return await client.delete(path)
    return await client.request(op.method, path, json=body)


def test_ops_cover_every_route_and_every_400() -> None:
    assert all(op.bad is not None or op.bad_path is not None for op in OPS)
    templates = {
        f"{op.method} {'/'.join('{id}' if p.isdigit() else p for p in op.path.split('/'))}"
        for op in OPS
    }
    assert templates == set(TOKEN_COSTS)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key)
async def test_200(
    op: Op, sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    response = await send(pd, op)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    assert response.json()["data"], "an empty answer would validate nothing"
    assert pipedrive_contract.check(response) == "operation"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key)
async def test_400(
    op: Op, sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    if op.bad_path is not None:
        response = await send(pd, op, path=op.bad_path)
    elif op.method == "GET":
        response = await send(pd, op, params=op.bad)
    else:
        response = await send(pd, op, body=op.bad)
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert pipedrive_contract.check(response, request_valid=op.bad_request_valid) == "fallback"


@pytest.mark.parametrize("op", [op for op in OPS if op.missing], ids=lambda op: op.key)
async def test_404(
    op: Op, sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    assert op.missing is not None
    response = await send(pd, op, path=op.missing)
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": "Entity was not found",
        "error_info": "Object was not found.",
        "data": None,
        "additional_data": None,
    }
    assert pipedrive_contract.check(response) == "fallback"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key)
async def test_401(
    op: Op, sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    del pd.headers["x-api-token"]
    response = await send(pd, op)
    assert response.status_code == 401
    assert pipedrive_contract.check(response) == "fallback"


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key)
async def test_429(
    op: Op, sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    sandbox.pipedrive.config.limits.burst_limit = 0
    response = await send(pd, op)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert pipedrive_contract.check(response) == "fallback"


async def test_last_page_next_cursor_is_null_and_needs_the_erratum(
    sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    seed(sandbox)
    response = await pd.get("/activities", params={"deal_id": 1})
    assert response.json()["additional_data"] == {"next_cursor": None}
    assert pipedrive_contract.check(response) == "operation"


def test_spec_erratum_still_needed(pipedrive_contract: Contract) -> None:
    # If Pipedrive marks next_cursor nullable, drop pipedrive_errata.
    for path, method in CURSOR_OPERATIONS:
        schema = next_cursor_schema(pipedrive_contract.raw, path, method)
        assert schema["type"] == "string"
        assert schema.get("nullable") is not True


async def test_full_objects_carry_every_spec_property(
    sandbox: Sandbox, pd: httpx.AsyncClient, pipedrive_contract: Contract
) -> None:
    """Fill every optional request field; the response must then show every property the
    response schema lists (and validate)."""
    raw = pipedrive_contract.raw
    address = {
        name: "x"
        for name in ("value", "country", "admin_area_level_1", "admin_area_level_2", "locality",
                     "sublocality", "route", "street_number", "subpremise", "postal_code")
    }  # fmt: skip
    contact = [{"value": "x", "primary": True, "label": "work"}]
    org = await pd.post("/organizations", json={
        "name": "Org", "owner_id": 1, "add_time": "2026-01-01T10:00:00Z", "visible_to": 3,
        "label_ids": [1], "address": address, "website": "https://x.io", "linkedin": "x",
        "industry": 1, "annual_revenue": 10, "employee_count": 2, "custom_fields": {"k": "v"},
    })  # fmt: skip
    person = await pd.post("/persons", json={
        "name": "Ada Lovelace", "owner_id": 1, "org_id": 1, "emails": contact, "phones": contact,
        "visible_to": 3, "label_ids": [1], "postal_address": address, "notes": "n", "im": contact,
        "birthday": "1815-12-10", "job_title": "Analyst", "custom_fields": {},
    })  # fmt: skip
    deal = await pd.post("/deals", json={
        "title": "Deal", "owner_id": 1, "person_id": 1, "org_id": 1, "pipeline_id": 1,
        "stage_id": 1, "value": 10.5, "currency": "EUR", "status": "won", "probability": 50,
        "lost_reason": None, "visible_to": 3, "expected_close_date": "2026-04-01",
        "label_ids": [1], "custom_fields": {},
    })  # fmt: skip
    activity = await pd.post("/activities", json={
        "subject": "S", "type": "meeting", "owner_id": 1, "deal_id": 1, "lead_id": "l-1",
        "org_id": 1, "project_id": 3, "due_date": "2026-04-01", "due_time": "10:00",
        "duration": "01:00", "busy": True, "done": True, "location": address,
        "participants": [{"person_id": 1, "primary": True}],
        "attendees": [{"email": "a@x.io", "name": "A", "status": "accepted",
                       "is_organizer": True, "person_id": 1, "user_id": 1}],
        "public_description": "p", "priority": 1, "note": "<p>n</p>",
    })  # fmt: skip
    never_set_here = {
        # Server-side fields the simulator never fills (no picture upload, no stage moves,
        # no conferencing, no lead conversion).
        "/persons": {"picture_id"},
        "/deals": {"stage_change_time", "lost_time"},  # this deal is won, so never lost
        "/activities": {"conference_meeting_client", "conference_meeting_url",
                        "conference_meeting_id"},
        "/organizations": set(),
    }  # fmt: skip
    for path, response in [
        ("/organizations", org),
        ("/persons", person),
        ("/deals", deal),
        ("/activities", activity),
    ]:
        assert response.status_code == 200, response.text
        assert pipedrive_contract.check(response) == "operation"
        schema = raw["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        properties = schema["schema"]["allOf"][1]["properties"]["data"]["properties"]
        assert set(response.json()["data"]) == set(properties) - never_set_here[path], path
