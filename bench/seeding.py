"""Put users, gists and (optionally) their Pipedrive records straight into the simulators'
state: what the suite would have built by syncing them, in seconds instead of hours.

The Pipedrive side is written exactly as the writer writes it (the same deal title, person
name and activity body, through the writer's own `activity_body`), so that the writer,
reading it back at start, cannot tell it from its own work.
"""

from __future__ import annotations

from dataclasses import dataclass

from github_poller.github import to_gist
from pipedrive_writer.notes import activity_body
from pipedrive_writer.state import deal_title
from sandbox.github_render import base_gist
from sandbox.github_state import GitHubState, User
from sandbox.pipedrive_state import PipedriveState


@dataclass(frozen=True)
class Seeded:
    users: int
    gists: int
    activities: int


def seed(
    github: GitHubState,
    pipedrive: PipedriveState,
    logins: list[str],
    *,
    gists_per_user: int,
    synced: bool,
    org_name: str,
    github_url: str,
) -> Seeded:
    """`logins` on GitHub with `gists_per_user` public gists each; with `synced`, also their
    person, deal and one activity per gist in Pipedrive (seen: `done` false, as new)."""
    org_id = _org(pipedrive, org_name) if synced else None
    gists = activities = 0
    for login in logins:
        user = github.ensure_user(login)
        made = github.add_gists_bulk(login, gists_per_user) if gists_per_user else []
        gists += len(made)
        if org_id is None:
            continue
        person = pipedrive.create_person({"name": login, "org_id": org_id})
        deal = pipedrive.create_deal(
            {"title": deal_title(login), "org_id": org_id, "person_id": person["id"]}
        )
        for raw in made:
            gist = to_gist(base_gist(raw, user, github_url))
            assert gist is not None
            body = activity_body(gist, deal_id=deal["id"], org_id=org_id, person_id=person["id"])
            pipedrive.create_activity(body)
            activities += 1
    return Seeded(users=len(logins), gists=gists, activities=activities)


def _org(pipedrive: PipedriveState, name: str) -> int:
    for org_id, record in pipedrive.organizations.items():
        if record["name"] == name:
            return org_id
    return int(pipedrive.create_organization({"name": name})["id"])


def new_gist(github: GitHubState, login: str, n: int) -> str:
    """One more public gist of `login`, as a person would make it."""
    user: User = github.ensure_user(login)
    gist = github.add_gist(
        user.login, {f"bench_{n}.py": f"print({n})\n"}, description=f"bench gist {n}"
    )
    return gist.id
