"""docker-compose.yml proven on a real Docker engine: built, started, used, scaled, crashed and
torn down, through the ports it publishes.

run.sh starts the engine and makes the local base image, then runs this module with
DOCKER_HOST set. Phases (each timed):

- build: the gistsync image and the stand-ins (compose.yml beside this file);
- up: `docker compose --profile sandbox up --wait`;
- flow: track a user, a new gist becomes an activity in the simulated Pipedrive, /show
  marks the gists seen;
- targets: every Prometheus target is up, the gateway's on its ops port (its public port has
  no /metrics), and every service says which version and revision it runs
  (gistsync_build_info, the revision being the one the image was built from);
- alert: a dead letter makes GistsyncDeadLetters fire, Prometheus sends it to Alertmanager,
  and Alertmanager delivers it to the webhook of its severity;
- scale: 2 pollers and 2 writers, one of each crashed (SIGKILL) while users are tracked and
  gists keep coming: every gist ends as exactly one activity, the crashed containers are
  restarted by their policy, and Prometheus finds every replica;
- down: containers, networks, volumes and the images built, all removed (also on failure).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import yaml  # type: ignore[import-untyped]

from gistsync.broker import Topology
from pipedrive_writer.notes import parse_note
from tests.deploy.compose import alert_sink

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
FILES = (REPO / "docker-compose.yml", HERE / "compose.yml")
PROFILE = "sandbox"
# docker-compose.yml's defaults: the prefix and the broker's guest user.
PREFIX = "gistsync"
BROKER_USER = ("guest", "guest")
SCALED = ("github_poller", "pipedrive_writer")
# One service per image: the others share its image, so each is built once.
BUILT = ("gateway", "rabbitmq")

T = TypeVar("T")


# --- timing and waiting ------------------------------------------------------------------------


@dataclass
class Timings:
    phases: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"[compose] {name} ...", flush=True)
        start = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - start
            self.phases.append((name, took))
            print(f"[compose] {name}: {took:.1f} s", flush=True)

    def report(self) -> None:
        for name, took in self.phases:
            print(f"[compose] phase {name:<8} {took:6.1f} s")


def until(check: Callable[[], T | None], what: str, timeout: float, every: float = 1.0) -> T:
    """The first truthy result of `check()`; an HTTP error counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError as exc:
            last = f" (last: {exc!r})"
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s{last}")
        time.sleep(every)


# --- compose -------------------------------------------------------------------------------------


@dataclass
class Compose:
    command: list[str]

    def args(self, *args: str) -> list[str]:
        files = [arg for path in FILES for arg in ("-f", str(path))]
        return [*self.command, *files, "--profile", PROFILE, *args]

    def run(self, *args: str, timeout: float = 600) -> None:
        print(f"$ {shlex.join(['docker compose', *args])}", flush=True)
        subprocess.run(self.args(*args), cwd=REPO, check=True, timeout=timeout)

    def output(self, *args: str) -> str:
        result = subprocess.run(
            self.args(*args), cwd=REPO, check=True, capture_output=True, text=True, timeout=60
        )
        return result.stdout.strip()

    def url(self, service: str, port: int) -> str:
        address = self.output("port", service, str(port))
        assert address.startswith("127.0.0.1:"), f"{service}:{port} published on {address}"
        return f"http://{address}"

    def containers(self, service: str) -> list[str]:
        return self.output("ps", "-q", service).split()


def docker(*args: str) -> str:
    result = subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=120
    )
    return result.stdout.strip()


