"""The messages the services exchange, as pydantic models.

Every message carries its `type` (also its routing key), a `version`, a `message_id` and the
`correlation_id` of the HTTP request that caused it. Bodies are JSON; `parse_message` turns
bytes back into the right model or raises `InvalidMessage` with a reason fit for a
dead-letter header. The patterns of a login and a gist id are defined here, once.

Versions, so that services can be upgraded one replica at a time:

- `version` is the compatibility level: a reader reads `MIN_VERSION` to `SCHEMA_VERSION` and
  dead-letters anything else (a change it cannot read: a field removed, renamed or retyped).
- `minor` counts additive changes within a version: a new optional field, in a message or in
  the data it carries. A reader ignores the fields it does not know only in a message whose
  `minor` is newer than its own (`SCHEMA_MINOR`); in any other message an unknown field is a
  mistake and is refused, as is a bad value of a field it knows, whatever the `minor`.
- `minor` 0 is not written, so that releases from before it existed (which refused any field
  they did not know) read what this one sends.
- A new message type is not additive: its consumers must be running before its producers.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)

# Raised by `parse_message`; defined with the other errors, so the transport knows it too.
from gistsync.errors import InvalidMessage as InvalidMessage

# The compatibility level this build writes, and the oldest it still reads.
SCHEMA_VERSION = 1
MIN_VERSION = 1
# Additive changes within `SCHEMA_VERSION` this build knows of (see the module doc).
SCHEMA_MINOR = 0
# Set in the validation context when a message is newer than this build: its unknown
# fields are dropped instead of refused.
NEWER = "newer_minor"

# What GitHub serves: 1 to 39 letters, digits or hyphens. Its sign-up rule (no leading,
# trailing or doubled hyphen) is newer than some accounts (`gil--`, `foo-`, `a--b`), so only
# the characters and the length are checked here; GitHub's 404 decides the rest.
LOGIN_REGEX = r"[A-Za-z0-9-]{1,39}"
LOGIN_PATTERN = re.compile(rf"^{LOGIN_REGEX}$")
# A gist id as GitHub makes them (hex today, alphanumerics allowed), unanchored.
GIST_ID_REGEX = r"[A-Za-z0-9]{1,64}"


# The longest error text a poll status carries.
POLL_ERROR_MAX = 300


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

    @model_validator(mode="before")
    @classmethod
    def _drop_newer_fields(cls, data: Any, info: ValidationInfo) -> Any:
        """In a message from a newer minor (only then), the fields added since are dropped:
        additive changes are optional by rule, so reading without them is reading right."""
        if isinstance(data, dict) and info.context and info.context.get(NEWER):
            return {name: value for name, value in data.items() if name in cls.model_fields}
        return data


class Message(Model):
    type: str  # each message narrows it to its own literal: the union's discriminator
    version: int = Field(default=SCHEMA_VERSION, ge=MIN_VERSION, le=SCHEMA_VERSION)
    minor: int = Field(default=SCHEMA_MINOR, ge=0)
    message_id: str = Field(default_factory=new_id)
    correlation_id: str = Field(default_factory=new_id)
    sent_at: datetime = Field(default_factory=utcnow)

    @model_serializer(mode="wrap")
    def _omit_minor_zero(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.minor == 0:
            data.pop("minor", None)  # the releases before `minor` refuse fields they do not know
        return data


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


class PollError(Model):
    """What went wrong with a user's poll, in a line (never a secret), and when."""

    at: datetime
    text: str = Field(max_length=POLL_ERROR_MAX)


class PollStatus(Model):
    """How the polling of one user goes, as the poller that polls them knows it (in memory:
    since it started polling them)."""

    last_poll_at: datetime | None = None  # when the last poll ended, whatever its outcome
    last_change_at: datetime | None = None  # when a poll last published a gist or a deletion
    last_error: PollError | None = None  # kept after later successes: compare the times
    failures: int = Field(default=0, ge=0)  # failed polls in a row, 0 once one succeeds
    interval_seconds: float = Field(ge=0)  # this user's turn comes every this many seconds
    next_poll_at: datetime | None = None  # None while a poll runs


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


class PollStatusQuery(Message):
    """How polling goes for one user, answered by the poller that owns the user's partition."""

    type: Literal["query.poll_status"] = "query.poll_status"
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


class PollStatusReply(Message):
    type: Literal["reply.poll_status"] = "reply.poll_status"
    status: PollStatus | None = None  # None: that poller does not poll the user


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
    | PollStatusQuery
    | GistsQuery
    | UserExistsReply
    | TrackedUsersReply
    | UserStatusReply
    | PollStatusReply
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


def readable(raw: dict[str, Any], kind: str) -> bool:
    """Whether this build can read a message of `kind` with these `version` and `minor`
    (raises `InvalidMessage` if not); True when it is newer than this build, so its unknown
    fields are to be dropped."""
    version, minor = raw.get("version"), raw.get("minor", 0)
    if type(version) is not int or not MIN_VERSION <= version <= SCHEMA_VERSION:
        reads = (
            f"version {SCHEMA_VERSION}"
            if MIN_VERSION == SCHEMA_VERSION
            else f"versions {MIN_VERSION} to {SCHEMA_VERSION}"
        )
        raise InvalidMessage(
            f"unsupported schema version {version!r} for {kind} (this build reads {reads}; "
            "a message of another version needs a build of that version)"
        )
    if type(minor) is not int or minor < 0:
        raise InvalidMessage(f"invalid {kind}: minor: must be a whole number, 0 or more")
    return minor > SCHEMA_MINOR


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
        raise InvalidMessage(f"unknown message type {kind!r} (not one this build knows)")
    newer = readable(raw, kind)
    try:
        return _adapter.validate_python(raw, context={NEWER: newer})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "body"
        raise InvalidMessage(f"invalid {kind}: {where}: {first['msg']}") from None
