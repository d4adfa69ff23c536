"""`gistsync deadletters list|replay|discard` over `gistsync.deadletters`.

Exit codes: 0 done; 1 some ids were not found or could not be replayed (the rest were done);
2 bad usage or settings; 3 the broker could not be reached or did not confirm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict

import aiormq

from gistsync.deadletters import (
    BrokerUnavailable,
    DeadLetter,
    discard_dead_letters,
    list_dead_letters,
    replay_dead_letters,
)
from gistsync.settings import CommonSettings
from gistsync_cli.config import load_for
from gistsync_cli.output import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, Output

PROG = "gistsync deadletters"


def _table(letters: Sequence[DeadLetter], output: Output) -> None:
    columns = ("ID", "TYPE", "QUEUE", "FIRST SEEN", "REASON")
    rows = [(d.id, d.type, d.queue, d.first_seen or "-", d.reason) for d in letters]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns[:-1])]
    for row in (columns, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        output.say("  ".join([*cells, row[-1]]))


async def _run(args: argparse.Namespace, url: str, prefix: str, output: Output) -> int:
    if args.action == "list":
        letters = await list_dead_letters(url, prefix)
        if args.json:
            for letter in letters:
                output.say(json.dumps(asdict(letter)))
        else:
            _table(letters, output)
            output.warn(f"{len(letters)} dead letter(s) in {prefix}.dead_letters")
        return EXIT_OK
    ids = None if args.all else args.ids
    if args.action == "discard":
        dropped = await discard_dead_letters(url, prefix, ids)
        for discarded in dropped.discarded:
            output.say(f"discarded {discarded}")
        for unknown in dropped.unknown:
            output.warn(f"no dead letter with id {unknown}")
        output.warn(f"{len(dropped.discarded)} dead letter(s) discarded from {prefix}.dead_letters")
        return dropped.exit_code
    report = await replay_dead_letters(url, prefix, ids)
    for replayed in report.replayed:
        output.say(f"replayed {replayed}")
    for unknown in report.unknown:
        output.warn(f"no dead letter with id {unknown}")
    for failed, why in report.failed.items():
        output.warn(f"not replayed {failed}: {why}")
    return report.exit_code


def deadletters(args: argparse.Namespace, output: Output) -> int:
    if args.action == "discard" and args.all and not args.yes:
        output.warn(f"{PROG}: discard --all removes every dead letter for good: add --yes")
        return EXIT_USAGE
    settings = load_for(CommonSettings, PROG, output)
    if settings is None:
        return EXIT_USAGE
    url = settings.amqp_url.get_secret_value()
    try:
        return asyncio.run(_run(args, url, settings.amqp_prefix, output))
    except BrokerUnavailable as exc:
        output.warn(f"{PROG}: {exc}")
        return EXIT_UNREACHABLE
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        # The connection went away midway: whatever was not acked stays dead-lettered.
        output.warn(f"{PROG}: lost the broker: {exc!r}")
        return EXIT_UNREACHABLE
