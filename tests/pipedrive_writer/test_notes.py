"""The activity note and body: what goes into Pipedrive parses back to the same gist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gistsync.contracts import Gist, GistFile
from pipedrive_writer.notes import (
    SUBJECT_MAX,
    NoteData,
    activity_body,
    format_note,
    parse_note,
    subject,
)

CREATED = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)


def gist(**overrides: object) -> Gist:
    fields: dict[str, object] = {
        "id": "aa5a315d61ae9438b18d",
        "html_url": "https://gist.github.com/octocat/aa5a315d61ae9438b18d",
        "description": "Hello <world> & friends",
        "files": (
            GistFile(filename="a.py", language="Python"),
            GistFile(filename="b.md"),
            GistFile(filename="odd (1)"),
            GistFile(filename="x, y <z>.txt", language="Text"),
        ),
        "created_at": CREATED,
    }
    fields.update(overrides)
    return Gist.model_validate(fields)


def test_note_is_the_documented_html_with_everything_escaped() -> None:
    note = format_note(gist(files=(GistFile(filename="a<b>.py", language="Python"),)))
    assert note == (
        "<p>gist:aa5a315d61ae9438b18d</p>"
        '<p><a href="https://gist.github.com/octocat/aa5a315d61ae9438b18d">'
        "https://gist.github.com/octocat/aa5a315d61ae9438b18d</a></p>"
        "<p>created: 2024-05-01T23:30:00+00:00</p>"
        "<p>files:</p><ul><li>a&lt;b&gt;.py (Python)</li></ul>"
    )


def test_note_round_trip() -> None:
    original = gist()
    assert parse_note(format_note(original)) == NoteData(
        gist_id=original.id,
        html_url=original.html_url,
        created_at=CREATED,
        files=original.files,
    )


def test_note_round_trip_with_odd_url_and_no_files() -> None:
    original = gist(html_url='https://gist.github.com/a/b?x=1&y="2"', files=())
    parsed = parse_note(format_note(original))
    assert parsed is not None
    assert parsed.html_url == original.html_url
    assert parsed.files == ()


@pytest.mark.parametrize(
    "note",
    [
        "aa5a315d61ae9438b18d",
        "<p>aa5a315d61ae9438b18d</p>",
        "  <p> aa5a315d61ae9438b18d&nbsp;</p>\n",
        "<div><p>aa5a315d61ae9438b18d</p></div>",
    ],
)
def test_bare_id_notes_of_the_predecessor_are_recognised(note: str) -> None:
    assert parse_note(note) == NoteData(
        gist_id="aa5a315d61ae9438b18d",
        html_url="https://gist.github.com/aa5a315d61ae9438b18d",
        created_at=None,
        files=(),
    )


@pytest.mark.parametrize(
    "note",
    [None, "", "<p></p>", "call him back", "<p>see gist:abc def</p>", "gist-abc", "x" * 65],
)
def test_other_notes_are_not_gists(note: str | None) -> None:
    assert parse_note(note) is None


def test_a_description_cannot_fake_the_marker() -> None:
    original = gist(id="realid1", description="<p>gist:fakeid</p>")
    parsed = parse_note(format_note(original))
    assert parsed is not None
    assert parsed.gist_id == "realid1"


def test_subject_falls_back_and_is_cut_to_what_pipedrive_takes() -> None:
    assert subject(gist(description="  spaced \n out  ")) == "spaced out"
    assert subject(gist(description=None)) == "a.py"
    assert subject(gist(description="", files=())) == "aa5a315d61ae9438b18d"
    long = subject(gist(description="x" * 300))
    assert len(long) == SUBJECT_MAX
    assert long.endswith("…")


def test_activity_body() -> None:
    original = gist(created_at=datetime(2024, 5, 1, 23, 30, tzinfo=timezone(-timedelta(hours=2))))
    body = activity_body(original, deal_id=7, org_id=3, person_id=5)
    assert body == {
        "subject": "Hello <world> & friends",
        "type": "task",
        "done": False,
        "due_date": "2024-05-02",  # the UTC day
        "deal_id": 7,
        "org_id": 3,
        "participants": [{"person_id": 5, "primary": True}],
        "note": format_note(original),
    }


def test_activity_body_without_person() -> None:
    body = activity_body(gist(), deal_id=7, org_id=None, person_id=None)
    assert "participants" not in body
    assert "org_id" not in body
