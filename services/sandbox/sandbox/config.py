"""Run-time configuration of the simulators: rate limits and injected faults.

Pydantic models in strict mode so that `PATCH /_sandbox/config` rejects "0.5" for a rate and
`true` for a count; `validate_assignment` keeps in-process edits (`state.config.faults.x = ...`)
just as safe.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class FaultConfig(_Strict):
    """Faults applied to API requests only (never to `/_sandbox/`)."""

    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=500, le=599)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_seconds: float = Field(default=30.0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    # Counts down as requests are answered 429, so GET /_sandbox/config shows what is left.
    rate_limit_burst: int = Field(default=0, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _rates_fit(self) -> Self:
        # One draw per request picks at most one fault, so the shares must fit in [0, 1].
        if self.error_rate + self.timeout_rate + self.drop_rate > 1:
            raise ValueError("error_rate + timeout_rate + drop_rate must not exceed 1")
        return self


class GitHubLimits(_Strict):
    primary_limit: int = Field(default=5000, ge=0)
    primary_limit_unauthenticated: int = Field(default=60, ge=0)
    primary_window_seconds: float = Field(default=3600.0, gt=0)
    primary_status: Literal[403, 429] = 403
    secondary_points_limit: int = Field(default=900, ge=0)
    secondary_window_seconds: float = Field(default=60.0, gt=0)
    max_concurrent: int = Field(default=100, ge=0)
    secondary_status: Literal[403, 429] = 429
    # GitHub gives no figure for the concurrency limit; a minute is its generic advice.
    concurrency_retry_after_seconds: int = Field(default=60, ge=1)


class PipedriveLimits(_Strict):
    burst_limit: int = Field(default=20, ge=0)
    burst_window_seconds: float = Field(default=2.0, gt=0)
    search_burst_limit: int = Field(default=10, ge=0)
    search_window_seconds: float = Field(default=2.0, gt=0)
    daily_budget: int = Field(default=30_000, ge=0)


class PipedriveBehaviour(_Strict):
    """What Pipedrive does with deleted records where no public document says (see README)."""

    # GET, PATCH and DELETE by id of a deleted record: answered with `is_deleted: true`
    # ("flagged": the spec's "marks as deleted"), or 404 as if it were gone ("not_found").
    deleted_by_id: Literal["flagged", "not_found"] = "flagged"
    # The `status` a deleted deal shows: "deleted" (the status filter's value) or its status
    # before the delete ("kept"). `is_deleted` is true either way.
    deleted_deal_status: Literal["deleted", "kept"] = "deleted"
    # Whether a list read with `updated_since` also returns deleted persons, organizations
    # and activities (flagged). Deals follow the spec: only with `status=deleted`.
    deleted_in_updated_since: bool = False


class SimulatorConfig(_Strict):
    faults: FaultConfig = Field(default_factory=FaultConfig)


class GitHubConfig(SimulatorConfig):
    limits: GitHubLimits = Field(default_factory=GitHubLimits)


class PipedriveConfig(SimulatorConfig):
    limits: PipedriveLimits = Field(default_factory=PipedriveLimits)
    behaviour: PipedriveBehaviour = Field(default_factory=PipedriveBehaviour)


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge (RFC 7386 style, without null-deletes) used by PATCH /_sandbox/config."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = merge_patch(current, value)
        else:
            merged[key] = value
    return merged
