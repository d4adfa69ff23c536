"""`gistsync check`: is this deployment able to run? Each service's settings load, the broker
answers, and each API accepts its token, at the cheapest call it has:

- GitHub: `GET /rate_limit`, which GitHub does not count against the rate limit.
- Pipedrive: `GET /organizations?limit=1` (API v2, 10 tokens of the daily budget: a Lite
  company has 30,000). The v2 calls at 1 token need the id of a record we may not have, and
  the API has no v2 call for the token's own user.

One line per check; the exit code is 0 only when every check passed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
import httpx

from gistsync.settings import CommonSettings, PollerSettings, WriterSettings, secrets_dir
from gistsync.transport.connection import CONNECTION_ERRORS, broker_address
from gistsync_cli.config import BadSettings, load, settings_class
from gistsync_cli.output import EXIT_FAILED, EXIT_OK, Output, reason

GITHUB_API_VERSION = "2022-11-28"
USER_AGENT = "gistsync-check"


@dataclass(frozen=True)
class Result:
    check: str
    ok: bool
    detail: str


def settings_files() -> Result:
    """Where settings files would be read from: said, never a failure (most runs have none)."""
    directory = secrets_dir()
    if not directory.is_dir():
        return Result("settings files", True, f"{directory}: none (environment only)")
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    listed = ", ".join(names) if names else "empty"
    return Result("settings files", True, f"{directory}: {listed}")


def load_settings(service: str) -> tuple[Result, CommonSettings | None]:
    try:
        settings = load(settings_class(service))
    except BadSettings as exc:
        return Result(f"settings {service}", False, str(exc)), None
    return Result(f"settings {service}", True, "valid"), settings


async def check_broker(settings: CommonSettings) -> Result:
    url = settings.amqp_url.get_secret_value()
    where = f"{broker_address(url)} (prefix {settings.amqp_prefix})"
    try:
        connection = await aio_pika.connect(url, timeout=settings.request_timeout_seconds)
    except CONNECTION_ERRORS as exc:
        return Result("broker", False, f"{where}: {reason(exc)}")
    await connection.close()
    return Result("broker", True, where)


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return ""


async def _get(
    name: str,
    url: str,
    headers: dict[str, str],
    timeout: float,
    accepted: Callable[[httpx.Response], str],
    params: dict[str, Any] | None = None,
) -> Result:
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            response = await http.get(url, headers=headers, params=params)
    except httpx.HTTPError as exc:
        return Result(name, False, f"{url}: unreachable ({type(exc).__name__})")
    if response.status_code == 200:
        return Result(name, True, f"{url}: token accepted{accepted(response)}")
    message = _api_message(response)
    if response.status_code == 401:
        return Result(name, False, f"{url}: token refused (HTTP 401 {message})".rstrip())
    return Result(name, False, f"{url}: HTTP {response.status_code} {message}".rstrip())


def _github_budget(response: httpx.Response) -> str:
    try:
        rate = response.json()["resources"]["core"]
        return f" ({rate['remaining']} of {rate['limit']} requests left this hour)"
    except (ValueError, KeyError, TypeError):
        return ""


def _pipedrive_budget(response: httpx.Response) -> str:
    left = response.headers.get("x-daily-requests-left")
    return f" ({left} tokens left today)" if left else ""


async def check_github(settings: PollerSettings) -> Result:
    url = str(settings.github_api_url).rstrip("/") + "/rate_limit"
    headers = {
        "Authorization": f"Bearer {settings.api_token_github.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }
    timeout = settings.github_timeout_seconds
    return await _get("github", url, headers, timeout, _github_budget)


async def check_pipedrive(settings: WriterSettings) -> Result:
    url = str(settings.pipedrive_api_url).rstrip("/") + "/organizations"
    headers = {
        "x-api-token": settings.api_token_pipedrive.get_secret_value(),
        "accept": "application/json",
        "user-agent": USER_AGENT,
    }
    timeout = settings.pipedrive_timeout_seconds
    return await _get("pipedrive", url, headers, timeout, _pipedrive_budget, {"limit": 1})


def _not_checked(name: str, service: str) -> Result:
    return Result(name, False, f"not checked: settings {service} invalid")


async def run_checks(services: Sequence[str], output: Output) -> list[Result]:
    results = [settings_files()]
    loaded: dict[str, CommonSettings] = {}
    for service in services:
        result, settings = load_settings(service)
        results.append(result)
        if settings is not None:
            output.hide(settings.secrets())
            loaded[service] = settings
    common = next(iter(loaded.values()), None)
    if common is None:
        try:
            common = load(CommonSettings)
        except BadSettings as exc:
            results.append(Result("broker", False, f"not checked: {exc}"))
    if common is not None:
        output.hide(common.secrets())
        results.append(await check_broker(common))
    if "github_poller" in services:
        poller = loaded.get("github_poller")
        if isinstance(poller, PollerSettings):
            results.append(await check_github(poller))
        else:
            results.append(_not_checked("github", "github_poller"))
    if "pipedrive_writer" in services:
        writer = loaded.get("pipedrive_writer")
        if isinstance(writer, WriterSettings):
            results.append(await check_pipedrive(writer))
        else:
            results.append(_not_checked("pipedrive", "pipedrive_writer"))
    return results


def check(services: Sequence[str], as_json: bool, output: Output) -> int:
    results = asyncio.run(run_checks(services, output))
    for result in results:
        if as_json:
            # Masked before encoding: JSON may spell a secret differently.
            fields = {
                k: output.mask(v) if isinstance(v, str) else v for k, v in asdict(result).items()
            }
            output.say(json.dumps(fields))
        else:
            output.say(f"{'ok' if result.ok else 'FAIL':<4}  {result.check}: {result.detail}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
