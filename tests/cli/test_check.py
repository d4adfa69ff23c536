"""`gistsync check` against the real simulators and broker: every check passes with the
right settings, each wrong one fails its own line (exit 1), and no secret is ever printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gistsync.settings import SECRETS_DIR_VARIABLE
from sandbox import Sandbox
from tests.cli.conftest import gistsync

WRONG_TOKEN = "wrong-token-0123456789"


def lines(out: str) -> dict[str, str]:
    """`check` output by check name: 'ok' or 'FAIL' and the rest of the line."""
    found = {}
    for line in out.splitlines():
        status, rest = line.split(maxsplit=1)
        name, _, detail = rest.partition(": ")
        found[name] = f"{status} {detail}"
    return found


async def test_every_check_passes_with_the_right_settings(
    sandbox_env: dict[str, str], sandbox: Sandbox
) -> None:
    run = await gistsync("check")
    assert run.code == 0, run.text
    checks = lines(run.out)
    assert list(checks) == [
        "settings files",
        "settings gateway",
        "settings github_poller",
        "settings pipedrive_writer",
        "broker",
        "github",
        "pipedrive",
    ]
    assert all(result.startswith("ok ") for result in checks.values()), run.out
    assert checks["broker"] == f"ok amqp://127.0.0.1:5672/ (prefix {sandbox_env['AMQP_PREFIX']})"
    limit = sandbox.github.config.limits.primary_limit
    # GET /rate_limit is free: the whole hour's budget is still there after it.
    assert checks["github"] == (
        f"ok {sandbox.github_url}/rate_limit: token accepted "
        f"({limit} of {limit} requests left this hour)"
    )
    assert checks["pipedrive"].startswith(f"ok {sandbox.pipedrive_url}/organizations: token")
    assert sandbox.pipedrive_token not in run.text and sandbox.github_token not in run.text


async def test_a_wrong_github_token_fails_its_line_and_is_never_shown(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN_GITHUB", WRONG_TOKEN)
    run = await gistsync("check")
    assert run.code == 1
    checks = lines(run.out)
    assert checks["github"].startswith("FAIL ")
    assert "token refused (HTTP 401 Bad credentials)" in checks["github"]
    assert checks["pipedrive"].startswith("ok ")
    assert WRONG_TOKEN not in run.text


async def test_a_wrong_pipedrive_token_fails_its_line(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN_PIPEDRIVE", WRONG_TOKEN)
    run = await gistsync("check")
    assert run.code == 1
    checks = lines(run.out)
    assert checks["pipedrive"].startswith("FAIL ")
    assert "token refused (HTTP 401" in checks["pipedrive"]
    assert checks["github"].startswith("ok ")
    assert WRONG_TOKEN not in run.text


async def test_an_unreachable_broker_fails_without_its_password(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:broker-password-42@127.0.0.1:1/")
    run = await gistsync("check")
    assert run.code == 1
    assert lines(run.out)["broker"].startswith("FAIL amqp://127.0.0.1:1/ (prefix ")
    assert "broker-password-42" not in run.text


async def test_a_missing_token_is_named_and_its_api_not_checked(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_TOKEN_PIPEDRIVE")
    run = await gistsync("check")
    assert run.code == 1
    checks = lines(run.out)
    assert checks["settings pipedrive_writer"] == (
        "FAIL setting API_TOKEN_PIPEDRIVE is required but not set"
    )
    assert checks["pipedrive"] == "FAIL not checked: settings pipedrive_writer invalid"
    assert checks["github"].startswith("ok ")


async def test_a_malformed_setting_is_named_without_its_value(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "short-secret")  # under 16 characters
    run = await gistsync("check")
    assert run.code == 1
    assert lines(run.out)["settings gateway"].startswith("FAIL setting GATEWAY_API_KEY is invalid")
    assert "short-secret" not in run.text


async def test_only_what_one_service_needs(sandbox_env: dict[str, str]) -> None:
    run = await gistsync("check", "--service", "gateway")
    assert run.code == 0, run.text
    assert list(lines(run.out)) == ["settings files", "settings gateway", "broker"]


async def test_tokens_from_settings_files(
    sandbox_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = Path(sandbox_env[SECRETS_DIR_VARIABLE])
    (files / "api_token_github").write_text(sandbox.github_token + "\n")
    (files / "API_TOKEN_PIPEDRIVE").write_text(sandbox.pipedrive_token)
    monkeypatch.delenv("API_TOKEN_GITHUB")
    monkeypatch.delenv("API_TOKEN_PIPEDRIVE")
    run = await gistsync("check")
    assert run.code == 0, run.text
    assert lines(run.out)["settings files"] == f"ok {files}: API_TOKEN_PIPEDRIVE, api_token_github"


async def test_as_json_lines(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN_GITHUB", WRONG_TOKEN)
    run = await gistsync("check", "--json")
    assert run.code == 1
    results = {entry["check"]: entry for entry in map(json.loads, run.out.splitlines())}
    assert results["github"]["ok"] is False
    assert results["broker"]["ok"] is True
    assert WRONG_TOKEN not in run.text


async def test_an_unreachable_api_fails_its_line(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:1")
    run = await gistsync("check")
    assert run.code == 1
    assert (
        lines(run.out)["github"] == "FAIL http://127.0.0.1:1/rate_limit: unreachable (ConnectError)"
    )
