"""State every simulator has: live config, counters, fault dice; and how it resets."""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import ValidationError

from sandbox.config import SimulatorConfig, merge_patch
from sandbox.faults import Fault, FaultInjector
from sandbox.stats import Stats

ConfigT = TypeVar("ConfigT", bound=SimulatorConfig)


class InvalidConfig(ValueError):
    """A config patch that does not validate; the message lists every problem."""


class SimulatorState(abc.ABC, Generic[ConfigT]):
    def __init__(self, config: ConfigT) -> None:
        # Kept pristine so that POST /_sandbox/reset returns to the start-up settings.
        self._initial_config = config.model_copy(deep=True)
        self.config = config
        self.stats = Stats()
        self.injector = FaultInjector(config.faults.seed)

    def patch_config(self, patch: dict[str, Any]) -> ConfigT:
        merged = merge_patch(self.config.model_dump(mode="json"), patch)
        try:
            self.config = type(self.config).model_validate(merged)
        except ValidationError as exc:
            raise InvalidConfig(_describe(exc)) from exc
        return self.config

    def reset(self) -> None:
        """Back to start: data, counters, limit windows, faults."""
        self.config = self._initial_config.model_copy(deep=True)
        self.stats.reset()
        self.injector.reseed(self.config.faults.seed)
        self.reset_data()

    @abc.abstractmethod
    def reset_data(self) -> None:
        """Forget stored objects and rate-limit windows."""

    @abc.abstractmethod
    def fault_response(self, fault: Fault) -> web.Response:
        """The vendor-shaped reply for an injected error, timeout or rate-limit fault."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
