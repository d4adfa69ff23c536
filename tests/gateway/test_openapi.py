"""The OpenAPI document: valid OpenAPI 3.1, true to this gateway's settings, and describing
every route programs use (schemathesis then checks the answers: test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from openapi_spec_validator import validate

from gateway.openapi import build
from gateway.settings import Settings
from tests.gateway.conftest import API_KEY, Client, StartGateway

# Routes for people, not programs: forms with CSRF tokens, pages, the document itself.
UNDOCUMENTED = {
    "/",
    "/users",
    "/users/{login}",
    "/users/{login}/seen",
    "/users/{login}/untrack",
    "/sync",
    "/login",
    "/logout",
    "/assets/gistsync.css",
    "/openapi.json",
    "/docs",
}
METHODS = {"get", "post", "put", "patch", "delete"}


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method.lower() in METHODS
    }


async def test_the_served_document_is_valid_openapi_3_1(gateway: Client) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    spec = await response.json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


async def test_every_route_for_programs_is_documented_and_nothing_else(gateway: Client) -> None:
    spec = await (await gateway.get("/openapi.json")).json()
    served = {(m, p) for m, p in routes(gateway.app) if p not in UNDOCUMENTED}
    assert set(operations(spec)) == served


def test_without_a_key_nothing_claims_to_need_one() -> None:
    spec = build(Settings(gateway_api_key=None))
    validate(spec)
    assert "securitySchemes" not in spec["components"]
    for op in operations(spec).values():
        assert "security" not in op
        assert "401" not in op["responses"]


def test_with_a_key_changes_and_reads_need_it() -> None:
    spec = build(Settings(gateway_api_key=API_KEY))
    validate(spec)
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    ops = operations(spec)
    for (method, path), op in ops.items():
        keyed = path not in ("/healthz", "/readyz", "/metrics")
        assert ("security" in op) is keyed, (method, path)
        assert ("401" in op["responses"]) is keyed, (method, path)


def test_reads_can_be_left_open() -> None:
    spec = build(Settings(gateway_api_key=API_KEY, gateway_protect_reads=False))
    ops = operations(spec)
    assert "security" not in ops[("get", "/api/users")]
    assert "security" not in ops[("get", "/list")]
    assert "security" in ops[("post", "/api/users")]
    assert "security" in ops[("get", "/new")]  # the predecessor's GETs that change state


def test_changes_document_their_rate_limit_and_bodies_their_limits() -> None:
    ops = operations(build(Settings(gateway_api_key=None)))
    for (method, path), op in ops.items():
        changes = method != "get" or path in ("/new", "/show", "/fetch")
        assert ("429" in op["responses"]) is changes, (method, path)
        assert ("403" in op["responses"]) is changes, (method, path)  # from another site
        if path not in ("/healthz", "/readyz", "/metrics"):
            assert "421" in op["responses"], (method, path)  # a Host not ours
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= set(op["responses"])


async def test_the_docs_page_lists_every_operation(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(gateway_api_key=API_KEY)
    spec = await (await gateway.get("/openapi.json")).json()
    page = await (await gateway.get("/docs")).text()
    for method, path in operations(spec):
        assert f"<dt>{method.upper()} {path}</dt>" in page
    assert "needs the API key" in page
