"""Gists and events for the tests: deterministic ids, dates and files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gistsync.contracts import Gist, GistDiscovered, GistFile
from pipedrive_writer.notes import activity_body

EPOCH = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def make_gist(n: int, login: str = "alice", **overrides: object) -> Gist:
    gist_id = f"{login.lower()}{n:04d}".replace("-", "")
    fields: dict[str, object] = {
        "id": gist_id,
        "html_url": f"https://gist.github.com/{login}/{gist_id}",
        "description": f"Gist number {n} <b>of</b> {login}",
        "files": (GistFile(filename=f"g{n}.py", language="Python"), GistFile(filename="README")),
        "created_at": EPOCH + timedelta(days=n),
    }
    fields.update(overrides)
    return Gist.model_validate(fields)


def discovered(n: int, login: str = "alice", **overrides: object) -> GistDiscovered:
    return GistDiscovered(login=login, gist=make_gist(n, login, **overrides))


def seed_user(
    pipedrive: Any,
    org_id: int,
    login: str,
    gists: list[Gist],
    *,
    predecessor: bool = False,
    done: frozenset[str] = frozenset(),
) -> int:
    """Put a user straight into the simulator as the writer (or its predecessor, with bare
    gist-id notes) would have left it; returns the deal id."""
    person = pipedrive.create_person({"name": login, "org_id": org_id})
    deal = pipedrive.create_deal(
        {"title": f"Gists for {login}", "org_id": org_id, "person_id": person["id"]}
    )
    for gist in gists:
        if predecessor:
            body = {"subject": gist.description or gist.id, "note": f"<p>{gist.id}</p>",
                    "deal_id": deal["id"], "participants": [{"person_id": person["id"]}],
                    "done": gist.id in done}  # fmt: skip
        else:
            body = activity_body(gist, deal_id=deal["id"], org_id=org_id, person_id=person["id"])
            body["done"] = gist.id in done
        pipedrive.create_activity(body)
    return int(deal["id"])
