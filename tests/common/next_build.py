"""Messages as the next build would declare them: one minor newer than this build, with new
optional fields in a message and in the data it carries. What a consumer of this build must
read while producers of the next one roll out."""

from __future__ import annotations

import json
from typing import Any

from gistsync.contracts import SCHEMA_MINOR, SCHEMA_VERSION, Gist, GistDiscovered, encode

NEXT_MINOR = SCHEMA_MINOR + 1


class NextGist(Gist):
    public: bool | None = None  # a field this build does not know


class NextGistDiscovered(GistDiscovered):
    minor: int = NEXT_MINOR
    gist: NextGist
    source: str | None = None  # a field this build does not know


def next_discovered(gist: Gist, login: str = "alice") -> NextGistDiscovered:
    return NextGistDiscovered(
        login=login,
        gist=NextGist(**gist.model_dump(), public=True),
        source="github-webhook",
    )


def with_version(message: GistDiscovered, version: int, **fields: Any) -> bytes:
    """`message` encoded, then claiming another compatibility level (and more fields)."""
    raw = json.loads(encode(message))
    raw.update(version=version, **fields)
    return json.dumps(raw).encode()


INCOMPATIBLE = SCHEMA_VERSION + 1
