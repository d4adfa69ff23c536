"""This service's settings: the shared `WriterSettings` plus what only the writer needs."""

from __future__ import annotations

from pydantic import Field

from gistsync.settings import WriterSettings


class Settings(WriterSettings):
    # Burst limits kept on our side (Lite plan by default: 20 requests, 10 searches per 2 s).
    pipedrive_burst_limit: int = Field(20, ge=1)
    pipedrive_search_burst_limit: int = Field(10, ge=1)
    pipedrive_burst_window_seconds: float = Field(2.0, gt=0)
    # Attempts per Pipedrive request (5xx, timeouts, 429) before the message is retried.
    pipedrive_max_attempts: int = Field(4, ge=1)
    pipedrive_backoff_base_seconds: float = Field(0.5, gt=0)
    pipedrive_backoff_max_seconds: float = Field(8.0, gt=0)
    # A 429 asking for a longer wait than this (a spent daily budget) fails the request now.
    pipedrive_max_rate_limit_wait_seconds: float = Field(60.0, gt=0)
    pipedrive_page_limit: int = Field(500, ge=1, le=500)
    # Look for changes made by hand in Pipedrive this often (0: never). Each look asks only
    # for what changed (31 tokens at rest): every 30 minutes is 48 x 31 = 1,488 tokens a
    # day, under 5% of a Lite company's 30,000. A write that meets a deleted record
    # notices it anyway.
    refresh_interval_seconds: float = Field(1800.0, ge=0)
