"""`GET /organizations`, `/persons`, `/deals`, `/activities`: filters, incremental reads
(`updated_since`/`updated_until`), sorting and cursors, and what deleted records show.

Every query parameter the spec defines for these lists (pipedrive_schema.LIST_PARAMS) is
handled: applied, or checked and without effect where the sandbox has nothing to add
(`include_fields`, `custom_fields`, `include_labels`, `include_option_labels`), or refused
(`filter_id`: the sandbox has no saved filters).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from multidict import MultiMapping

from sandbox.pipedrive_errors import BadRequest
from sandbox.pipedrive_paging import page_sorted
from sandbox.pipedrive_schema import LIST_INCLUDE_FIELDS, LIST_SORT_FIELDS
from sandbox.pipedrive_state import ACTIVITY, DEAL, PERSON, EntityKind, PipedriveState, Record
from sandbox.pipedrive_validation import (
    bool_param,
    enum_param,
    ids_param,
    int_param,
    limit_param,
    list_param,
    time_param,
)
from sandbox.timeutil import parse_iso8601

DEAL_STATUSES = ("open", "won", "lost", "deleted")
MAX_CUSTOM_FIELDS = 15
# Integer query parameters that equal the record field of the same name.
_EQUAL_INT: dict[str, tuple[str, ...]] = {
    "organization": ("owner_id",),
    "person": ("owner_id", "org_id"),
    "deal": ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"),
    "activity": ("owner_id", "deal_id", "person_id", "org_id"),
}

Predicate = Callable[[Record], bool]


def list_records(
    sim: PipedriveState, kind: EntityKind, query: MultiMapping[str]
) -> tuple[list[Record], str | None]:
    """One page of the list (stored records, not yet rendered) and the next cursor."""
    if "filter_id" in query:
        raise BadRequest("Parameter 'filter_id': the sandbox has no saved filters")
    equal: dict[str, Any] = {name: int_param(query, name) for name in _EQUAL_INT[kind.name]}
    if kind is ACTIVITY:
        equal["done"] = bool_param(query, "done")
        equal["lead_id"] = query.get("lead_id")
    since = time_param(query, "updated_since")
    tests = [_visible(sim, kind, query, incremental=since is not None)]
    tests.append(lambda record: not sim.purged(record))
    ids = ids_param(query)
    if ids is not None:
        tests.append(lambda record: record["id"] in ids)
    if kind is PERSON and "deal_id" in query:
        tests.append(_of_deal(sim, int_param(query, "deal_id")))
    tests += _window(since, time_param(query, "updated_until"))
    sort_by = enum_param(query, "sort_by", LIST_SORT_FIELDS[kind.name]) or "id"
    direction = enum_param(query, "sort_direction", ("asc", "desc")) or "asc"
    _check_ignored(kind, query)
    limit = limit_param(query)
    # select() takes the equality filters (the benchmarks index activities by deal_id).
    chosen = [r for r in sim.select(kind, **equal) if all(test(r) for test in tests)]
    return page_sorted(chosen, sort_by, direction, limit, query.get("cursor"))


def _visible(
    sim: PipedriveState, kind: EntityKind, query: MultiMapping[str], *, incremental: bool
) -> Predicate:
    """Deleted records: deals only when `status` names "deleted" ("If omitted, all not
    deleted deals are returned. If set to deleted, deals that have been deleted up to 30
    days ago will be included"); the others never, unless the sandbox is configured to
    report them in incremental reads (the spec does not say)."""
    if kind is DEAL:
        statuses = list_param(query, "status", DEAL_STATUSES) or ("open", "won", "lost")

        def deal_visible(record: Record) -> bool:
            if record["is_deleted"]:
                return "deleted" in statuses
            return record["status"] in statuses

        return deal_visible
    with_deleted = incremental and sim.config.behaviour.deleted_in_updated_since
    return lambda record: with_deleted or not record["is_deleted"]


def _of_deal(sim: PipedriveState, deal_id: int | None) -> Predicate:
    """Persons "linked to the specified deal": the deal's person."""
    deal = sim.deals.get(deal_id) if deal_id is not None else None
    person_id = deal["person_id"] if deal is not None else None
    return lambda record: person_id is not None and record["id"] == person_id


def _window(since: datetime | None, until: datetime | None) -> list[Predicate]:
    """update_time later than or equal to `updated_since`, earlier than `updated_until`."""

    def updated(record: Record) -> datetime:
        moment = parse_iso8601(record["update_time"])
        assert moment is not None
        return moment

    tests: list[Predicate] = []
    if since is not None:
        tests.append(lambda record: updated(record) >= since)
    if until is not None:
        tests.append(lambda record: updated(record) < until)
    return tests


def _check_ignored(kind: EntityKind, query: MultiMapping[str]) -> None:
    """Parameters that change nothing here (no custom fields, labels or counters to add)
    are still held to the spec, so a client's typo fails here as it would upstream."""
    list_param(query, "include_fields", LIST_INCLUDE_FIELDS[kind.name])
    if kind is ACTIVITY:
        return
    bool_param(query, "include_option_labels")
    bool_param(query, "include_labels")
    keys = query.get("custom_fields")
    if keys is not None and len(keys.split(",")) > MAX_CUSTOM_FIELDS:
        raise BadRequest(f"Parameter 'custom_fields' allows at most {MAX_CUSTOM_FIELDS} keys")
