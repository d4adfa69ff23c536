"""In-memory GitHub: users, their gists, and the per-identity rate-limit windows."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from sandbox import github_errors
from sandbox.config import GitHubConfig
from sandbox.faults import Fault
from sandbox.ratelimit import FixedWindow, RollingWindow
from sandbox.simulator import SimulatorState
from sandbox.timeutil import Clock, utcnow

# GitHub's rule (alphanumerics, single inner hyphens, <= 39) is not applied: some old
# accounts break it, so the sandbox only insists on the character set and length.
LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,39}$")
FIRST_USER_ID = 1001


@dataclass
class User:
    id: int
    login: str  # canonical spelling; lookups are case-insensitive
    created_at: datetime
    updated_at: datetime


@dataclass
class Gist:
    id: str
    owner: str  # lower-cased login
    description: str | None
    files: dict[str, str]  # filename -> content
    public: bool
    created_at: datetime
    updated_at: datetime
    seq: int  # creation order; breaks created_at ties (timestamps are whole seconds)


@dataclass
class Identity:
    """Who a request counts against: a token, or the caller's address when anonymous."""

    key: str
    authorized: bool


@dataclass
class _Windows:
    primary: dict[str, FixedWindow] = field(default_factory=dict)
    secondary: dict[str, RollingWindow] = field(default_factory=dict)
    in_flight: Counter[str] = field(default_factory=Counter)


@dataclass
class Polls:
    """When one user's gists were listed (`time.time()` seconds)."""

    first: float
    last: float
    count: int = 0
    longest_gap: float = 0.0


class GitHubState(SimulatorState[GitHubConfig]):
    def __init__(self, config: GitHubConfig | None = None, *, clock: Clock = utcnow) -> None:
        super().__init__(config or GitHubConfig())
        self.clock = clock
        self.users: dict[str, User] = {}
        self.gists: dict[str, Gist] = {}
        # Per-owner index: listing must not scan every gist when benchmarks hold thousands.
        self._by_owner: dict[str, dict[str, Gist]] = {}
        self.windows = _Windows()
        self._next_user_id = FIRST_USER_ID
        self._next_seq = 0
        self.polls: dict[str, Polls] = {}

    def polled(self, login: str, now: float) -> None:
        """A user's gists were listed (page 1): how often, and the longest wait between."""
        polls = self.polls.setdefault(login.lower(), Polls(first=now, last=now))
        polls.longest_gap = max(polls.longest_gap, now - polls.last)
        polls.last = now
        polls.count += 1

    # -- data -------------------------------------------------------------------------------

    def user(self, login: str) -> User | None:
        return self.users.get(login.lower())

    def add_user(self, login: str) -> User:
        if not LOGIN_PATTERN.match(login):
            raise ValueError(f"invalid login {login!r}: use 1-39 letters, digits or hyphens")
        if login.lower() in self.users:
            raise KeyError(f"user {login!r} already exists")
        now = self.clock()
        user = User(id=self._next_user_id, login=login, created_at=now, updated_at=now)
        self._next_user_id += 1
        self.users[login.lower()] = user
        return user

    def ensure_user(self, login: str) -> User:
        return self.user(login) or self.add_user(login)

    def delete_user(self, login: str) -> bool:
        user = self.users.pop(login.lower(), None)
        if user is None:
            return False
        for gist_id in self._by_owner.pop(login.lower(), {}):
            del self.gists[gist_id]
        return True

    def add_gist(
        self,
        login: str,
        files: dict[str, str],
        *,
        description: str | None = None,
        public: bool = True,
        created_at: datetime | None = None,
    ) -> Gist:
        if not files:
            raise ValueError("a gist needs at least one file")
        user = self.ensure_user(login)
        moment = created_at or self.clock()
        gist = Gist(
            id=uuid.uuid4().hex,  # 32 hex digits, like current gist ids
            owner=user.login.lower(),
            description=description,
            files=dict(files),
            public=public,
            created_at=moment,
            updated_at=moment,
            seq=self._next_seq,
        )
        self._next_seq += 1
        self.gists[gist.id] = gist
        self._by_owner.setdefault(gist.owner, {})[gist.id] = gist
        return gist

    def add_gists_bulk(self, login: str, count: int) -> list[Gist]:
        # All share "now": back-dating them could hide them from a poller's `since`.
        now = self.clock()
        return [
            self.add_gist(
                login, {f"gist_{i}.py": f"print({i})\n"}, description=f"gist {i}", created_at=now
            )
            for i in range(1, count + 1)
        ]

    def update_gist(
        self,
        gist_id: str,
        *,
        description: str | None = None,
        set_description: bool = False,
        files: dict[str, str | None] | None = None,
    ) -> Gist:
        gist = self.gists[gist_id]
        if set_description:
            gist.description = description
        for name, content in (files or {}).items():
            if content is None:
                gist.files.pop(name, None)
            else:
                gist.files[name] = content
        gist.updated_at = max(self.clock(), gist.updated_at)
        return gist

    def delete_gist(self, gist_id: str) -> bool:
        gist = self.gists.pop(gist_id, None)
        if gist is None:
            return False
        del self._by_owner[gist.owner][gist_id]
        return True

    def public_gists(self, login: str) -> list[Gist]:
        """Newest first, as GitHub lists them."""
        mine = [g for g in self._by_owner.get(login.lower(), {}).values() if g.public]
        return sorted(mine, key=lambda g: (g.created_at, g.seq), reverse=True)

    # -- limits -----------------------------------------------------------------------------

    def primary_window(self, identity: Identity) -> FixedWindow:
        return self.windows.primary.setdefault(identity.key, FixedWindow())

    def secondary_window(self, identity: Identity) -> RollingWindow:
        return self.windows.secondary.setdefault(identity.key, RollingWindow())

    def primary_limit(self, identity: Identity) -> int:
        limits = self.config.limits
        return limits.primary_limit if identity.authorized else limits.primary_limit_unauthenticated

    # -- SimulatorState -----------------------------------------------------------------------

    def reset_data(self) -> None:
        self.users.clear()
        self.gists.clear()
        self._by_owner.clear()
        in_flight = self.windows.in_flight
        self.windows = _Windows(in_flight=in_flight)
        self._next_user_id = FIRST_USER_ID
        self._next_seq = 0
        self.polls.clear()

    def fault_response(self, fault: Fault) -> web.Response:
        return github_errors.fault_response(fault, self.config.faults.error_status)
