"""What the fault tests share: the suite on the private node, the simulators' control API,
the services' metrics, the dead-letter queue, and the audit of what Pipedrive holds."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gistsync.broker import Broker
from gistsync.contracts import GIST_ID_REGEX, Message
from gistsync.deadletters import DeadLetterQueue
from sandbox.launch import Suite
from tests.e2e.conftest import url
from tests.faults.node import OWNER_ENV, RabbitNode
from tests.suite import EVERYTHING, new_prefix, ready
from tests.suite import suite_env as harness_env
from tests.waiting import wait_for

Json = dict[str, Any]
ORG = "GITHUB_GISTS"
# The gist id as the writer's note carries it (`<p>gist:ID</p>`), read independently of the
# writer's own parser so that a parser bug cannot hide an orphan.
GIST_MARKER = re.compile(rf"(?:^|>)\s*gist:({GIST_ID_REGEX})\s*(?:<|$)")


def gist_in(note: str | None) -> str | None:
    """The gist id an activity's note names, if any."""
    found = GIST_MARKER.search(note or "")
    return found.group(1) if found else None


# One line per fault run, printed at the end of the pytest run.
REPORTS: list[str] = []


def suite_env(amqp_url: str, **overrides: str) -> dict[str, str]:
    """A suite of its own: fresh prefix, free ports, short intervals, the private broker."""
    env = harness_env(
        amqp_url,
        new_prefix("faults"),
        POLL_INTERVAL_SECONDS="1",
        RETRY_BASE_SECONDS="0.2",
        RETRY_MAX_SECONDS="2",
        LOG_LEVEL="INFO",
        PARTITIONS="4",
        # A bigger Pipedrive plan than Lite, so that thousands of gists fit in minutes
        # (the simulator gets the same limits in `start_suite`).
        PIPEDRIVE_BURST_LIMIT=str(PIPEDRIVE_LIMITS["burst_limit"]),
        PIPEDRIVE_SEARCH_BURST_LIMIT=str(PIPEDRIVE_LIMITS["search_burst_limit"]),
        GITHUB_REQUESTS_PER_SECOND="100",
        # The workload tracks users faster than a person would.
        GATEWAY_RATE_LIMIT_PER_MINUTE="100000",
        GATEWAY_RATE_LIMIT_BURST="100000",
    )
    env[OWNER_ENV] = str(os.getpid())  # so that a later run can sweep what a killed one left
    env.pop("GATEWAY_API_KEY", None)  # these tests are about delivery, not access control
    env.update(overrides)
    return env


# The helpers below take any suite (the e2e one too): they need only its environment.


def prefix(suite: Suite) -> str:
    return suite.env["AMQP_PREFIX"]


def amqp_url(suite: Suite) -> str:
    """The broker itself (the services may reach it through proxies)."""
    return suite.env["AMQP_URL"]


def ops(suite: Suite, service: str) -> str:
    return suite.ops_url(service)


def logs(suite: Suite, lines: int = 25) -> str:
    return "\n".join(
        f"--- {name} (running: {process.running}) ---\n{suite.tail(name, lines)}"
        for name, process in suite.processes.items()
    )


# Pipedrive requests retried briefly inside the client: the message-level retry is the test.
QUICK_PIPEDRIVE_RETRIES = {
    "PIPEDRIVE_MAX_ATTEMPTS": "2",
    "PIPEDRIVE_BACKOFF_BASE_SECONDS": "0.05",
    "PIPEDRIVE_BACKOFF_MAX_SECONDS": "0.1",
}


@contextmanager
def private_suite(broker_url: str, log_dir: Path, **settings: str) -> Iterator[Suite]:
    """Every process of a suite of its own on `broker_url`, stopped on the way out."""
    suite = start_suite(suite_env(broker_url, **settings), log_dir)
    try:
        yield suite
    finally:
        suite.stop_all()


