"""The OpenAPI document is kept true: schemathesis generates requests from the document the
live gateway serves, valid and invalid, and checks every answer against it. No 5xx.

The gateway runs in-process on a real port and a real broker; the poller and the writer are
the in-memory world of `fakes.py`. Deterministic: a fixed seed, derandomized generation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from prometheus_client import REGISTRY
from schemathesis.engine import Status, events, from_schema

from tests.gateway.conftest import API_KEY, StartGateway
from tests.gateway.fakes import XSS, FakeServices, World, gist

MIN_REQUESTS = 1000
EXAMPLES_PER_OPERATION = 200
SEED = 20260305


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    scenarios: int = 0
    errors: list[str] = field(default_factory=list)


def served() -> Counter[str]:
    """Requests the gateway answered so far, by status (its own metric)."""
    counts: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name == "gistsync_http_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["status"]] += int(sample.value)
    return counts


def run_schemathesis(base_url: str) -> Outcome:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Key": API_KEY},
            "request-timeout": 10,
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    schema.config.update(base_url=base_url)
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.scenarios += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        outcome.failures.append(
                            f"{event.label} [{check.name}] {failure.title}: {failure.message}\n"
                            f"  {check.failure_info.code_sample}"
                        )
                    elif check.status == Status.ERROR:
                        outcome.errors.append(f"{event.label} [{check.name}] {case_id}")
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            outcome.errors.append(f"fatal: {event.exception!r}")
    return outcome


@pytest.mark.slow
async def test_schemathesis_finds_the_document_true(
    start_gateway: StartGateway, peers: FakeServices
) -> None:
    world = World(everyone_exists=True)
    world.add_user(
        "OctoCat",
        gist("aa11", "Hello", ("hello.py", "Python"), day=1),
        gist("bb22", XSS, ("x.html", "HTML"), day=2),
    )
    world.add_user("alice")
    world.track("OctoCat")
    world.serve(peers)
    gateway = await start_gateway(
        gateway_api_key=API_KEY,
        gateway_rate_limit_per_minute=1_000_000,
        gateway_rate_limit_burst=1_000_000,
        gateway_auth_failures_per_minute=1_000_000,
        gateway_auth_failure_burst=1_000_000,
        request_timeout_seconds=5.0,
        fetch_timeout_seconds=5.0,
    )
    base_url = str(gateway.make_url("")).rstrip("/")
    before = served()
    started = time.monotonic()
    outcome = await asyncio.to_thread(run_schemathesis, base_url)
    elapsed = time.monotonic() - started
    after = served()
    answered = after - before
    total = sum(answered.values())
    print(f"schemathesis: {total} requests in {elapsed:.1f} s, by status {dict(answered)}")
    assert not outcome.errors, "\n".join(outcome.errors[:10])
    assert not outcome.failures, "\n".join(outcome.failures[:10])
    assert total >= MIN_REQUESTS
    assert not [status for status in answered if status.startswith("5")], answered
