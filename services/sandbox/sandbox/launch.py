"""Runs the whole suite locally as real processes: `make run`, and the end-to-end tests.

With no API tokens in the environment it starts the simulators too and points the services
at them, and says so loudly. `make run` supervises: a process that exits is started again
after a backoff (said in one line, with the tail of its log), the others, the simulators and
their data included, carry on; Ctrl-C (SIGINT) or SIGTERM stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

SERVICES = ("pipedrive_writer", "github_poller", "gateway")
SANDBOX_GITHUB_TOKEN = "sandbox-github-token"
SANDBOX_PIPEDRIVE_TOKEN = "sandbox-pipedrive-token"
# The setting holding each process's port, and its default (both simulators: one process).
PORT_SETTINGS = {
    "github": ("SANDBOX_GITHUB_PORT", "9001"),
    "pipedrive": ("SANDBOX_PIPEDRIVE_PORT", "9002"),
    "gateway": ("GATEWAY_PORT", "8080"),
    "github_poller": ("GITHUB_POLLER_PORT", "9101"),
    "pipedrive_writer": ("PIPEDRIVE_WRITER_PORT", "9102"),
}
# Where a service answers /metrics, /healthz and /readyz when that is not its port above.
OPS_PORT_SETTINGS = {"gateway": ("GATEWAY_OPS_PORT", "9100")}


# Each secret reaches only the processes that use it (as in docker-compose.yml): a gateway
# never holds an API token, a simulator never the broker's password.
SECRETS_OF = {
    "API_TOKEN_GITHUB": frozenset({"github_poller"}),
    "API_TOKEN_PIPEDRIVE": frozenset({"pipedrive_writer"}),
    "GATEWAY_API_KEY": frozenset({"gateway"}),
    "GATEWAY_SESSION_SECRET": frozenset({"gateway"}),
    "SANDBOX_GITHUB_TOKEN": frozenset({"sandbox"}),
    "SANDBOX_PIPEDRIVE_TOKEN": frozenset({"sandbox"}),
    "AMQP_URL": frozenset(SERVICES),
}


def own_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the secrets that belong to other processes than `name`."""
    return {k: v for k, v in env.items() if k not in SECRETS_OF or name in SECRETS_OF[k]}


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    ready_url: str

    @property
    def running(self) -> bool:
        return self.popen.poll() is None


def sandbox_env(base: Mapping[str, str], github_port: int, pipedrive_port: int) -> dict[str, str]:
    """The environment that points the services at the simulators."""
    env = dict(base)
    env.update(
        SANDBOX_GITHUB_PORT=str(github_port),
        SANDBOX_PIPEDRIVE_PORT=str(pipedrive_port),
        SANDBOX_GITHUB_TOKEN=SANDBOX_GITHUB_TOKEN,
        SANDBOX_PIPEDRIVE_TOKEN=SANDBOX_PIPEDRIVE_TOKEN,
        API_TOKEN_GITHUB=SANDBOX_GITHUB_TOKEN,
        API_TOKEN_PIPEDRIVE=SANDBOX_PIPEDRIVE_TOKEN,
        GITHUB_API_URL=f"http://127.0.0.1:{github_port}",
        PIPEDRIVE_API_URL=f"http://127.0.0.1:{pipedrive_port}/api/v2",
    )
    return env


