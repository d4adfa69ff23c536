"""The activity note: how a gist is written into Pipedrive and read back from it.

Pipedrive is the only database, so the note must carry everything the cache needs after a
restart. The form written (HTML, every inserted value escaped):

    <p>gist:ID</p>
    <p><a href="URL">URL</a></p>
    <p>created: 2024-05-01T12:00:00+00:00</p>
    <p>files:</p><ul><li>a.py (Python)</li><li>b.md</li></ul>

(on one line). The gist id is found by the `gist:` marker, which no other part can hold
(URLs are escaped and start with a scheme; filenames sit inside `<li>`). A language never
contains parentheses, so the last parenthesised group of a file line is its language; a file
without a language whose name itself ends in `)` gets an empty `()` so it parses back whole.

The predecessor wrote the bare gist id as the whole note (maybe wrapped in `<p>`); such a
note is recognised too, with the gist's public URL derived from the id.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gistsync.contracts import GIST_ID_REGEX, Gist, GistFile

_MARKER = re.compile(rf"(?:^|>)\s*gist:({GIST_ID_REGEX})\s*(?:<|$)")
_BARE = re.compile(rf"^{GIST_ID_REGEX}$")
_HREF = re.compile(r'<a\s[^>]*href="([^"]*)"', re.IGNORECASE)
_CREATED = re.compile(r"(?:^|>)\s*created:\s*([^<]+?)\s*(?:<|$)")
_ITEM = re.compile(r"<li>(.*?)</li>", re.IGNORECASE | re.DOTALL)
_FILE = re.compile(r"^(.*) \(([^()]*)\)$", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")

# One of Pipedrive's default activity types (key_string); the spec leaves `type` free-form.
ACTIVITY_TYPE = "task"
# Pipedrive's text fields hold 255 characters (the spec's `varchar`: "Text (up to 255
# characters)"); longer subjects are cut with an ellipsis, between two user-perceived
# characters (grapheme clusters), so an emoji sequence or an accent is never split.
SUBJECT_MAX = 255
ELLIPSIS = "…"
# A gist deleted on GitHub keeps its activity, its subject marked with this.
DELETED_PREFIX = "[deleted on GitHub] "


@dataclass(frozen=True)
class NoteData:
    gist_id: str
    html_url: str | None
    created_at: datetime | None
    files: tuple[GistFile, ...]


def subject(gist: Gist) -> str:
    """The activity subject: the gist's title, cut to what Pipedrive accepts."""
    return cut(" ".join(gist.title.split()), SUBJECT_MAX)


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` code points, else its longest prefix that ends on a
    grapheme-cluster boundary, with an ellipsis, within `limit`."""
    if len(text) <= limit:
        return text
    end = limit - len(ELLIPSIS)
    while end > 0 and not grapheme_boundary(text, end):
        end -= 1
    return text[:end] + ELLIPSIS


def _extends(char: str) -> bool:
    """Joins the character before it (Unicode's Extend, SpacingMark and ZWJ, in short)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or code == 0x200D  # zero width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tags (subdivision flags)
        or 0x1160 <= code <= 0x11FF  # Hangul jamo vowels and trailing consonants
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def grapheme_boundary(text: str, index: int) -> bool:
    """Whether `text` may be cut before `text[index]` (UAX #29's rules for what titles hold:
    CR LF, extending marks, ZWJ emoji sequences, regional-indicator pairs)."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if before == "\r" and after == "\n":
        return False
    if _extends(after) or before == "\u200d":
        return False
    if _regional(before) and _regional(after):
        run = 0
        while index - 1 - run >= 0 and _regional(text[index - 1 - run]):
            run += 1
        return run % 2 == 0  # a flag is a pair: cut only between pairs
    return True


def _esc(value: str) -> str:
    return html.escape(value, quote=True)


def _file_line(item: GistFile) -> str:
    if item.language:
        return f"{item.filename} ({item.language})"
    return f"{item.filename} ()" if item.filename.endswith(")") else item.filename


def format_note(gist: Gist) -> str:
    parts = [
        f"<p>gist:{_esc(gist.id)}</p>",
        f'<p><a href="{_esc(gist.html_url)}">{_esc(gist.html_url)}</a></p>',
        f"<p>created: {_esc(gist.created_at.isoformat())}</p>",
    ]
    if gist.files:
        items = "".join(f"<li>{_esc(_file_line(item))}</li>" for item in gist.files)
        parts.append(f"<p>files:</p><ul>{items}</ul>")
    return "".join(parts)


def _text(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment)).replace("\xa0", " ").strip()


def _parse_file(line: str) -> GistFile:
    match = _FILE.match(line)
    if match is None:
        return GistFile(filename=line)
    return GistFile(filename=match.group(1), language=match.group(2) or None)


def _parse_created(note: str) -> datetime | None:
    match = _CREATED.search(note)
    if match is None:
        return None
    try:
        return datetime.fromisoformat(html.unescape(match.group(1)))
    except ValueError:
        return None


def parse_note(note: str | None) -> NoteData | None:
    """The gist a note describes, or None when the note is not one of ours."""
    if not note:
        return None
    marker = _MARKER.search(note)
    if marker is None:
        bare = _text(note)
        if not _BARE.match(bare):
            return None
        return NoteData(bare, f"https://gist.github.com/{bare}", None, ())
    href = _HREF.search(note)
    return NoteData(
        gist_id=marker.group(1),
        html_url=html.unescape(href.group(1)) if href else None,
        created_at=_parse_created(note),
        files=tuple(_parse_file(_text(item)) for item in _ITEM.findall(note)),
    )


def activity_body(
    gist: Gist, *, deal_id: int, org_id: int | None, person_id: int | None
) -> dict[str, Any]:
    """The `POST /activities` body for a gist: an open task due on the gist's creation day."""
    created = gist.created_at
    if created.tzinfo is not None:
        created = created.astimezone(UTC)
    body: dict[str, Any] = {
        "subject": subject(gist),
        "type": ACTIVITY_TYPE,
        "done": False,
        "due_date": created.date().isoformat(),
        "deal_id": deal_id,
        "note": format_note(gist),
    }
    if org_id is not None:
        body["org_id"] = org_id
    if person_id is not None:
        # v2 links a person through participants; `person_id` is read-only there.
        body["participants"] = [{"person_id": person_id, "primary": True}]
    return body
