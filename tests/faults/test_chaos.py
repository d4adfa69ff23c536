"""Exactly once under faults.

Users and their gists keep appearing on GitHub while, at random moments, each service is
SIGKILLed and restarted, the broker is SIGKILLed and restarted on its own data, each
service's broker connection is cut and restored, Pipedrive answers 20% 5xx and bursts of 429,
and GitHub answers 5xx and hangs. In the end Pipedrive holds every gist exactly once, under its
owner's deal, and nothing else; the time from the last fault to that state is reported.

The run is random but reproducible: it prints its seed, and FAULTS_SEED=<seed> replays it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.launch import SERVICES, Suite
from tests.faults.harness import (
    REPORTS,
    add_gists,
    audit,
    calm,
    configure,
    dead_letters,
    logs,
    pipedrive_state,
    raise_limits,
    requests_made,
    suite_env,
    track,
    wait_converged,
    wait_quiet,
)
from tests.faults.node import RabbitNode
from tests.faults.proxy import Proxies


@dataclass(frozen=True)
class Plan:
    users: int
    gists: int
    window: float  # seconds during which gists appear and faults strike
    kills: int  # SIGKILL and restart, per service
    broker_kills: int
    cuts: int  # broker connection cut and restored, per service
    bursts: int  # bursts of Pipedrive 429s
    poll_interval: float
    converge_within: float


SHORT = Plan(
    users=20,
    gists=200,
    window=40.0,
    kills=2,
    broker_kills=1,
    cuts=2,
    bursts=3,
    poll_interval=1.0,
    converge_within=60.0,
)
LONG = Plan(
    users=100,
    gists=2000,
    window=150.0,
    kills=5,
    broker_kills=3,
    cuts=4,
    bursts=10,
    poll_interval=2.0,
    converge_within=300.0,
)


@dataclass(frozen=True, order=True)
class Fault:
    at: float  # seconds into the window
    action: str
    target: str
    size: int = 0


def fault_schedule(plan: Plan, rng: random.Random) -> list[Fault]:
    """Outages of one target never overlap (one per equal slot of the window); outages of
    different targets may, e.g. a service restarting while the broker is down."""
    faults: list[Fault] = []

    def outages(target: str, count: int, down: tuple[float, float], start: str, end: str) -> None:
        slot = (plan.window - 2) / count
        for i in range(count):
            length = rng.uniform(*down)
            begin = 1 + i * slot + rng.uniform(0, max(0.0, slot - length - 0.5))
            faults.append(Fault(begin, start, target))
            faults.append(Fault(begin + length, end, target))

    for service in SERVICES:
        outages(service, plan.kills, (0.2, 2.0), "kill", "restart")
        outages(service, plan.cuts, (0.5, 4.0), "cut", "restore")
    outages("broker", plan.broker_kills, (0.5, 2.0), "kill", "restart")
    for _ in range(plan.bursts):
        at = rng.uniform(1, plan.window - 1)
        # Each 429 asks for a second's pause; a serial reader (a writer starting) pays them
        # one after the other.
        faults.append(Fault(at, "burst", "pipedrive", rng.randint(5, 15)))
    return sorted(faults)


@dataclass(frozen=True, order=True)
class Batch:
    at: float
    login: str
    count: int


def workload(plan: Plan, rng: random.Random) -> list[Batch]:
    """Each user appears at a random moment in the first half of the window, with a first
    gist or more, and gets the rest in up to two more batches before the window closes."""
    logins = [f"user{i:03d}-{rng.randrange(16**6):06x}" for i in range(plan.users)]
    counts = Counter(logins)  # one gist each, at least
    counts.update(rng.choices(logins, k=plan.gists - plan.users))
    batches = []
    for login in logins:
        appears = rng.uniform(0, plan.window * 0.5)
        times = sorted(rng.uniform(appears, plan.window * 0.85) for _ in range(2))
        cuts = sorted(rng.randint(0, counts[login] - 1) for _ in range(2))
        sizes = [cuts[0] + 1, cuts[1] - cuts[0], counts[login] - 1 - cuts[1]]
        for at, size in zip([appears, *times], sizes, strict=True):
            if size:
                batches.append(Batch(at, login, size))
    assert sum(b.count for b in batches) == plan.gists
    return sorted(batches)


class Run:
    """One run: the suite with a proxy per service on the private node, the workload in a
    thread, the faults on the main thread."""

    def __init__(self, plan: Plan, rabbit: RabbitNode, log_dir: Path, seed: int) -> None:
        self.plan = plan
        self.rabbit = rabbit
        self.seed = seed
        self.proxies = Proxies(rabbit.port)
        for name in SERVICES:
            self.proxies.add(name)
        # Each service reaches the broker through its own proxy.
        self.own_env = {name: {"AMQP_URL": self.proxies.url(name)} for name in SERVICES}
        self.suite = Suite(
            suite_env(
                rabbit.url,
                POLL_INTERVAL_SECONDS=str(plan.poll_interval),
                REQUEST_TIMEOUT_SECONDS="3",
                PUBLISH_TIMEOUT_SECONDS="3",
                # 20% of Pipedrive calls fail: a message may fail several attempts in a row.
                # Twelve make giving up (0.2^12) as good as impossible.
                MAX_ATTEMPTS="12",
                PIPEDRIVE_BACKOFF_BASE_SECONDS="0.1",
                PIPEDRIVE_BACKOFF_MAX_SECONDS="1",
                GITHUB_TIMEOUT_SECONDS="2",
                POLL_FAILURE_BACKOFF_MAX_SECONDS="2",
            ),
            log_dir,
        )
        self.owners: dict[str, str] = {}  # gist id → login: what Pipedrive must end up holding
        self.done: list[tuple[float, Fault, str]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.rabbit.ensure_running()
        self.suite.start("sandbox")
        raise_limits(self.suite)
        configure(self.suite, "pipedrive", {"faults": {"error_rate": 0.2, "seed": self.seed}})
        configure(
            self.suite,
            "github",
            {
                # A hang outlasts the poller's 2 s timeout.
                "faults": {
                    "error_rate": 0.1,
                    "timeout_rate": 0.05,
                    "timeout_seconds": 3.0,
                    "seed": self.seed,
                },
            },
        )
        for name in SERVICES:
            self.suite.start(name, env=self.own_env[name])

    def stop(self) -> None:
        try:
            if self.suite.processes.get("sandbox") and self.suite.processes["sandbox"].running:
                calm(self.suite)  # so the services stop without waiting on failing calls
        finally:
            self.suite.stop_all()
            self.proxies.close()

    # --- the workload ----------------------------------------------------------------------

    def feed(self, batches: list[Batch], started: float) -> None:
        """Creates the gists on GitHub at their moments and tracks each user as it appears,
        through the gateway, retrying as any client would while it is down."""
        tracked: set[str] = set()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="track") as pool:
            tracking: list[Future[int]] = []
            for batch in batches:
                time.sleep(max(0.0, started + batch.at - time.monotonic()))
                ids = add_gists(self.suite, batch.login, batch.count)
                with self._lock:
                    self.owners.update(dict.fromkeys(ids, batch.login))
                if batch.login not in tracked:
                    tracked.add(batch.login)
                    # A client keeps trying through every outage until things settle.
                    timeout = self.plan.window + self.plan.converge_within
                    tracking.append(pool.submit(track, self.suite, batch.login, timeout=timeout))
            for future in tracking:
                future.result()

    # --- the faults ------------------------------------------------------------------------

    def strike(self, fault: Fault) -> str:
        match fault.action, fault.target:
            case "kill", "broker":
                self.rabbit.kill()
            case "restart", "broker":
                self.rabbit.start(wait=False)
            case "kill", service:
                self.suite.stop(service, signal.SIGKILL)
            case "restart", service:
                self.suite.start(service, wait=False, env=self.own_env[service])
            case "cut", service:
                return f"{self.proxies.cut(service)} connections dropped"
            case "restore", service:
                self.proxies.restore(service)
            case "burst", _:
                configure(self.suite, "pipedrive", {"faults": {"rate_limit_burst": fault.size}})
        return ""

    def unleash(self, faults: list[Fault], started: float) -> float:
        """Applies every fault at its moment; returns when the last one was applied."""
        last = started
        for fault in faults:
            time.sleep(max(0.0, started + fault.at - time.monotonic()))
            note = self.strike(fault)
            last = time.monotonic()
            self.done.append((last - started, fault, note))
        return last


def run_under_faults(plan: Plan, label: str, rabbit: RabbitNode, tmp_path: Path) -> None:
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    faults = fault_schedule(plan, rng)
    batches = workload(plan, rng)
    print(f"{label}: seed {seed} (FAULTS_SEED={seed} replays this run)")
    began = time.monotonic()
    run = Run(plan, rabbit, tmp_path / "logs", seed)
    try:
        run.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="workload") as pool:
            feeding = pool.submit(run.feed, batches, started)
            last_fault = run.unleash(faults, started)
            rabbit.wait_ready()
            feeding.result()
        suite = run.suite
        assert len(run.owners) == plan.gists

        converged = wait_converged(suite, run.owners, plan.converge_within)
        convergence = time.monotonic() - last_fault
        for name in SERVICES:
            process = suite.processes[name]
            assert process.running, f"{name} died:\n{suite.tail(name)}"
            suite.wait_ready(process, 30)

        # Nothing left in flight could still add a duplicate: the writer is idle, Pipedrive
        # unchanged, and no message was given up on.
        wait_quiet(suite)
        final = audit(pipedrive_state(suite), run.owners)
        assert final.converged, final.summary()
        assert final.activities == converged.activities == plan.gists
        letters = dead_letters(suite)
        assert letters == [], [(d.type, d.headers.get("x-dead-reason")) for d in letters]

        # The faults were real: the simulators answered them, the cuts cut connections.
        pipedrive = Counter[str]()
        for outcomes in requests_made(suite, "pipedrive").values():
            pipedrive.update(outcomes)
        github = Counter[str]()
        for outcomes in requests_made(suite, "github").values():
            github.update(outcomes)
        assert pipedrive["500"] > 0 and pipedrive["429"] > 0, pipedrive
        assert github["500"] > 0 and github["cancelled"] + github["504"] > 0, github
        dropped = sum(proxy.dropped for proxy in run.proxies.proxies.values())
        assert dropped > 0

        kinds = Counter(
            f"{f.target} kills" if f.target == "broker" else f"{f.action}s"
            for _, f, _ in run.done
            if f.action in ("kill", "cut", "burst")
        )
        tally = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        report = (
            f"{label}: {plan.gists} gists over {plan.users} users, seed {seed}: "
            f"{sum(kinds.values())} faults ({tally}"
            f"; {dropped} connections cut; Pipedrive 5xx {pipedrive['500']}, 429 "
            f"{pipedrive['429']}; GitHub 5xx {github['500']}, hangs "
            f"{github['cancelled'] + github['504']}); last fault at "
            f"+{last_fault - started:.1f} s; converged {convergence:.1f} s after it; "
            f"{time.monotonic() - began:.0f} s in all"
        )
        print(report)
        REPORTS.append(report)
    except BaseException:
        print("faults applied:")
        for at, fault, note in run.done:
            print(f"  +{at:6.2f} s {fault.action} {fault.target} {fault.size or ''} {note}")
        print(logs(run.suite))
        raise
    finally:
        run.stop()


@pytest.mark.faults
def test_every_gist_exactly_once_under_faults(rabbit: RabbitNode, tmp_path: Path) -> None:
    run_under_faults(SHORT, "short fault run", rabbit, tmp_path)


@pytest.mark.faults_long
def test_every_gist_exactly_once_under_faults_long(rabbit: RabbitNode, tmp_path: Path) -> None:
    run_under_faults(LONG, "long fault run", rabbit, tmp_path)
