"""Wall-clock helpers shared by both simulators (RFC 3339 / ISO 8601, second precision)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    # Both APIs report whole seconds, so drop microseconds at the source.
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    """`2024-01-02T03:04:05Z`, the form GitHub and Pipedrive v2 both send."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso8601(text: str) -> datetime | None:
    """Parse an ISO 8601 timestamp (or date); naive values are taken as UTC. None if invalid."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def seconds_to_utc_midnight(moment: datetime) -> float:
    """Seconds until the next UTC midnight, when Pipedrive's daily budget resets."""
    utc = moment.astimezone(UTC)
    midnight = (utc + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - utc).total_seconds()
