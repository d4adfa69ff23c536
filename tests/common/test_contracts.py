from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gistsync.contracts import (
    Gist,
    GistDiscovered,
    GistFile,
    InvalidMessage,
    MarkGistsSeen,
    TrackUser,
    encode,
    login_key,
    parse_message,
)


def gist(**changes: object) -> Gist:
    fields: dict[str, object] = {
        "id": "aa5a315d61ae9438b18d",
        "html_url": "https://gist.github.com/aa5a315d61ae9438b18d",
        "description": "Hello",
        "files": (GistFile(filename="hello.py", language="Python"),),
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    fields.update(changes)
    return Gist.model_validate(fields)


def test_every_message_round_trips_through_bytes() -> None:
    message = GistDiscovered(login="octocat", gist=gist(), correlation_id="req-1")
    assert parse_message(encode(message)) == message


def test_messages_carry_type_version_and_ids() -> None:
    message = TrackUser(login="octocat")
    assert message.type == "command.track_user"
    assert message.version == 1
    assert len(message.message_id) == 32
    assert message.message_id != TrackUser(login="octocat").message_id


# GitHub serves grandfathered logins its sign-up rule now refuses: doubled, trailing or
# leading hyphens. They are accepted; GitHub's 404 decides whether the user exists.
@pytest.mark.parametrize(
    "login", ["a", "octo-cat", "A1", "x" * 39, "Octocat", "gil--", "foo-", "a--b", "-a", "-"]
)
def test_valid_logins(login: str) -> None:
    assert TrackUser(login=login).login == login


@pytest.mark.parametrize(
    "login",
    ["", "x" * 40, "a_b", "a b", "ali%", "<script>", "a.b", "a/b", "é", "a\n", "../x", "a?b"],
)
def test_invalid_logins_are_refused(login: str) -> None:
    with pytest.raises(ValueError, match="GitHub login has 1 to 39 characters"):
        TrackUser(login=login)


def test_logins_compare_case_insensitively() -> None:
    assert login_key("Alice") == login_key("alice")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff", "malformed JSON"),
        (b"[]", "not a JSON object"),
        (b'{"version": 1}', "unknown message type None"),
        (b'{"type": "command.track_user"}', "unsupported schema version None"),
        (
            b'{"type": "command.track_user", "version": 1}',
            "invalid command.track_user: login: Field required",
        ),
        (
            b'{"type": "command.mark_seen", "version": 1, "login": "a", "gist_ids": []}',
            "invalid command.mark_seen: gist_ids",
        ),
        (
            b'{"type": "command.track_user", "version": 1, "login": "a", "extra": 1}',
            "invalid command.track_user: extra: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(body)
    assert reason in caught.value.reason


def test_gist_title_falls_back_to_first_filename_then_id() -> None:
    assert gist(description="  Notes  ").title == "Notes"
    assert gist(description="").title == "hello.py"
    assert gist(description=None, files=()).title == "aa5a315d61ae9438b18d"


def test_mark_seen_needs_gist_ids() -> None:
    with pytest.raises(ValueError):
        MarkGistsSeen(login="a", gist_ids=())
