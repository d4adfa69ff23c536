"""The one GitHub client: users and their public gists, within GitHub's rate limits.

Every request carries the token as `Authorization: Bearer` (never in a URL), `User-Agent`,
`Accept: application/vnd.github+json` and the API version. Requests are paced (at most
`requests_per_second`, at most `max_in_flight` at once), and when GitHub says we are rate
limited the whole client pauses: no request at all goes out until the pause ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from gistsync.contracts import Gist, GistFile
from gistsync.errors import GistsyncError, TransientError
from github_poller import metrics
from github_poller.schedule import Pacer

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
USER_AGENT = "gistsync"
PER_PAGE = 100


class GitHubError(GistsyncError):
    """GitHub refused or failed a request; `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UserNotFound(GitHubError):
    """404: no such user (or the account was deleted)."""


class GitHubUnavailable(GitHubError, TransientError):
    """5xx, a timeout or a lost connection."""


class RateLimited(GitHubError, TransientError):
    """GitHub rate limited us; the client sends nothing for `wait` seconds."""

    def __init__(self, message: str, status: int | None, wait: float) -> None:
        super().__init__(message, status)
        self.wait = wait


@dataclass(frozen=True)
class RateLimit:
    """The `x-ratelimit-*` headers of the latest answer that had them."""

    limit: int
    remaining: int
    reset: float  # epoch seconds
    resource: str | None = None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimit | None:
        try:
            return cls(
                limit=int(headers["x-ratelimit-limit"]),
                remaining=int(headers["x-ratelimit-remaining"]),
                reset=float(headers["x-ratelimit-reset"]),
                resource=headers.get("x-ratelimit-resource"),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class GistListing:
    """One read of a user's gists: nothing when `not_modified`, else every page."""

    not_modified: bool
    etag: str | None = None
    gists: tuple[Gist, ...] = ()
    requests: int = 1


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""


def is_rate_limited(status: int, headers: Mapping[str, str], message: str) -> bool:
    """429 always; a 403 only when it says so: retry-after, no remaining budget, or the text.
    Any other 403 (a blocked or suspended resource) is an ordinary failure."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in message.lower()
    )


def rate_limit_pause(
    headers: Mapping[str, str], *, now: float, strikes: int, backoff: float, backoff_max: float
) -> float:
    """How long to send nothing, GitHub's rule: `retry-after` if present; else, with no budget
    left, until `x-ratelimit-reset`; else at least `backoff`, doubling with each strike in a
    row (`strikes` counts the rate-limited answers before this one)."""
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after)
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
        try:
            # At least a second: a reset already past (clock skew) must not mean "hammer".
            return max(float(reset) - now, 1.0)
        except ValueError:
            pass
    return float(min(backoff * 2**strikes, backoff_max))


def to_gist(raw: Any) -> Gist | None:
    """A `base-gist` as the contract's `Gist`; None if it does not fit (logged)."""
    try:
        files = raw.get("files") or {}
        return Gist(
            id=raw["id"],
            html_url=raw["html_url"],
            description=raw.get("description"),
            files=tuple(
                GistFile(filename=str(info.get("filename") or name), language=info.get("language"))
                for name, info in files.items()
            ),
            created_at=raw["created_at"],
            updated_at=raw.get("updated_at"),
        )
    except (AttributeError, KeyError, TypeError, ValidationError) as exc:
        gist_id = raw.get("id") if isinstance(raw, dict) else None
        log.warning("gist skipped: unexpected shape", extra={"gist_id": gist_id, "error": str(exc)})
        return None


class GitHubClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_in_flight: int = 8,
        requests_per_second: float = 15.0,
        backoff: float = 60.0,
        backoff_max: float = 900.0,
        transport: httpx.AsyncBaseTransport | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": USER_AGENT,
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._base = httpx.URL(base_url)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pacer = Pacer(requests_per_second)
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._wall = wall
        self._strikes = 0
        self.paused_until = float("-inf")  # time.monotonic() clock
        self.rate_limit: RateLimit | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- operations ----------------------------------------------------------------------

    async def user_login(self, login: str, *, max_wait: float | None = None) -> str | None:
        """GitHub's spelling of `login`, or None if there is no such user."""
        response = await self._get(f"/users/{quote(login, safe='')}", max_wait=max_wait)
        if response.status_code == 404:
            return None
        self._expect_ok(response, login)
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("login"), str):
            raise GitHubError(f"GitHub answered an unexpected body for user {login}", 200)
        return str(body["login"])

    async def list_gists(self, login: str, etag: str | None = None) -> GistListing:
        """Every public gist of `login`, following `Link: rel="next"`, or `not_modified`
        when page 1 still has `etag`. Only page 1's ETag is kept: new gists come first."""
        headers = {"If-None-Match": etag} if etag else {}
        path = f"/users/{quote(login, safe='')}/gists"
        response = await self._get(path, params={"per_page": PER_PAGE}, headers=headers)
        if response.status_code == 304:
            return GistListing(not_modified=True, etag=etag)
        self._expect_ok(response, login)
        first_etag = response.headers.get("etag")
        gists = list(self._page(response, login))
        requests = 1
        while (url := self._next_page(response)) is not None:
            response = await self._get(url)
            self._expect_ok(response, login)
            gists.extend(self._page(response, login))
            requests += 1
        return GistListing(
            not_modified=False, etag=first_etag, gists=tuple(gists), requests=requests
        )

    # --- plumbing ------------------------------------------------------------------------

    async def _get(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        max_wait: float | None = None,
    ) -> httpx.Response:
        async with self._slots:
            await self._wait_for_turn(max_wait)
            try:
                response = await self._http.get(url, params=params, headers=headers)
            except httpx.TimeoutException:
                metrics.GITHUB_REQUESTS.labels("timeout").inc()
                raise GitHubUnavailable("GitHub did not answer in time") from None
            except httpx.TransportError as exc:
                metrics.GITHUB_REQUESTS.labels("error").inc()
                raise GitHubUnavailable(f"GitHub unreachable: {type(exc).__name__}") from None
        metrics.GITHUB_REQUESTS.labels(str(response.status_code)).inc()
        self._note_limits(response)
        self._check_rate_limited(response)
        return response

    async def _wait_for_turn(self, max_wait: float | None) -> None:
        """Waits out a pause, then for a free slot of the pace; a pause that starts while
        we wait is waited out too."""
        loop = asyncio.get_running_loop()
        while True:
            pause = self.paused_until - loop.time()
            if pause > 0:
                if max_wait is not None and pause > max_wait:
                    raise RateLimited(
                        f"GitHub rate limit: paused for {math.ceil(pause)} s more", None, pause
                    )
                await asyncio.sleep(pause)
                continue
            delay = self._pacer.reserve(loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            if self.paused_until <= loop.time():
                return

    def _note_limits(self, response: httpx.Response) -> None:
        limits = RateLimit.from_headers(response.headers)
        if limits is None:
            return
        self.rate_limit = limits
        metrics.RATE_LIMIT_REMAINING.set(limits.remaining)
        metrics.RATE_LIMIT_RESET.set(limits.reset)

    def _check_rate_limited(self, response: httpx.Response) -> None:
        status = response.status_code
        message = error_message(response) if status in (403, 429) else ""
        if not is_rate_limited(status, response.headers, message):
            self._strikes = 0
            return
        wait = rate_limit_pause(
            response.headers,
            now=self._wall(),
            strikes=self._strikes,
            backoff=self._backoff,
            backoff_max=self._backoff_max,
        )
        self._strikes += 1
        until = asyncio.get_running_loop().time() + wait
        self.paused_until = max(self.paused_until, until)
        metrics.RATE_LIMITED.inc()
        log.warning(
            "GitHub rate limit: pausing every request",
            extra={"status": status, "pause_seconds": round(wait, 3), "strikes": self._strikes},
        )
        raise RateLimited(f"GitHub rate limit ({status}): paused for {wait:g} s", status, wait)

    def _expect_ok(self, response: httpx.Response, login: str) -> None:
        status = response.status_code
        if status == 200:
            return
        detail = error_message(response)
        text = f"GitHub answered {status} for user {login}" + (f": {detail}" if detail else "")
        if status == 404:
            raise UserNotFound(text, status)
        if status >= 500:
            raise GitHubUnavailable(text, status)
        raise GitHubError(text, status)

    def _page(self, response: httpx.Response, login: str) -> list[Gist]:
        try:
            body = response.json()
        except ValueError:
            raise GitHubError(f"GitHub answered a body that is not JSON for {login}", 200) from None
        if not isinstance(body, list):
            raise GitHubError(f"GitHub answered a gist list that is not a list for {login}", 200)
        return [gist for gist in map(to_gist, body) if gist is not None]

    def _next_page(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        target = httpx.URL(url)
        # The token goes with every request: never follow a link to another host.
        if (target.scheme, target.host, target.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise GitHubError(f"GitHub's next-page link leaves {self._base.host}; not followed")
        return url
