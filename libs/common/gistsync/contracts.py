"""The messages the services exchange, as pydantic models.

Every message carries its `type` (also its routing key), a `version`, a `message_id` and the
`correlation_id` of the HTTP request that caused it. Bodies are JSON; `parse_message` turns
bytes back into the right model or raises `InvalidMessage` with a reason fit for a
dead-letter header. The patterns of a login and a gist id are defined here, once.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# Raised by `parse_message`; defined with the other errors, so the transport knows it too.
from gistsync.errors import InvalidMessage as InvalidMessage

SCHEMA_VERSION: Literal[1] = 1

# What GitHub serves: 1 to 39 letters, digits or hyphens. Its sign-up rule (no leading,
# trailing or doubled hyphen) is newer than some accounts (`gil--`, `foo-`, `a--b`), so only
# the characters and the length are checked here; GitHub's 404 decides the rest.
LOGIN_REGEX = r"[A-Za-z0-9-]{1,39}"
LOGIN_PATTERN = re.compile(rf"^{LOGIN_REGEX}$")
# A gist id as GitHub makes them (hex today, alphanumerics allowed), unanchored.
GIST_ID_REGEX = r"[A-Za-z0-9]{1,64}"


def check_login(value: str) -> str:
    if not LOGIN_PATTERN.fullmatch(value):
        raise ValueError(
            "a GitHub login has 1 to 39 characters, each a letter (A-Z, a-z), a digit or a hyphen"
        )
    return value


def login_key(login: str) -> str:
    """Logins are case-insensitive: `Alice` and `alice` are one user."""
    return login.casefold()


Login = Annotated[str, AfterValidator(check_login)]
GistId = Annotated[str, Field(pattern=rf"^{GIST_ID_REGEX}$")]


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Model):
    type: str  # each message narrows it to its own literal: the union's discriminator
    version: Literal[1] = SCHEMA_VERSION
    message_id: str = Field(default_factory=new_id)
    correlation_id: str = Field(default_factory=new_id)
    sent_at: datetime = Field(default_factory=utcnow)


# --- data carried inside messages -------------------------------------------------------


class GistFile(Model):
    filename: str
    language: str | None = None


class Gist(Model):
    id: GistId
    html_url: str
    description: str | None = None
    files: tuple[GistFile, ...] = ()
    created_at: datetime
    updated_at: datetime | None = None

    @property
    def title(self) -> str:
        """The description, else the first filename, else the id."""
        if self.description and self.description.strip():
            return self.description.strip()
        return self.files[0].filename if self.files else self.id


class TrackedUser(Model):
    login: Login
    unseen: int = Field(ge=0)


class GistView(Model):
    id: GistId
    title: str
    seen: bool
    html_url: str | None = None
    files: tuple[GistFile, ...] = ()
    created_at: datetime | None = None


# --- commands -----------------------------------------------------------------------------


class TrackUser(Message):
    """Start tracking a GitHub user (login already checked and canonical)."""

    type: Literal["command.track_user"] = "command.track_user"
    login: Login


class MarkGistsSeen(Message):
    type: Literal["command.mark_seen"] = "command.mark_seen"
    login: Login
    gist_ids: tuple[GistId, ...] = Field(min_length=1)


class UntrackUser(Message):
    """Stop tracking a user. Their Pipedrive records stay; the deal is marked lost."""

    type: Literal["command.untrack_user"] = "command.untrack_user"
    login: Login


class PollNow(Message):
    """Poll every tracked user now; answered with a `PollReport` when sent as a request.

    With a `partition`, only that partition's users, by the poller that owns it: the gateway
    sends one to each partition, so that every replica's users are polled."""

    type: Literal["command.poll_now"] = "command.poll_now"
    partition: int | None = Field(default=None, ge=0)


# --- events -------------------------------------------------------------------------------


class UserTracked(Message):
    type: Literal["event.user_tracked"] = "event.user_tracked"
    login: Login


class UserUntracked(Message):
    type: Literal["event.user_untracked"] = "event.user_untracked"
    login: Login


