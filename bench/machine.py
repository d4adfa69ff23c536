"""The machine a run measured, in one line."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def describe(broker_version: str) -> str:
    memory = _memory_gib()
    parts = [
        f"{_cpu_model()}, {os.cpu_count()} cores",
        f"{memory:.0f} GiB RAM" if memory else "",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"RabbitMQ {broker_version}",
    ]
    return ", ".join(part for part in parts if part)
