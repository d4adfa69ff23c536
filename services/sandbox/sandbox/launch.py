"""Runs the whole suite locally as real processes: `make run`, and the end-to-end tests.

With no API tokens in the environment it starts the simulators too and points the services
at them, and says so loudly.
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
        """Base URL of a service (its HTTP or ops port) or of a simulator."""
        setting, default = PORT_SETTINGS[name]
        return f"http://127.0.0.1:{(env or self.env).get(setting, default)}"

    def ready_url(self, name: str, env: Mapping[str, str] | None = None) -> str:
        if name == "sandbox":
            return self.url("github", env) + "/_sandbox/config"
        return self.url(name, env) + "/readyz"

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
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for name in (("sandbox",) if sandboxed else ()) + SERVICES:
            suite.start(name)
            print(f"started {name} (log: {suite.processes[name].log})", flush=True)
        gateway_port = env.get("GATEWAY_PORT", "8080")
        if sandboxed:
            print(
                BANNER.format(
                    gh=env["SANDBOX_GITHUB_PORT"],
                    pd=env["SANDBOX_PIPEDRIVE_PORT"],
                    gw=gateway_port,
                ),
                flush=True,
            )
        print(f"gistsync is up on http://localhost:{gateway_port}; Ctrl-C stops it.", flush=True)
        while not stop:
            for process in suite.processes.values():
                if not process.running:
                    print(f"{process.name} exited:\n{suite.tail(process.name)}", flush=True)
                    stop = True
            time.sleep(0.5)
    finally:
        suite.stop_all()


if __name__ == "__main__":
    main()
