"""Rolling upgrades at the contract: a message of a newer minor is read (its new fields
ignored), a message of another version is refused with a reason, and what this build knows
stays strictly checked whatever the minor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gistsync.contracts import (
    SCHEMA_MINOR,
    SCHEMA_VERSION,
    Gist,
    GistDiscovered,
    GistFile,
    InvalidMessage,
    TrackedUser,
    TrackedUsersReply,
    TrackUser,
    encode,
    parse_message,
)
from tests.common.next_build import INCOMPATIBLE, NEXT_MINOR, next_discovered, with_version

GIST = Gist(
    id="aa5a315d61ae9438b18d",
    html_url="https://gist.github.com/aa5a315d61ae9438b18d",
    description="Hello",
    files=(GistFile(filename="hello.py", language="Python"),),
    created_at=datetime(2026, 1, 2, tzinfo=UTC),
)


def refused(body: bytes) -> str:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(body)
    return caught.value.reason


def raw(message: GistDiscovered, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(message))
    body.update(changes)
    return body


def test_a_newer_minor_is_read_without_the_fields_this_build_does_not_know() -> None:
    newer = next_discovered(GIST)
    body = json.loads(encode(newer))
    assert (body["minor"], body["source"], body["gist"]["public"]) == (
        NEXT_MINOR,
        "github-webhook",
        True,
    )
    parsed = parse_message(encode(newer))
    assert type(parsed) is GistDiscovered and type(parsed.gist) is Gist
    assert parsed.gist == GIST
    assert (parsed.login, parsed.message_id, parsed.minor) == (
        "alice",
        newer.message_id,
        NEXT_MINOR,
    )


def test_inside_tuples_too() -> None:
    reply = TrackedUsersReply(users=(TrackedUser(login="ann", unseen=2),))
    body = json.loads(encode(reply))
    body["minor"] = NEXT_MINOR
    body["users"][0]["avatar"] = "https://example.com/a.png"
    parsed = parse_message(json.dumps(body).encode())
    assert isinstance(parsed, TrackedUsersReply)
    assert parsed.users == reply.users


@pytest.mark.parametrize("minor", [None, SCHEMA_MINOR])
def test_an_unknown_field_in_a_message_of_this_minor_is_a_mistake(minor: int | None) -> None:
    body = raw(GistDiscovered(login="alice", gist=GIST), source="x")
    nested = raw(GistDiscovered(login="alice", gist=GIST))
    nested["gist"]["public"] = True
    if minor is not None:
        body["minor"] = nested["minor"] = minor
    assert refused(json.dumps(body).encode()) == (
        "invalid event.gist_discovered: source: Extra inputs are not permitted"
    )
    assert refused(json.dumps(nested).encode()) == (
        "invalid event.gist_discovered: gist.public: Extra inputs are not permitted"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"login": "not a login!"}, "invalid event.gist_discovered: login: Value error, a GitHub"),
        ({"login": None}, "invalid event.gist_discovered: login: Input should be a valid string"),
        ({"gist": {"id": "x"}}, "invalid event.gist_discovered: gist.html_url: Field required"),
    ],
)
def test_what_this_build_knows_stays_strict_in_a_newer_minor(
    change: dict[str, Any], reason: str
) -> None:
    body = json.loads(encode(next_discovered(GIST)))
    body.update(change)
    assert refused(json.dumps(body).encode()).startswith(reason)


@pytest.mark.parametrize("version", [INCOMPATIBLE, 0, "1", 1.0, True, None])
def test_another_version_is_refused_saying_what_this_build_reads(version: object) -> None:
    body = raw(GistDiscovered(login="alice", gist=GIST), version=version)
    assert refused(json.dumps(body).encode()) == (
        f"unsupported schema version {version!r} for event.gist_discovered (this build reads "
        f"version {SCHEMA_VERSION}; a message of another version needs a build of that version)"
    )


def test_a_newer_version_is_refused_even_when_it_looks_readable() -> None:
    # Nothing but the version differs: a reader cannot know what else changed meaning.
    message = GistDiscovered(login="alice", gist=GIST)
    assert refused(with_version(message, INCOMPATIBLE)).startswith(
        f"unsupported schema version {INCOMPATIBLE} for event.gist_discovered"
    )


@pytest.mark.parametrize("minor", [-1, "2", 1.5, None])
def test_a_minor_that_is_not_a_count_is_refused(minor: object) -> None:
    body = raw(GistDiscovered(login="alice", gist=GIST), minor=minor)
    assert refused(json.dumps(body).encode()) == (
        "invalid event.gist_discovered: minor: must be a whole number, 0 or more"
    )


def test_this_build_writes_what_the_release_before_minor_reads() -> None:
    # That release refused any field it did not know: `minor` is written only once it is
    # not 0, and the version stays 1.
    body = json.loads(encode(TrackUser(login="ann")))
    assert "minor" not in body
    assert body["version"] == 1 == SCHEMA_VERSION
    assert parse_message(encode(TrackUser(login="ann"))).minor == 0


def test_messages_made_in_code_stay_strict() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        TrackUser(login="ann", source="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="less than or equal to 1"):
        TrackUser(login="ann", version=INCOMPATIBLE)
