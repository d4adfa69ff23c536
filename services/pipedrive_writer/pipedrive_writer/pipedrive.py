"""The one Pipedrive client: API v2, token in the `x-api-token` header, never in a URL.

Every request first waits for the client-side burst limiter. Failures are sorted by what a
caller can do about them:

- 429: wait as told (`Retry-After`, else `x-ratelimit-reset`), pausing every request, retry.
  Not a failed attempt: the waits of one call are bounded by their total instead.
- 5xx, timeouts, lost connections: retried with jittered exponential backoff, a few times,
  then `PipedriveUnavailable` (a `TransientError`: the message is retried later).
  A create (POST) is never resent when Pipedrive may have received it: there are no
  idempotency keys, so the caller must look before creating again
  (`PipedriveOutcomeUnknown`).
- 404: `PipedriveNotFound`, so a caller can refresh what it cached.
- any other 4xx: `PipedriveRejected` (a `PermanentError`) naming the status and Pipedrive's
  `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Gauge

from gistsync.errors import PermanentError, TransientError
from gistsync.retry import Retry
from pipedrive_writer import metrics
from pipedrive_writer.limiter import Limiter

Json = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Operation:
    id: str  # the spec's operationId
    method: str
    path: str
    cost: int  # the spec's x-token-cost
    search: bool = False

    @property
    def idempotent(self) -> bool:
        # Our PATCHes only set values, so sending one twice changes nothing.
        return self.method in {"GET", "PATCH"}


OPERATIONS: dict[str, Operation] = {
    op.id: op
    for op in (
        Operation("getActivities", "GET", "/activities", 10),
        Operation("addActivity", "POST", "/activities", 5),
        Operation("updateActivity", "PATCH", "/activities/{id}", 5),
        Operation("getDeals", "GET", "/deals", 10),
        Operation("addDeal", "POST", "/deals", 5),
        Operation("updateDeal", "PATCH", "/deals/{id}", 5),
        Operation("searchDeals", "GET", "/deals/search", 20, search=True),
        Operation("addPerson", "POST", "/persons", 5),
        Operation("searchPersons", "GET", "/persons/search", 20, search=True),
        Operation("getOrganization", "GET", "/organizations/{id}", 1),
        Operation("addOrganization", "POST", "/organizations", 5),
        Operation("updateOrganization", "PATCH", "/organizations/{id}", 5),
        Operation("searchOrganization", "GET", "/organizations/search", 20, search=True),
    )
}


class PipedriveUnavailable(TransientError):
    """Pipedrive did not answer usefully within the attempts allowed; try again later."""


class PipedriveOutcomeUnknown(PipedriveUnavailable):
    """A create may or may not have happened: look before creating again."""


class PipedriveRejected(PermanentError):
    """Pipedrive refused the request; sending it again cannot help."""

    def __init__(self, operation: str, status: int, error: str) -> None:
        super().__init__(f"Pipedrive answered {status} to {operation}: {error}")
        self.operation = operation
        self.status = status
        self.error = error


class PipedriveNotFound(PipedriveRejected):
    """The record is gone (deleted by hand?): whatever cached its id is stale."""


@dataclass(frozen=True)
class RetryPolicy(Retry):
    """Retries inside one call: fewer and shorter than the broker's around a whole message."""

    max_attempts: int = 4
    max_seconds: float = 8.0
    # A 429 that asks for more than this (the daily budget is spent) fails at once.
    max_rate_limit_wait: float = 60.0


def _error_text(response: httpx.Response) -> str:
    """Pipedrive's own `error` (and `error_info`), else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        info = body.get("error_info")
        return f"{body['error']} ({info})" if info else str(body["error"])
    return response.reason_phrase or "no details"


def _seconds(value: str | None) -> float | None:
    """A header holding seconds or an HTTP date, as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_after(response: httpx.Response) -> float | None:
    """How long a 429 tells us to wait: `Retry-After`, else `x-ratelimit-reset`."""
    wait = _seconds(response.headers.get("retry-after"))
    if wait is None:
        wait = _seconds(response.headers.get("x-ratelimit-reset"))
    return wait


def _never_sent(error: httpx.TransportError) -> bool:
    # Only these fail before a byte of the request left; anything later is ambiguous.
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _charged(status: int) -> bool:
    """Whether Pipedrive took the request in (and billed it): not refused at the door by
    authentication or a limit, not failed on its side."""
    return status < 500 and status not in (401, 429)


