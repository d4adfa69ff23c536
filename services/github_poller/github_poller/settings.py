"""The poller's settings: the common `PollerSettings` plus the rate-limit backoff knobs."""

from __future__ import annotations

from pydantic import Field

from gistsync.settings import PollerSettings


class Settings(PollerSettings):
    # GitHub's advice when it rate limits without saying for how long: wait at least a
    # minute, then back off exponentially.
    github_rate_limit_backoff_seconds: float = Field(60.0, gt=0)
    github_rate_limit_backoff_max_seconds: float = Field(900.0, gt=0)
    # A user whose polls keep failing (deleted account, errors) is retried less and less
    # often, up to this, so that it does not spend the budget of the others.
    poll_failure_backoff_max_seconds: float = Field(60.0, gt=0)
    # "No such user" is remembered this long per login, so that repeated tries of a login
    # that does not exist cost no GitHub request; a user created meanwhile is found after.
    unknown_user_cache_seconds: float = Field(300.0, ge=0)
