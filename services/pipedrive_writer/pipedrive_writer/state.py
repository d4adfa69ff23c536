"""The in-memory cache of what Pipedrive holds, and how Pipedrive records map onto it.

Pipedrive is the only database: everything here is rebuilt from it at start and on refresh.

Duplicates made by hand. Names are compared exactly but case-insensitively (`casefold`, no
trimming, no fuzzy matching): the organization by its name, a person by the login, a deal by
its title `Gists for {login}`. When two or more records match, the one with the lowest id wins
and the others are ignored (logged once, never changed or deleted). A record is created only
when none matches, so a third never appears. Two activities in one deal that carry the same
gist id are treated the same way: the lowest activity id is the gist's activity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from gistsync.contracts import (
    LOGIN_PATTERN,
    GistFile,
    GistView,
    TrackedUser,
    login_key,
)
from pipedrive_writer.notes import parse_note

Record = Mapping[str, Any]

DEAL_TITLE_PREFIX = "Gists for "
_DEAL_TITLE = re.compile(rf"^{DEAL_TITLE_PREFIX}(.+)$", re.IGNORECASE | re.DOTALL)


def deal_title(login: str) -> str:
    return f"{DEAL_TITLE_PREFIX}{login}"


def deal_login(title: str | None) -> str | None:
    """The login a deal title names (`Gists for alice` → `alice`), or None."""
    match = _DEAL_TITLE.match(title or "")
    if match is None or not LOGIN_PATTERN.fullmatch(match.group(1)):
        return None
    return match.group(1)


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def pick(records: Iterable[Record], key: str, wanted: str) -> tuple[Record | None, list[Record]]:
    """The duplicate rule: of the records whose `key` equals `wanted` (case-insensitively),
    the lowest id wins; returns it and the ignored rest."""
    matching = sorted((r for r in records if same_name(r.get(key), wanted)), key=lambda r: r["id"])
    if not matching:
        return None, []
    return matching[0], matching[1:]


def group_deals(deals: Iterable[Record]) -> dict[str, tuple[Record, list[Record]]]:
    """The org's deals per login key: the winning deal and the ignored duplicates."""
    by_key: dict[str, list[Record]] = {}
    for deal in deals:
        login = deal_login(deal.get("title"))
        if login is not None and not deal.get("is_deleted"):
            by_key.setdefault(login_key(login), []).append(deal)
    grouped: dict[str, tuple[Record, list[Record]]] = {}
    for key, found in by_key.items():
        ordered = sorted(found, key=lambda d: d["id"])
        grouped[key] = (ordered[0], ordered[1:])
    return grouped


def deleted_deals(deals: Iterable[Record]) -> dict[str, list[Record]]:
    """The org's deals deleted by hand, per login key. A deal shown with its status before
    the delete (`won`/`lost`) was a user no longer tracked: left out."""
    by_key: dict[str, list[Record]] = {}
    for deal in deals:
        login = deal_login(deal.get("title"))
        if login is not None and deal.get("status") in ("open", "deleted", None):
            by_key.setdefault(login_key(login), []).append(deal)
    return by_key


def _moment(value: Any) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def later(current: str | None, candidate: Any) -> str | None:
    """The later of two RFC 3339 times, kept as Pipedrive wrote it."""
    new = _moment(candidate) if candidate else None
    if new is None:
        return current
    old = _moment(current) if current else None
    return str(candidate) if old is None or new > old else current


@dataclass
class CachedGist:
    id: str
    activity_id: int
    done: bool
    title: str
    html_url: str | None
    files: tuple[GistFile, ...]
    created_at: datetime | None

    def view(self) -> GistView:
        return GistView(
            id=self.id,
            title=self.title,
            seen=self.done,
            html_url=self.html_url,
            files=self.files,
            created_at=self.created_at,
        )


def as_utc(moment: datetime | None) -> datetime | None:
    """Aware datetimes only, so gists always sort (a naive one is taken as UTC)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _due_date(value: Any) -> datetime | None:
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def gist_from_activity(activity: Record) -> CachedGist | None:
    """The gist an activity stands for, or None when its note is not a gist note."""
    note = parse_note(activity.get("note"))
    if note is None or activity.get("is_deleted"):
        return None
    return CachedGist(
        id=note.gist_id,
        activity_id=int(activity["id"]),
        done=activity.get("done") is True,
        title=str(activity.get("subject") or note.gist_id),
        html_url=note.html_url,
        files=note.files,
        created_at=as_utc(note.created_at) or _due_date(activity.get("due_date")),
    )


def gists_from_activities(
    activities: Iterable[Record],
) -> tuple[dict[str, CachedGist], list[CachedGist]]:
    """Gist id → its activity (lowest id wins), and the ignored duplicates."""
    return pick_gists(g for g in map(gist_from_activity, activities) if g is not None)


def pick_gists(found: Iterable[CachedGist]) -> tuple[dict[str, CachedGist], list[CachedGist]]:
    gists: dict[str, CachedGist] = {}
    ignored: list[CachedGist] = []
    for gist in sorted(found, key=lambda g: g.activity_id):
        if gist.id in gists:
            ignored.append(gist)
        else:
            gists[gist.id] = gist
    return gists, ignored


@dataclass
class UserRecord:
    login: str
    deal_id: int
    person_id: int | None
    org_id: int | None
    gists: dict[str, CachedGist] = field(default_factory=dict)
    # When (monotonic) this record last matched Pipedrive; a refresh that started later
    # may drop it if its deal is gone.
    synced_at: float = 0.0
    # A write whose outcome is unknown (timeout, lost connection): re-read before writing.
    stale: bool = False
    # The deal (or its person) was deleted by hand: made again before the next write.
    deal_gone: bool = False
    # Gists whose activity was deleted by hand (or sits on a deleted deal): added again,
    # once, before the next write.
    orphans: dict[str, CachedGist] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return login_key(self.login)

    def unseen(self) -> list[CachedGist]:
        """Not done, newest first."""
        return newest_first(gist for gist in self.known().values() if not gist.done)

    def all(self) -> list[CachedGist]:
        return newest_first(self.known().values())

    def known(self) -> dict[str, CachedGist]:
        """Every gist of the user, those waiting to be added again included."""
        return {**self.orphans, **self.gists}


def newest_first(gists: Iterable[CachedGist]) -> list[CachedGist]:
    """Newest first; undated last, then by activity id, newest first."""
    return sorted(
        gists,
        key=lambda g: (g.created_at is not None, g.created_at or datetime.min, g.activity_id),
        reverse=True,
    )


@dataclass
class Cache:
    org_id: int | None = None
    users: dict[str, UserRecord] = field(default_factory=dict)
    loaded: bool = False

    def get(self, login: str) -> UserRecord | None:
        return self.users.get(login_key(login))

    def tracked_users(self) -> tuple[TrackedUser, ...]:
        ordered = sorted(self.users.values(), key=lambda u: (u.key, u.login))
        return tuple(TrackedUser(login=u.login, unseen=len(u.unseen())) for u in ordered)

    def tracked_users_by_key(self) -> list[tuple[str, TrackedUser]]:
        return [(login_key(user.login), user) for user in self.tracked_users()]
