"""The command line's shape: every command and its usage errors (exit 2), without a broker."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from gistsync_cli.main import main
from gistsync_cli.output import Output
from gistsync_cli.run import run
from tests.cli.conftest import gistsync


async def test_help_lists_every_command() -> None:
    result = await gistsync("--help")
    assert result.code == 0
    for command in ("check", "users", "deadletters", "run"):
        assert command in result.out


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("purge",),
        ("users",),
        ("users", "add"),
        ("users", "promote", "x"),
        ("deadletters", "replay"),
        ("deadletters", "replay", "--all", "--id", "x"),
        ("deadletters", "discard", "--id", "x", "--all"),
        ("run", "sandbox"),
        ("check", "--service", "nginx"),
    ],
)
async def test_bad_usage_exits_2_with_the_usage(args: tuple[str, ...]) -> None:
    result = await gistsync(*args)
    assert result.code == 2
    assert result.err.startswith("usage: gistsync")
    assert result.out == ""


def test_run_refuses_a_name_that_is_not_a_service() -> None:
    with pytest.raises(ValueError, match="unknown service 'os'"):
        run("os")


def test_main_is_the_console_scripts_entry_point() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"gistsync": "gistsync_cli.main:main"}
    assert main.__module__ == "gistsync_cli.main"


def test_output_masks_every_secret_it_was_given() -> None:
    out, err = io.StringIO(), io.StringIO()
    output = Output(out, err)
    output.hide(["tok-123456", "abc", ""])  # under 4 characters: would mask ordinary words
    output.say("sent tok-123456 to abc")
    output.warn("tok-123456")
    assert out.getvalue() == "sent *** to abc\n"
    assert err.getvalue() == "***\n"
