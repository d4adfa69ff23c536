"""Stand-ins for the rest of the system: a small `World` of GitHub users and gists that
queries read and commands change, and `FakeServices`, the gateway's `Services` in memory
(no broker). It records every question and command as the contract message the real
`Services` would send, and answers them as `answers` say (`World.serve` fills them), so a
test reads exactly like one against the real broker's stand-in, `conftest.Peers`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from gateway.sessions import Revocations, Session, SignOuts
from gistsync.contracts import (
    AnyMessage,
    GistFile,
    GistsQuery,
    GistsReply,
    GistView,
    MarkGistsSeen,
    Message,
    PollNow,
    PollReport,
    PollStatus,
    PollStatusQuery,
    PollStatusReply,
    TrackedUser,
    TrackedUsersQuery,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserExistsQuery,
    UserExistsReply,
    UserStatusQuery,
    UserStatusReply,
    login_key,
)
from gistsync.errors import PublishError, RemoteError, RequestTimeout

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2;alert(1)</script>'
# The reply to a message (None: no answer), or a `gistsync.errors` failure raised.
Answer = Callable[[AnyMessage], Message | None]
R = TypeVar("R", bound=Message)
PARTITIONS = 2  # as `tests.conftest.PARTITIONS`: the fake polls as many partitions


def gist(
    gist_id: str,
    title: str,
    *files: tuple[str, str | None],
    day: int = 1,
    url: str | None = None,
) -> GistView:
    return GistView(
        id=gist_id,
        title=title,
        seen=False,
        html_url=url if url is not None else f"https://gist.github.com/{gist_id}",
        files=tuple(GistFile(filename=name, language=lang) for name, lang in files),
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(days=day),
    )


def failing(code: str, detail: str) -> Answer:
    def fail(_: AnyMessage) -> None:
        raise RemoteError(code, detail)

    return fail


@dataclass
class SignOutHub:
    """Sign-outs among the gateways of one test, as the fanout exchange carries them."""

    listening: list[Revocations] = field(default_factory=list)

    def bus(self, revocations: Revocations) -> SignOuts:
        return _HubBus(self, revocations)


@dataclass
class _HubBus:
    hub: SignOutHub
    revocations: Revocations

    async def start(self) -> None:
        self.hub.listening.append(self.revocations)

    async def close(self) -> None:
        self.hub.listening.remove(self.revocations)

    async def announce(self, session: Session) -> None:
        self.revocations.add(session.digest, session.expires)
        for other in self.hub.listening:
            other.add(session.digest, session.expires)


class Answering(Protocol):
    """Where the answers of the poller's and the writer's stand-in are set (`Peers` on the
    broker, `FakeServices` in memory)."""

    answers: dict[str, Answer]


@dataclass
class World:
    """GitHub and Pipedrive in miniature: queries read it, commands change it."""

    github: dict[str, str] = field(default_factory=dict)  # key → GitHub's spelling
    gists: dict[str, list[GistView]] = field(default_factory=dict)  # key → gists
    tracked: dict[str, str] = field(default_factory=dict)  # key → login
    seen: set[str] = field(default_factory=set)
    # GitHub as a whole: every valid login is a user (for generated requests).
    everyone_exists: bool = False
    polls: dict[str, PollStatus] = field(default_factory=dict)  # key → what the poller says

    def add_user(self, login: str, *gists: GistView) -> None:
        self.github[login_key(login)] = login
        self.gists[login_key(login)] = list(gists)

    def track(self, login: str) -> None:
        self.tracked[login_key(login)] = self.github[login_key(login)]

    def views(self, key: str) -> list[GistView]:
        return [g.model_copy(update={"seen": g.id in self.seen}) for g in self.gists.get(key, [])]

    def unseen(self, login: str) -> int:
        return sum(not g.seen for g in self.views(login_key(login)))

    def user(self, key: str) -> TrackedUser:
        return TrackedUser(login=self.tracked[key], unseen=self.unseen(self.tracked[key]))

    def answer(self, message: AnyMessage) -> Message | None:
        match message:
            case UserExistsQuery(login=login):
                found = self.github.get(login_key(login))
                if found is None and self.everyone_exists:
                    found = self.github.setdefault(login_key(login), login)
                return UserExistsReply(exists=found is not None, login=found)
            case TrackedUsersQuery():
                return TrackedUsersReply(users=tuple(self.user(k) for k in self.tracked))
            case UserStatusQuery(login=login):
                key = login_key(login)
                return UserStatusReply(user=self.user(key) if key in self.tracked else None)
            case PollStatusQuery(login=login):
                return PollStatusReply(status=self.polls.get(login_key(login)))
            case GistsQuery(login=login, include_seen=include_seen):
                key = login_key(login)
                if key not in self.tracked:
                    return GistsReply(tracked=False)
                views = [g for g in self.views(key) if include_seen or not g.seen]
                return GistsReply(tracked=True, login=self.tracked[key], gists=tuple(views))
            case TrackUser(login=login):
                self.tracked[login_key(login)] = login
            case UntrackUser(login=login):
                self.tracked.pop(login_key(login), None)
            case MarkGistsSeen(gist_ids=ids):
                self.seen.update(ids)
            case PollNow():
                return PollReport(users=len(self.tracked), new_gists=0)
        return None

    def serve(self, peers: Answering) -> World:
        for kind in ANSWERED:
            peers.answers[kind] = self.answer
        return self


ANSWERED = (
    "query.user_exists",
    "query.tracked_users",
    "query.user_status",
    "query.poll_status",
    "query.gists",
    "command.track_user",
    "command.untrack_user",
    "command.mark_seen",
    "command.poll_now",
)


@dataclass
class FakeServices:
    """`gateway.services.Services` in memory, answering as `answers` say: a question nobody
    answers times out at once, an answer may raise a `gistsync.errors` failure."""

    answers: dict[str, Answer] = field(default_factory=dict)
    received: list[AnyMessage] = field(default_factory=list)
    # False: no command reaches the broker (`PublishError`), nothing changes.
    reachable: bool = True
    ready: bool = True
    hub: SignOutHub = field(default_factory=SignOutHub)

    def of_type(self, kind: str) -> list[AnyMessage]:
        return [m for m in self.received if m.type == kind]

    def commands(self) -> list[str]:
        return [m.type for m in self.received if m.type.startswith("command.")]

    def ask(self, query: AnyMessage, expect: type[R]) -> R:
        self.received.append(query)
        answer = self.answers.get(query.type)
        reply = answer(query) if answer else None
        if reply is None:
            raise RequestTimeout(f"no answer to {query.type}")
        if not isinstance(reply, expect):
            raise RemoteError("unexpected_reply", f"expected {expect.__name__}, got {reply.type}")
        return reply

    def tell(self, command: AnyMessage) -> None:
        if not self.reachable:
            raise PublishError("not connected to the broker")
        self.received.append(command)
        answer = self.answers.get(command.type)
        if answer:
            answer(command)

    # --- `Services` ---------------------------------------------------------------------

    async def tracked_users(self, *, cid: str) -> tuple[TrackedUser, ...]:
        return self.ask(TrackedUsersQuery(correlation_id=cid), TrackedUsersReply).users

    async def user_status(self, login: str, *, cid: str) -> TrackedUser | None:
        return self.ask(UserStatusQuery(login=login, correlation_id=cid), UserStatusReply).user

    async def poll_status(self, login: str, *, cid: str) -> PollStatus | None:
        query = PollStatusQuery(login=login, correlation_id=cid)
        return self.ask(query, PollStatusReply).status

    async def gists(self, login: str, *, include_seen: bool, cid: str) -> GistsReply:
        query = GistsQuery(login=login, include_seen=include_seen, correlation_id=cid)
        return self.ask(query, GistsReply)

    async def github_login(self, login: str, *, cid: str) -> str | None:
        reply = self.ask(UserExistsQuery(login=login, correlation_id=cid), UserExistsReply)
        return reply.login if reply.exists else None

    async def poll_and_wait(self, *, cid: str) -> PollReport:
        polls = [PollNow(partition=n, correlation_id=cid) for n in range(PARTITIONS)]
        reports = [self.ask(poll, PollReport) for poll in polls]
        return PollReport(
            users=sum(r.users for r in reports), new_gists=sum(r.new_gists for r in reports)
        )

    async def track(self, login: str, *, cid: str) -> None:
        self.tell(TrackUser(login=login, correlation_id=cid))

    async def untrack(self, login: str, *, cid: str) -> None:
        self.tell(UntrackUser(login=login, correlation_id=cid))

    async def mark_seen(self, login: str, gist_ids: tuple[str, ...], *, cid: str) -> None:
        self.tell(MarkGistsSeen(login=login, gist_ids=gist_ids, correlation_id=cid))

    async def poll_now(self, *, cid: str) -> None:
        for n in range(PARTITIONS):
            self.tell(PollNow(partition=n, correlation_id=cid))

    def sign_outs(self, revocations: Revocations) -> SignOuts:
        return self.hub.bus(revocations)
