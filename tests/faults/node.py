"""A private RabbitMQ node for the fault suite.

It listens on ports of its own and keeps its data in a temporary directory, so the suite can
SIGKILL it and start it again on the same data (durable queues survive) without ever touching
the shared broker on 127.0.0.1:5672.

Every process the suite starts (the node, the simulators, the services) carries the pid of the
pytest that owns it: the node in its command line, the others in their environment. A run that
was itself killed leaves them behind; `sweep_stale` kills those whose owner is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.suite import free_port

OWNER_ENV = "GISTSYNC_FAULTS_OWNER"
# An Erlang flag the VM ignores, so that the node's command line names its owner.
OWNER_FLAG = "-gistsync_faults_owner"
# The Debian package's own script: /usr/sbin/rabbitmq-server re-runs it through `su rabbitmq`,
# which would put a process we do not own between us and the node.
PACKAGE_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def server_script() -> str | None:
    for candidate in (PACKAGE_SCRIPT, shutil.which("rabbitmq-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def amqp_answers(port: int) -> bool:
    """The AMQP handshake, not just an open port: a booting node accepts before it serves."""
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.settimeout(2)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"  # a method frame: Connection.Start
    except OSError:
        return False


@dataclass
class RabbitNode:
    script: str
    base: Path
    name: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _environment(self) -> dict[str, str]:
        self.base.mkdir(parents=True, exist_ok=True)
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[].\n")  # no management, no prometheus: nothing on shared ports
        config = self.base / "rabbitmq.conf"
        # Replaces /etc/rabbitmq/rabbitmq.conf, which pins the listener to 5672.
        config.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=f"{self.name}@localhost",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"{OWNER_FLAG} {os.getpid()}",
        )
        env[OWNER_ENV] = str(os.getpid())
        return env

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        assert not self.running, "the node is already running"
        with (self.base / "node.log").open("ab") as log:
            self.popen = subprocess.Popen(
                [self.script],
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so one SIGKILL takes the script and the beam.
                start_new_session=True,
            )
        self.starts += 1
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not amqp_answers(self.port):
            if not self.running:
                raise RuntimeError(f"RabbitMQ node {self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ node {self.name} not up in {timeout:g} s")
            time.sleep(0.1)

    def ensure_running(self) -> None:
        """Up, whatever an earlier test did to it (one that failed may have left it down)."""
        if not self.running:
            self.start()
        self.wait_ready()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no chance to tell the clients."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def tail(self, lines: int = 30) -> str:
        log = self.base / "node.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# --- leftovers of killed runs --------------------------------------------------------------


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pytest" in cmdline


def _owner_of(pid: int) -> int | None:
    """The owning pytest's pid: from the command line (nodes) or the environment (the rest)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if OWNER_FLAG.encode() in args:
            return int(args[args.index(OWNER_FLAG.encode()) + 1])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    prefix = f"{OWNER_ENV}=".encode()
    for entry in environ:
        if entry.startswith(prefix):
            try:
                return int(entry[len(prefix) :])
            except ValueError:
                return None
    return None


def sweep_stale() -> list[int]:
    """Kill the nodes and service processes of fault runs whose pytest is gone."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        owner = _owner_of(int(entry.name))
        if owner is None or _owner_alive(owner):
            continue
        try:
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
        except OSError:
            pass
    return killed
