"""The OpenAPI 3.1 description of the gateway, served at /openapi.json, and a plain page
rendering it at /docs.

It is built from the settings, so it says exactly which operations need the API key on this
gateway; the tests run schemathesis against the live gateway to keep it true.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from gateway.pages import document, esc
from gateway.schemas import LOGIN_SCHEMA, REF_TEMPLATE, STATES, Json, components
from gateway.security import API_KEY_HEADER
from gateway.settings import Settings

DOCUMENT = web.AppKey("openapi", str)
JSON = "application/json"


def ref(name: str) -> Json:
    return {"$ref": REF_TEMPLATE.format(model=name)}


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


class Builder:
    """Adds the responses every operation shares, according to what it does."""

    def __init__(self, settings: Settings) -> None:
        self.keyed = settings.api_key is not None
        self.reads_keyed = self.keyed and settings.gateway_protect_reads

    def operation(self, op: Op) -> Json:
        keyed = self.keyed if op.writes else self.reads_keyed
        statuses = [*op.upstream, 421]
        if keyed:
            statuses += [401, 429]
        if op.writes:
            statuses += [403, 429]
        if op.body:
            statuses += [400, 408, 413, 415, 422]
        responses = dict(op.answers)
        for code in statuses:
            responses.setdefault(str(code), op.legacy_error or problem(code))
        operation: Json = {
            "summary": op.summary,
            "tags": [op.tag],
            "responses": dict(sorted(responses.items())),
            "operationId": op.id,
        }
        if op.parameters:
            operation["parameters"] = list(op.parameters)
        if op.body:
            schema = ref(op.body)
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
        if op.description:
            operation["description"] = op.description
        if keyed:
            operation["security"] = [{"ApiKey": []}]
        return operation


@dataclass(frozen=True)
class Op:
    """One operation: its own answers; `Builder` adds those it shares with the others."""

    path: str
    method: str
    id: str
    summary: str
    tag: str
    answers: Json
    writes: bool = False
    body: str | None = None  # the component of its JSON body
    upstream: tuple[int, ...] = (502, 503, 504)
    legacy_error: Json | None = None  # how a predecessor's endpoint answers failures
    parameters: tuple[Json, ...] = ()
    description: str | None = None


def json_answer(model: str, description: str) -> Json:
    return content(JSON, ref(model), description)


USER_QUERY = {"name": "user", "in": "query", "required": True, "schema": LOGIN_SCHEMA}
STATE_QUERY = {
    "name": "state",
    "in": "query",
    "required": False,
    "schema": {"enum": list(STATES), "default": "unseen"},
}
ONE_USER = {"400": problem(400), "404": problem(404)}
LEGACY_HTML = html("A short HTML page saying what went wrong.")
OPERATIONS = (
    Op(
        "/api/users", "get", "listUsers",
        "The tracked users, with how many of their gists are unseen", "users",
        {"200": json_answer("UserList", "The tracked users.")},
    ),
    Op(
        "/api/users", "post", "trackUser", "Track a GitHub user", "users",
        {
            "202": {
                **json_answer("Tracking", "Now tracking them."),
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            "404": problem(404),
            "409": problem(409),
        },
        writes=True,
        body="TrackRequest",
        description="The login is checked with GitHub and stored in GitHub's spelling. "
        "Their gists become Pipedrive activities within a few poll intervals.",
    ),
    Op(
        "/api/users/{login}", "get", "getUser",
        "One tracked user, and how their polling goes", "users",
        {"200": json_answer("UserDetail", "The user."), **ONE_USER},
        description="`unseen` comes from the writer, `polling` from the poller that polls "
        "the user, asked at once. A poller that does not answer in time leaves `polling` "
        "`unknown`; the rest is answered all the same.",
    ),
    Op(
        "/api/users/{login}", "delete", "untrackUser", "Stop tracking a user", "users",
        {"202": json_answer("Untracking", "Stopping."), **ONE_USER},
        writes=True,
        description="Polling stops and their Pipedrive deal is marked lost. The person, the "
        "deal and its activities are kept: tracking them again continues where it stopped, "
        "with no duplicate.",
    ),
    Op(
        "/api/users/{login}/gists", "get", "listGists",
        "A tracked user's gists: the unseen ones, or all", "gists",
        {"200": json_answer("GistList", "The gists."), **ONE_USER},
        parameters=(STATE_QUERY,),
    ),
    Op(
        "/api/users/{login}/gists/seen", "post", "markGistsSeen",
        "Mark gists seen: every unseen one, or the listed ones", "gists",
        {"202": json_answer("SeenAccepted", "Being marked."), "404": problem(404)},
        writes=True,
        body="SeenRequest",
        description="Ids that are not this user's gists refuse the whole request "
        "(404, listed in `unknown`).",
    ),
    Op(
        "/api/sync", "post", "syncNow", "Poll GitHub for every tracked user now", "sync",
        {"202": json_answer("Polling", "Polling started.")},
        writes=True,
        upstream=(503,),
    ),
    Op(
        "/list", "get", "legacyList", "The predecessor's list of tracked logins", "legacy",
        {"200": json_answer("LegacyList", "The logins.")},
        upstream=(502, 503),
        legacy_error=json_answer("LegacyFailure", "The predecessor's failure."),
    ),
    Op(
        "/new", "get", "legacyNew",
        "The predecessor's way to track a user (a GET that changes state)", "legacy",
        {
            "200": html("Already tracked; nothing changed."),
            "202": html("Now tracking them."),
            "400": LEGACY_HTML,
            "404": html("No such GitHub user; nothing was added."),
        },
        writes=True,
        upstream=(502, 503),
        legacy_error=LEGACY_HTML,
        parameters=(USER_QUERY,),
    ),
    Op(
        "/show", "get", "legacyShow",
        "The predecessor's page of unseen gists, marked seen once sent", "legacy",
        {"200": html("The unseen gists."), "400": LEGACY_HTML, "404": html("Not tracked.")},
        writes=True,
        upstream=(502, 503),
        legacy_error=LEGACY_HTML,
        parameters=(USER_QUERY,),
    ),
    Op(
        "/fetch", "get", "legacyFetch", "The predecessor's poll of every user now", "legacy",
        {"200": html("`New gists: <b>K</b>`")},
        writes=True,
        upstream=(502, 503),
        legacy_error=LEGACY_HTML,
    ),
)  # fmt: skip


def status(*values: str) -> Json:
    """A probe's answer."""
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": list(values)}},
        "additionalProperties": False,
    }