@dataclass
class Suite:
    """Starts, probes and stops the processes of one suite; every log goes to `log_dir`."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, Process] = field(default_factory=dict)

    def url(self, name: str, env: Mapping[str, str] | None = None) -> str:
        """Base URL of a service (the gateway's public port, the others' ops port) or of a
        simulator."""
        setting, default = PORT_SETTINGS[name]
        return f"http://127.0.0.1:{(env or self.env).get(setting, default)}"

    def ops_url(self, name: str, env: Mapping[str, str] | None = None) -> str:
        """Base URL of a service's /metrics, /healthz and /readyz."""
        if name not in OPS_PORT_SETTINGS:
            return self.url(name, env)
        setting, default = OPS_PORT_SETTINGS[name]
        return f"http://127.0.0.1:{(env or self.env).get(setting, default)}"

    def ready_url(self, name: str, env: Mapping[str, str] | None = None) -> str:
        if name == "sandbox":
            return self.url("github", env) + "/_sandbox/config"
        return self.ops_url(name, env) + "/readyz"

    def start(
        self,
        name: str,
        *,
        wait: bool = True,
        timeout: float = 60.0,
        replica: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """Start `python -m name`. A `replica` of a service runs beside the others under
        its own key (`name@replica`) and log, with `env` (its ports) over the suite's."""
        key = name if replica is None else f"{name}@{replica}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{key}.log"
        environment = own_env(name, {**self.env, **(env or {})})
        out: IO[bytes] = log.open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", name], env=environment, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        process = Process(key, popen, log, self.ready_url(name, environment))
        self.processes[key] = process
        if wait:
            self.wait_ready(process, timeout)
        return process

    def wait_ready(self, process: Process, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.running:
                raise RuntimeError(f"{process.name} exited:\n{self.tail(process.name)}")
            try:
                if httpx.get(process.ready_url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{process.name} not ready in {timeout:g} s:\n{self.tail(process.name)}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal a process and wait for it; returns its exit code."""
        process = self.processes[name]
        if process.running:
            process.popen.send_signal(sig)
        try:
            return process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            return process.popen.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def tail(self, name: str, lines: int = 40) -> str:
        log = self.processes[name].log
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


BANNER = """
==============================================================================
  SANDBOX MODE: API_TOKEN_GITHUB and API_TOKEN_PIPEDRIVE are not set, so
  gistsync runs against the local GitHub and Pipedrive simulators. Nothing
  leaves this machine.

  Add a GitHub user with 3 gists, track them, read them:
    curl -X POST localhost:{gh}/_sandbox/users/octocat/gists/bulk -d '{{"count": 3}}'
    curl 'localhost:{gw}/new?user=octocat'
    curl 'localhost:{gw}/show?user=octocat'
  A new gist, then /show again within a poll interval or two:
    curl -X POST localhost:{gh}/_sandbox/users/octocat/gists \\
         -d '{{"description": "hello", "files": {{"hello.py": {{"content": "print(1)"}}}}}}'
  What is in Pipedrive: curl localhost:{pd}/_sandbox/state
==============================================================================
"""


# Backoff between restarts of one process: doubles from the first to the cap, and starts
# over once the process has stayed up for a while.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STAYED_UP_SECONDS = 60.0


@dataclass
class Supervisor:
    """Keeps every process of a suite running until told to stop."""

    suite: Suite
    delays: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)  # when each exited one restarts
    started_at: dict[str, float] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def start(self, name: str) -> None:
        process = self.suite.start(name, wait=False)
        self.started_at[name] = time.monotonic()
        print(f"started {name} (pid {process.popen.pid}, log: {process.log})", flush=True)

    def check(self) -> None:
        """Notice what exited, restart what is due."""
        now = time.monotonic()
        for name, process in list(self.suite.processes.items()):
            if name in self.due:
                if now >= self.due[name]:
                    del self.due[name]
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self.start(name)
                continue
            code = process.popen.poll()
            if code is None:
                continue
            if now - self.started_at.get(name, now) >= STAYED_UP_SECONDS:
                self.delays.pop(name, None)
            delay = self.delays.get(name, RESTART_FIRST_SECONDS)
            self.delays[name] = min(delay * 2, RESTART_MAX_SECONDS)
            self.due[name] = now + delay
            tail = self.suite.tail(name, 5)
            print(
                f"{name} exited (code {code}); restarting it in {delay:g} s. "
                f"Last lines of {process.log}:\n{tail}",
                flush=True,
            )

    def ready(self) -> bool:
        for process in self.suite.processes.values():
            try:
                if httpx.get(process.ready_url, timeout=1).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True


def main() -> None:
    env = dict(os.environ)
    sandboxed = not (env.get("API_TOKEN_GITHUB") and env.get("API_TOKEN_PIPEDRIVE"))
    if sandboxed:
        env = sandbox_env(
            env,
            int(env.get("SANDBOX_GITHUB_PORT", "9001")),
            int(env.get("SANDBOX_PIPEDRIVE_PORT", "9002")),
        )
    suite = Suite(env, Path(env.get("GISTSYNC_LOG_DIR", ".run")))
    supervisor = Supervisor(suite)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    gateway_port = env.get("GATEWAY_PORT", "8080")
    try:
        # Nothing here waits for a process: a broker that is late must not block Ctrl-C.
        for name in (("sandbox",) if sandboxed else ()) + SERVICES:
            supervisor.start(name)
        announced = False
        waiting_since = time.monotonic()
        while not stop:
            supervisor.check()
            if not announced and supervisor.ready():
                announced = True
                if sandboxed:
                    banner = BANNER.format(
                        gh=env["SANDBOX_GITHUB_PORT"],
                        pd=env["SANDBOX_PIPEDRIVE_PORT"],
                        gw=gateway_port,
                    )
                    print(banner, flush=True)
                print(
                    f"gistsync is up on http://localhost:{gateway_port}; Ctrl-C stops it.",
                    flush=True,
                )
            elif not announced and time.monotonic() - waiting_since > 30:
                waiting_since = time.monotonic()
                print("not ready yet (is the broker up?); see the logs, still waiting", flush=True)
            time.sleep(0.5)
    finally:
        print("stopping every process", flush=True)
        suite.stop_all()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
