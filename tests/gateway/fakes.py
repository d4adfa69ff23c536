"""A small world of GitHub users and gists, answered over RabbitMQ as the poller and the
writer would: queries read it, commands change it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gistsync.contracts import (
    AnyMessage,
    GistFile,
    GistsQuery,
    GistsReply,
    GistView,
    MarkGistsSeen,
    Message,
    PollReport,
    TrackedUser,
    TrackedUsersReply,
    TrackUser,
    UntrackUser,
    UserExistsQuery,
    UserExistsReply,
    login_key,
)
from tests.gateway.conftest import Peers

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2;alert(1)</script>'


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


@dataclass
class World:
    github: dict[str, str] = field(default_factory=dict)  # key → GitHub's spelling
    gists: dict[str, list[GistView]] = field(default_factory=dict)  # key → gists
    tracked: dict[str, str] = field(default_factory=dict)  # key → login
    seen: set[str] = field(default_factory=set)
    # GitHub as a whole: every valid login is a user (for generated requests).
    everyone_exists: bool = False

    def add_user(self, login: str, *gists: GistView) -> None:
        self.github[login_key(login)] = login
        self.gists[login_key(login)] = list(gists)

    def track(self, login: str) -> None:
        self.tracked[login_key(login)] = self.github[login_key(login)]

    def views(self, key: str) -> list[GistView]:
        return [g.model_copy(update={"seen": g.id in self.seen}) for g in self.gists.get(key, [])]

    def unseen(self, login: str) -> int:
        return sum(not g.seen for g in self.views(login_key(login)))

    def answer(self, message: AnyMessage) -> Message | None:
        match message:
            case UserExistsQuery(login=login):
                found = self.github.get(login_key(login))
                if found is None and self.everyone_exists:
                    found = self.github.setdefault(login_key(login), login)
                return UserExistsReply(exists=found is not None, login=found)
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
        if message.type == "query.tracked_users":
            users = tuple(
                TrackedUser(login=login, unseen=self.unseen(login))
                for login in self.tracked.values()
            )
            return TrackedUsersReply(users=users)
        if message.type == "command.poll_now":
            return PollReport(users=len(self.tracked), new_gists=0)
        return None

    def serve(self, peers: Peers) -> World:
        for kind in (
            "query.user_exists",
            "query.gists",
            "query.tracked_users",
            "command.track_user",
            "command.untrack_user",
            "command.mark_seen",
            "command.poll_now",
        ):
            peers.answers[kind] = self.answer
        return self
