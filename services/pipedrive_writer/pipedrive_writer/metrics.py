"""The writer's Prometheus metrics (the broker layer exports the message metrics, and
gistsync.metrics the ones every service shares)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# gistsync_tracked_users: re-exported, so that this service's code keeps one metrics module.
from gistsync.metrics import TRACKED_USERS as TRACKED_USERS

PIPEDRIVE_REQUESTS = Counter(
    "gistsync_pipedrive_requests_total",
    "Pipedrive API requests by operationId and outcome (HTTP status, or the transport error).",
    ["operation", "status"],
)
PIPEDRIVE_SECONDS = Histogram(
    "gistsync_pipedrive_request_duration_seconds",
    "Pipedrive API request latency, one attempt.",
    ["operation"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKENS_SPENT = Counter(
    "gistsync_pipedrive_tokens_spent_total",
    "Daily-budget tokens spent, by the spec's x-token-cost of each answered request.",
    ["operation"],
)
RATE_LIMIT_REMAINING = Gauge(
    "gistsync_pipedrive_rate_limit_remaining",
    "Requests left in the current burst window (x-ratelimit-remaining); searches have a "
    "window of their own.",
    ["window"],
)
DAILY_REQUESTS_LEFT = Gauge(
    "gistsync_pipedrive_daily_requests_left",
    "What Pipedrive reports as left of the daily budget (x-daily-requests-left).",
)
LIMITER_WAIT = Counter(
    "gistsync_pipedrive_limiter_wait_seconds_total",
    "Time requests spent waiting for the client-side burst limiter or a 429 pause.",
)
GIST_PROPAGATION = Histogram(
    "gistsync_gist_propagation_seconds",
    "From the poller discovering a gist to its activity existing in Pipedrive.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
ACTIVITIES_CREATED = Counter(
    "gistsync_activities_created_total", "Activities created, one per gist."
)
ACTIVITIES_DONE = Counter(
    "gistsync_activities_marked_done_total", "Activities marked done (gists seen)."
)
UNSEEN_GISTS = Gauge("gistsync_unseen_gists", "Gists in the cache not yet seen.")
CACHE_LOADS = Counter(
    "gistsync_pipedrive_cache_loads_total",
    "Reads of Pipedrive into the cache, by kind (start, refresh, user).",
    ["kind"],
)
DUPLICATES_IGNORED = Counter(
    "gistsync_pipedrive_duplicates_ignored_total",
    "Records ignored by the duplicate rule (lowest id wins), counted once each.",
    ["entity"],
)
