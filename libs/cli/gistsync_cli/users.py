"""`gistsync users list|add|remove`: the tracked users, through the broker, with the messages
and the steps the gateway takes (`gateway.bus.BrokerServices`, `gateway.actions`): a user is
added under GitHub's spelling of the login, once, and only when GitHub knows them."""

from __future__ import annotations

import asyncio
import json
import uuid

from gateway.actions import Tracking, track_user, untrack_user
from gateway.bus import BrokerServices
from gateway.settings import Settings
from gistsync.broker import Broker
from gistsync.contracts import LOGIN_PATTERN
from gistsync.errors import PublishError, RemoteError, RequestTimeout
from gistsync.transport.connection import CONNECTION_ERRORS, broker_address
from gistsync_cli.config import load_for
from gistsync_cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Output,
    reason,
)

NAME = "gistsync-cli"


async def _list(services: BrokerServices, as_json: bool, output: Output) -> int:
    users = await services.tracked_users(cid=_cid())
    if as_json:
        for user in users:
            output.say(json.dumps({"login": user.login, "unseen": user.unseen}))
        return EXIT_OK
    width = max([len("LOGIN"), *(len(u.login) for u in users)])
    output.say(f"{'LOGIN':<{width}}  UNSEEN")
    for user in sorted(users, key=lambda u: u.login.casefold()):
        output.say(f"{user.login:<{width}}  {user.unseen}")
    output.warn(f"{len(users)} tracked user(s)")
    return EXIT_OK


async def _add(services: BrokerServices, login: str, output: Output) -> int:
    result = await track_user(services, login, cid=_cid())
    if result.outcome is Tracking.NO_SUCH_USER:
        output.warn(f"no GitHub user {login}")
        return EXIT_FAILED
    if result.outcome is Tracking.ALREADY:
        output.say(f"already tracked: {result.login}")
    else:
        output.say(f"tracking {result.login}")
    return EXIT_OK


async def _remove(services: BrokerServices, login: str, output: Output) -> int:
    untracked = await untrack_user(services, login, cid=_cid())
    if untracked is None:
        output.warn(f"not tracked: {login}")
        return EXIT_FAILED
    output.say(f"no longer tracking {untracked}")
    return EXIT_OK


def _cid() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


async def _run(
    settings: Settings, action: str, login: str | None, as_json: bool, output: Output
) -> int:
    broker = Broker.from_settings(settings, NAME)
    address = broker_address(settings.amqp_url.get_secret_value())
    try:
        try:
            # One try: an operator wants to hear now that the broker is not there.
            await broker.connect(retry_for=0)
        except CONNECTION_ERRORS as exc:
            output.warn(f"gistsync users: cannot reach the broker {address}: {reason(exc)}")
            return EXIT_UNREACHABLE
        services = BrokerServices(broker, settings)
        if action == "list":
            return await _list(services, as_json, output)
        assert login is not None
        if action == "add":
            return await _add(services, login, output)
        return await _remove(services, login, output)
    except RequestTimeout as exc:
        output.warn(
            f"gistsync users: {exc}: are github_poller and pipedrive_writer running "
            f"on {address} with the prefix {settings.amqp_prefix}?"
        )
        return EXIT_UNREACHABLE
    except PublishError as exc:
        output.warn(f"gistsync users: the broker did not take the command: {exc}")
        return EXIT_UNREACHABLE
    except RemoteError as exc:
        output.warn(f"gistsync users: refused: {exc}")
        return EXIT_FAILED
    finally:
        await broker.close(grace=1)


def users(action: str, login: str | None, as_json: bool, output: Output) -> int:
    if login is not None and not LOGIN_PATTERN.fullmatch(login):
        output.warn(f"gistsync users: invalid login {login!r}: 1 to 39 letters, digits or hyphens")
        return EXIT_USAGE
    settings = load_for(Settings, "gistsync users", output)
    if settings is None:
        return EXIT_USAGE
    return asyncio.run(_run(settings, action, login, as_json, output))
