"""The client's operation table matches the official spec (paths, methods, token costs)."""

from __future__ import annotations

from typing import Any

import pytest

from pipedrive_writer.pipedrive import OPERATIONS
from tests.contract import load_spec
from tests.specs import PIPEDRIVE_SPEC, spec_file


@pytest.fixture(scope="module")
def spec_operations() -> dict[str, tuple[str, str, Any]]:
    document = load_spec(spec_file(PIPEDRIVE_SPEC))
    found: dict[str, tuple[str, str, Any]] = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (method.upper(), path, op.get("x-token-cost"))
    return found


def test_every_operation_matches_the_spec(spec_operations: dict[str, tuple[str, str, Any]]) -> None:
    for op in OPERATIONS.values():
        assert spec_operations[op.id] == (op.method, op.path, op.cost), op.id


def test_the_costs_we_rely_on(spec_operations: dict[str, tuple[str, str, Any]]) -> None:
    costs = {op.id: op.cost for op in OPERATIONS.values()}
    assert costs == {
        "getActivities": 10,
        "addActivity": 5,
        "updateActivity": 5,
        "getDeals": 10,
        "addDeal": 5,
        "updateDeal": 5,
        "searchDeals": 20,
        "addPerson": 5,
        "searchPersons": 20,
        "addOrganization": 5,
        "getOrganization": 1,
        "updateOrganization": 5,
        "searchOrganization": 20,
    }
    searches = {op.id for op in OPERATIONS.values() if op.search}
    assert searches == {"searchDeals", "searchPersons", "searchOrganization"}
