"""The poller's Prometheus metrics (the broker's are in gistsync.broker, the ones every
service shares in gistsync.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# gistsync_tracked_users: re-exported, so that this service's code keeps one metrics module.
from gistsync.metrics import TRACKED_USERS as TRACKED_USERS

POLL_INTERVAL_EFFECTIVE = Gauge(
    "gistsync_poll_interval_effective_seconds",
    "How often each user is polled now: the configured interval, stretched when the "
    "GitHub budget cannot poll every user that often.",
)
RATE_LIMIT_REMAINING = Gauge(
    "gistsync_github_rate_limit_remaining",
    "x-ratelimit-remaining of GitHub's latest answer (primary limit).",
)
RATE_LIMIT_RESET = Gauge(
    "gistsync_github_rate_limit_reset_timestamp_seconds",
    "x-ratelimit-reset of GitHub's latest answer (epoch seconds).",
)
GITHUB_REQUESTS = Counter(
    "gistsync_github_requests_total",
    "Requests sent to GitHub, by answer status (`timeout` or `error` when none came).",
    ["status"],
)
RATE_LIMITED = Counter(
    "gistsync_github_rate_limited_total",
    "Answers that said we were rate limited (each one pauses every request).",
)
POLLS = Counter(
    "gistsync_polls_total",
    "Polls of one user's gists, by outcome (ok, not_modified, failed).",
    ["outcome"],
)
GISTS_DISCOVERED = Counter(
    "gistsync_gists_discovered_total",
    "gist.discovered events published (confirmed by the broker).",
)
GISTS_EDITED = Counter(
    "gistsync_gists_edited_total",
    "gist.discovered events re-published for a gist edited on GitHub (confirmed).",
)
GISTS_DELETED = Counter(
    "gistsync_gists_deleted_total",
    "gist.deleted events published for a gist gone from GitHub (confirmed).",
)
FIRST_CYCLE_REQUESTS = Gauge(
    "gistsync_first_cycle_requests",
    "GitHub requests of the first poll of every user loaded at start.",
)
FIRST_CYCLE_SECONDS = Gauge(
    "gistsync_first_cycle_seconds",
    "How long the first poll of every user loaded at start took, first start to last end.",
)

for _outcome in ("ok", "not_modified", "failed"):
    POLLS.labels(_outcome)
