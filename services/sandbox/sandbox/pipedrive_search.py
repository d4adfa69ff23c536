"""`GET /{organizations,persons,deals}/search`: matching, scoring and the result items."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.pipedrive_errors import BadRequest
from sandbox.pipedrive_schema import SEARCH_FIELDS
from sandbox.pipedrive_state import (
    API_USER_ID,
    DEAL,
    ORGANIZATION,
    PERSON,
    EntityKind,
    PipedriveState,
    Record,
)


@dataclass(frozen=True)
class SearchQuery:
    term: str
    fields: tuple[str, ...]
    exact: bool


def parse_search(
    kind: EntityKind, term: str | None, fields: str | None, exact: bool
) -> SearchQuery:
    term = (term or "").strip()
    # "Minimum 2 characters (or 1 if using exact_match)."
    if len(term) < (1 if exact else 2):
        minimum = "1 character" if exact else "2 characters"
        raise BadRequest(f"Parameter 'term' must be at least {minimum} long")
    allowed = SEARCH_FIELDS[kind.name]
    chosen = tuple(f.strip() for f in fields.split(",")) if fields else allowed
    unknown = [f for f in chosen if f not in allowed]
    if unknown:
        raise BadRequest(
            f"Parameter 'fields' must be a comma-separated list of: {', '.join(allowed)}"
        )
    return SearchQuery(term, chosen, exact)


def search(
    state: PipedriveState, kind: EntityKind, query: SearchQuery, **filters: Any
) -> list[tuple[float, Record]]:
    """Matching records, best score first (ties by id). Case-insensitive throughout:
    equality with exact_match, substring otherwise."""
    hits: list[tuple[float, Record]] = []
    needle = query.term.casefold()
    for record in state.select(kind, is_deleted=False, **filters):
        best = 0.0
        for value in _values(record, query.fields):
            text = value.casefold()
            if query.exact:
                score = 1.0 if text == needle else 0.0
            else:
                score = round(len(needle) / len(text), 4) if needle in text else 0.0
            best = max(best, score)
        if best > 0:
            hits.append((best, record))
    return sorted(hits, key=lambda hit: (-hit[0], hit[1]["id"]))


def _values(record: Record, fields: Iterable[str]) -> list[str]:
    """The searchable text of a record for the requested `fields` (custom fields: none)."""
    values: list[str] = []
    for field in fields:
        if field in ("name", "title", "notes") and isinstance(record.get(field), str):
            values.append(record[field])
        elif field == "email":
            values += [e["value"] for e in record.get("emails") or [] if e.get("value")]
        elif field == "phone":
            values += [p["value"] for p in record.get("phones") or [] if p.get("value")]
        elif field == "address" and (record.get("address") or {}).get("value"):
            values.append(record["address"]["value"])
    return values


def search_item(state: PipedriveState, kind: EntityKind, record: Record) -> Record:
    """The `item` of a search hit, shaped as the spec's search responses."""
    common = {"id": record["id"], "type": kind.name}
    tail: dict[str, list[str]] = {"custom_fields": [], "notes": []}
    owner = {"id": record.get("owner_id") or API_USER_ID}
    if kind is ORGANIZATION:
        item = {**common, "name": record["name"]}
        address = (record.get("address") or {}).get("value")
        if address:
            item["address"] = address
        return {**item, "visible_to": record["visible_to"], "owner": owner, **tail}
    if kind is PERSON:
        item = {
            **common,
            "name": record["name"],
            "phones": [p["value"] for p in record["phones"] if p.get("value")],
            "emails": [e["value"] for e in record["emails"] if e.get("value")],
            "visible_to": record["visible_to"],
            "owner": owner,
        }
        org = state.organizations.get(record["org_id"]) if record.get("org_id") else None
        if org is not None:  # non-nullable in the spec: left out when there is none
            item["organization"] = {"id": org["id"], "name": org["name"], "address": None}
        return {**item, **tail}
    assert kind is DEAL
    person = state.persons.get(record["person_id"]) if record.get("person_id") else None
    org = state.organizations.get(record["org_id"]) if record.get("org_id") else None
    return {
        **common,
        "title": record["title"],
        "value": int(record["value"]),  # the search schema says integer
        "currency": record["currency"],
        "status": record["status"],
        "visible_to": record["visible_to"],
        "owner": owner,
        "stage": {"id": record["stage_id"], "name": "Qualified"},
        "person": None if person is None else {"id": person["id"], "name": person["name"]},
        "organization": None if org is None else {"id": org["id"], "name": org["name"]},
        **tail,
        "is_archived": record["is_archived"],
    }