def module_suite(tag: str, **settings: str) -> Any:
    """A module's fixture `suite`: every process on the session's private node."""

    @pytest.fixture(scope="module")
    def suite(rabbit: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
        rabbit.ensure_running()
        with private_suite(rabbit.url, tmp_path_factory.mktemp(tag), **settings) as running:
            yield running

    return suite


def start_suite(env: Mapping[str, str], log_dir: Path, names: Iterable[str] = EVERYTHING) -> Suite:
    suite = Suite(dict(env), log_dir)
    try:
        for name in names:
            suite.start(name)
            if name == "sandbox":
                raise_limits(suite)
    except BaseException:
        suite.stop_all()
        raise
    return suite


# --- the simulators ----------------------------------------------------------------------

PIPEDRIVE_LIMITS = {"burst_limit": 400, "search_burst_limit": 100, "daily_budget": 10**7}
GITHUB_LIMITS = {"primary_limit": 10**7, "secondary_points_limit": 10**7, "max_concurrent": 1000}


def configure(suite: Suite, simulator: str, patch: Json) -> None:
    response = httpx.patch(f"{url(suite, simulator)}/_sandbox/config", json=patch, timeout=10)
    assert response.status_code == 200, response.text


def raise_limits(suite: Suite) -> None:
    """The rate limits of a big account: these tests are about faults, not budgets."""
    configure(suite, "pipedrive", {"limits": PIPEDRIVE_LIMITS})
    configure(suite, "github", {"limits": GITHUB_LIMITS})


NO_FAULTS: Json = {
    "faults": {
        "error_rate": 0.0,
        "timeout_rate": 0.0,
        "drop_rate": 0.0,
        "latency_ms": 0.0,
        "rate_limit_burst": 0,
    }
}


def calm(suite: Suite) -> None:
    for simulator in ("github", "pipedrive"):
        configure(suite, simulator, NO_FAULTS)


def pipedrive_state(suite: Suite) -> Json:
    state: Json = httpx.get(f"{url(suite, 'pipedrive')}/_sandbox/state", timeout=30).json()
    return state


def requests_made(suite: Suite, simulator: str) -> dict[str, dict[str, int]]:
    stats: Json = httpx.get(f"{url(suite, simulator)}/_sandbox/stats", timeout=10).json()
    requests: dict[str, dict[str, int]] = stats["requests"]
    return requests


def reset_stats(suite: Suite, simulator: str) -> None:
    response = httpx.post(f"{url(suite, simulator)}/_sandbox/stats/reset", timeout=10)
    assert response.status_code == 204, response.text


def add_gists(suite: Suite, login: str, count: int) -> list[str]:
    response = httpx.post(
        f"{url(suite, 'github')}/_sandbox/users/{login}/gists/bulk",
        json={"count": count},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def api_key(suite: Suite) -> dict[str, str]:
    """The header the gateway wants when the suite runs with GATEWAY_API_KEY set."""
    key = suite.env.get("GATEWAY_API_KEY")
    return {"X-API-Key": key} if key else {}


def track(suite: Suite, login: str, *, timeout: float = 60.0) -> int:
    """POST /api/users until the gateway says tracking (202) or tracked (409), as a client
    retries through outages; returns how many attempts it took."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last = "no attempt"
    while time.monotonic() < deadline:
        attempts += 1
        try:
            response = httpx.post(
                f"{url(suite, 'gateway')}/api/users",
                json={"login": login},
                headers=api_key(suite),
                timeout=15,
            )
        except httpx.HTTPError as exc:
            last = repr(exc)
        else:
            if response.status_code in (202, 409):
                return attempts
            # 502/503/504 while a service or the broker is down; nothing else is expected.
            assert response.status_code >= 500, (response.status_code, response.text)
            last = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.3)
    raise AssertionError(f"{login} not tracked within {timeout:g} s: {last}")


# --- the services' metrics ---------------------------------------------------------------


def metric(suite: Suite, service: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` that carry `labels`."""
    text = httpx.get(f"{ops(suite, service)}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def consumed(suite: Suite, queue: str = "pipedrive_writer", **labels: str) -> int:
    """Messages of `queue` whose handling ended (any outcome unless `labels` say which)."""
    service = queue.split(".")[0]
    name = "gistsync_messages_consumed_total"
    return int(metric(suite, service, name, queue=queue, **labels))


# --- the broker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    type: str
    body: bytes
    headers: dict[str, Any]


async def _dead_letters(amqp_url: str, prefix: str) -> list[DeadLetter]:
    async with DeadLetterQueue(amqp_url, prefix) as queue:
        return [
            DeadLetter(m.message_id or "", m.type or "", m.body, dict(m.headers or {}))
            for m in await queue.take_all()
        ]


def dead_letters(suite: Suite) -> list[DeadLetter]:
    """What the dead-letter queue holds now; reading puts everything back."""
    return asyncio.run(_dead_letters(amqp_url(suite), prefix(suite)))


def routing_key(suite: Suite, message: Message) -> str:
    """The key the services publish `message` under."""
    return broker(suite).routing_key(message)


async def _publish_raw(
    amqp_url: str, exchange: str, routing_key: str, bodies: Iterable[tuple[str, bytes]]
) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        bus = await channel.get_exchange(exchange)
        for message_id, body in bodies:
            message = aio_pika.Message(
                body,
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await bus.publish(message, routing_key, mandatory=True)


def publish_raw(suite: Suite, routing_key: str, bodies: Iterable[tuple[str, bytes]]) -> None:
    """Publish bodies as they are (invalid ones included) to the bus, confirmed."""
    asyncio.run(_publish_raw(amqp_url(suite), f"{prefix(suite)}.bus", routing_key, list(bodies)))


def broker(suite: Suite) -> Broker:
    """A broker client on the suite's names, not yet connected."""
    partitions = int(suite.env["PARTITIONS"])
    return Broker(
        amqp_url(suite), prefix=prefix(suite), service="faults-test", partitions=partitions
    )


async def _publish(suite: Suite, messages: Iterable[Message]) -> None:
    client = broker(suite)
    await client.connect()
    try:
        for message in messages:
            await client.publish(message)
    finally:
        await client.close()


def publish(suite: Suite, *messages: Message) -> None:
    """Publish as the services do (routing, persistence, confirms)."""
    asyncio.run(_publish(suite, messages))


def as_datetime(value: object) -> datetime | None:
    """A timestamp header as the broker or a client may write it: an AMQP timestamp, epoch
    seconds or milliseconds, or ISO 8601 text."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


# --- what Pipedrive holds ------------------------------------------------------------------


@dataclass
class Audit:
    """Pipedrive against the gists that exist. `problems` never heal (nothing deletes a
    duplicate or an orphan); `missing` may still arrive."""

    problems: list[str] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    activities: int = 0

    @property
    def converged(self) -> bool:
        return not self.problems and not self.missing

    def summary(self) -> str:
        sample = sorted(self.missing)[:10]
        return (
            f"{self.activities} activities, {len(self.missing)} gists missing {sample}, "
            f"problems: {self.problems[:20]}"
        )


def audit(state: Json, owners: Mapping[str, str]) -> Audit:
    """Every gist in `owners` (gist id → login) must have exactly one activity, under its
    owner's one deal and person, in the one organization; nothing else may be there."""
    result = Audit(activities=len(state["activities"]))
    problems = result.problems
    orgs = [o for o in state["organizations"] if o["name"] == ORG]
    if len(orgs) > 1:
        problems.append(f"{len(orgs)} organizations named {ORG}")
    org_id = orgs[0]["id"] if orgs else None
    person_of: dict[str, int] = {}
    for person in state["persons"]:
        if person["name"] in person_of:
            problems.append(f"two persons named {person['name']}")
        person_of[person["name"]] = person["id"]
        if person.get("org_id") != org_id:
            problems.append(f"person {person['name']} not in the organization")
    deal_of: dict[str, int] = {}
    for deal in state["deals"]:
        login = deal["title"].removeprefix("Gists for ")
        if login in deal_of:
            problems.append(f"two deals for {login}")
        deal_of[login] = deal["id"]
        if deal.get("org_id") != org_id or deal.get("person_id") != person_of.get(login):
            problems.append(f"deal of {login} not linked to the organization and {login}")
    seen: Counter[str] = Counter()
    for activity in state["activities"]:
        gist_id = gist_in(activity.get("note"))
        if gist_id is None or gist_id not in owners:
            problems.append(f"orphan activity {activity['id']}: {gist_id!r}")
            continue
        seen[gist_id] += 1
        owner = owners[gist_id]
        if (activity.get("deal_id"), activity.get("person_id")) != (
            deal_of.get(owner),
            person_of.get(owner),
        ):
            problems.append(f"activity of {gist_id} not under {owner}'s deal and person")
    problems.extend(
        f"{count} activities for gist {gist_id}" for gist_id, count in seen.items() if count > 1
    )
    result.missing = set(owners) - set(seen)
    return result


def wait_converged(suite: Suite, owners: Mapping[str, str], timeout: float) -> Audit:
    """Until every gist is there exactly once; a duplicate or an orphan fails at once."""
    last = Audit()

    def check() -> Audit | None:
        nonlocal last
        last = audit(pipedrive_state(suite), owners)
        assert not last.problems, last.summary()
        return last if last.converged else None

    try:
        return wait_for(check, what="every gist exactly once in Pipedrive", timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{last.summary()}\n{logs(suite)}") from None


def wait_quiet(suite: Suite, *, still_for: float = 3.0, timeout: float = 60.0) -> None:
    """Until the writer's queue is empty and it has consumed nothing new for `still_for`
    seconds (longer than any retry backoff here): nothing left that could still write."""
    mark = (-1, time.monotonic())

    def quiet() -> bool:
        nonlocal mark
        count = consumed(suite)
        if count != mark[0] or ready(suite, "pipedrive_writer") != 0:
            mark = (count, time.monotonic())
            return False
        return time.monotonic() - mark[1] >= still_for

    wait_for(quiet, what="the writer idle", timeout=timeout)
