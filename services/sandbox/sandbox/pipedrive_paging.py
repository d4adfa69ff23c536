"""Opaque cursors for Pipedrive v2 lists: base64url JSON, like the spec's example cursor
(`{"field":"id","fieldValue":7,"sortDirection":"asc","id":7}`)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sandbox.pipedrive_errors import BadRequest

T = TypeVar("T")
Record = dict[str, Any]


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid cursor") from None
    if not isinstance(payload, dict):
        raise BadRequest("Invalid cursor")
    return payload


def page_sorted(
    items: Iterable[Record], field: str, direction: str, limit: int, cursor: str | None
) -> tuple[list[Record], str | None]:
    """Sorted by `field` then id (ascending or descending alike); unset values (an activity
    without due_date) sort before any value. The cursor names the first item of the next
    page by its sort value and id, so objects added while a client pages through do not
    shift what it sees; one whose sort value changes meanwhile (update_time) may move."""
    descending = direction == "desc"

    def key(record: Record) -> tuple[tuple[bool, Any], int]:
        return _sortable(record.get(field)), int(record["id"])

    ordered = sorted(items, key=key, reverse=descending)
    if cursor is not None:
        start = _cursor_key(decode_cursor(cursor), field, direction)
        ordered = [r for r in ordered if (key(r) <= start if descending else key(r) >= start)]
    page, after = ordered[:limit], ordered[limit : limit + 1]
    if not after:
        return page, None
    payload = {
        "field": field,
        "fieldValue": after[0].get(field),
        "sortDirection": direction,
        "id": int(after[0]["id"]),
    }
    return page, encode_cursor(payload)


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, "" if value is None else value)


def _cursor_key(payload: dict[str, Any], field: str, direction: str) -> tuple[Any, int]:
    """A cursor is only valid for the sort it was made for."""
    entity_id, value = payload.get("id"), payload.get("fieldValue")
    value_type = int if field == "id" else str
    if (
        payload.get("field") != field
        or payload.get("sortDirection") != direction
        or type(entity_id) is not int
        or not (type(value) is value_type or (value is None and field != "id"))
    ):
        raise BadRequest("Invalid cursor")
    return _sortable(value), entity_id


def page_by_offset(
    items: Sequence[T], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """Search results are ranked by score, so their cursor is a position."""
    offset = 0
    if cursor is not None:
        payload = decode_cursor(cursor)
        offset_value = payload.get("offset")
        if payload.get("field") != "search" or not isinstance(offset_value, int):
            raise BadRequest("Invalid cursor")
        if offset_value < 0:
            raise BadRequest("Invalid cursor")
        offset = offset_value
    page = list(items[offset : offset + limit])
    if offset + limit >= len(items):
        return page, None
    return page, encode_cursor({"field": "search", "offset": offset + limit})