def _transport_failed(op: Operation, error: httpx.TransportError) -> str:
    if not op.idempotent and not _never_sent(error):
        raise PipedriveOutcomeUnknown(
            f"{op.id}: no answer from Pipedrive ({type(error).__name__}); it may have been done"
        ) from None
    return type(error).__name__


def _transport_label(error: httpx.TransportError) -> str:
    return "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"


def _gauge(value: str | None, gauge: Gauge) -> None:
    if value is not None:
        with contextlib.suppress(ValueError):
            gauge.set(float(value))


class PipedriveClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        limiter: Limiter,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        page_limit: int = 500,
        sleep: Sleep = asyncio.sleep,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.page_limit = page_limit
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            headers={
                "x-api-token": token,
                "accept": "application/json",
                "user-agent": "gistsync-pipedrive-writer",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            event_hooks=dict(event_hooks or {}),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- one operation ---------------------------------------------------------------

    async def call(
        self,
        operation: str,
        *,
        path: Mapping[str, int] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> Json:
        """Send one operation (retrying as the module docstring says); the JSON envelope."""
        op = OPERATIONS[operation]
        url = self.base_url + op.path.format(**(path or {}))
        last = "no attempt made"
        attempt = 0
        told_to_wait = 0.0
        while True:
            metrics.LIMITER_WAIT.inc(await self.limiter.acquire(search=op.search))
            try:
                response = await self._send(op, url, params, json)
            except httpx.TransportError as exc:
                last = _transport_failed(op, exc)
            else:
                if response.status_code < 400:
                    return self._body(op, response)
                if response.status_code == 429:
                    # Not a failed attempt: Pipedrive said when to come back, and the
                    # limiter now holds every request back that long. Bounded by time.
                    told_to_wait += self._rate_limited(op, response, told_to_wait)
                    continue
                last = self._failed(op, response)
            attempt += 1
            if attempt >= self.retry.max_attempts:
                raise PipedriveUnavailable(f"{op.id} failed after {attempt} attempts: {last}")
            await self._sleep(self.retry.delay(attempt))

    def _failed(self, op: Operation, response: httpx.Response) -> str:
        """Raise what cannot be retried; else say what went wrong, for the final error."""
        status = response.status_code
        if status < 500:
            kind = PipedriveNotFound if status == 404 else PipedriveRejected
            raise kind(op.id, status, _error_text(response))
        if not op.idempotent:
            raise PipedriveOutcomeUnknown(
                f"{op.id}: Pipedrive answered {status}; it may have been done"
            )
        return f"{status} {_error_text(response)}"

    async def _send(
        self,
        op: Operation,
        url: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._http.request(op.method, url, params=_query(params), json=body)
        except httpx.TransportError as exc:
            metrics.PIPEDRIVE_REQUESTS.labels(op.id, _transport_label(exc)).inc()
            raise
        finally:
            metrics.PIPEDRIVE_SECONDS.labels(op.id).observe(time.monotonic() - started)
        metrics.PIPEDRIVE_REQUESTS.labels(op.id, str(response.status_code)).inc()
        if _charged(response.status_code):
            metrics.TOKENS_SPENT.labels(op.id).inc(op.cost)
        window = metrics.RATE_LIMIT_REMAINING.labels("search" if op.search else "general")
        _gauge(response.headers.get("x-ratelimit-remaining"), window)
        _gauge(response.headers.get("x-daily-requests-left"), metrics.DAILY_REQUESTS_LEFT)
        return response

    def _rate_limited(self, op: Operation, response: httpx.Response, waited: float) -> float:
        """Pause the limiter as a 429 asks; how long. Fails once the waits of this one
        call would pass `max_rate_limit_wait` (a spent daily budget asks for hours)."""
        wait = retry_after(response)
        if wait is None:
            wait = self.retry.delay(1)
        if waited + wait > self.retry.max_rate_limit_wait:
            raise PipedriveUnavailable(
                f"{op.id}: Pipedrive's rate limit asks for {wait:.0f} s more "
                f"after {waited:.0f} s; trying later"
            )
        self.limiter.pause(wait)
        return wait

    def _body(self, op: Operation, response: httpx.Response) -> Json:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # After a write, what happened is unknown; after a read, retrying is harmless.
            raise PipedriveOutcomeUnknown(f"{op.id}: Pipedrive answered something not JSON")
        return body

    # --- pagination ------------------------------------------------------------------

    async def pages(self, operation: str, params: Mapping[str, Any]) -> AsyncIterator[list[Json]]:
        """Every page of a list or search (cursor pagination), as lists of records."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, "limit": self.page_limit}
            if cursor:
                query["cursor"] = cursor
            body = await self.call(operation, params=query)
            yield _records(body.get("data"))
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            if cursor in seen:  # a cursor that loops would page forever
                raise PipedriveUnavailable(f"{operation}: Pipedrive repeated a page cursor")
            seen.add(cursor)

    async def collect(self, operation: str, params: Mapping[str, Any]) -> list[Json]:
        found: list[Json] = []
        async for page in self.pages(operation, params):
            found.extend(page)
        return found

    # --- the operations the writer uses ------------------------------------------------

    async def search_organizations(self, name: str) -> list[Json]:
        return await self.collect(
            "searchOrganization", {"term": name, "fields": "name", "exact_match": True}
        )

    async def search_persons(self, name: str, org_id: int) -> list[Json]:
        return await self.collect(
            "searchPersons",
            {"term": name, "fields": "name", "exact_match": True, "organization_id": org_id},
        )

    async def search_deals(self, title: str, org_id: int) -> list[Json]:
        return await self.collect(
            "searchDeals",
            {"term": title, "fields": "title", "exact_match": True, "organization_id": org_id},
        )

    async def list_deals(
        self, org_id: int, *, status: str | None = "open", updated_since: str | None = None
    ) -> list[Json]:
        """The org's deals of one status (open: the tracked users; deleted: those deleted by
        hand in the last 30 days; None: all but the deleted), all or changed since a time."""
        params: dict[str, Any] = {"org_id": org_id}
        if status is not None:
            params["status"] = status
        return await self.collect("getDeals", _since(params, updated_since))

    async def list_activities(self, deal_id: int) -> list[Json]:
        return await self.collect("getActivities", {"deal_id": deal_id})

    async def list_all_activities(self, *, updated_since: str | None = None) -> list[Json]:
        """Every activity of the account in pages of `page_limit`, whatever the number of
        deals. Not filtered by `org_id`: the predecessor's activities carry none, only their
        deal; the caller keeps those of its deals."""
        return await self.collect("getActivities", _since({}, updated_since))

    async def get_organization(self, org_id: int) -> Json:
        return _data(await self.call("getOrganization", path={"id": org_id}))

    async def update_organization(self, org_id: int, body: Mapping[str, Any]) -> Json:
        return _data(await self.call("updateOrganization", path={"id": org_id}, json=body))

    async def add_organization(self, name: str) -> Json:
        return _data(await self.call("addOrganization", json={"name": name}))

    async def add_person(self, name: str, org_id: int) -> Json:
        return _data(await self.call("addPerson", json={"name": name, "org_id": org_id}))

    async def add_deal(self, title: str, person_id: int | None, org_id: int) -> Json:
        body: dict[str, Any] = {"title": title, "org_id": org_id}
        if person_id is not None:
            body["person_id"] = person_id
        return _data(await self.call("addDeal", json=body))

    async def add_activity(self, body: Mapping[str, Any]) -> Json:
        return _data(await self.call("addActivity", json=body))

    async def update_deal(self, deal_id: int, body: Mapping[str, Any]) -> Json:
        return _data(await self.call("updateDeal", path={"id": deal_id}, json=body))

    async def update_activity(self, activity_id: int, body: Mapping[str, Any]) -> Json:
        return _data(await self.call("updateActivity", path={"id": activity_id}, json=body))


def _query(params: Mapping[str, Any] | None) -> dict[str, str | int] | None:
    """Booleans as Pipedrive spells them (`true`), everything else as is."""
    if params is None:
        return None
    return {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items()}


def _since(params: dict[str, Any], updated_since: str | None) -> dict[str, Any]:
    if updated_since is not None:
        params["updated_since"] = updated_since
    return params


def _records(data: Any) -> list[Json]:
    """A list's `data`, or a search's `data.items[].item`."""
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    if isinstance(data, dict):
        items = data.get("items") or []
        return [entry["item"] for entry in items if isinstance(entry, dict) and "item" in entry]
    return []


def _data(body: Json) -> Json:
    data = body.get("data")
    if not isinstance(data, dict) or "id" not in data:
        raise PipedriveOutcomeUnknown("Pipedrive answered a write without the record")
    return data
