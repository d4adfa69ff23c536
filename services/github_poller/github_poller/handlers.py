"""What each message the poller receives does.

- `github_poller` queue: `event.user_tracked` → poll that user at once, then on schedule;
  `event.user_untracked` → stop polling that user.
- `github_poller.queries` queue: `query.user_exists` → ask GitHub; `command.poll_now` → poll
  every tracked user now and report `PollReport(users=<users polled>, new_gists=<gists
  those polls published>)`. A failure there raises, and the broker answers the requester
  with an `ErrorReply`.
"""

from __future__ import annotations

from gistsync.contracts import (
    AnyMessage,
    Message,
    PollNow,
    PollReport,
    UserExistsQuery,
    UserExistsReply,
    UserTracked,
    UserUntracked,
)
from gistsync.errors import PermanentError
from github_poller.github import GitHubClient
from github_poller.poller import Poller


class Handlers:
    def __init__(self, poller: Poller, client: GitHubClient, *, query_wait: float) -> None:
        self._poller = poller
        self._client = client
        # A rate-limit pause longer than this fails a query at once: its asker gives up
        # after about that long anyway.
        self._query_wait = query_wait

    async def on_event(self, message: AnyMessage) -> Message | None:
        if isinstance(message, UserTracked):
            self._poller.track(message.login)  # a duplicate is harmless
            return None
        if isinstance(message, UserUntracked):
            self._poller.untrack(message.login)
            return None
        raise PermanentError(f"github_poller does not handle {message.type} events")

    async def on_query(self, message: AnyMessage) -> Message | None:
        if isinstance(message, UserExistsQuery):
            return await self.user_exists(message)
        if isinstance(message, PollNow):
            users, new_gists = await self._poller.poll_now()
            return PollReport(users=users, new_gists=new_gists)
        raise PermanentError(f"github_poller does not answer {message.type}")

    async def user_exists(self, query: UserExistsQuery) -> UserExistsReply:
        login = await self._client.user_login(query.login, max_wait=self._query_wait)
        if login is None:
            return UserExistsReply(exists=False)
        return UserExistsReply(exists=True, login=login)