def inspect(container: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(docker("inspect", container))[0]
    return found


# --- the stack, through its published ports ------------------------------------------------------


@dataclass
class Stack:
    compose: Compose
    http: httpx.Client
    gateway: str = ""
    github: str = ""
    pipedrive: str = ""
    prometheus: str = ""
    alertmanager: str = ""
    rabbitmq: str = ""
    webhook: str = ""

    def find_ports(self) -> None:
        url = self.compose.url
        self.gateway = url("gateway", 8080)
        self.github = url("sandbox", 9001)
        self.pipedrive = url("sandbox", 9002)
        self.prometheus = url("prometheus", 9090)
        self.alertmanager = url("alertmanager", 9093)
        self.rabbitmq = url("rabbitmq", 15672)
        self.webhook = url("alert-webhook", alert_sink.PORT)

    def get(self, url: str, **params: str) -> Any:
        response = self.http.get(url, params=params)
        response.raise_for_status()
        return response.json()

    def add_gists(self, login: str, count: int) -> list[str]:
        response = self.http.post(
            f"{self.github}/_sandbox/users/{login}/gists/bulk", json={"count": count}
        )
        assert response.status_code == 201, response.text
        ids: list[str] = response.json()["ids"]
        return ids

    def track(self, login: str) -> None:
        response = self.http.get(f"{self.gateway}/new", params={"user": login})
        assert response.status_code == 202, f"/new?user={login}: {response.status_code}"

    def activities(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"{self.pipedrive}/_sandbox/state")["activities"]
        return found

    def activities_per_gist(self) -> Counter[str]:
        notes = (parse_note(activity.get("note")) for activity in self.activities())
        return Counter(note.gist_id for note in notes if note is not None)

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"{self.prometheus}/api/v1/targets")["data"][
            "activeTargets"
        ]
        return found


def each_once(stack: Stack, gists: set[str]) -> Counter[str] | None:
    """The activities per gist once every gist has one; fails at once on a second one."""
    counts = stack.activities_per_gist()
    doubled = {gist: n for gist, n in counts.items() if n > 1}
    assert not doubled, f"gists with more than one activity: {doubled}"
    return counts if gists <= set(counts) else None


# --- the phases ----------------------------------------------------------------------------------


def flow(stack: Stack) -> None:
    """A tracked user's gists become activities, a new one too, and /show marks them seen."""
    login = f"deploy-{uuid.uuid4().hex[:6]}"
    gists = set(stack.add_gists(login, 2))
    stack.track(login)
    until(lambda: each_once(stack, gists), "the first gists as activities", 60)
    gist = {"description": "a new gist", "files": {"new.md": {"content": "# new\n"}}}
    created = stack.http.post(f"{stack.github}/_sandbox/users/{login}/gists", json=gist)
    assert created.status_code == 201, created.text
    gists.add(created.json()["id"])
    until(lambda: each_once(stack, gists), "the new gist as an activity", 60)

    page = stack.http.get(f"{stack.gateway}/show", params={"user": login})
    assert page.status_code == 200 and "a new gist" in page.text, page.status_code

    def all_seen() -> bool:
        done = {
            note.gist_id: bool(activity["done"])
            for activity in stack.activities()
            if (note := parse_note(activity.get("note"))) is not None and note.gist_id in gists
        }
        return len(done) == len(gists) and all(done.values())

    until(all_seen, "the shown gists marked done in Pipedrive", 30)
    user = stack.get(f"{stack.gateway}/api/users/{login}")
    assert (user["login"], user["unseen"]) == (login, 0), user
    assert user["polling"]["state"] == "reported" and user["polling"]["last_poll_at"], user
    print(f"[compose] {login}: {len(gists)} gists, one activity each, all seen")


