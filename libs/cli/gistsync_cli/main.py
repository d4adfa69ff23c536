"""The `gistsync` command: parses the arguments and hands each subcommand to its module.

    gistsync check [--service NAME ...] [--json]
    gistsync users list [--json] | add LOGIN | remove LOGIN
    gistsync deadletters list [--json] | replay (--id ID ... | --all)
                         | discard (--id ID ... | --all --yes)
    gistsync run gateway|github_poller|pipedrive_writer

Settings come from the environment and from files, as for the services (`gistsync.settings`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Sequence
from typing import TextIO

from gistsync_cli.config import SERVICES
from gistsync_cli.output import EXIT_USAGE, Output


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="gistsync", description="Check, steer and start a gistsync deployment."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check", help="settings valid, broker reachable, API tokens accepted"
    )
    check.add_argument(
        "--service",
        dest="services",
        action="append",
        choices=SERVICES,
        help="check only what this service needs (repeatable; default: all)",
    )
    check.add_argument("--json", action="store_true", help="one JSON object per line")

    users = commands.add_parser("users", help="the tracked GitHub users")
    user_actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = user_actions.add_parser("list", help="every tracked user and their unseen gists")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for action, text in (("add", "start tracking a GitHub user"), ("remove", "stop tracking")):
        user_actions.add_parser(action, help=text).add_argument("login", metavar="LOGIN")

    dead = commands.add_parser("deadletters", help="the messages that could not be handled")
    dead_actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = dead_actions.add_parser("list", help="show every dead letter; removes nothing")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for action, text in (
        ("replay", "publish dead letters again, then remove them"),
        ("discard", "remove dead letters for good"),
    ):
        sub = dead_actions.add_parser(action, help=text)
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", dest="ids", action="append", metavar="ID", help="repeatable")
        which.add_argument("--all", action="store_true", help="every dead letter")
        if action == "discard":
            sub.add_argument("--yes", action="store_true", help="confirms --all")

    start = commands.add_parser("run", help="start a service (stops on SIGTERM or SIGINT)")
    start.add_argument("service", choices=SERVICES)
    return top


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    output = Output()
    output.out = out or output.out
    output.err = err or output.err
    try:
        # argparse writes to sys.stdout and sys.stderr itself: --help, usage errors.
        with contextlib.redirect_stdout(output.out), contextlib.redirect_stderr(output.err):
            args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad usage (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "run":
        from gistsync_cli.run import run

        return run(args.service)
    # The client libraries would print their own copy of every connection error, unmasked;
    # each command reports what went wrong itself.
    logging.getLogger().addHandler(logging.NullHandler())
    if args.command == "check":
        from gistsync_cli.check import check

        return check(args.services or SERVICES, args.json, output)
    if args.command == "users":
        from gistsync_cli.users import users

        login = getattr(args, "login", None)
        return users(args.action, login, getattr(args, "json", False), output)
    from gistsync_cli.deadletters import deadletters

    return deadletters(args, output)
