"""Everything the gateway asks of, or tells, the rest of the system, as one interface.

The handlers know only `Services`: `bus.BrokerServices` is the real one (RabbitMQ
request/reply and confirmed publishes), and the tests run the HTTP edge against an in-memory
one. Every method takes the correlation id of the HTTP request that caused it.

Failures are `gistsync.errors`' own: `RequestTimeout` (nobody answered in time),
`RemoteError` (a service answered with a failure, or with nonsense) and `PublishError`
(the broker did not take a command; nothing changed).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from gateway.sessions import Revocations, SignOuts
from gistsync.contracts import GistsReply, PollReport, PollStatus, TrackedUser


class Services(Protocol):
    @property
    def ready(self) -> bool:
        """Connected: `/readyz` says so."""
        ...

    # --- questions: answered from what the poller and the writer hold -------------------

    async def tracked_users(self, *, cid: str) -> tuple[TrackedUser, ...]:
        """Every tracked user, with their count of unseen gists."""
        ...

    async def user_status(self, login: str, *, cid: str) -> TrackedUser | None:
        """One tracked user (the login in any letter case), or None."""
        ...

    async def poll_status(self, login: str, *, cid: str) -> PollStatus | None:
        """How the polling of one user goes, from the poller that polls them; None when it
        does not poll them."""
        ...

    async def gists(self, login: str, *, include_seen: bool, cid: str) -> GistsReply:
        """A user's unseen gists, or all of them; `tracked` is false for anyone else."""
        ...

    async def github_login(self, login: str, *, cid: str) -> str | None:
        """GitHub's spelling of the login when such a GitHub user exists, else None."""
        ...

    async def poll_and_wait(self, *, cid: str) -> PollReport:
        """Poll every tracked user now and wait for the polls: how many new gists."""
        ...

    # --- commands: done once the broker has them, applied by the others afterwards ------

    async def track(self, login: str, *, cid: str) -> None: ...

    async def untrack(self, login: str, *, cid: str) -> None: ...

    async def mark_seen(self, login: str, gist_ids: tuple[str, ...], *, cid: str) -> None: ...

    async def poll_now(self, *, cid: str) -> None:
        """Poll every tracked user now, without waiting."""
        ...

    # --- the other gateways -------------------------------------------------------------

    def sign_outs(self, revocations: Revocations) -> SignOuts:
        """How this gateway tells the others of a sign-out, and hears theirs."""
        ...


SERVICES: web.AppKey[Services] = web.AppKey("services")
