"""SIGTERM while messages are in flight: each service finishes what it holds or hands it back,
exits 0 promptly, and once it runs again nothing was lost and nothing doubled."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from sandbox.launch import Suite
from tests.e2e.conftest import url
from tests.faults.harness import (
    add_gists,
    api_key,
    audit,
    calm,
    configure,
    dead_letters,
    metric,
    pipedrive_state,
    track,
    wait_converged,
    wait_quiet,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
# The broker layer gives in-flight work 10 s; a service that needs longer is not prompt.
PROMPT_SECONDS = 10.0


@pytest.fixture
def calm_after(suite: Suite) -> Iterator[Suite]:
    yield suite
    calm(suite)


def terminate(suite: Suite, name: str) -> float:
    """SIGTERM; asserts a clean, prompt exit and returns how long it took."""
    started = time.monotonic()
    code = suite.stop(name, signal.SIGTERM, timeout=30)
    took = time.monotonic() - started
    assert code == 0, f"{name} exited {code}:\n{suite.tail(name)}"
    assert took < PROMPT_SECONDS, f"{name} took {took:.1f} s to stop"
    return took


def activities_of(suite: Suite, owners: dict[str, str]) -> int:
    notes = [a["note"] or "" for a in pipedrive_state(suite)["activities"]]
    return sum(1 for note in notes for gist in owners if f"gist:{gist}<" in note)


def converge(suite: Suite, owners: dict[str, str]) -> None:
    """Every gist of the suite once, and still so once the writer is idle; nothing died."""
    wait_converged(suite, owners, timeout=60)
    wait_quiet(suite)
    final = audit(pipedrive_state(suite), owners)
    assert final.converged, final.summary()
    assert dead_letters(suite) == []


# Every gist this module created: the audit also proves nothing else is in Pipedrive.
OWNERS: dict[str, str] = {}


def gists_for(suite: Suite, login: str, count: int) -> dict[str, str]:
    made = dict.fromkeys(add_gists(suite, login, count), login)
    OWNERS.update(made)
    return made


def test_sigterm_of_the_writer_mid_work(calm_after: Suite) -> None:
    suite = calm_after
    login = f"Term-w-{uuid.uuid4().hex[:6]}"
    mine = gists_for(suite, login, 40)
    # Slow creates: the writer holds deliveries in its hands when the signal comes.
    configure(suite, "pipedrive", {"faults": {"latency_ms": 100.0}})
    track(suite, login)
    wait_for(lambda: activities_of(suite, mine) >= 3, what="the first activities")

    took = terminate(suite, "pipedrive_writer")
    done = activities_of(suite, mine)
    assert done < len(mine), "nothing was left in flight; the test proves nothing"
    suite.start("pipedrive_writer")
    converge(suite, OWNERS)
    print(f"writer stopped in {took:.1f} s with {done}/{len(mine)} activities made")


def test_sigterm_of_the_poller_mid_poll(calm_after: Suite) -> None:
    suite = calm_after
    login = f"Term-p-{uuid.uuid4().hex[:6]}"
    mine = gists_for(suite, login, 101)  # two pages on GitHub
    # Each page takes a second: the poll is under way when the signal comes.
    configure(suite, "github", {"faults": {"latency_ms": 1000.0}})
    tracked = metric(suite, "github_poller", "gistsync_tracked_users")
    track(suite, login)
    wait_for(
        lambda: metric(suite, "github_poller", "gistsync_tracked_users") > tracked,
        what="the poller tracking the user (its first poll starts at once)",
    )

    took = terminate(suite, "github_poller")
    done = activities_of(suite, mine)
    calm(suite)
    suite.start("github_poller")
    converge(suite, OWNERS)
    print(f"poller stopped in {took:.1f} s with {done}/{len(mine)} activities made")


def test_sigterm_of_the_gateway_with_requests_in_flight(calm_after: Suite) -> None:
    suite = calm_after
    logins = [f"Term-g{n}-{uuid.uuid4().hex[:6]}" for n in range(6)]
    for login in logins:
        gists_for(suite, login, 2)
    # Asking GitHub whether each user exists takes a while: the requests wait in the gateway.
    configure(suite, "github", {"faults": {"latency_ms": 1500.0}})
    gateway = url(suite, "gateway")
    answers: dict[str, int | str] = {}

    def ask(login: str) -> None:
        try:
            response = httpx.post(
                f"{gateway}/api/users", json={"login": login}, headers=api_key(suite), timeout=30
            )
            answers[login] = response.status_code
        except httpx.HTTPError as exc:
            answers[login] = repr(exc)

    threads = [threading.Thread(target=ask, args=(login,)) for login in logins]
    for thread in threads:
        thread.start()
    # Read on the ops port: the scrape itself is not one of them.
    wait_for(
        lambda: metric(suite, "gateway", "gistsync_http_requests_in_flight") >= len(logins),
        what="every request in the gateway's hands",
    )

    took = terminate(suite, "gateway")
    for thread in threads:
        thread.join(30)
    # Each request in flight was answered, not dropped: every user is being tracked.
    assert answers == dict.fromkeys(logins, 202)
    calm(suite)
    suite.start("gateway")
    converge(suite, OWNERS)
    print(f"gateway stopped in {took:.1f} s after answering {len(logins)} requests")
