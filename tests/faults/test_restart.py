"""A full restart over N users and M gists already in Pipedrive: nothing is created again, and
what the writer reads to rebuild its cache grows with pages, not with gists."""

from __future__ import annotations

import math
import signal
import uuid
from collections.abc import Iterator

import pytest

from sandbox.launch import SERVICES, Suite
from tests.faults.harness import (
    add_gists,
    audit,
    consumed,
    metric,
    pipedrive_state,
    requests_made,
    reset_stats,
    start_suite,
    suite_env,
    track,
    wait_converged,
    wait_quiet,
)
from tests.faults.node import RabbitNode
from tests.waiting import wait_for

pytestmark = pytest.mark.faults

PAGE = 50  # PIPEDRIVE_PAGE_LIMIT: small, so that a few hundred gists make several pages


@pytest.fixture
def suite(rabbit: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    rabbit.ensure_running()
    env = suite_env(rabbit.url, PIPEDRIVE_PAGE_LIMIT=str(PAGE))
    suite = start_suite(env, tmp_path_factory.mktemp("restart"), ("sandbox", *SERVICES))
    yield suite
    suite.stop_all()


def test_a_full_restart_creates_nothing_and_reads_pages_not_gists(suite: Suite) -> None:
    tag = uuid.uuid4().hex[:6]
    sizes = {f"ann-{tag}": 120, f"bob-{tag}": 51, f"cy-{tag}": 7}
    owners = {gist: login for login, n in sizes.items() for gist in add_gists(suite, login, n)}
    for login in sizes:
        track(suite, login)
    wait_converged(suite, owners, timeout=60)
    wait_quiet(suite)
    before = pipedrive_state(suite)
    gists = len(owners)

    for name in reversed(SERVICES):
        assert suite.stop(name, signal.SIGTERM) == 0, suite.tail(name)
    reset_stats(suite, "pipedrive")
    for name in SERVICES:
        suite.start(name)

    # The poller, knowing nothing, publishes every gist again; the writer takes each one.
    wait_for(
        lambda: metric(suite, "github_poller", "gistsync_gists_discovered_total") == gists,
        what="every gist published again",
    )
    wait_for(lambda: consumed(suite) == gists, what="the writer through every event")
    wait_quiet(suite)

    assert pipedrive_state(suite) == before
    assert metric(suite, "pipedrive_writer", "gistsync_activities_created_total") == 0
    # The account's activities in pages of 50, whoever they belong to; the org's deals and
    # its deleted deals, one page each.
    pages = math.ceil(gists / PAGE)
    expected = {
        "GET /organizations/search": {"200": 1},
        "GET /deals": {"200": 2},
        "GET /activities": {"200": pages},
    }
    assert requests_made(suite, "pipedrive") == expected
    assert pages == 4 < gists == 178
    assert (
        metric(
            suite,
            "pipedrive_writer",
            "gistsync_pipedrive_requests_total",
            operation="getActivities",
            status="200",
        )
        == pages
    )

    # And the next new gist costs one request, as before the restart.
    reset_stats(suite, "pipedrive")
    [fresh] = add_gists(suite, f"cy-{tag}", 1)
    owners[fresh] = f"cy-{tag}"
    wait_converged(suite, owners, timeout=30)
    assert audit(pipedrive_state(suite), owners).activities == gists + 1
    assert requests_made(suite, "pipedrive") == {"POST /activities": {"200": 1}}
