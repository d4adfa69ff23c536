"""The services' own settings, loaded as each service loads them, with failures as text."""

from __future__ import annotations

import importlib
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gistsync.settings import CommonSettings, describe
from gistsync_cli.output import Output

SERVICES = ("gateway", "github_poller", "pipedrive_writer")
S = TypeVar("S", bound=CommonSettings)


class BadSettings(Exception):
    """A setting is missing or malformed; the message names it, never its value."""


def settings_class(service: str) -> type[CommonSettings]:
    """`<service>.settings.Settings`, imported by name: the CLI depends on no service."""
    found = getattr(importlib.import_module(f"{service}.settings"), "Settings", None)
    if not (isinstance(found, type) and issubclass(found, CommonSettings)):
        raise TypeError(f"{service}.settings.Settings is not a CommonSettings")
    return found


def load(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        raise BadSettings(describe(exc)) from None
    except SettingsError as exc:  # e.g. a settings file that is not valid JSON for a list
        raise BadSettings(f"settings could not be read: {type(exc).__name__}") from None


def load_for(cls: type[S], prog: str, output: Output) -> S | None:
    """The settings a command runs with, their secrets hidden from everything it prints;
    None (and why, on stderr) when they do not load."""
    try:
        settings = load(cls)
    except BadSettings as exc:
        output.warn(f"{prog}: {exc}")
        return None
    output.hide(settings.secrets())
    return settings
