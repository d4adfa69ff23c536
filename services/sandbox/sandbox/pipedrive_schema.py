"""Pipedrive v2 shapes used by the simulator, transcribed from specs/pipedrive-v2.yaml.

tests/sandbox checks every table here against the spec file, so a spec update that changes a
field, a nullable flag or an `x-token-cost` fails loudly instead of drifting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "integer", "number", "boolean", "object", "array"]


@dataclass(frozen=True)
class Field:
    kind: Kind
    nullable: bool = False
    items: Field | None = None  # arrays
    props: Mapping[str, Field] | None = None  # objects; None = free-form
    enum: tuple[str, ...] | None = None


S = Field("string")
I = Field("integer")  # noqa: E741 - reads like the spec's types
N = Field("number")
B = Field("boolean")
S_NULL = Field("string", nullable=True)
I_NULL = Field("integer", nullable=True)
N_NULL = Field("number", nullable=True)
INT_LIST = Field("array", items=I)
FREE_OBJECT = Field("object")
ADDRESS = Field(
    "object",
    props={
        name: S
        for name in (
            "value",
            "country",
            "admin_area_level_1",
            "admin_area_level_2",
            "locality",
            "sublocality",
            "route",
            "street_number",
            "subpremise",
            "postal_code",
        )
    },
)
CONTACTS = Field("array", items=Field("object", props={"value": S, "primary": B, "label": S}))

ORGANIZATION_BODY: Mapping[str, Field] = {
    "name": S,
    "owner_id": I,
    "add_time": S,
    "visible_to": I,
    "label_ids": INT_LIST,
    "address": ADDRESS,
    "website": S_NULL,
    "linkedin": S_NULL,
    "industry": I_NULL,
    "annual_revenue": I_NULL,
    "employee_count": I_NULL,
    "custom_fields": FREE_OBJECT,
}

ORGANIZATION_PATCH_BODY: Mapping[str, Field] = {
    k: v for k, v in ORGANIZATION_BODY.items() if k != "add_time"
}

PERSON_BODY: Mapping[str, Field] = {
    "name": S,
    "owner_id": I,
    "org_id": I,
    "add_time": S,
    "emails": CONTACTS,
    "phones": CONTACTS,
    "visible_to": I,
    "label_ids": INT_LIST,
    "postal_address": ADDRESS,
    "notes": S,
    "im": CONTACTS,
    "birthday": S,
    "job_title": S,
    "marketing_status": Field(
        "string", enum=("no_consent", "unsubscribed", "subscribed", "archived")
    ),
    "custom_fields": FREE_OBJECT,
}

PERSON_PATCH_BODY: Mapping[str, Field] = {k: v for k, v in PERSON_BODY.items() if k != "add_time"}

# POST /deals and PATCH /deals/{id} share this body in the spec.
DEAL_BODY: Mapping[str, Field] = {
    "title": S,
    "owner_id": I,
    "person_id": I,
    "org_id": I,
    "pipeline_id": I,
    "stage_id": I,
    "value": N,
    "currency": S,
    "is_deleted": B,
    "is_archived": B,
    "archive_time": S,
    "status": S,
    "probability": N_NULL,
    "lost_reason": S_NULL,
    "visible_to": I,
    "close_time": S_NULL,
    "won_time": S,
    "lost_time": S,
    "expected_close_date": S,
    "label_ids": INT_LIST,
    "custom_fields": FREE_OBJECT,
}

# POST /activities and PATCH /activities/{id} share this body in the spec.
ACTIVITY_BODY: Mapping[str, Field] = {
    "subject": S,
    "type": S,
    "owner_id": I,
    "deal_id": I,
    "lead_id": S,
    "person_id": I,
    "org_id": I,
    "project_id": I,
    "due_date": S,
    "due_time": S,
    "duration": S,
    "busy": B,
    "done": B,
    "location": ADDRESS,
    "participants": Field("array", items=Field("object", props={"person_id": I, "primary": B})),
    "attendees": Field(
        "array",
        items=Field(
            "object",
            props={
                "email": S,
                "name": S,
                "status": S,
                "is_organizer": B,
                "person_id": I,
                "user_id": I,
            },
        ),
    ),
    "public_description": S,
    "priority": I,
    "note": S,
}

# Response objects: every property of the spec's response schema, in the spec's order.
ORGANIZATION_KEYS = (
    "id", "name", "owner_id", "add_time", "update_time", "is_deleted", "visible_to", "address",
    "label_ids", "website", "linkedin", "industry", "annual_revenue", "employee_count",
    "custom_fields",
)  # fmt: skip
PERSON_KEYS = (
    "id", "name", "first_name", "last_name", "owner_id", "org_id", "add_time", "update_time",
    "emails", "phones", "is_deleted", "visible_to", "label_ids", "picture_id", "postal_address",
    "notes", "im", "birthday", "job_title", "custom_fields",
)  # fmt: skip
DEAL_KEYS = (
    "id", "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value",
    "currency", "add_time", "update_time", "stage_change_time", "is_deleted", "is_archived",
    "status", "probability", "lost_reason", "visible_to", "close_time", "won_time", "lost_time",
    "expected_close_date", "label_ids", "origin", "origin_id", "channel", "channel_id",
    "source_lead_id", "arr", "mrr", "acv", "custom_fields",
)  # fmt: skip
ACTIVITY_KEYS = (
    "id", "subject", "type", "owner_id", "creator_user_id", "is_deleted", "add_time",
    "update_time", "deal_id", "lead_id", "person_id", "org_id", "project_id", "due_date",
    "due_time", "duration", "busy", "done", "marked_as_done_time", "location", "participants",
    "attendees", "conference_meeting_client", "conference_meeting_url", "conference_meeting_id",
    "public_description", "priority", "note",
)  # fmt: skip

# Only these may be sent as null. Other unset properties are left out of the object: real
# Pipedrive sends null for them, but the spec does not mark them nullable and the spec wins.
ORGANIZATION_NULLABLE = frozenset(
    {"website", "linkedin", "industry", "annual_revenue", "employee_count"}
)
PERSON_NULLABLE: frozenset[str] = frozenset()
DEAL_NULLABLE = frozenset(
    {
        "probability", "lost_reason", "close_time", "origin_id", "channel", "channel_id",
        "source_lead_id", "arr", "mrr", "acv",
    }
)  # fmt: skip
ACTIVITY_NULLABLE: frozenset[str] = frozenset()

# x-token-cost of each operation the simulator implements (route keys as in /_sandbox/stats).
TOKEN_COSTS: Mapping[str, int] = {
    "POST /organizations": 5,
    "GET /organizations": 10,
    "GET /organizations/search": 20,
    "GET /organizations/{id}": 1,
    "PATCH /organizations/{id}": 5,
    "DELETE /organizations/{id}": 3,
    "POST /persons": 5,
    "GET /persons": 10,
    "GET /persons/search": 20,
    "GET /persons/{id}": 1,
    "PATCH /persons/{id}": 5,
    "DELETE /persons/{id}": 3,
    "POST /deals": 5,
    "GET /deals": 10,
    "GET /deals/search": 20,
    "GET /deals/{id}": 1,
    "PATCH /deals/{id}": 5,
    "DELETE /deals/{id}": 3,
    "POST /activities": 5,
    "GET /activities": 10,
    "GET /activities/{id}": 1,
    "PATCH /activities/{id}": 5,
    "DELETE /activities/{id}": 3,
}
SEARCH_ROUTES = frozenset(route for route in TOKEN_COSTS if route.endswith("/search"))

# `fields` values each search accepts (the spec's enums).
SEARCH_FIELDS: Mapping[str, tuple[str, ...]] = {
    "organization": ("address", "custom_fields", "notes", "name"),
    "person": ("custom_fields", "email", "notes", "phone", "name"),
    "deal": ("custom_fields", "notes", "title"),
}

# The lists (GET /organizations, /persons, /deals, /activities): every query parameter the
# spec defines, the `sort_by` values and the `include_fields` values, per entity.
_LIST_COMMON = ("filter_id", "ids", "owner_id", "updated_since", "updated_until", "sort_by",
                "sort_direction", "include_fields", "limit", "cursor")  # fmt: skip
_LABELS = ("custom_fields", "include_option_labels", "include_labels")
LIST_PARAMS: Mapping[str, frozenset[str]] = {
    "organization": frozenset((*_LIST_COMMON, *_LABELS)),
    "person": frozenset((*_LIST_COMMON, *_LABELS, "org_id", "deal_id")),
    "deal": frozenset(
        (*_LIST_COMMON, *_LABELS, "person_id", "org_id", "pipeline_id", "stage_id", "status")
    ),
    "activity": frozenset((*_LIST_COMMON, "deal_id", "lead_id", "person_id", "org_id", "done")),
}
LIST_SORT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "organization": ("id", "update_time", "add_time"),
    "person": ("id", "update_time", "add_time"),
    "deal": ("id", "update_time", "add_time"),
    "activity": ("id", "update_time", "add_time", "due_date"),
}
_COUNTS = ("activities_count", "done_activities_count", "undone_activities_count",
           "files_count", "notes_count", "followers_count")  # fmt: skip
_DEAL_COUNTS = ("won_deals_count", "related_won_deals_count", "lost_deals_count",
                "related_lost_deals_count")  # fmt: skip
LIST_INCLUDE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "organization": (
        "next_activity_id", "last_activity_id", "open_deals_count", "related_open_deals_count",
        "closed_deals_count", "related_closed_deals_count", "email_messages_count",
        "people_count", *_COUNTS, *_DEAL_COUNTS, "smart_bcc_email",
    ),
    "person": (
        "next_activity_id", "last_activity_id", "open_deals_count", "related_open_deals_count",
        "closed_deals_count", "related_closed_deals_count", "participant_open_deals_count",
        "participant_closed_deals_count", "email_messages_count", *_COUNTS, *_DEAL_COUNTS,
        "last_incoming_mail_time", "last_outgoing_mail_time", "marketing_status",
        "doi_status", "smart_bcc_email",
    ),
    "deal": (
        "next_activity_id", "last_activity_id", "first_won_time", "products_count",
        "files_count", "notes_count", "followers_count", "email_messages_count",
        "activities_count", "done_activities_count", "undone_activities_count",
        "participants_count", "last_incoming_mail_time", "last_outgoing_mail_time",
        "smart_bcc_email", "source_lead_id",
    ),
    "activity": ("attendees",),
}  # fmt: skip
