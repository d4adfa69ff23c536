"""The Pipedrive client against the simulator: auth, retries, rate limits, errors, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from gistsync.errors import PermanentError, TransientError
from pipedrive_writer.limiter import Limiter
from pipedrive_writer.pipedrive import (
    PipedriveClient,
    PipedriveNotFound,
    PipedriveOutcomeUnknown,
    PipedriveRejected,
    PipedriveUnavailable,
    RetryPolicy,
    retry_after,
)
from sandbox import Sandbox, run_sandbox

FAST = RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.02)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as running:
        yield running


def client(sb: Sandbox, *, token: str | None = None, **kwargs: Any) -> PipedriveClient:
    options: dict[str, Any] = {"limiter": Limiter(20, 10), "retry": FAST, "timeout": 2.0}
    options.update(kwargs)
    return PipedriveClient(sb.pipedrive_url, token or sb.pipedrive_token, **options)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(sb: Sandbox) -> dict[str, dict[str, int]]:
    snapshot: dict[str, dict[str, int]] = sb.pipedrive.stats.snapshot(with_tokens=False)["requests"]
    return snapshot


async def test_token_goes_in_the_header_never_the_url(sb: Sandbox) -> None:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    pd = client(sb, event_hooks={"request": [record]})
    try:
        await pd.add_organization("GITHUB_GISTS")
        await pd.search_organizations("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert [r.headers["x-api-token"] for r in sent] == [sb.pipedrive_token] * 2
    assert all(sb.pipedrive_token not in str(r.url) for r in sent)
    assert str(sent[1].url) == (
        f"{sb.pipedrive_url}/organizations/search"
        "?term=GITHUB_GISTS&fields=name&exact_match=true&limit=500"
    )


async def test_creates_and_lists_with_pagination(sb: Sandbox) -> None:
    pd = client(sb, page_limit=3)
    try:
        org = await pd.add_organization("GITHUB_GISTS")
        person = await pd.add_person("alice", org["id"])
        titles = [f"Gists for user{n}" for n in range(7)]
        for title in titles:
            await pd.add_deal(title, person["id"], org["id"])
        deals = await pd.list_deals(org["id"])
    finally:
        await pd.aclose()
    assert [d["title"] for d in deals] == titles
    assert requests(sb)["GET /deals"] == {"200": 3}


async def test_429_waits_as_told_then_succeeds(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"faults": {"rate_limit_burst": 1}})
    pd = client(sb)
    started = time.monotonic()
    try:
        assert await pd.search_organizations("GITHUB_GISTS") == []
    finally:
        await pd.aclose()
    assert time.monotonic() - started >= 1.0  # the simulator's Retry-After: 1
    assert requests(sb) == {"GET /organizations/search": {"429": 1, "200": 1}}


async def test_a_burst_of_429s_is_waited_out_not_counted_as_failed_attempts(sb: Sandbox) -> None:
    # More 429s than attempts: each one says when to come back, so none is a failure.
    sb.pipedrive.patch_config({"faults": {"rate_limit_burst": 3}})
    pd = client(sb, retry=RetryPolicy(max_attempts=1, max_rate_limit_wait=10))
    try:
        assert await pd.search_organizations("GITHUB_GISTS") == []
    finally:
        await pd.aclose()
    assert requests(sb) == {"GET /organizations/search": {"429": 3, "200": 1}}


async def test_429_waits_are_bounded_by_their_total(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"faults": {"rate_limit_burst": 5}})
    pd = client(sb, retry=RetryPolicy(max_attempts=4, max_rate_limit_wait=1.5))
    try:
        with pytest.raises(PipedriveUnavailable, match="1 s more after 1 s"):
            await pd.search_organizations("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert requests(sb) == {"GET /organizations/search": {"429": 2}}


async def test_a_spent_daily_budget_fails_at_once_instead_of_waiting_hours(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"limits": {"daily_budget": 5}})
    # The simulator asks to wait until midnight: whole seconds, so at least 1.
    pd = client(sb, retry=RetryPolicy(max_attempts=3, max_rate_limit_wait=0.5))
    try:
        with pytest.raises(PipedriveUnavailable, match="rate limit asks for"):
            await pd.search_organizations("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert requests(sb) == {"GET /organizations/search": {"429": 1}}


async def test_5xx_on_a_read_is_retried_then_transient(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"faults": {"error_rate": 1.0, "error_status": 503}})
    pd = client(sb)
    try:
        with pytest.raises(PipedriveUnavailable) as caught:
            await pd.list_deals(1)
    finally:
        await pd.aclose()
    assert isinstance(caught.value, TransientError)
    assert str(caught.value) == (
        "getDeals failed after 3 attempts: 503 Internal server error "
        "(Please check developers.pipedrive.com)"
    )
    assert requests(sb) == {"GET /deals": {"503": 3}}


async def test_5xx_on_a_create_is_not_resent(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"faults": {"error_rate": 1.0}})
    pd = client(sb)
    try:
        with pytest.raises(PipedriveOutcomeUnknown, match="addOrganization: Pipedrive answered"):
            await pd.add_organization("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert requests(sb) == {"POST /organizations": {"500": 1}}


async def test_timeouts_and_dropped_connections(sb: Sandbox) -> None:
    sb.pipedrive.patch_config({"faults": {"timeout_rate": 1.0, "timeout_seconds": 5.0}})
    pd = client(sb, timeout=0.2)
    try:
        with pytest.raises(PipedriveUnavailable, match="failed after 3 attempts: ReadTimeout"):
            await pd.list_activities(1)
        with pytest.raises(PipedriveOutcomeUnknown, match="ReadTimeout"):
            await pd.add_activity({"subject": "x"})
        sb.pipedrive.patch_config({"faults": {"timeout_rate": 0.0, "drop_rate": 1.0}})
        with pytest.raises(PipedriveUnavailable, match="RemoteProtocolError"):
            await pd.list_activities(1)
    finally:
        await pd.aclose()


async def test_404_is_its_own_error_and_400_names_pipedrives_reason(sb: Sandbox) -> None:
    pd = client(sb)
    try:
        with pytest.raises(PipedriveNotFound) as missing:
            await pd.update_activity(99, {"done": True})
        with pytest.raises(PipedriveRejected) as rejected:
            await pd.add_deal("Gists for x", None, 42)
    finally:
        await pd.aclose()
    assert isinstance(missing.value, PermanentError)
    assert missing.value.status == 404
    assert str(missing.value) == (
        "Pipedrive answered 404 to updateActivity: Entity was not found (Object was not found.)"
    )
    assert str(rejected.value) == (
        "Pipedrive answered 400 to addDeal: Field 'org_id': organization 42 does not exist "
        "(Please check developers.pipedrive.com)"
    )
    assert requests(sb) == {"PATCH /activities/{id}": {"404": 1}, "POST /deals": {"400": 1}}


async def test_a_wrong_token_is_permanent_and_never_repeated_back(sb: Sandbox) -> None:
    pd = client(sb, token="wrong-secret-token")
    try:
        with pytest.raises(PipedriveRejected) as caught:
            await pd.search_organizations("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert str(caught.value) == (
        "Pipedrive answered 401 to searchOrganization: unauthorized access "
        "(Please check developers.pipedrive.com)"
    )
    assert "wrong-secret-token" not in repr(caught.value.args)


async def test_metrics_follow_requests_tokens_and_headers(sb: Sandbox) -> None:
    counted = ("addOrganization", "searchOrganization")
    before_requests = {op: sample("gistsync_pipedrive_requests_total", operation=op,
                                  status="200") for op in counted}  # fmt: skip
    before_tokens = sum(
        sample("gistsync_pipedrive_tokens_spent_total", operation=op) for op in counted
    )
    pd = client(sb)
    try:
        org = await pd.add_organization("GITHUB_GISTS")
        await pd.search_organizations("GITHUB_GISTS")
        await pd.search_organizations("GITHUB_GISTS")
    finally:
        await pd.aclose()
    assert org["name"] == "GITHUB_GISTS"
    assert {
        op: sample("gistsync_pipedrive_requests_total", operation=op, status="200")
        - before_requests[op]
        for op in counted
    } == {"addOrganization": 1, "searchOrganization": 2}
    spent = sum(sample("gistsync_pipedrive_tokens_spent_total", operation=op) for op in counted)
    assert spent - before_tokens == sb.pipedrive.stats.tokens_spent == 45
    assert sample("gistsync_pipedrive_daily_requests_left") == 30_000 - 45
    assert sample("gistsync_pipedrive_rate_limit_remaining", window="search") == 8  # of 10
    assert sample("gistsync_pipedrive_rate_limit_remaining", window="general") == 19


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_after_reads_the_header_then_the_reset() -> None:
    assert retry_after(response(429, **{"retry-after": "3"})) == 3.0
    assert retry_after(response(429, **{"x-ratelimit-reset": "2"})) == 2.0
    both = response(429, **{"retry-after": "4", "x-ratelimit-reset": "1"})
    assert retry_after(both) == 4.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    wait = retry_after(response(429, **{"retry-after": later}))
    assert wait is not None
    assert 28 <= wait <= 30
    assert retry_after(response(429)) is None
    assert retry_after(response(429, **{"retry-after": "soon"})) is None
