"""`python -m bench [--quick] [--only NAME] [--runs N] [--no-write]`: see bench/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import aiormq
import httpx

from bench import baseline, machine, report
from bench.context import Bench
from bench.figures import Figure, runs
from bench.options import FULL, QUICK, Options
from bench.scenarios import SCENARIOS
from sandbox.launch import SERVICES

REPO = Path(__file__).resolve().parent.parent
LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (~3 min)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this measurement (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--runs", type=int, help="repetitions of the repeatable figures")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone"
    )
    parser.add_argument("--github-latency-ms", type=float, default=80.0)
    parser.add_argument("--pipedrive-latency-ms", type=float, default=120.0)
    parser.add_argument(
        "--profile",
        action="append",
        choices=SERVICES,
        default=[],
        metavar="SERVICE",
        help="record this service with py-spy (speedscope files beside the logs)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs is not None:
        sizes = dataclasses.replace(sizes, runs=max(1, args.runs))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Options(
        sizes=sizes,
        quick=args.quick,
        only=tuple(args.only or ()),
        write=not args.no_write,
        github_latency_ms=args.github_latency_ms,
        pipedrive_latency_ms=args.pipedrive_latency_ms,
        amqp_url=os.environ.get("AMQP_URL", LOCAL_BROKER),
        log_dir=REPO / ".run" / "bench" / stamp,
        profile=tuple(args.profile),
    )


async def measure(options: Options) -> tuple[Bench, list[Figure], list[str]]:
    """Every selected measurement; one that fails is reported and the others still run."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    figures: list[Figure] = []
    failed: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        bench = Bench(options, http)
        try:
            figures += await baseline.run(bench)  # always: the ratios are read against it
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
            message = f"bench: RabbitMQ at {options.amqp_url} does not answer: {exc!r}"
            raise SystemExit(message) from None
        for name, scenario in SCENARIOS.items():
            if options.only and name not in options.only:
                continue
            started = time.monotonic()
            print(f"-- {name} ...", flush=True)
            try:
                figures += await scenario(bench)
            except Exception as exc:
                traceback.print_exc()
                failed.append(f"{name}: {exc!r}"[:300])
            print(f"-- {name}: {time.monotonic() - started:.0f} s", flush=True)
    return bench, figures, failed


def header(options: Options, bench: Bench, took: float, failed: list[str]) -> str:
    command = "python -m bench" + (" --quick" if options.quick else "")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} by `{command}` in {took / 60:.1f} min on "
        f"{machine.describe(bench.baseline.broker_version)}.",
        f"Simulated latency: GitHub {options.github_latency_ms:g} ms, Pipedrive "
        f"{options.pipedrive_latency_ms:g} ms; repeatable figures: {runs(options.runs)} each "
        "(median, spread min-max).",
    ]
    lines += [f"**Failed:** {failure}" for failure in failed]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    options = parse(argv)
    print(f"bench: logs in {options.log_dir}", flush=True)
    started = time.monotonic()
    try:
        bench, figures, failed = asyncio.run(measure(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    text = header(options, bench, time.monotonic() - started, failed)
    print(f"\n{text}\n\n{report.table(figures)}\n", flush=True)
    if options.write and not options.only:
        report.write(REPO / "BENCHMARKS.md", text, figures)
        print("bench: table written to BENCHMARKS.md")
    elif options.only:
        print("bench: --only: BENCHMARKS.md left alone (it holds whole runs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
