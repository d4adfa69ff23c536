"""The JSON API's bodies as pydantic models: requests are read into them, answers are made
from them, and the OpenAPI components are generated from them (`components`), so the
document cannot drift from what the handlers do."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.json_schema import models_json_schema

from gistsync.contracts import LOGIN_REGEX, GistId, GistView, Login

MAX_GIST_IDS = 1000
State = Literal["unseen", "all"]
PollingState = Literal["reported", "not_polled", "unknown"]
STATES: tuple[State, ...] = ("unseen", "all")
REF_TEMPLATE = "#/components/schemas/{model}"
Json = dict[str, Any]

# GitHub's login rule as the contracts define it; GitHub's 404 decides the rest.
LOGIN_SCHEMA: Json = {
    "type": "string",
    "pattern": f"^{LOGIN_REGEX}$",
    "maxLength": 39,
    "description": "A GitHub login, any letter case: 1 to 39 letters, digits or hyphens "
    "(GitHub still serves older logins with leading, trailing or double hyphens).",
    "examples": ["octocat"],
}
ApiLogin = Annotated[Login, WithJsonSchema(LOGIN_SCHEMA)]
GistIds = Annotated[list[GistId], Field(min_length=1, max_length=MAX_GIST_IDS)]


class Body(BaseModel):
    # Strict: `"all": 1` or `"login": 7` are mistakes to report, not values to coerce.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests -------------------------------------------------------------------------------


class TrackRequest(Body):
    login: ApiLogin


def _all_or_ids(schema: Json) -> None:
    """The schema says what `_exactly_one` checks: one of the two members, alone."""
    ids = next(s for s in schema["properties"]["gist_ids"]["anyOf"] if s.get("type") == "array")
    schema.clear()
    schema["description"] = 'Either every unseen gist (`{"all": true}`) or the listed ones.'
    schema["oneOf"] = [
        {**_object("all"), "properties": {"all": {"const": True}}},
        {**_object("gist_ids"), "properties": {"gist_ids": ids}},
    ]


def _object(member: str) -> Json:
    return {"type": "object", "required": [member], "additionalProperties": False}


class SeenRequest(Body):
    model_config = ConfigDict(json_schema_extra=_all_or_ids)

    all: bool | None = None
    gist_ids: GistIds | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SeenRequest:
        # By what was sent, not by value: `{"all": null, "gist_ids": [...]}` is a mistake too.
        if self.model_fields_set == {"all"} and self.all is True:
            return self
        if self.model_fields_set == {"gist_ids"} and self.gist_ids is not None:
            return self
        raise ValueError('give either "all": true or "gist_ids": [ids], not both')


# --- answers --------------------------------------------------------------------------------


class User(Answer):
    login: ApiLogin
    unseen: int = Field(ge=0)


class PollingError(Answer):
    at: datetime
    message: str = Field(description="What went wrong, in a line.")


class UserPolling(Answer):
    """How the polling of one user goes, as the poller that polls them reports it."""

    state: PollingState = Field(
        description="`reported`: the poller answered with the fields below. `not_polled`: "
        "the poller answered that it does not poll this user (yet: a user just tracked, or "
        "a partition changing hands). `unknown`: the poller did not answer in time or "
        "failed; `detail` says which, the other fields are null."
    )
    detail: str | None = Field(None, description="Why the state is not `reported`.")
    last_poll_at: datetime | None = Field(
        None, description="When the last poll of this user ended, whatever its outcome."
    )
    last_change_at: datetime | None = Field(
        None,
        description="When a poll last found a gist new or edited (a first read counts every "
        "gist), or one deleted.",
    )
    last_error: PollingError | None = Field(
        None,
        description="The last failed poll (GitHub 5xx, timeout, rate limit, 404: no such "
        "user). Kept after later successes: compare its time with `last_poll_at`.",
    )
    failures: int | None = Field(None, ge=0, description="Failed polls in a row.")
    interval_seconds: float | None = Field(
        None,
        ge=0,
        description="How often this user is polled now: the poll interval, stretched when "
        "GitHub's budget is short or by the backoff of failures in a row.",
    )
    next_poll_at: datetime | None = Field(None, description="Null while a poll runs.")


class UserDetail(Answer):
    login: ApiLogin
    unseen: int = Field(ge=0)
    polling: UserPolling


class UserList(Answer):
    users: list[User]


class Tracking(Answer):
    login: ApiLogin
    state: Literal["tracking"]


class Untracking(Answer):
    login: ApiLogin
    state: Literal["untracking"]


class GistFile(Answer):
    filename: str
    language: str | None


class Gist(Answer):
    id: GistId
    title: str = Field(description="The description, else a file name, else the id.")
    seen: bool
    html_url: str | None
    files: list[GistFile]
    created_at: datetime | None

    @classmethod
    def of(cls, view: GistView) -> Gist:
        return cls.model_validate(view.model_dump())


class GistList(Answer):
    login: ApiLogin
    state: State
    gists: list[Gist]


class SeenAccepted(Answer):
    login: ApiLogin
    gist_ids: list[GistId] = Field(
        description="The gists now being marked seen (those already seen are left out)."
    )


class Polling(Answer):
    state: Literal["polling"]


class LegacyList(Answer):
    success: Literal[True]
    data: list[ApiLogin]


class LegacyFailure(Answer):
    success: Literal[False]
    error: str


class BodyError(Answer):
    location: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details. `type` is `about:blank` or a `urn:gistsync:problem:*` URN a
    client may branch on."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    request_id: str = Field("", description="Also in X-Request-Id.")
    errors: list[BodyError] = []
    login: ApiLogin | None = None
    unknown: list[GistId] = []


REQUESTS: tuple[type[BaseModel], ...] = (TrackRequest, SeenRequest)
ANSWERS: tuple[type[BaseModel], ...] = (
    UserList,
    UserDetail,
    Tracking,
    Untracking,
    GistList,
    SeenAccepted,
    Polling,
    LegacyList,
    LegacyFailure,
    Problem,
)


def components() -> Json:
    """The component schemas of every body, by model name (nested models included)."""
    models = [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in ANSWERS]
    _, schema = models_json_schema(models, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
    return dict(sorted(schema["$defs"].items()))
