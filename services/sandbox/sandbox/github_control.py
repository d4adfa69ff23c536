"""GitHub control API under /_sandbox/: create users and gists, edit and delete them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from sandbox.github_render import base_gist, public_user
from sandbox.github_state import GitHubState
from sandbox.timeutil import parse_iso8601
from sandbox.web_common import ControlError, json_response, read_json_object

MAX_BULK = 100_000


def add_github_control_routes(app: web.Application, sim: GitHubState) -> None:
    def api(request: web.Request) -> str:
        return str(request.url.origin())

    def user_json(request: web.Request, login: str) -> dict[str, Any]:
        user = sim.user(login)
        assert user is not None
        return public_user(user, api(request), len(sim.public_gists(user.login)))

    def gist_json(request: web.Request, gist_id: str) -> dict[str, Any]:
        gist = sim.gists[gist_id]
        owner = sim.user(gist.owner)
        assert owner is not None
        return base_gist(gist, owner, api(request))

    async def create_user(request: web.Request) -> web.Response:
        body = await read_json_object(request)
        _only(body, {"login"})
        login = body.get("login")
        if not isinstance(login, str):
            raise ControlError("login (string) is required")
        try:
            user = sim.add_user(login)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        except KeyError as exc:
            raise ControlError(str(exc.args[0]), 409) from exc
        return json_response(user_json(request, user.login), 201)

    async def delete_user(request: web.Request) -> web.Response:
        login = request.match_info["login"]
        if not sim.delete_user(login):
            raise ControlError(f"no user {login!r}", 404)
        return web.Response(status=204)

    async def create_gist(request: web.Request) -> web.Response:
        body = await read_json_object(request)
        _only(body, {"description", "files", "public", "created_at"})
        description = _description(body)
        files = _files(body.get("files"), allow_delete=False)
        if not files:
            raise ControlError("files must name at least one file")
        public = body.get("public", True)
        if not isinstance(public, bool):
            raise ControlError("public must be a boolean")
        created_at = None
        if "created_at" in body:
            raw = body["created_at"]
            created_at = parse_iso8601(raw) if isinstance(raw, str) else None
            if created_at is None:
                raise ControlError("created_at must be an ISO 8601 timestamp")
        login = request.match_info["login"]
        try:
            gist = sim.add_gist(
                login,
                {name: content for name, content in files.items() if content is not None},
                description=description,
                public=public,
                created_at=created_at,
            )
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return json_response(gist_json(request, gist.id), 201)

    async def create_bulk(request: web.Request) -> web.Response:
        body = await read_json_object(request)
        _only(body, {"count"})
        count = body.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BULK:
            raise ControlError(f"count must be an integer from 1 to {MAX_BULK}")
        try:
            gists = sim.add_gists_bulk(request.match_info["login"], count)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return json_response({"ids": [g.id for g in gists]}, 201)

    async def update_gist(request: web.Request) -> web.Response:
        gist_id = request.match_info["gist_id"]
        if gist_id not in sim.gists:
            raise ControlError(f"no gist {gist_id!r}", 404)
        body = await read_json_object(request)
        _only(body, {"description", "files"})
        if not body:
            raise ControlError("give description and/or files")
        files = _files(body["files"], allow_delete=True) if "files" in body else None
        sim.update_gist(
            gist_id,
            description=_description(body),
            set_description="description" in body,
            files=files,
        )
        return json_response(gist_json(request, gist_id))

    async def delete_gist(request: web.Request) -> web.Response:
        gist_id = request.match_info["gist_id"]
        if not sim.delete_gist(gist_id):
            raise ControlError(f"no gist {gist_id!r}", 404)
        return web.Response(status=204)

    async def state(request: web.Request) -> web.Response:
        users = [user_json(request, u.login) for u in sim.users.values()]
        gists = [gist_json(request, g) for g in sim.gists]
        return json_response({"users": users, "gists": gists})

    async def polls(_: web.Request) -> web.Response:
        """Per user: polls seen, the first and last (epoch seconds), the longest gap."""
        return json_response({login: asdict(p) for login, p in sorted(sim.polls.items())})

    app.router.add_get("/_sandbox/state", state)
    app.router.add_get("/_sandbox/stats/polls", polls)
    app.router.add_post("/_sandbox/users", create_user)
    app.router.add_delete("/_sandbox/users/{login}", delete_user)
    app.router.add_post("/_sandbox/users/{login}/gists", create_gist)
    app.router.add_post("/_sandbox/users/{login}/gists/bulk", create_bulk)
    app.router.add_patch("/_sandbox/gists/{gist_id}", update_gist)
    app.router.add_delete("/_sandbox/gists/{gist_id}", delete_gist)


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ControlError(f"unknown field(s): {', '.join(unknown)}")


def _description(body: dict[str, Any]) -> str | None:
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise ControlError("description must be a string or null")
    return description


def _files(raw: Any, *, allow_delete: bool) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        raise ControlError('files must be an object like {"a.py": {"content": "print(1)"}}')
    files: dict[str, str | None] = {}
    for name, spec in raw.items():
        if not name:
            raise ControlError("file names must not be empty")
        if spec is None and allow_delete:
            files[name] = None
            continue
        content = spec.get("content") if isinstance(spec, dict) else None
        if not isinstance(content, str) or not content:
            raise ControlError(f"files.{name}.content must be a non-empty string")
        files[name] = content
    return files
