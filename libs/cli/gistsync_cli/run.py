"""`gistsync run SERVICE`: a service's own `main()`, imported by name, so that the command
line needs none of them to be importable but the one it starts."""

from __future__ import annotations

import importlib

from gistsync_cli.config import SERVICES
from gistsync_cli.output import EXIT_OK


def run(service: str) -> int:
    if service not in SERVICES:  # argparse's choices say so first; this guards other callers
        raise ValueError(f"unknown service {service!r}")
    importlib.import_module(f"{service}.__main__").main()
    return EXIT_OK
