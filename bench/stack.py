"""One isolated suite per measurement: the simulators and the services as real processes
(`sandbox.launch.Suite`), free ports, a broker prefix of its own; and, however it ends (Ctrl-C
included), every process stopped and every queue and exchange of the prefix deleted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import httpx

from bench.options import Options
from gistsync.broker import Topology
from gistsync.settings import CommonSettings
from sandbox.launch import Suite
from tests.suite import delete_topology, free_port, new_prefix, suite_env

SIMULATORS = "bench.simulators"
REPO = Path(__file__).resolve().parent.parent


class BenchSuite(Suite):
    """`Suite`, knowing how to probe the benchmarks' simulator process too."""

    def ready_url(self, name: str, env: Mapping[str, str] | None = None) -> str:
        if name == SIMULATORS:
            port = (env or self.env)["BENCH_CONTROL_PORT"]
            return f"http://127.0.0.1:{port}/_bench/ready"
        return super().ready_url(name, env)


@dataclass
class Stack:
    name: str
    suite: BenchSuite
    prefix: str
    profile: tuple[str, ...] = ()
    _profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, what: str) -> str:
        """Base URL of `github`, `pipedrive` (its root), `control`, or a service."""
        if what == "control":
            return f"http://127.0.0.1:{self.suite.env['BENCH_CONTROL_PORT']}"
        return self.suite.url(what)

    @property
    def topology(self) -> Topology:
        """The queues and exchanges the services declare, partitions included."""
        env = self.suite.env
        partitions = int(env.get("PARTITIONS", 0)) or CommonSettings().partitions
        return Topology(self.prefix, partitions)

    def pid(self, name: str) -> int:
        return self.suite.processes[name].popen.pid

    async def start(self, *names: str, wait: bool = True, timeout: float = 120.0) -> None:
        """Start these processes in this order; with `wait`, each must be ready first."""
        for name in names:
            self.suite.start(name, wait=False)  # a fork and exec: never blocks for long
            if name in self.profile:
                self._profilers.append(self._record(name))
            if wait:
                await self.wait_ready(name, timeout)

    async def wait_ready(self, name: str, timeout: float) -> None:
        """`Suite.wait_ready`, without blocking the event loop (nor a Ctrl-C)."""
        process = self.suite.processes[name]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if not process.running:
                    raise RuntimeError(f"{name} exited:\n{self.suite.tail(name)}")
                with suppress(httpx.HTTPError):
                    if (await http.get(process.ready_url)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{name} not ready in {timeout:g} s:\n{self.suite.tail(name)}")

    def _record(self, name: str) -> subprocess.Popen[bytes]:
        """py-spy samples the service until it stops; the profile lands beside the logs."""
        output = self.suite.log_dir / f"{name}.speedscope.json"
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--pid", str(self.pid(name)), "--rate", "100"]
        command += ["--format", "speedscope", "--output", str(output), "--nonblocking"]
        log = (self.suite.log_dir / f"{name}.py-spy.log").open("ab")
        with log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    async def stop(self) -> None:
        for profiler in self._profilers:
            if profiler.poll() is None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for name in reversed(list(self.suite.processes)):
            await asyncio.to_thread(self.suite.stop, name)
        for profiler in self._profilers:
            try:
                await asyncio.to_thread(profiler.wait, 30)
            except subprocess.TimeoutExpired:
                profiler.kill()


def stack_env(options: Options, prefix: str, overrides: Mapping[str, str]) -> dict[str, str]:
    # The simulator process imports `bench`, wherever the run was started from.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = suite_env(options.amqp_url, prefix, BENCH_CONTROL_PORT=str(free_port()), PYTHONPATH=path)
    env.update(overrides)
    return env


@asynccontextmanager
async def open_stack(
    options: Options, name: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[Stack]:
    """The simulators running, the services not yet (see `Stack.start`)."""
    prefix = new_prefix("bench")
    log_dir = options.log_dir / name
    suite = BenchSuite(stack_env(options, prefix, env or {}), log_dir)
    stack = Stack(name, suite, prefix, options.profile)
    try:
        await stack.start(SIMULATORS)
        yield stack
    finally:
        # Also on Ctrl-C (the task is cancelled once, so these awaits still run).
        await stack.stop()
        try:
            async with asyncio.timeout(60):
                await delete_topology(options.amqp_url, prefix, stack.topology.partitions)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            print(f"bench: could not delete the queues of {prefix}: {exc!r}", flush=True)
