"""Replicas, proven with real processes on the real broker: 2 pollers, 3 writers and 2
gateways share 200 users while new gists stream in; one replica of each is SIGKILLed mid-run
and started again. Then: every gist is exactly one activity under its user's deal, each
user's activities were created in gist order, no user went unpolled for more than five
intervals (`GAP_INTERVALS`), and the partitions ended up shared by every replica."""

from __future__ import annotations

import random
import signal
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipedrive_writer.notes import parse_note
from sandbox.launch import OPS_PORT_SETTINGS, PORT_SETTINGS, Suite
from tests.suite import free_port, new_prefix, ready, running, suite_env
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

POLL_INTERVAL = 3.0
# The longest a user may go unpolled, in intervals. A killed poller's users wait for the rest
# of their interval, the handover, the new owner's catch-up poll, and the same again when the
# restarted replica takes its share back: under two intervals on an idle machine (4.8-5.7 s
# measured), about four with both cores busy (12.1 s). Five holds on a loaded CI machine and
# still catches a user skipped for rounds; one never polled again fails the wait for two more
# polls of everyone.
GAP_INTERVALS = 5
PARTITIONS = 6
USERS = [f"rep{n:03d}" for n in range(200)]
REPLICAS = {"pipedrive_writer": 3, "github_poller": 2, "gateway": 2}
# Room for 200 users every 2 s and a burst of creates: this test is about sharing work.
LIMITS = {
    "github": {"limits": {"secondary_points_limit": 100_000, "primary_limit": 1_000_000}},
    "pipedrive": {"limits": {"burst_limit": 2_000, "search_burst_limit": 1_000}},
}
Json = dict[str, Any]


