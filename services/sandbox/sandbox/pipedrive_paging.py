"""Opaque cursors for Pipedrive v2 lists: base64url JSON, like the spec's example cursor
(`{"field":"id","fieldValue":7,"sortDirection":"asc","id":7}`)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sandbox.pipedrive_errors import BadRequest

T = TypeVar("T")


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


def page_by_id(
    items: Sequence[T], key: Callable[[T], int], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """`items` sorted by ascending id. The cursor names the first id of the next page, so
    objects added while a client pages through do not shift what it sees."""
    start_id = None
    if cursor is not None:
        payload = decode_cursor(cursor)
        start_id = payload.get("id")
        if payload.get("field") != "id" or not isinstance(start_id, int):
            raise BadRequest("Invalid cursor")
    rest = [item for item in items if start_id is None or key(item) >= start_id]
    page, after = rest[:limit], rest[limit : limit + 1]
    if not after:
        return page, None
    next_id = key(after[0])
    payload = {"field": "id", "fieldValue": next_id, "sortDirection": "asc", "id": next_id}
    return page, encode_cursor(payload)


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