def jobs() -> set[str]:
    config = yaml.safe_load((REPO / "monitor" / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"] for job in config["scrape_configs"]}


def all_up(stack: Stack, replicas: dict[str, int]) -> dict[str, int] | None:
    """Up targets per job, once every job has its replicas and every target is up."""
    targets = stack.targets()
    if any(target["health"] != "up" for target in targets):
        return None
    per_job = Counter(target["labels"]["job"] for target in targets)
    wanted = {job: replicas.get(job, 1) for job in jobs()}
    return dict(per_job) if dict(per_job) == wanted else None


def check_targets(stack: Stack, replicas: dict[str, int]) -> None:
    # DNS discovery refreshes every 30 s: a replica started since shows after the next one.
    try:
        per_job = until(lambda: all_up(stack, replicas), "every Prometheus target up", 120)
    except AssertionError:
        down = [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
            for t in stack.targets()
        ]
        raise AssertionError(f"targets: {down}") from None
    print(f"[compose] targets up per job: {per_job}")


def check_ops_ports(stack: Stack) -> None:
    """/metrics on the ops ports only, and the build each service runs."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    ops_port = compose["services"]["gateway"]["environment"]["GATEWAY_OPS_PORT"]
    [gateway] = [t for t in stack.targets() if t["labels"]["job"] == "gateway"]
    assert urlsplit(gateway["scrapeUrl"]).port == int(ops_port), gateway["scrapeUrl"]
    public = stack.http.get(f"{stack.gateway}/metrics")
    assert public.status_code == 404, f"the public port's /metrics: {public.status_code}"
    answer = stack.get(f"{stack.prometheus}/api/v1/query", query="gistsync_build_info")
    builds = {r["metric"]["job"]: r["metric"] for r in answer["data"]["result"]}
    assert set(builds) == {"gateway", *SCALED}, builds
    for job, labels in builds.items():
        for label, variable in (("version", "GISTSYNC_VERSION"), ("revision", "GISTSYNC_REVISION")):
            assert labels[label] == os.environ.get(variable, labels[label]), (job, labels)
    revisions = {job: labels["revision"] for job, labels in builds.items()}
    print(f"[compose] revisions running: {revisions}")


def receivers() -> dict[str, str]:
    """alertmanager.yml's receivers by name → the path of their webhook on alert-webhook."""
    config = yaml.safe_load((REPO / "monitor" / "alertmanager" / "alertmanager.yml").read_text())
    paths = {}
    for receiver in config["receivers"]:
        [hook] = receiver["webhook_configs"]
        url = urlsplit(hook["url"])
        assert (url.hostname, url.port) == ("alert-webhook", alert_sink.PORT), hook["url"]
        paths[receiver["name"]] = url.path
    return paths


def alert(stack: Stack) -> None:
    """A message that is not JSON, published through the management API: the writer
    dead-letters it, and the alert for waiting dead letters travels all the way."""
    exchange = quote(Topology(PREFIX).bus, safe="")
    published = stack.http.post(
        f"{stack.rabbitmq}/api/exchanges/%2F/{exchange}/publish",
        auth=BROKER_USER,
        json={
            "properties": {"content_type": "application/json", "delivery_mode": 2},
            "routing_key": "command.track_user.p0",
            "payload": "this is not JSON",
            "payload_encoding": "string",
        },
    )
    assert published.status_code == 200 and published.json() == {"routed": True}, published.text

    def in_alertmanager() -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = stack.get(
            f"{stack.alertmanager}/api/v2/alerts", filter='alertname="GistsyncDeadLetters"'
        )
        return alerts

    [received] = until(in_alertmanager, "GistsyncDeadLetters in Alertmanager", 120)
    print(f"[compose] Alertmanager holds {received['labels']}")
    path = receivers()["ticket"]

    def delivered() -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = stack.get(f"{stack.webhook}/received")
        return [
            post
            for post in posts
            if post["path"] == path
            and any(
                a["labels"].get("alertname") == "GistsyncDeadLetters" and a["status"] == "firing"
                for a in post["body"]["alerts"]
            )
        ]

    # Alertmanager waits group_wait (30 s) before the first notification of a group.
    until(delivered, f"GistsyncDeadLetters delivered to the ticket webhook ({path})", 90)
    print(f"[compose] GistsyncDeadLetters delivered to {path}")


def crash(container: str) -> None:
    """SIGKILL to the container's process from outside: a crash, which the restart policy
    answers (`docker kill` would count as a deliberate stop)."""
    os.kill(inspect(container)["State"]["Pid"], signal.SIGKILL)


def restarted(container: str) -> bool:
    state = inspect(container)
    health = state["State"].get("Health", {}).get("Status")
    return bool(state["RestartCount"] >= 1 and state["State"]["Running"] and health == "healthy")


def scale(stack: Stack, compose: Compose) -> None:
    compose.run(
        "up", "--detach", "--wait", "--no-build",
        *(arg for name in SCALED for arg in ("--scale", f"{name}=2")),
    )  # fmt: skip
    for name in SCALED:
        assert len(compose.containers(name)) == 2, name
    expected = set(stack.activities_per_gist())
    tag = uuid.uuid4().hex[:6]
    users = [f"deploy-{tag}-{n}" for n in range(6)]
    for login in users:
        expected.update(stack.add_gists(login, 3))
        stack.track(login)
    victims = [compose.containers(name)[0] for name in SCALED]
    for container in victims:
        crash(container)
    print(f"[compose] crashed {[c[:12] for c in victims]} while {len(users)} users were tracked")
    for login in users:
        expected.update(stack.add_gists(login, 1))
    counts = until(lambda: each_once(stack, expected), f"{len(expected)} gists as activities", 180)
    extra = set(counts) - expected
    assert not extra, f"activities for gists nobody made: {extra}"
    for container in victims:
        until(partial(restarted, container), f"{container[:12]} restarted and healthy", 120)
    check_targets(stack, {name: 2 for name in SCALED})
    # Everything settled, replicas included: still exactly once.
    final = stack.activities_per_gist()
    assert set(final) == expected and set(final.values()) == {1}, final
    print(f"[compose] {len(expected)} gists, {sum(final.values())} activities: each exactly once")


def labels_of(image: str) -> None:
    """The OCI labels of the image: the build arguments compose.yml passed on."""
    labels: dict[str, str] = json.loads(docker("image", "inspect", image))[0]["Config"]["Labels"]
    for label, variable in (("version", "GISTSYNC_VERSION"), ("revision", "GISTSYNC_REVISION")):
        value = labels.get(f"org.opencontainers.image.{label}")
        assert value == os.environ.get(variable, value), f"{label}: {value}"
    print(
        f"[compose] {image}: version {labels['org.opencontainers.image.version']}, "
        f"revision {labels['org.opencontainers.image.revision']}"
    )


def down(compose: Compose) -> None:
    images = set(compose.output("config", "--images").split())
    compose.run("down", "--volumes", "--rmi", "all", "--remove-orphans", "--timeout", "30")
    left = {
        "containers": docker("ps", "-aq"),
        "volumes": docker("volume", "ls", "-q"),
        "networks": docker("network", "ls", "-q", "--filter", "type=custom"),
        "images": " ".join(image for image in sorted(images) if docker("images", "-q", image)),
    }
    assert not any(left.values()), f"left behind: {left}"


def main() -> int:
    compose = Compose(shlex.split(os.environ.get("COMPOSE", "docker compose")))
    timings = Timings()
    failed = True
    try:
        with timings.phase("build"):
            compose.run("build", *BUILT)
            labels_of("gistsync:latest")
        with timings.phase("up"):
            compose.run("up", "--detach", "--wait", "--wait-timeout", "240", "--no-build")
        with httpx.Client(timeout=15) as http:
            stack = Stack(compose, http)
            stack.find_ports()
            with timings.phase("flow"):
                flow(stack)
            with timings.phase("targets"):
                check_targets(stack, {})
                check_ops_ports(stack)
            with timings.phase("alert"):
                alert(stack)
            with timings.phase("scale"):
                scale(stack, compose)
        failed = False
    finally:
        if failed:
            subprocess.run(compose.args("ps", "--all"), cwd=REPO, timeout=60)
            subprocess.run(compose.args("logs", "--no-color", "--tail", "40"), cwd=REPO, timeout=60)
        try:
            with timings.phase("down"):
                down(compose)
        except Exception as exc:
            if not failed:
                raise
            # The failure that got us here is the one to report.
            print(f"[compose] teardown failed too: {exc!r}", file=sys.stderr)
        timings.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