class Replicas:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.ports: dict[str, dict[str, str]] = {}  # each replica's port settings, kept

    def start(self, name: str, replica: int) -> None:
        ports = self.ports.setdefault(f"{name}@{replica}", self.new_ports(name))
        self.suite.start(name, replica=str(replica), env=ports)

    @staticmethod
    def new_ports(name: str) -> dict[str, str]:
        """Free ports for the settings of `name`'s listeners (the gateway has two)."""
        settings = [PORT_SETTINGS[name], OPS_PORT_SETTINGS.get(name, PORT_SETTINGS[name])]
        return {setting: str(free_port()) for setting, _ in settings}

    def url(self, name: str, replica: int) -> str:
        return self.suite.url(name, self.ports[f"{name}@{replica}"])

    def ops_url(self, name: str, replica: int) -> str:
        return self.suite.ops_url(name, self.ports[f"{name}@{replica}"])

    def metric(self, name: str, replica: int, metric: str) -> float:
        text = httpx.get(f"{self.ops_url(name, replica)}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(metric + " "):
                return float(line.split()[1])
        return 0.0


def raise_limits(suite: Suite, name: str) -> None:
    if name == "sandbox":
        for simulator, patch in LIMITS.items():
            httpx.patch(f"{suite.url(simulator)}/_sandbox/config", json=patch).raise_for_status()


@pytest.fixture
def replicas(amqp_url: str, tmp_path: Path) -> Iterator[Replicas]:
    env = suite_env(
        amqp_url,
        new_prefix("scale"),
        PARTITIONS=str(PARTITIONS),
        POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        GITHUB_REQUESTS_PER_SECOND="200",
        PIPEDRIVE_BURST_LIMIT="600",
        PIPEDRIVE_SEARCH_BURST_LIMIT="300",
        GATEWAY_RATE_LIMIT_PER_MINUTE="100000",
        GATEWAY_RATE_LIMIT_BURST="100000",
        RETRY_BASE_SECONDS="0.2",
        RETRY_MAX_SECONDS="2",
    )
    with running(env, tmp_path / "logs", ["sandbox"], after_start=raise_limits, tail=10) as suite:
        replicas = Replicas(suite)
        for name, count in REPLICAS.items():
            for n in range(count):
                replicas.start(name, n)
        yield replicas


def github(replicas: Replicas) -> str:
    return replicas.suite.url("github")


def pipedrive(replicas: Replicas) -> str:
    return replicas.suite.url("pipedrive")


def poll_counts(replicas: Replicas) -> dict[str, int]:
    polls = httpx.get(f"{github(replicas)}/_sandbox/stats/polls", timeout=30).json()
    return {login: int(p["count"]) for login, p in polls.items()}


def track_all(replicas: Replicas, logins: list[str]) -> None:
    """What a load balancer does: round-robin, and the other gateway when one is down."""
    with httpx.Client(timeout=10) as http:
        for n, login in enumerate(logins):
            for attempt in range(2 * REPLICAS["gateway"]):
                gateway = replicas.url("gateway", (n + attempt) % REPLICAS["gateway"])
                try:
                    answer = http.get(f"{gateway}/new", params={"user": login})
                except httpx.TransportError:
                    continue
                if answer.status_code == 202:
                    break
            else:
                raise AssertionError(f"{login} could not be tracked through any gateway")


class GistStream(threading.Thread):
    """New gists, one at a time, each user's at least a second apart (GitHub's timestamps
    have whole seconds, and order is judged by them)."""

    def __init__(self, base: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.seconds = seconds
        self.created = 0

    def run(self) -> None:
        rng = random.Random(7)
        last: dict[str, float] = {}
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=10) as http:
            while time.monotonic() < deadline:
                login = rng.choice(USERS)
                if time.monotonic() - last.get(login, -10.0) < 1.1:
                    continue
                body = {"description": f"gist {self.created}", "files": {"a.py": {"content": "1"}}}
                http.post(f"{self.base}/_sandbox/users/{login}/gists", json=body).raise_for_status()
                last[login] = time.monotonic()
                self.created += 1
                time.sleep(0.04)


def test_replicas_share_the_work_and_survive_losing_one_of_each(replicas: Replicas) -> None:
    with httpx.Client(timeout=30) as http:
        for login in USERS:
            http.post(f"{github(replicas)}/_sandbox/users/{login}/gists/bulk", json={"count": 1})
    stream = GistStream(github(replicas), seconds=24)
    stream.start()
    track_all(replicas, USERS[:100])
    # Mid-run, one of each goes, abruptly.
    for name in REPLICAS:
        replicas.suite.stop(f"{name}@0", signal.SIGKILL)
    track_all(replicas, USERS[100:])
    time.sleep(3)
    for name in REPLICAS:
        replicas.start(name, 0)
    stream.join()
    expected = len(USERS) + stream.created

    reached = [0]

    def converged() -> Json | None:
        state: Json = httpx.get(f"{pipedrive(replicas)}/_sandbox/state", timeout=30).json()
        reached[0] = len(state["activities"])
        return state if reached[0] >= expected else None

    # About 1,500 Pipedrive requests (4 per user, 1 per gist) after a kill of each service:
    # a minute on an idle machine, three times that when the 2 cores are shared.
    try:
        wait_for(converged, f"{expected} activities", timeout=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {reached[0]} of {expected} made") from None
    # Anything doubled would show once every user is polled twice more (a gist published
    # again goes out by then) and the writers have nothing left waiting.
    counts = poll_counts(replicas)
    wait_for(
        lambda: (
            all(n >= counts[login] + 2 for login, n in poll_counts(replicas).items())
            and ready(replicas.suite, "pipedrive_writer") == 0
        ),
        "two more polls of everyone, handled",
        timeout=60,
    )
    state = httpx.get(f"{pipedrive(replicas)}/_sandbox/state", timeout=30).json()
    gists = httpx.get(f"{github(replicas)}/_sandbox/state", timeout=30).json()["gists"]

    # Exactly once, under the right deal; one org, one person and one deal per user.
    assert len(state["organizations"]) == 1
    deals = {deal["id"]: deal["title"] for deal in state["deals"]}
    assert sorted(deals.values()) == sorted(f"Gists for {login}" for login in USERS)
    assert len(state["persons"]) == len(USERS)
    notes = [(parse_note(a["note"]), a) for a in state["activities"]]
    gist_ids = Counter(note.gist_id for note, _ in notes if note is not None)
    assert len(gist_ids) == len(gists) == expected
    assert set(gist_ids.values()) == {1}, "a gist has more than one activity"
    owner = {gist["id"]: gist["owner"]["login"] for gist in gists}
    for note, activity in notes:
        assert note is not None
        assert deals[activity["deal_id"]] == f"Gists for {owner[note.gist_id]}"

    # In gist order: per user, activity ids grow with the gists' creation times.
    created = {gist["id"]: gist["created_at"] for gist in gists}
    per_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for note, activity in notes:
        assert note is not None
        per_user[owner[note.gist_id]].append((activity["id"], created[note.gist_id]))
    for login, made in per_user.items():
        times = [when for _, when in sorted(made)]
        assert times == sorted(times), f"{login}'s activities are out of gist order"

    # Never unpolled for more than GAP_INTERVALS, kills included.
    polls = httpx.get(f"{github(replicas)}/_sandbox/stats/polls", timeout=30).json()
    now = time.time()
    worst = max(max(p["longest_gap"], now - p["last"]) for p in polls.values())
    bound = GAP_INTERVALS * POLL_INTERVAL
    typical = statistics.median(p["longest_gap"] for p in polls.values())
    print(
        f"longest gap between two polls of a user: {worst:.2f} s (bound {bound:.0f} s); "
        f"a user's longest gap, median over users: {typical:.2f} s"
    )
    assert set(polls) == {login.lower() for login in USERS}
    assert worst <= bound, f"a user went {worst:.2f} s unpolled, over {bound:.0f} s"

    # /fetch polls everyone, whichever poller owns them: every user is polled once more.
    before = {login: p["count"] for login, p in polls.items()}
    fetched = httpx.get(f"{replicas.url('gateway', 1)}/fetch", timeout=60)
    assert fetched.status_code == 200, fetched.text
    after = httpx.get(f"{github(replicas)}/_sandbox/stats/polls", timeout=30).json()
    assert all(after[login]["count"] > count for login, count in before.items())

    # The partitions are shared by every replica again (the restarted ones included).
    for name in ("pipedrive_writer", "github_poller"):

        def owned(name: str = name) -> list[float] | None:
            counts = [
                replicas.metric(name, n, "gistsync_partitions_owned") for n in range(REPLICAS[name])
            ]
            return counts if sum(counts) == PARTITIONS and min(counts) >= 1 else None

        print(name, "partitions owned:", wait_for(owned, f"{name} sharing", timeout=30))
