"""In-memory Pipedrive company: organizations, persons, deals, activities, and the token's
rate-limit windows and daily budget."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from sandbox import pipedrive_errors
from sandbox.config import PipedriveConfig
from sandbox.faults import Fault
from sandbox.pipedrive_errors import BadRequest, NotFound
from sandbox.pipedrive_schema import (
    ACTIVITY_BODY,
    ACTIVITY_KEYS,
    ACTIVITY_NULLABLE,
    DEAL_BODY,
    DEAL_KEYS,
    DEAL_NULLABLE,
    ORGANIZATION_BODY,
    ORGANIZATION_KEYS,
    ORGANIZATION_NULLABLE,
    ORGANIZATION_PATCH_BODY,
    PERSON_BODY,
    PERSON_KEYS,
    PERSON_NULLABLE,
    PERSON_PATCH_BODY,
)
from sandbox.pipedrive_validation import check_body, check_date, check_time
from sandbox.ratelimit import RollingWindow
from sandbox.simulator import SimulatorState
from sandbox.timeutil import Clock, parse_iso8601, rfc3339, utcnow

Record = dict[str, Any]
API_USER_ID = 1  # the user the API token belongs to: default owner and creator
DEFAULT_VISIBILITY = 3  # "owner & followers"
DEAL_STATUSES = ("open", "won", "lost")
PURGE_AFTER = timedelta(days=30)
DELETED_AT = "_deleted_at"  # a datetime; not a spec property, so render() leaves it out


@dataclass(frozen=True)
class EntityKind:
    name: str
    keys: tuple[str, ...]
    nullable: frozenset[str]


ORGANIZATION = EntityKind("organization", ORGANIZATION_KEYS, ORGANIZATION_NULLABLE)
PERSON = EntityKind("person", PERSON_KEYS, PERSON_NULLABLE)
DEAL = EntityKind("deal", DEAL_KEYS, DEAL_NULLABLE)
ACTIVITY = EntityKind("activity", ACTIVITY_KEYS, ACTIVITY_NULLABLE)


def render(kind: EntityKind, record: Record) -> Record:
    """Spec order; unset values are null only where the spec allows null, else left out."""
    return {
        key: copy.deepcopy(record[key])
        for key in kind.keys
        if record[key] is not None or key in kind.nullable
    }


class PipedriveState(SimulatorState[PipedriveConfig]):
    def __init__(self, config: PipedriveConfig | None = None, *, clock: Clock = utcnow) -> None:
        super().__init__(config or PipedriveConfig())
        self.clock = clock
        self.organizations: dict[int, Record] = {}
        self.persons: dict[int, Record] = {}
        self.deals: dict[int, Record] = {}
        self.activities: dict[int, Record] = {}
        self._next_id: dict[str, int] = {}
        self.burst = RollingWindow()
        self.search_burst = RollingWindow()
        self.budget_day: date | None = None
        self.budget_spent = 0

    # -- daily budget ------------------------------------------------------------------------

    def budget_left(self) -> int:
        today = self.clock().date()  # UTC: Pipedrive resets at midnight
        if self.budget_day != today:
            self.budget_day, self.budget_spent = today, 0
        return max(0, self.config.limits.daily_budget - self.budget_spent)

    # -- create / read / update ----------------------------------------------------------------

    def _store(self, kind: EntityKind) -> dict[int, Record]:
        stores = {
            "organization": self.organizations,
            "person": self.persons,
            "deal": self.deals,
            "activity": self.activities,
        }
        return stores[kind.name]

    def view(self, kind: EntityKind, record: Record) -> Record:
        """A stored record as the API shows it."""
        shown = render(kind, record)
        behaviour = self.config.behaviour
        if kind is DEAL and record["is_deleted"] and behaviour.deleted_deal_status == "deleted":
            shown["status"] = "deleted"
        return shown

    def _find(self, kind: EntityKind, entity_id: int) -> Record:
        """The stored record an id names, for GET, PATCH and DELETE by id."""
        record = self._store(kind).get(entity_id)
        if record is None or self.purged(record):
            raise NotFound()
        if record["is_deleted"] and self.config.behaviour.deleted_by_id == "not_found":
            raise NotFound()
        return record

    def purged(self, record: Record) -> bool:
        """Deleted more than 30 days ago: "permanently deleted", gone from every answer."""
        deleted_at = record.get(DELETED_AT)
        return deleted_at is not None and self.clock() - deleted_at >= PURGE_AFTER

    def get(self, kind: EntityKind, entity_id: int) -> Record:
        return self.view(kind, self._find(kind, entity_id))

    def delete(self, kind: EntityKind, entity_id: int) -> Record:
        """Marks the record deleted. Deleting it again changes nothing, so a retried delete
        succeeds."""
        record = self._find(kind, entity_id)
        if not record["is_deleted"]:
            self._patch(kind, record, {"is_deleted": True})
        return {"id": entity_id}

    def _new(self, kind: EntityKind, body: Mapping[str, Any], defaults: Record) -> Record:
        now = rfc3339(self.clock())
        record: Record = dict.fromkeys(kind.keys)
        record.update(defaults)
        record.update({k: copy.deepcopy(v) for k, v in body.items() if k in record})
        entity_id = self._next_id.get(kind.name, 0) + 1
        self._next_id[kind.name] = entity_id
        record["id"] = entity_id
        record["add_time"] = _timestamp(body, "add_time") or now
        record["update_time"] = now
        record[DELETED_AT] = self.clock() if record["is_deleted"] else None
        self._store(kind)[entity_id] = record
        return record

    def _require(self, kind: EntityKind, field: str, entity_id: Any) -> None:
        if entity_id is None:
            return
        record = self._store(kind).get(entity_id)
        # A deleted record cannot be linked to, as if it were gone.
        if record is None or record["is_deleted"]:
            raise BadRequest(f"Field '{field}': {kind.name} {entity_id} does not exist")

    def create_organization(self, raw: Any) -> Record:
        body = check_body(raw, ORGANIZATION_BODY, required=("name",))
        defaults = {
            "owner_id": API_USER_ID,
            "is_deleted": False,
            "visible_to": DEFAULT_VISIBILITY,
            "label_ids": [],
            "custom_fields": {},
        }
        return self.view(ORGANIZATION, self._new(ORGANIZATION, body, defaults))

    def update_organization(self, entity_id: int, raw: Any) -> Record:
        record = self._find(ORGANIZATION, entity_id)
        body = check_body(raw, ORGANIZATION_PATCH_BODY, required=())
        _not_blank(body, "name")
        return self._patch(ORGANIZATION, record, body)

    def create_person(self, raw: Any) -> Record:
        # The spec does not mark `name` required; Pipedrive refuses a person without one.
        body = check_body(raw, PERSON_BODY, required=("name",))
        self._require(ORGANIZATION, "org_id", body.get("org_id"))
        defaults = {
            "owner_id": API_USER_ID,
            **_name_parts(body["name"]),
            "emails": [],
            "phones": [],
            "is_deleted": False,
            "visible_to": DEFAULT_VISIBILITY,
            "label_ids": [],
            "custom_fields": {},
        }
        return self.view(PERSON, self._new(PERSON, body, defaults))

    def update_person(self, entity_id: int, raw: Any) -> Record:
        record = self._find(PERSON, entity_id)
        body = check_body(raw, PERSON_PATCH_BODY, required=())
        _not_blank(body, "name")
        self._require(ORGANIZATION, "org_id", body.get("org_id"))
        if "name" in body:
            body.update(_name_parts(body["name"]))
        return self._patch(PERSON, record, body)

    def create_deal(self, raw: Any) -> Record:
        body = check_body(raw, DEAL_BODY, required=("title",))
        self._require(PERSON, "person_id", body.get("person_id"))
        self._require(ORGANIZATION, "org_id", body.get("org_id"))
        status = body.get("status", "open")
        if status not in DEAL_STATUSES:
            raise BadRequest(f"Field 'status' must be one of: {', '.join(DEAL_STATUSES)}")
        check_date(body, "expected_close_date")
        now = rfc3339(self.clock())
        closed = status in ("won", "lost")
        defaults = {
            "owner_id": API_USER_ID,
            "pipeline_id": 1,
            "stage_id": 1,
            "value": 0,
            "currency": "USD",
            "is_deleted": False,
            "is_archived": False,
            "status": status,
            "visible_to": DEFAULT_VISIBILITY,
            "label_ids": [],
            "origin": "API",
            "custom_fields": {},
            "close_time": now if closed else None,
            "won_time": now if status == "won" else None,
            "lost_time": now if status == "lost" else None,
        }
        return self.view(DEAL, self._new(DEAL, body, defaults))

    def update_deal(self, entity_id: int, raw: Any) -> Record:
        record = self._find(DEAL, entity_id)
        body = check_body(raw, DEAL_BODY, required=())
        _not_blank(body, "title")
        self._require(PERSON, "person_id", body.get("person_id"))
        self._require(ORGANIZATION, "org_id", body.get("org_id"))
        status = body.get("status", record["status"])
        if status not in DEAL_STATUSES:
            raise BadRequest(f"Field 'status' must be one of: {', '.join(DEAL_STATUSES)}")
        check_date(body, "expected_close_date")
        now = rfc3339(self.clock())
        if status != record["status"]:
            closed = status in ("won", "lost")
            body["close_time"] = now if closed else None
            body["won_time"] = now if status == "won" else None
            body["lost_time"] = now if status == "lost" else None
        return self._patch(DEAL, record, body)

    def create_activity(self, raw: Any) -> Record:
        # Neither does the spec mark `subject` required; requiring it catches client bugs.
        body = self._activity_body(raw, required=("subject",))
        now = rfc3339(self.clock())
        done = body.get("done", False)
        defaults = {
            "type": "call",  # Pipedrive's default activity type
            "owner_id": API_USER_ID,
            "creator_user_id": API_USER_ID,
            "is_deleted": False,
            "busy": False,
            "done": done,
            "marked_as_done_time": now if done else None,
            "participants": [],
            "attendees": [],
        }
        record = self._new(ACTIVITY, body, defaults)
        record["person_id"] = _primary_person(record["participants"])
        return self.view(ACTIVITY, record)

    def update_activity(self, entity_id: int, raw: Any) -> Record:
        record = self._find(ACTIVITY, entity_id)
        body = self._activity_body(raw, required=())
        _not_blank(body, "subject")
        if "done" in body and body["done"] != record["done"]:
            body["marked_as_done_time"] = rfc3339(self.clock()) if body["done"] else None
        if "participants" in body:
            body["person_id"] = _primary_person(body["participants"])
        return self._patch(ACTIVITY, record, body)

    def _patch(self, kind: EntityKind, record: Record, body: Record) -> Record:
        """Apply a checked PATCH body; every change bumps update_time (incremental reads)."""
        if body.get("is_deleted", record["is_deleted"]) != record["is_deleted"]:
            record[DELETED_AT] = self.clock() if body["is_deleted"] else None
        record.update(copy.deepcopy(body))
        record["update_time"] = rfc3339(self.clock())
        return self.view(kind, record)

    def _activity_body(self, raw: Any, required: tuple[str, ...]) -> Record:
        body = check_body(raw, ACTIVITY_BODY, required=required)
        # person_id is read-only in v2 (API-NOTES): the primary participant decides it.
        body.pop("person_id", None)
        self._require(DEAL, "deal_id", body.get("deal_id"))
        self._require(ORGANIZATION, "org_id", body.get("org_id"))
        for index, participant in enumerate(body.get("participants", [])):
            if "person_id" not in participant:
                raise BadRequest(f"Field 'participants[{index}].person_id' is required")
            self._require(PERSON, f"participants[{index}].person_id", participant["person_id"])
        check_date(body, "due_date")
        check_time(body, "due_time")
        return body

    # -- lists ---------------------------------------------------------------------------------

    def select(self, kind: EntityKind, **equal: Any) -> list[Record]:
        """Stored records whose fields equal every non-None filter, by ascending id (ids only
        grow and dicts keep insertion order, so no sort is needed)."""
        wanted = {k: v for k, v in equal.items() if v is not None}
        return [
            record
            for record in self._store(kind).values()
            if all(record.get(k) == v for k, v in wanted.items())
        ]

    def snapshot(self) -> dict[str, list[Record]]:
        def rendered(kind: EntityKind) -> list[Record]:
            return [self.view(kind, r) for r in self.select(kind) if not self.purged(r)]

        return {
            "organizations": rendered(ORGANIZATION),
            "persons": rendered(PERSON),
            "deals": rendered(DEAL),
            "activities": rendered(ACTIVITY),
        }

    # -- SimulatorState -----------------------------------------------------------------------

    def reset_data(self) -> None:
        for store in (self.organizations, self.persons, self.deals, self.activities):
            store.clear()
        self._next_id.clear()
        self.burst.clear()
        self.search_burst.clear()
        self.budget_day, self.budget_spent = None, 0

    def fault_response(self, fault: Fault) -> web.Response:
        return pipedrive_errors.fault_response(fault, self.config.faults.error_status)


def _name_parts(name: str) -> Record:
    """Pipedrive splits a person's name at the first space."""
    first, _, last = name.strip().partition(" ")
    return {"first_name": first, "last_name": last.strip() or None}


def _not_blank(body: Mapping[str, Any], name: str) -> None:
    if name in body and not body[name].strip():
        raise BadRequest(f"Field '{name}' must not be empty")


def _timestamp(body: Mapping[str, Any], name: str) -> str | None:
    raw = body.get(name)
    if raw is None:
        return None
    moment = parse_iso8601(raw)
    if moment is None:
        raise BadRequest(f"Field '{name}' must be an RFC 3339 date-time")
    return rfc3339(moment)


def _primary_person(participants: list[Record]) -> int | None:
    """The primary participant's person; the first one when none is flagged primary."""
    for participant in participants:
        if participant.get("primary"):
            return int(participant["person_id"])
    return int(participants[0]["person_id"]) if participants else None
