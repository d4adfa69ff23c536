"""Request checks for the Pipedrive simulator: JSON bodies against the spec's field types,
and query parameters. Every failure is a 400 envelope naming the offending field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from multidict import MultiMapping

from sandbox.pipedrive_errors import BadRequest
from sandbox.pipedrive_schema import Field
from sandbox.timeutil import parse_iso8601

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
MAX_IDS = 100


def check_body(
    body: Any, fields: Mapping[str, Field], required: Iterable[str] = ()
) -> dict[str, Any]:
    """The known fields of `body`, type-checked. Unknown fields are ignored, as the spec's
    schemas do not forbid additional properties."""
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    for name in required:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadRequest(f"Field '{name}' is required")
    known = {key: value for key, value in body.items() if key in fields}
    for key, value in known.items():
        _check(value, fields[key], key)
    return known


def _check(value: Any, field: Field, path: str) -> None:
    if value is None:
        if not field.nullable:
            raise BadRequest(f"Field '{path}' must not be null")
        return
    if not _is_kind(value, field):
        raise BadRequest(f"Field '{path}' must be of type {field.kind}")
    if field.enum is not None and value not in field.enum:
        raise BadRequest(f"Field '{path}' must be one of: {', '.join(field.enum)}")
    if field.kind == "array" and field.items is not None:
        for index, item in enumerate(value):
            _check(item, field.items, f"{path}[{index}]")
    if field.kind == "object" and field.props is not None:
        for key, item in value.items():
            if key in field.props:
                _check(item, field.props[key], f"{path}.{key}")


def _is_kind(value: Any, field: Field) -> bool:
    # bool is an int subclass in Python; JSON keeps them apart and so must we ("done": 1).
    if field.kind == "boolean":
        return isinstance(value, bool)
    if field.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if field.kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if field.kind == "string":
        return isinstance(value, str)
    if field.kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def check_date(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not _DATE.match(value):
        raise BadRequest(f"Field '{name}' must be a date in YYYY-MM-DD format")


def check_time(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not _TIME.match(value):
        raise BadRequest(f"Field '{name}' must be a time in HH:MM format")


def int_param(query: MultiMapping[str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Parameter '{name}' must be an integer") from None


def bool_param(query: MultiMapping[str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BadRequest(f"Parameter '{name}' must be a boolean (true or false)")


def enum_param(query: MultiMapping[str], name: str, allowed: Iterable[str]) -> str | None:
    raw = query.get(name)
    allowed = tuple(allowed)
    if raw is not None and raw not in allowed:
        raise BadRequest(f"Parameter '{name}' must be one of: {', '.join(allowed)}")
    return raw


def limit_param(query: MultiMapping[str]) -> int:
    limit = int_param(query, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"Parameter 'limit' must be between 1 and {MAX_LIMIT}")
    return limit


def list_param(query: MultiMapping[str], name: str, allowed: Iterable[str]) -> tuple[str, ...]:
    """A comma-separated list of enum values ("Multiple ... as a comma separated array")."""
    raw = query.get(name)
    if raw is None:
        return ()
    allowed = tuple(allowed)
    values = tuple(value.strip() for value in raw.split(","))
    if not all(value in allowed for value in values):
        raise BadRequest(
            f"Parameter '{name}' must be a comma-separated list of: {', '.join(allowed)}"
        )
    return values


def ids_param(query: MultiMapping[str]) -> frozenset[int] | None:
    """`ids`: "comma separated string array of up to 100 entity ids"."""
    raw = query.get("ids")
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() for part in parts) or len(parts) > MAX_IDS:
        raise BadRequest(f"Parameter 'ids' must be a comma-separated list of up to {MAX_IDS} ids")
    return frozenset(int(part) for part in parts)


def time_param(query: MultiMapping[str], name: str) -> datetime | None:
    """An RFC 3339 date-time (`2025-01-01T10:20:00Z`); a bare date is refused."""
    raw = query.get(name)
    if raw is None:
        return None
    moment = parse_iso8601(raw) if _RFC3339.match(raw) else None
    if moment is None:
        raise BadRequest(f"Parameter '{name}' must be an RFC 3339 date-time")
    return moment
