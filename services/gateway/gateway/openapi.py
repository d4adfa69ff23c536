"""The OpenAPI 3.1 description of the gateway, served at /openapi.json, and a plain page
rendering it at /docs.

It is built from the settings, so it says exactly which operations need the API key on this
gateway; the tests run schemathesis against the live gateway to keep it true.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.api import MAX_GIST_IDS, STATES
from gateway.pages import document, esc
from gateway.security import API_KEY_HEADER
from gateway.settings import Settings

Json = dict[str, Any]
DOCUMENT = web.AppKey("openapi", str)

# GitHub's login rule without a lookahead (as JSON Schema tools generate from it): single
# hyphens between alphanumerics, at most 39 characters.
LOGIN: Json = {
    "type": "string",
    "pattern": "^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$",
    "maxLength": 39,
    "description": "A GitHub login, any letter case: 1 to 39 letters, digits or single "
    "hyphens, not starting or ending with a hyphen.",
    "examples": ["octocat"],
}
GIST_ID: Json = {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$", "examples": ["aa5a315d"]}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **properties: Json) -> Json:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


SCHEMAS: Json = {
    "Login": LOGIN,
    "GistId": GIST_ID,
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details. `type` is `about:blank` or a "
        "`urn:gistsync:problem:*` URN a client may branch on.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": "string", "description": "Also in X-Request-Id."},
            "errors": {
                "type": "array",
                "items": obj(
                    ["location", "message"], location={"type": "string"}, message={"type": "string"}
                ),
            },
            "login": ref("Login"),
            "unknown": {"type": "array", "items": ref("GistId")},
        },
    },
    "User": obj(["login", "unseen"], login=ref("Login"), unseen={"type": "integer", "minimum": 0}),
    "UserList": obj(["users"], users={"type": "array", "items": ref("User")}),
    "TrackRequest": obj(["login"], login=ref("Login")),
    "Tracking": obj(["login", "state"], login=ref("Login"), state={"const": "tracking"}),
    "Untracking": obj(["login", "state"], login=ref("Login"), state={"const": "untracking"}),
    "GistFile": obj(
        ["filename", "language"],
        filename={"type": "string"},
        language={"type": ["string", "null"]},
    ),
    "Gist": obj(
        ["id", "title", "seen", "html_url", "files", "created_at"],
        id=ref("GistId"),
        title={"type": "string", "description": "The description, else a file name, else the id."},
        seen={"type": "boolean"},
        html_url={"type": ["string", "null"]},
        files={"type": "array", "items": ref("GistFile")},
        created_at={"type": ["string", "null"], "format": "date-time"},
    ),
    "GistList": obj(
        ["login", "state", "gists"],
        login=ref("Login"),
        state={"enum": list(STATES)},
        gists={"type": "array", "items": ref("Gist")},
    ),
    "SeenRequest": {
        "description": 'Either every unseen gist (`{"all": true}`) or the listed ones.',
        "oneOf": [
            obj(["all"], all={"const": True}),
            obj(
                ["gist_ids"],
                gist_ids={
                    "type": "array",
                    "items": ref("GistId"),
                    "minItems": 1,
                    "maxItems": MAX_GIST_IDS,
                },
            ),
        ],
    },
    "SeenAccepted": obj(
        ["login", "gist_ids"],
        login=ref("Login"),
        gist_ids={
            "type": "array",
            "items": ref("GistId"),
            "description": "The gists now being marked seen (those already seen are left out).",
        },
    ),
    "Polling": obj(["state"], state={"const": "polling"}),
    "LegacyList": obj(
        ["success", "data"],
        success={"const": True},
        data={"type": "array", "items": ref("Login")},
    ),
    "LegacyFailure": obj(["success", "error"], success={"const": False}, error={"type": "string"}),
}

PROBLEM_TEXT = {
    400: "A path or query parameter is invalid, or the body is not JSON.",
    401: f"The API key is missing or wrong (send it in {API_KEY_HEADER}).",
    403: "A browser says another site made this request (Sec-Fetch-Site, Origin); "
    "nothing was changed.",
    404: "No such tracked user, GitHub user or gist.",
    408: "The request body did not arrive in time.",
    409: "The user is already tracked.",
    413: "The request body is too large.",
    415: "The body is not application/json.",
    421: "The Host header is not one of this gateway's names (GATEWAY_ALLOWED_HOSTS).",
    422: "The body is JSON but not what the operation takes (unknown fields included).",
    429: "Too many changes, or too many wrong API keys, from this client; Retry-After says "
    "when to try again.",
    502: "The service that answered reported a failure.",
    503: "The message broker is not reachable; nothing was changed.",
    504: "A service did not answer in time.",
}
RETRY_AFTER: Json = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
WWW_AUTHENTICATE: Json = {"WWW-Authenticate": {"schema": {"type": "string"}}}


def problem(status: int) -> Json:
    response: Json = {
        "description": PROBLEM_TEXT[status],
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    if status == 429:
        response["headers"] = RETRY_AFTER
    if status == 401:
        response["headers"] = WWW_AUTHENTICATE
    return response


def content(media: str, schema: Json, description: str) -> Json:
    return {"description": description, "content": {media: {"schema": schema}}}


def html(description: str) -> Json:
    return content("text/html", {"type": "string"}, description)


def path_login() -> Json:
    return {"name": "login", "in": "path", "required": True, "schema": ref("Login")}


def json_body(schema: str) -> Json:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


class Builder:
    """Adds the responses every operation shares, according to what it does."""

    def __init__(self, settings: Settings) -> None:
        self.keyed = settings.api_key is not None
        self.reads_keyed = self.keyed and settings.gateway_protect_reads

    def op(
        self,
        summary: str,
        responses: Json,
        *,
        tag: str,
        writes: bool,
        body: bool = False,
        upstream: tuple[int, ...] = (502, 503, 504),
        legacy_error: Json | None = None,
        description: str | None = None,
        **extra: Any,
    ) -> Json:
        """`legacy_error` is how a predecessor's endpoint answers failures (it keeps its own
        format); the JSON API answers problems."""
        keyed = self.keyed if writes else self.reads_keyed
        statuses = [*upstream, 421]
        if keyed:
            statuses += [401, 429]
        if writes:
            statuses += [403, 429]
        if body:
            statuses += [400, 408, 413, 415, 422]
        for status in statuses:
            answer = legacy_error if legacy_error is not None else problem(status)
            responses.setdefault(str(status), answer)
        operation: Json = {
            "summary": summary,
            "tags": [tag],
            "responses": dict(sorted(responses.items())),
            **extra,
        }
        if description:
            operation["description"] = description
        if keyed:
            operation["security"] = [{"ApiKey": []}]
        return operation


def build(settings: Settings) -> Json:
    b = Builder(settings)
    bad_login = {"400": problem(400)}
    not_tracked = {"404": problem(404)}
    paths: Json = {
        "/api/users": {
            "get": b.op(
                "The tracked users, with how many of their gists are unseen",
                {"200": content("application/json", ref("UserList"), "The tracked users.")},
                tag="users",
                writes=False,
                operationId="listUsers",
            ),
            "post": b.op(
                "Track a GitHub user",
                {
                    "202": {
                        **content("application/json", ref("Tracking"), "Now tracking them."),
                        "headers": {"Location": {"schema": {"type": "string"}}},
                    },
                    "404": problem(404),
                    "409": problem(409),
                },
                tag="users",
                writes=True,
                body=True,
                requestBody=json_body("TrackRequest"),
                operationId="trackUser",
                description="The login is checked with GitHub and stored in GitHub's spelling. "
                "Their gists become Pipedrive activities within a few poll intervals.",
            ),
        },
        "/api/users/{login}": {
            "parameters": [path_login()],
            "get": b.op(
                "One tracked user",
                {
                    "200": content("application/json", ref("User"), "The user."),
                    **bad_login,
                    **not_tracked,
                },
                tag="users",
                writes=False,
                operationId="getUser",
            ),
            "delete": b.op(
                "Stop tracking a user",
                {
                    "202": content("application/json", ref("Untracking"), "Stopping."),
                    **bad_login,
                    **not_tracked,
                },
                tag="users",
                writes=True,
                operationId="untrackUser",
                description="Polling stops and their Pipedrive deal is marked lost. The "
                "person, the deal and its activities are kept: tracking them again "
                "continues where it stopped, with no duplicate.",
            ),
        },
        "/api/users/{login}/gists": {
            "parameters": [path_login()],
            "get": b.op(
                "A tracked user's gists: the unseen ones, or all",
                {
                    "200": content("application/json", ref("GistList"), "The gists."),
                    **bad_login,
                    **not_tracked,
                },
                tag="gists",
                writes=False,
                operationId="listGists",
                parameters=[
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": list(STATES), "default": "unseen"},
                    }
                ],
            ),
        },
        "/api/users/{login}/gists/seen": {
            "parameters": [path_login()],
            "post": b.op(
                "Mark gists seen: every unseen one, or the listed ones",
                {
                    "202": content("application/json", ref("SeenAccepted"), "Being marked."),
                    "404": problem(404),
                },
                tag="gists",
                writes=True,
                body=True,
                requestBody=json_body("SeenRequest"),
                operationId="markGistsSeen",
                description="Ids that are not this user's gists refuse the whole request "
                "(404, listed in `unknown`).",
            ),
        },
        "/api/sync": {
            "post": b.op(
                "Poll GitHub for every tracked user now",
                {"202": content("application/json", ref("Polling"), "Polling started.")},
                tag="sync",
                writes=True,
                upstream=(503,),
                operationId="syncNow",
            ),
        },
        "/list": {
            "get": b.op(
                "The predecessor's list of tracked logins",
                {"200": content("application/json", ref("LegacyList"), "The logins.")},
                tag="legacy",
                writes=False,
                upstream=(502, 503),
                legacy_error=content(
                    "application/json", ref("LegacyFailure"), "The predecessor's failure."
                ),
                operationId="legacyList",
            ),
        },
    }
    user_query = [{"name": "user", "in": "query", "required": True, "schema": ref("Login")}]
    legacy_html = html("A short HTML page saying what went wrong.")
    paths["/new"] = {
        "get": b.op(
            "The predecessor's way to track a user (a GET that changes state)",
            {
                "200": html("Already tracked; nothing changed."),
                "202": html("Now tracking them."),
                "400": legacy_html,
                "404": html("No such GitHub user; nothing was added."),
            },
            tag="legacy",
            writes=True,
            upstream=(502, 503),
            legacy_error=legacy_html,
            parameters=user_query,
            operationId="legacyNew",
        )
    }
    paths["/show"] = {
        "get": b.op(
            "The predecessor's page of unseen gists, marked seen once sent",
            {
                "200": html("The unseen gists."),
                "400": legacy_html,
                "404": html("Not tracked."),
            },
            tag="legacy",
            writes=True,
            upstream=(502, 503),
            legacy_error=legacy_html,
            parameters=user_query,
            operationId="legacyShow",
        )
    }
    paths["/fetch"] = {
        "get": b.op(
            "The predecessor's poll of every user now",
            {"200": html("`New gists: <b>K</b>`")},
            tag="legacy",
            writes=True,
            upstream=(502, 503),
            legacy_error=legacy_html,
            operationId="legacyFetch",
        )
    }
    paths["/healthz"] = {
        "get": {
            "summary": "Liveness",
            "tags": ["ops"],
            "operationId": "healthz",
            "responses": {
                "200": content("application/json", obj(["status"], status={"const": "alive"}), "")
            },
        }
    }
    paths["/readyz"] = {
        "get": {
            "summary": "Readiness: connected to the broker",
            "tags": ["ops"],
            "operationId": "readyz",
            "responses": {
                "200": content("application/json", obj(["status"], status={"const": "ready"}), ""),
                "503": content(
                    "application/json", obj(["status"], status={"const": "not ready"}), ""
                ),
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "tags": ["ops"],
            "operationId": "metrics",
            "responses": {"200": content("text/plain", {"type": "string"}, "")},
        }
    }
    spec: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "gistsync gateway",
            "version": "1",
            "description": "Track GitHub users; read their gists as Pipedrive keeps them. "
            "Changes are applied asynchronously by the other services and answered "
            "202 Accepted. Every answer carries X-Request-Id (send your own to correlate).",
        },
        "tags": [
            {"name": "users"},
            {"name": "gists"},
            {"name": "sync"},
            {"name": "legacy", "description": "The predecessor's endpoints, kept for its clients."},
            {"name": "ops"},
        ],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if b.keyed:
        spec["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
        }
    return spec


async def serve(request: web.Request) -> web.Response:
    response = web.Response(text=request.app[DOCUMENT], content_type="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


def docs_page(spec: Json) -> str:
    """Every operation with its parameters and answers, for a person; no script needed."""
    sections = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            params = ", ".join(
                f"<code>{esc(p['name'])}</code> ({esc(p['in'])})"
                for p in [*shared, *op.get("parameters", [])]
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_name = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            answers = "".join(
                f"<li><code>{esc(status)}</code> {esc(r.get('description', ''))}</li>"
                for status, r in op["responses"].items()
            )
            key = " · needs the API key" if op.get("security") else ""
            sections.append(
                f"<dt>{esc(method.upper())} {esc(path)}</dt><dd><p>{esc(op['summary'])}{key}"
                "</p>"
                + (f"<p>{esc(op['description'])}</p>" if op.get("description") else "")
                + (f"<p>Parameters: {params}</p>" if params else "")
                + (f"<p>Body: <code>{esc(body_name)}</code></p>" if body_name else "")
                + f"<ul>{answers}</ul></dd>"
            )
    intro = (
        f"<h1>{esc(spec['info']['title'])}</h1><p>{esc(spec['info']['description'])}</p>"
        '<p>The machine-readable description: <a href="/openapi.json">/openapi.json</a> '
        "(OpenAPI 3.1).</p>"
    )
    return document("gistsync API", f'<main>{intro}<dl class="op">{"".join(sections)}</dl></main>')


async def docs(request: web.Request) -> web.Response:
    spec = json.loads(request.app[DOCUMENT])
    return web.Response(text=docs_page(spec), content_type="text/html", charset="utf-8")


def add_routes(app: web.Application, settings: Settings) -> None:
    app[DOCUMENT] = json.dumps(build(settings), indent=2)
    app.router.add_get("/openapi.json", serve)
    app.router.add_get("/docs", docs)
