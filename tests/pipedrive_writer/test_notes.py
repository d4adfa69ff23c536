"""The activity note and body: what goes into Pipedrive parses back to the same gist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gistsync.contracts import Gist, GistFile
from pipedrive_writer.notes import (
    SUBJECT_MAX,
    NoteData,
    activity_body,
    cut,
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


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points


@pytest.mark.parametrize("pad", range(SUBJECT_MAX - len(FAMILY) - 3, SUBJECT_MAX + 1))
def test_a_family_emoji_at_the_end_is_kept_whole_or_left_out(pad: int) -> None:
    title = "x" * pad + FAMILY
    cut_to = subject(gist(description=title))
    assert len(cut_to) <= SUBJECT_MAX
    if cut_to != title:
        assert cut_to == "x" * pad + "…" or cut_to == "x" * (SUBJECT_MAX - 1) + "…"


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        ("\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea", ""),  # two flags: never half of one
        ("e\u0301z", ""),  # e + combining acute: never the accent alone
        ("\U0001f44b\U0001f3fd!", ""),  # waving hand + skin tone
    ],
)
def test_subjects_are_cut_between_grapheme_clusters(tail: str, kept: str) -> None:
    assert cut("a" * (SUBJECT_MAX - 2) + tail, SUBJECT_MAX) == "a" * (SUBJECT_MAX - 2) + kept + "…"
    assert cut("short", SUBJECT_MAX) == "short"


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
