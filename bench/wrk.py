"""HTTP load with `wrk` (the Debian package; installed here when missing, the way .ci/run
installs prometheus), and its report read back."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

CONNECTIONS = 50
THREADS = 2
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx/3xx answers plus socket errors


def ensure_wrk() -> str:
    """The path of `wrk`, installing the package if needed; RuntimeError says why not."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is missing; install it: sudo apt-get install -y wrk")
    print("installing wrk (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env
    )
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk did not install")
    return found


async def load(wrk: str, url: str, seconds: float) -> Load:
    process = await asyncio.create_subprocess_exec(
        wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.decode(errors='replace')}")
    return parse(out.decode())


def parse(report: str) -> Load:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, report, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r} in the wrk report:\n{report}")
        return match

    def latency(percent: str) -> float:
        match = find(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$")
        return float(match.group(1)) * _UNITS[match.group(2)]

    bad = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    if non_2xx:
        bad += int(non_2xx.group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    if errors:
        bad += sum(int(n) for n in errors.groups())
    return Load(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        bad=bad,
    )