class GistDiscovered(Message):
    type: Literal["event.gist_discovered"] = "event.gist_discovered"
    login: Login
    gist: Gist
    discovered_at: datetime = Field(default_factory=utcnow)


class GistDeleted(Message):
    """A tracked user's gist is gone from GitHub (missing from a full read of their list)."""

    type: Literal["event.gist_deleted"] = "event.gist_deleted"
    login: Login
    gist_id: GistId
    deleted_at: datetime = Field(default_factory=utcnow)


class UnseenChanged(Message):
    """A user's count of unseen gists changed; keeps every writer's list of users current."""

    type: Literal["event.unseen_changed"] = "event.unseen_changed"
    login: Login
    unseen: int = Field(ge=0)


# --- queries and replies -------------------------------------------------------------------


class UserExistsQuery(Message):
    type: Literal["query.user_exists"] = "query.user_exists"
    login: Login


class TrackedUsersQuery(Message):
    """Every tracked user, or (with a `partition`) only that partition's: what a poller
    that gained the partition polls."""

    type: Literal["query.tracked_users"] = "query.tracked_users"
    partition: int | None = Field(default=None, ge=0)


class UserStatusQuery(Message):
    """One user, answered by the writer that owns the user's partition."""

    type: Literal["query.user_status"] = "query.user_status"
    login: Login


class GistsQuery(Message):
    """A tracked user's gists: only the unseen ones, or all of them."""

    type: Literal["query.gists"] = "query.gists"
    login: Login
    include_seen: bool = False


class UserExistsReply(Message):
    type: Literal["reply.user_exists"] = "reply.user_exists"
    exists: bool
    login: Login | None = None  # GitHub's canonical spelling when it exists


class TrackedUsersReply(Message):
    type: Literal["reply.tracked_users"] = "reply.tracked_users"
    users: tuple[TrackedUser, ...]


class UserStatusReply(Message):
    type: Literal["reply.user_status"] = "reply.user_status"
    user: TrackedUser | None = None  # None: not tracked


class GistsReply(Message):
    type: Literal["reply.gists"] = "reply.gists"
    tracked: bool
    login: Login | None = None
    gists: tuple[GistView, ...] = ()


class PollReport(Message):
    type: Literal["reply.poll_report"] = "reply.poll_report"
    users: int = Field(ge=0)
    new_gists: int = Field(ge=0)


class ErrorReply(Message):
    """What a service answers a request with when it could not do it."""

    type: Literal["reply.error"] = "reply.error"
    code: str
    detail: str


AnyMessage = Annotated[
    TrackUser
    | UntrackUser
    | MarkGistsSeen
    | PollNow
    | UserTracked
    | UserUntracked
    | GistDiscovered
    | GistDeleted
    | UnseenChanged
    | UserExistsQuery
    | TrackedUsersQuery
    | UserStatusQuery
    | GistsQuery
    | UserExistsReply
    | TrackedUsersReply
    | UserStatusReply
    | GistsReply
    | PollReport
    | ErrorReply,
    Field(discriminator="type"),
]
# The union's members, read back from it, so a new message is listed in one place only.
MESSAGE_TYPES: frozenset[str] = frozenset(
    model.model_fields["type"].default for model in get_args(get_args(AnyMessage)[0])
)
_adapter: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode()


def parse_message(body: bytes) -> AnyMessage:
    """Bytes to a message, or `InvalidMessage` saying exactly what is wrong."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidMessage("the body is not a JSON object")
    kind = raw.get("type")
    if kind not in MESSAGE_TYPES:
        raise InvalidMessage(f"unknown message type {kind!r}")
    if raw.get("version") != SCHEMA_VERSION:
        raise InvalidMessage(
            f"unsupported schema version {raw.get('version')!r} for {kind} "
            f"(this build reads version {SCHEMA_VERSION})"
        )
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "body"
        raise InvalidMessage(f"invalid {kind}: {where}: {first['msg']}") from None