# Probes: open on every gateway, no shared answers (the metrics are on the ops port).
OPS_PATHS: Json = {
    "/healthz": {"get": {
        "summary": "Liveness", "tags": ["ops"], "operationId": "healthz",
        "responses": {"200": content(JSON, status("alive"), "Alive.")},
    }},
    "/readyz": {"get": {
        "summary": "Readiness: connected to the broker", "tags": ["ops"],
        "operationId": "readyz",
        "responses": {
            "200": content(JSON, status("ready"), "Ready."),
            "503": content(JSON, status("not ready"), "Not connected."),
        },
    }},
}  # fmt: skip
INFO: Json = {
    "title": "gistsync gateway",
    "version": "1",
    "description": "Track GitHub users; read their gists as Pipedrive keeps them. Changes "
    "are applied asynchronously by the other services and answered 202 Accepted. Every "
    "answer carries X-Request-Id (send your own to correlate).",
}
TAGS = [
    {"name": "users"},
    {"name": "gists"},
    {"name": "sync"},
    {"name": "legacy", "description": "The predecessor's endpoints, kept for its clients."},
    {"name": "ops"},
]


def build(settings: Settings) -> Json:
    b = Builder(settings)
    paths: Json = {}
    for op in OPERATIONS:
        item = paths.setdefault(op.path, {})
        if "{login}" in op.path:
            item["parameters"] = [
                {"name": "login", "in": "path", "required": True, "schema": LOGIN_SCHEMA}
            ]
        item[op.method] = b.operation(op)
    spec: Json = {
        "openapi": "3.1.0",
        "info": INFO,
        "tags": TAGS,
        "paths": {**paths, **OPS_PATHS},
        "components": {"schemas": components()},
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
