"""Metrics more than one service exports, under one name each: the job label (Prometheus'
scrape job, one per service) tells the services apart."""

from __future__ import annotations

import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

from prometheus_client import Gauge

# Baked into the image from its REVISION build argument (Dockerfile).
REVISION_VARIABLE = "GISTSYNC_REVISION"
UNKNOWN = "unknown"
# This file in a checkout: <root>/libs/common/gistsync/metrics.py.
CHECKOUT = Path(__file__).resolve().parents[3]
COMMIT = re.compile(r"[0-9a-f]{7,40}")

BUILD_INFO = Gauge(
    "gistsync_build_info",
    "Always 1: the version of the running code and the revision it was built from.",
    ["version", "revision"],
)
TRACKED_USERS = Gauge(
    "gistsync_tracked_users",
    "Users this process tracks: the poller those of the partitions it polls, the writer those "
    "in its cache.",
)


def version() -> str:
    try:
        return metadata.version("gistsync")
    except metadata.PackageNotFoundError:
        return UNKNOWN


def revision() -> str:
    """The image's revision; in a git checkout (`make run`) its HEAD; else unknown."""
    baked = os.environ.get(REVISION_VARIABLE, "").strip()
    if baked:
        return baked[:64]
    return checkout_revision() or UNKNOWN


def checkout_revision() -> str | None:
    # Only our own checkout: an installed package may sit inside some other repository.
    if not (CHECKOUT / ".git").exists() or not (CHECKOUT / "libs" / "common").is_dir():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(CHECKOUT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    found = result.stdout.strip()
    return found if result.returncode == 0 and COMMIT.fullmatch(found) else None


def record_build_info() -> None:
    """Sets gistsync_build_info once per process; later calls change nothing."""
    if not any(family.samples for family in BUILD_INFO.collect()):
        BUILD_INFO.labels(version(), revision()).set(1)
