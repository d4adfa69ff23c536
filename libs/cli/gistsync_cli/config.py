"""The services' own settings, loaded as each service loads them, with failures as text."""

from __future__ import annotations

import importlib
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gistsync.settings import CommonSettings, describe

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
