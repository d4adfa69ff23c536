"""Every request the writer sends and every answer it gets, for every operation it uses,
conforms to the official Pipedrive spec (checked with the sandbox's openapi-core helpers)."""

from __future__ import annotations

import re

import httpx
import pytest

from gistsync.contracts import MarkGistsSeen, TrackUser, UntrackUser
from pipedrive_writer.__main__ import make_client
from pipedrive_writer.pipedrive import OPERATIONS, PipedriveUnavailable
from tests.contract import Contract, pipedrive_errata, pipedrive_fallbacks
from tests.pipedrive_writer.conftest import Harness
from tests.pipedrive_writer.factories import discovered
from tests.specs import PIPEDRIVE_SPEC, spec_file


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load(
        spec_file(PIPEDRIVE_SPEC),
        "https://api.pipedrive.com",
        pipedrive_fallbacks,
        pipedrive_errata,
    )


def operation_of(request: httpx.Request) -> str:
    path = request.url.path.removeprefix("/api/v2")
    # Literal paths first: `/organizations/search` is no `/organizations/{id}`.
    for op in sorted(OPERATIONS.values(), key=lambda op: "{" in op.path):
        pattern = re.sub(r"\{[^}]+\}", r"[^/]+", op.path)
        if op.method == request.method and re.fullmatch(pattern, path):
            return op.id
    raise AssertionError(f"{request.method} {path} is no operation of ours")


async def test_every_exchange_conforms_to_the_spec(harness: Harness, contract: Contract) -> None:
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    settings = harness.settings(max_attempts=1)
    hooks = {"response": [keep]}
    async with harness.run(settings, make_client(settings, event_hooks=hooks)) as writer:
        await harness.send(TrackUser(login="ann"))  # the org is made here
        harness.configure({"faults": {"rate_limit_burst": 1}})  # one 429
        await harness.send(TrackUser(login="bob"))  # searches in the org
        await harness.send(*(discovered(n, "ann") for n in (1, 2, 3)))
        activities = harness.state()["activities"]
        del harness.pipedrive.activities[activities[0]["id"]]
        await harness.send(MarkGistsSeen(login="ann", gist_ids=("ann0001", "ann0002")))  # 404
        del harness.pipedrive.deals[2]
        await harness.send(discovered(1, "bob"))  # 400: the deal is gone
        await harness.send(UntrackUser(login="ann"), TrackUser(login="ann"))  # lost, reopened
        [org] = harness.state()["organizations"]
        harness.pipedrive.update_organization(org["id"], {"name": "renamed by hand"})
        await writer.refresh()  # nothing read since the start: a whole read
        await writer.refresh()  # the org read by id, and named back
        harness.configure({"faults": {"error_rate": 1.0}})
        with pytest.raises(PipedriveUnavailable):
            await writer.client.list_activities(1)  # 500s
        harness.configure({"faults": {"error_rate": 0.0}})
    async with harness.run(settings, make_client(settings, event_hooks=hooks)):
        pass  # a restart reads everything back

    checked = [contract.check(response) for response in seen]
    assert checked.count("operation") > 0
    assert {operation_of(r.request) for r in seen} == set(OPERATIONS)
    assert {r.status_code for r in seen} == {200, 400, 404, 429, 500}
    # ann0001 deleted by hand is added again (seen); bob0001 lands in bob's new deal.
    assert harness.done() == {"ann0001": True, "ann0002": True, "ann0003": False, "bob0001": False}
