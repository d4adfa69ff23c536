"""Settings from the environment (twelve-factor), one class per service, and from files.

Files: one per setting, named after it (`api_token_github` or `API_TOKEN_GITHUB`), holding
the value alone (a trailing newline is dropped), in the directory `GISTSYNC_SECRETS_DIR`
names, `/run/secrets` by default: where compose and Kubernetes mount their secrets. A
directory that is not there is no error: most runs have none.

The environment wins over a file. A file is what the platform mounted for every run; a
variable is what someone set for this one (`AMQP_URL=... gistsync check`), so it is the more
specific of the two, as with every other twelve-factor override; it is also pydantic-settings'
own order. A variable set to the empty string counts as set.

`load` turns a missing or malformed setting into one clear line naming it, then exits, so a
misconfigured service stops at start instead of failing later.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TypeVar

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

SECRETS_DIR_VARIABLE = "GISTSYNC_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"


def secrets_dir() -> Path:
    """The directory settings files are read from (it may not exist)."""
    return Path(os.environ.get(SECRETS_DIR_VARIABLE) or DEFAULT_SECRETS_DIR)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # Every exchange and queue name starts with it, so test runs stay isolated.
    amqp_prefix: str = Field("gistsync", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    publish_timeout_seconds: float = Field(5.0, gt=0)
    request_timeout_seconds: float = Field(5.0, gt=0)
    # Transient failures are retried this many times, backing off, then dead-lettered.
    max_attempts: int = Field(6, ge=1)
    retry_base_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(30.0, gt=0)
    prefetch: int = Field(16, ge=1, le=1000)
    # Per-user work is spread over this many queues per service, so replicas can share it.
    # The same everywhere, and at least the most replicas of a service that will run.
    partitions: int = Field(8, ge=1, le=256)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The directory is looked up at each load, not at import, so that the variable
        # set for a run (or a test) is the one that counts; first source wins.
        directory = secrets_dir()
        if not directory.is_dir():
            return init_settings, env_settings, dotenv_settings
        files = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, files

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        found = [self.amqp_url.get_secret_value()]
        for value in self.__dict__.values():
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
        return [secret for secret in found if secret]


class GatewaySettings(CommonSettings):
    gateway_host: str = "0.0.0.0"
    gateway_port: int = Field(8080, ge=1, le=65535)
    # A poll of every user can take longer than a query.
    fetch_timeout_seconds: float = Field(30.0, gt=0)


class PollerSettings(CommonSettings):
    api_token_github: SecretStr
    github_api_url: AnyHttpUrl = AnyHttpUrl("https://api.github.com")
    poll_interval_seconds: float = Field(5.0, gt=0)
    # One token sustains about 15 requests a second (900 points a minute, secondary limit).
    github_requests_per_second: float = Field(15.0, gt=0)
    github_max_in_flight: int = Field(8, ge=1, le=50)
    github_timeout_seconds: float = Field(10.0, gt=0)
    github_poller_host: str = "0.0.0.0"
    github_poller_port: int = Field(9101, ge=1, le=65535)


class WriterSettings(CommonSettings):
    api_token_pipedrive: SecretStr
    pipedrive_api_url: AnyHttpUrl = AnyHttpUrl("https://api.pipedrive.com/api/v2")
    pipedrive_org_name: str = Field("GITHUB_GISTS", min_length=1)
    pipedrive_timeout_seconds: float = Field(15.0, gt=0)
    pipedrive_writer_host: str = "0.0.0.0"
    pipedrive_writer_port: int = Field(9102, ge=1, le=65535)


S = TypeVar("S", bound=CommonSettings)


def describe(error: ValidationError) -> str:
    """One line naming the first bad setting, never its value (it may be a secret)."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "?"
    if first["type"] == "missing":
        return f"setting {name} is required but not set"
    return f"setting {name} is invalid: {first['msg']}"


def load(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as exc:
        print(f"gistsync: {describe(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
