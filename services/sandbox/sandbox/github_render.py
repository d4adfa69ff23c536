"""Users and gists rendered as the spec's `public-user`, `simple-user` and `base-gist`.

API links (`url`, `forks_url`, ...) point at the simulator that served the request so that
following them stays in the sandbox; browser and git links keep GitHub's real hosts.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sandbox.github_state import Gist, User
from sandbox.languages import file_type
from sandbox.timeutil import rfc3339


def _node_id(kind: str, key: str) -> str:
    # Legacy global node ids are base64("<len>:<Type><id>"), e.g. MDQ6VXNlcjE= for user 1.
    raw = f"{len(kind):02d}:{kind}{key}"
    return base64.b64encode(raw.encode()).decode()


def simple_user(user: User, api: str) -> dict[str, Any]:
    base = f"{api}/users/{user.login}"
    return {
        "login": user.login,
        "id": user.id,
        "node_id": _node_id("User", str(user.id)),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"https://github.com/{user.login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def public_user(user: User, api: str, public_gists: int) -> dict[str, Any]:
    """GET /users/{username}: `public-user` allows no extra properties, so exactly these."""
    return {
        **simple_user(user, api),
        "name": None,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": 0,
        "public_gists": public_gists,
        "followers": 0,
        "following": 0,
        "created_at": rfc3339(user.created_at),
        "updated_at": rfc3339(user.updated_at),
    }


def base_gist(gist: Gist, owner: User, api: str) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for name, content in sorted(gist.files.items()):
        mime, language = file_type(name)
        blob = hashlib.sha1(content.encode()).hexdigest()
        files[name] = {
            "filename": name,
            "type": mime,
            "language": language,
            "raw_url": f"https://gist.githubusercontent.com/{owner.login}/{gist.id}/raw/{blob}/{name}",
            "size": len(content.encode()),
        }
    base = f"{api}/gists/{gist.id}"
    return {
        "url": base,
        "forks_url": f"{base}/forks",
        "commits_url": f"{base}/commits",
        "id": gist.id,
        "node_id": _node_id("Gist", gist.id),
        "git_pull_url": f"https://gist.github.com/{gist.id}.git",
        "git_push_url": f"https://gist.github.com/{gist.id}.git",
        "html_url": f"https://gist.github.com/{gist.id}",
        "files": files,
        "public": gist.public,
        "created_at": rfc3339(gist.created_at),
        "updated_at": rfc3339(gist.updated_at),
        "description": gist.description,
        "comments": 0,
        "comments_enabled": True,
        "user": None,
        "comments_url": f"{base}/comments",
        "owner": simple_user(owner, api),
        "truncated": False,
    }
