"""The simulator's Pipedrive tables (fields, response keys, nullables, token costs, search
fields) match pipedrive-v2.yaml, so a spec change cannot drift silently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sandbox.pipedrive_schema import (
    ACTIVITY_BODY,
    ACTIVITY_KEYS,
    ACTIVITY_NULLABLE,
    DEAL_BODY,
    DEAL_KEYS,
    DEAL_NULLABLE,
    LIST_INCLUDE_FIELDS,
    LIST_PARAMS,
    LIST_SORT_FIELDS,
    ORGANIZATION_BODY,
    ORGANIZATION_KEYS,
    ORGANIZATION_NULLABLE,
    ORGANIZATION_PATCH_BODY,
    PERSON_BODY,
    PERSON_KEYS,
    PERSON_NULLABLE,
    PERSON_PATCH_BODY,
    SEARCH_FIELDS,
    SEARCH_ROUTES,
    TOKEN_COSTS,
    Field,
)
from tests.contract import Contract

Spec = dict[str, Any]


def operation(spec: Spec, method: str, path: str) -> Spec:
    op = spec["paths"][path][method.lower()]
    assert isinstance(op, dict)
    return op


def as_field(schema: Spec) -> Field:
    """The spec's schema in the simulator's Field notation."""
    kind = schema["type"]
    items = as_field(schema["items"]) if kind == "array" else None
    props = None
    if kind == "object" and "properties" in schema:
        props = {name: as_field(sub) for name, sub in schema["properties"].items()}
    enum = tuple(schema["enum"]) if "enum" in schema else None
    return Field(kind, bool(schema.get("nullable", False)), items, props, enum)


def request_schema(spec: Spec, method: str, path: str) -> Spec:
    body = operation(spec, method, path)["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert isinstance(schema, dict)
    return schema


def data_schema(spec: Spec, method: str, path: str) -> Spec:
    content = operation(spec, method, path)["responses"]["200"]["content"]["application/json"]
    data = content["schema"]["allOf"][1]["properties"]["data"]
    schema = data["items"] if data["type"] == "array" else data
    assert isinstance(schema, dict)
    return schema


BODIES = [
    ("POST", "/organizations", ORGANIZATION_BODY, ["name"]),
    ("POST", "/persons", PERSON_BODY, []),
    ("POST", "/deals", DEAL_BODY, ["title"]),
    ("POST", "/activities", ACTIVITY_BODY, []),
    ("PATCH", "/activities/{id}", ACTIVITY_BODY, []),
    ("PATCH", "/deals/{id}", DEAL_BODY, []),
    ("PATCH", "/organizations/{id}", ORGANIZATION_PATCH_BODY, []),
    ("PATCH", "/persons/{id}", PERSON_PATCH_BODY, []),
]


@pytest.mark.parametrize(("method", "path", "table", "required"), BODIES)
def test_request_body_tables(
    pipedrive_contract: Contract,
    method: str,
    path: str,
    table: Mapping[str, Field],
    required: list[str],
) -> None:
    schema = request_schema(pipedrive_contract.raw, method, path)
    spec_fields = {name: as_field(sub) for name, sub in schema["properties"].items()}
    # Dates in the spec carry `format: date`; the Field notation has no format, so compare
    # kinds, nullability, nesting and enums.
    assert dict(table) == spec_fields
    assert schema.get("required", []) == required


RESPONSES = [
    ("/organizations", "/organizations/{id}", ORGANIZATION_KEYS, ORGANIZATION_NULLABLE),
    ("/persons", "/persons/{id}", PERSON_KEYS, PERSON_NULLABLE),
    ("/deals", "/deals/{id}", DEAL_KEYS, DEAL_NULLABLE),
    ("/activities", "/activities/{id}", ACTIVITY_KEYS, ACTIVITY_NULLABLE),
]


@pytest.mark.parametrize(("collection", "item", "keys", "nullable"), RESPONSES)
def test_response_keys_and_nullables(
    pipedrive_contract: Contract,
    collection: str,
    item: str,
    keys: tuple[str, ...],
    nullable: frozenset[str],
) -> None:
    spec = pipedrive_contract.raw
    shapes = [
        data_schema(spec, "POST", collection),
        data_schema(spec, "GET", collection),
        data_schema(spec, "GET", item),
        data_schema(spec, "PATCH", item),
    ]
    for shape in shapes:
        properties = shape["properties"]
        assert tuple(properties) == keys
        assert {k for k, v in properties.items() if v.get("nullable")} == nullable


def test_token_costs_match_x_token_cost(pipedrive_contract: Contract) -> None:
    for route, cost in TOKEN_COSTS.items():
        method, path = route.split(" ")
        assert operation(pipedrive_contract.raw, method, path)["x-token-cost"] == cost, route
    assert sorted(SEARCH_ROUTES) == [
        "GET /deals/search",
        "GET /organizations/search",
        "GET /persons/search",
    ]


@pytest.mark.parametrize(
    ("kind", "path"),
    [("organization", "/organizations/search"), ("person", "/persons/search"),
     ("deal", "/deals/search")],
)  # fmt: skip
def test_search_fields_match_the_spec_enum(
    pipedrive_contract: Contract, kind: str, path: str
) -> None:
    params = operation(pipedrive_contract.raw, "GET", path)["parameters"]
    [fields] = [p for p in params if p["name"] == "fields"]
    assert SEARCH_FIELDS[kind] == tuple(fields["schema"]["enum"])


@pytest.mark.parametrize(
    ("kind", "path"),
    [("organization", "/organizations"), ("person", "/persons"), ("deal", "/deals"),
     ("activity", "/activities")],
)  # fmt: skip
def test_list_parameters_match_the_spec(pipedrive_contract: Contract, kind: str, path: str) -> None:
    params = {p["name"]: p for p in operation(pipedrive_contract.raw, "GET", path)["parameters"]}
    assert set(params) == LIST_PARAMS[kind]
    assert LIST_SORT_FIELDS[kind] == tuple(params["sort_by"]["schema"]["enum"])
    assert LIST_INCLUDE_FIELDS[kind] == tuple(params["include_fields"]["schema"]["enum"])
    assert params["sort_by"]["schema"]["default"] == "id"
    assert params["sort_direction"]["schema"]["default"] == "asc"


@pytest.mark.parametrize("path", ["/organizations", "/persons", "/deals", "/activities"])
def test_delete_answers_the_id(pipedrive_contract: Contract, path: str) -> None:
    """The simulator answers {"success": true, "data": {"id": N}}: the spec's whole schema."""
    content = operation(pipedrive_contract.raw, "DELETE", f"{path}/{{id}}")["responses"]["200"]
    schema = content["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"success", "data"}
    data = schema["properties"]["data"]["properties"]
    assert set(data) == {"id"} and data["id"]["type"] == "integer"
