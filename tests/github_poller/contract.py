"""Holds the client's exchanges to GitHub's OpenAPI description, with the sandbox's checker
(`sandbox.contract`, openapi-core): shared/specs/github-gists-subset.json.

The subset has no `GET /users/{username}`: its 200 is checked against `public-user` (the
schema GitHub's full description answers it with, which the subset includes) and its errors,
like the statuses list-gists does not document (304, 403, 404, 429, 5xx), against the
subset's `basic-error` (304: no body).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import httpx

from sandbox.contract import Checked, Contract, github_fallbacks

SPECS_DIR = Path(
    os.environ.get("GISTSYNC_SPECS_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "specs"
)
PUBLIC_USER = {"$ref": "#/components/schemas/public-user"}


@cache
def github_contract() -> Contract:
    return Contract.load(
        SPECS_DIR / "github-gists-subset.json", "https://api.github.com", github_fallbacks
    )


def check(response: httpx.Response) -> Checked:
    """Raises unless the request and its answer conform; says which check applied."""
    return github_contract().check(response, schema=PUBLIC_USER)
