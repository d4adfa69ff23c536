"""Holds the client's exchanges to GitHub's OpenAPI description, with the sandbox's checker
(`tests.contract`, openapi-core): specs/github-gists-subset.json.

The subset has no `GET /users/{username}`: its 200 is checked against `public-user` (the
schema GitHub's full description answers it with, which the subset includes) and its errors,
like the statuses list-gists does not document (304, 403, 404, 429, 5xx), against the
subset's `basic-error` (304: no body).
"""

from __future__ import annotations

from functools import cache

import httpx

from tests.contract import Checked, Contract, github_fallbacks
from tests.specs import GITHUB_SPEC, spec_file

PUBLIC_USER = {"$ref": "#/components/schemas/public-user"}


@cache
def github_contract() -> Contract:
    return Contract.load(spec_file(GITHUB_SPEC), "https://api.github.com", github_fallbacks)


def check(response: httpx.Response) -> Checked:
    """Raises unless the request and its answer conform; says which check applied."""
    return github_contract().check(response, schema=PUBLIC_USER)
