"""The polling loop: the schedule says who is next, the client reads GitHub, what changed is
published: `gist.discovered` for a gist that is new or edited, `gist.deleted` for one gone.

What the poller remembers, in memory only, per user: page 1's ETag and, per gist id it
published (confirmed by the broker), a fingerprint of what the writer shows of it (description
and file list). That is one small entry per gist that exists on GitHub: an untracked user's
entries go with it, a deleted gist's once its `gist.deleted` is confirmed. Every 200 is a full
read of the user's list (every page, no `since`), so:

- a gist not remembered is published; a remembered one whose fingerprint changed (an edit of
  its description or files) is published again, same id: the writer patches its activity; an
  unchanged one is never published again (a content-only edit changes nothing shown);
- a remembered gist missing from a full read is published as `gist.deleted`. A read of one
  page cannot miss a gist that exists; across pages it can (a gist deleted while we page
  shifts the next pages by one), so a gist missing from a read of several pages is deleted
  only when the next full read misses it too.
- only page 1's ETag is sent (GitHub has no cheaper check of a whole list), so an edit or a
  delete beyond the newest 100 gists is seen at the next read that page 1 changes.

After a restart the poller remembers nothing, and the rule is: the first full read of a user
is a baseline. Its gists are published once as `gist.discovered` (the writer creates those
made while we were down, patches those edited meanwhile, and ignores the rest, which it has
with the same subject); it publishes no `gist.deleted`, since nothing was known to be gone. A
gist deleted while the poller was down is therefore not reported (its activity stays, as the
record that it existed). ETags are not kept across restarts: an ETag without the memory of
what its read published would answer 304 over gists the writer may never have received.

A user's ETag is remembered only once everything that read found is published, so a failed
publish means the next poll reads everything again instead of skipping it.

For operators (`status`, answering `query.poll_status`), per user and in memory too: when the
last poll ended, when a poll last published something, the last error with its time, the
failures in a row, and how often the user's turn comes. It goes with the user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal

from gistsync.contracts import (
    POLL_ERROR_MAX,
    Gist,
    GistDeleted,
    GistDiscovered,
    Message,
    PollStatus,
    login_key,
)
from gistsync.errors import TransientError
from gistsync.tracing import work
from github_poller import metrics
from github_poller.github import GitHubClient, GitHubError, RateLimited, UserNotFound
from github_poller.memory import PolledUser, fingerprint, poll_status
from github_poller.schedule import Outcome, Schedule

log = logging.getLogger(__name__)

Publish = Callable[[Message], Awaitable[None]]
Request = Callable[..., Awaitable[object]]
PollOutcome = Literal["ok", "not_modified", "failed", "rate_limited"]


@dataclass
class FirstCycle:
    """The first poll of each user loaded at start: how many requests, over how long."""

    pending: set[str] = field(default_factory=set)
    users: int = 0
    requests: int = 0
    started: float | None = None


@dataclass(frozen=True)
class PollResult:
    outcome: PollOutcome
    new_gists: int = 0
    conditional: bool = False  # sent with an ETag
    requests: int = 1


@dataclass(frozen=True)
class _Waiter:
    asked_at: float
    future: asyncio.Future[PollResult]


class Poller:
    def __init__(
        self,
        client: GitHubClient,
        publish: Publish,
        schedule: Schedule,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._publish = publish
        self._schedule = schedule
        self._clock = clock
        self._wall = wall
        self._users: dict[str, PolledUser] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._polls: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._first_cycle: FirstCycle | None = FirstCycle()
        self.loaded = asyncio.Event()

    @property
    def users(self) -> list[str]:
        return [user.login for user in self._users.values()]

    def track(self, login: str, *, at_once: bool = True) -> bool:
        """Starts polling `login`: at once, or (`at_once=False`, for the users loaded at
        start) spread over the interval with the others. A known user changes nothing."""
        key = login_key(login)
        if key in self._users:
            return False
        self._users[key] = PolledUser(login)
        if self._first_cycle is not None and not at_once:
            self._first_cycle.pending.add(key)
        self._schedule.add(key, self._clock(), at_once=at_once)
        metrics.TRACKED_USERS.set(len(self._users))
        self._wakeup.set()
        if at_once:
            log.info("tracking user", extra={"login": login})
        return True

    def forget(self, keep: Callable[[str], bool]) -> int:
        """Stops polling, quietly, every user whose key `keep` rejects (a partition that
        another replica owns now). Returns how many."""
        gone = [key for key in self._users if not keep(key)]
        for key in gone:
            self.untrack(self._users[key].login, quiet=True)
        return len(gone)

    def untrack(self, login: str, *, quiet: bool = False) -> bool:
        """Stops polling `login`; a poll in flight finishes, its result is dropped."""
        key = login_key(login)
        if self._users.pop(key, None) is None:
            return False
        self._schedule.remove(key)
        if self._first_cycle is not None:
            self._first_cycle.pending.discard(key)
        for waiter in self._waiters.pop(key, []):
            if not waiter.future.done():
                waiter.future.set_result(PollResult("not_modified"))
        metrics.TRACKED_USERS.set(len(self._users))
        if not quiet:
            log.info("untracked user", extra={"login": login})
        return True

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Starts polls as the schedule allows, until `stop`."""
        while not self._stopping:
            try:
                await self._step()
            except Exception:
                # A bug here must not end polling for good: say so, and go on.
                log.exception("poll loop failed; going on in a second")
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        self._wakeup.clear()
        now = self._clock()
        self._schedule.pause_until(self._client.paused_until)
        key = self._schedule.take(now)
        if key is not None:
            self._start(key, now)
            return
        metrics.POLL_INTERVAL_EFFECTIVE.set(self._schedule.effective_interval(now))
        wake = self._schedule.wake_at(now)
        timeout = None if wake is None else max(wake - now, 0.0)
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def stop(self, *, grace: float = 10.0) -> None:
        """Starts nothing more and lets the polls in flight finish; after `grace` seconds
        (a poll can be waiting out a long rate-limit pause) the rest are cancelled."""
        self._stopping = True
        self._wakeup.set()
        if self._polls:
            _, pending = await asyncio.wait(self._polls, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(TransientError("the poller is stopping"))
        self._waiters.clear()

    def _start(self, key: str, started: float) -> None:
        task = asyncio.create_task(self._run_poll(key, started))
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _run_poll(self, key: str, started: float) -> None:
        result = PollResult("failed")
        try:
            result = await self.poll(key)
        finally:
            outcome = {"failed": Outcome.FAILED, "rate_limited": Outcome.RETRY}.get(
                result.outcome, Outcome.OK
            )
            self._schedule.finished(key, self._clock(), outcome)
            if result.outcome != "rate_limited":
                self._note_first_cycle(key, started, result.requests)
            self._wakeup.set()
        if result.conditional and result.outcome in ("ok", "not_modified"):
            # Only conditional reads tell how often polls spend primary budget: a user's
            # first read is a 200 once, whatever happens later.
            self._note_budget(costly=result.outcome == "ok")
        if result.outcome != "rate_limited":  # else it is polled again after the pause
            self._answer_waiters(key, started, result)

    def _note_first_cycle(self, key: str, started: float, requests: int) -> None:
        """Counts the first poll of each user loaded at start; when the last is done, says
        what the first cycle cost (the schedule spreads it at the request budget)."""
        cycle = self._first_cycle
        if cycle is None or key not in cycle.pending:
            return
        cycle.pending.discard(key)
        cycle.users += 1
        cycle.requests += requests
        cycle.started = started if cycle.started is None else min(cycle.started, started)
        if cycle.pending:
            return
        seconds = self._clock() - cycle.started
        metrics.FIRST_CYCLE_REQUESTS.set(cycle.requests)
        metrics.FIRST_CYCLE_SECONDS.set(seconds)
        log.info(
            f"first cycle: {cycle.users} users, {cycle.requests} requests, over {seconds:.1f} s",
            extra={"users": cycle.users, "requests": cycle.requests, "seconds": round(seconds, 3)},
        )
        self._first_cycle = None

    def _note_budget(self, *, costly: bool) -> None:
        self._schedule.observe(costly)
        limits = self._client.rate_limit
        if limits is not None:
            reset_at = self._clock() + (limits.reset - self._wall())
            self._schedule.set_primary(limits.remaining, reset_at)

    # --- one poll ------------------------------------------------------------------------

    async def poll(self, key: str) -> PollResult:
        """One read of one user's gists; never raises: a failure is logged and counted."""
        user = self._users[key]
        with work("poll", login=user.login):  # its own trace; `login` on its log lines
            result = await self._poll(user)
        metrics.POLLS.labels("failed" if result.outcome == "rate_limited" else result.outcome).inc()
        user.last_poll_at = self._wall()
        user.failures = user.failures + 1 if result.outcome in ("failed", "rate_limited") else 0
        return result

    def _failed(self, user: PolledUser, text: str) -> None:
        user.last_error = (self._wall(), text[:POLL_ERROR_MAX])

    def status(self, login: str) -> PollStatus | None:
        """How the polling of `login` goes; None for a user this poller does not poll."""
        key = login_key(login)
        user = self._users.get(key)
        now = self._clock()
        interval = self._schedule.interval_of(key, now)
        if user is None or interval is None:
            return None
        due = self._schedule.due_of(key)
        next_poll = None if due is None else self._wall() + max(due - now, 0.0)
        return poll_status(user, interval, next_poll)

    async def _poll(self, user: PolledUser) -> PollResult:
        conditional = user.etag is not None
        counts = [0]  # new gists published by this poll, even if it fails half-way
        requests = 1
        try:
            listing = await self._client.list_gists(user.login, user.etag)
            if listing.not_modified:
                return PollResult("not_modified", conditional=True)
            requests = listing.requests
            await self._publish_changes(user, listing.gists, listing.requests > 1, counts)
        except RateLimited as exc:
            self._failed(user, str(exc))
            return PollResult("rate_limited")  # the client logged it; the user keeps its turn
        except UserNotFound as exc:
            self._failed(user, str(exc))
            log.warning(
                "poll failed: no such user on GitHub",
                extra={"login": user.login, "error": str(exc)},
            )
            return PollResult("failed", counts[0], requests=requests)
        except (GitHubError, TransientError) as exc:
            self._failed(user, str(exc))
            log.warning("poll failed", extra={"login": user.login, "error": str(exc)})
            return PollResult("failed", counts[0], requests=requests)
        except Exception as exc:
            # Its text is nobody's to show: only its kind.
            self._failed(user, f"unexpected error ({type(exc).__name__}); see the poller's log")
            log.exception("poll failed unexpectedly", extra={"login": user.login})
            return PollResult("failed", counts[0], requests=requests)
        user.etag = listing.etag
        user.first_read_done = True
        return PollResult("ok", counts[0], conditional, requests)

    async def _publish_changes(
        self, user: PolledUser, gists: tuple[Gist, ...], paged: bool, counts: list[int]
    ) -> None:
        """Publishes, from a full read, the gists new or edited since the last (oldest
        first), then the ones gone; each is remembered once the broker confirmed it."""
        listed = {gist.id: gist for gist in gists}
        changed = [
            gist for gist in listed.values() if user.published.get(gist.id) != fingerprint(gist)
        ]
        edits = 0
        # GitHub lists newest first, so of gists made in one second the later listed is
        # the older: reversed, then sorted (stable) by time, they come oldest first.
        for gist in sorted(reversed(changed), key=lambda gist: gist.created_at):
            edit = gist.id in user.published
            await self._publish(GistDiscovered(login=user.login, gist=gist))
            user.published[gist.id] = fingerprint(gist)
            user.last_change_at = self._wall()
            if edit:
                edits += 1
                metrics.GISTS_EDITED.inc()
            else:
                counts[0] += 1
                metrics.GISTS_DISCOVERED.inc()
        gone = [gist_id for gist_id in user.published if gist_id not in listed]
        deleted = 0
        if user.first_read_done:  # a baseline read knows of nothing gone
            for gist_id in gone:
                if paged and gist_id not in user.missing:
                    user.missing.add(gist_id)  # maybe a shift between pages: read again
                    continue
                await self._publish(GistDeleted(login=user.login, gist_id=gist_id))
                del user.published[gist_id]
                user.last_change_at = self._wall()
                user.missing.discard(gist_id)
                deleted += 1
                metrics.GISTS_DELETED.inc()
        user.missing &= set(gone)
        if changed or deleted:
            log.info(
                "gists changed on GitHub",
                extra={"login": user.login, "new": counts[0], "edited": edits, "deleted": deleted},
            )

    # --- poll now ------------------------------------------------------------------------

    async def poll_now(self, keep: Callable[[str], bool] | None = None) -> tuple[int, int]:
        """Polls every tracked user once more (or those whose key `keep` accepts), as fast
        as the budget allows, and returns (users polled, new gists). A poll already running
        for a user is waited for, then that user is polled again, so everything on GitHub
        before the call is seen."""
        if keep is None and not self.loaded.is_set():
            raise TransientError("the tracked users are not loaded yet")
        asked_at = self._clock()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[PollResult]] = []
        for key in [key for key in self._users if keep is None or keep(key)]:
            future: asyncio.Future[PollResult] = loop.create_future()
            self._waiters.setdefault(key, []).append(_Waiter(asked_at, future))
            self._schedule.expedite(key, asked_at)
            futures.append(future)
        self._wakeup.set()
        results = await asyncio.gather(*futures)
        return len(results), sum(result.new_gists for result in results)

    def _answer_waiters(self, key: str, started: float, result: PollResult) -> None:
        waiting = self._waiters.pop(key, [])
        later = []
        for waiter in waiting:
            if waiter.future.done():
                continue
            if started >= waiter.asked_at:
                waiter.future.set_result(result)
            else:
                later.append(waiter)
        if later:
            self._waiters[key] = later
