"""`make run` (sandbox.launch) gives each process only its own secret, as compose does: the
gateway holds no API token, the poller no Pipedrive token, a simulator no broker password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.launch import SERVICES, Suite, own_env, sandbox_env
from tests.conftest import free_port, need

SECRETS = {
    "API_TOKEN_GITHUB": "ghp_test_secret_github",
    "API_TOKEN_PIPEDRIVE": "pd_test_secret_pipedrive",
    "GATEWAY_API_KEY": "gateway-test-key-0123456789",
    "GATEWAY_SESSION_SECRET": "gateway-session-secret-0123456789",
    "SANDBOX_GITHUB_TOKEN": "ghp_test_secret_github",
    "SANDBOX_PIPEDRIVE_TOKEN": "pd_test_secret_pipedrive",
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
}
OWN = {
    "gateway": {"GATEWAY_API_KEY", "GATEWAY_SESSION_SECRET", "AMQP_URL"},
    "github_poller": {"API_TOKEN_GITHUB", "AMQP_URL"},
    "pipedrive_writer": {"API_TOKEN_PIPEDRIVE", "AMQP_URL"},
    "sandbox": {"SANDBOX_GITHUB_TOKEN", "SANDBOX_PIPEDRIVE_TOKEN"},
}


@pytest.mark.parametrize("name", [*SERVICES, "sandbox"])
def test_each_process_gets_only_its_own_secrets(name: str) -> None:
    env = own_env(name, {**SECRETS, "LOG_LEVEL": "INFO", "PATH": "/bin"})
    assert set(env) & set(SECRETS) == OWN[name]
    assert env["LOG_LEVEL"] == "INFO" and env["PATH"] == "/bin"


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


@pytest.mark.processes
def test_started_processes_hold_only_their_own_secrets(
    amqp_url: str, prefix: str, tmp_path: Path
) -> None:
    if not Path("/proc/self/environ").exists():
        need("/proc, to read a process's environment (Linux)")
    env = sandbox_env(os.environ, free_port(), free_port())
    env.update(
        AMQP_URL=amqp_url,
        AMQP_PREFIX=prefix,
        PARTITIONS="2",
        GATEWAY_PORT=str(free_port()),
        GATEWAY_OPS_PORT=str(free_port()),
        GATEWAY_API_KEY=SECRETS["GATEWAY_API_KEY"],
    )
    suite = Suite(env, tmp_path)
    try:
        for name in ("sandbox", "gateway"):
            process = suite.start(name)
            held = environ_of(process.popen.pid)
            assert set(held) & set(SECRETS) == OWN[name] & set(env), name
    finally:
        suite.stop_all()
