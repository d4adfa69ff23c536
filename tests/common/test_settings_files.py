"""Settings from files (compose and Kubernetes secrets) beside the environment: a file per
setting in GISTSYNC_SECRETS_DIR (default /run/secrets), the environment winning over it."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest

from gateway.settings import Settings as GatewayServiceSettings
from gistsync.logs import JsonFormatter
from gistsync.settings import (
    DEFAULT_SECRETS_DIR,
    SECRETS_DIR_VARIABLE,
    PollerSettings,
    WriterSettings,
    load,
    secrets_dir,
)
from github_poller.settings import Settings as PollerServiceSettings
from pipedrive_writer.settings import Settings as WriterServiceSettings


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty settings directory, and none of its settings in the environment."""
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path))
    names = (
        "API_TOKEN_GITHUB",
        "API_TOKEN_PIPEDRIVE",
        "AMQP_URL",
        "AMQP_PREFIX",
        "GATEWAY_API_KEY",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_token_from_a_file_with_its_trailing_newline_dropped(files: Path) -> None:
    (files / "api_token_github").write_text("ghp_from_a_file\n")
    settings = PollerSettings()
    assert settings.api_token_github.get_secret_value() == "ghp_from_a_file"
    assert "ghp_from_a_file" in settings.secrets()  # masked in logs like any other
    assert "ghp_from_a_file" not in repr(settings)


def test_file_names_in_upper_case_as_compose_secrets_often_are(files: Path) -> None:
    (files / "API_TOKEN_PIPEDRIVE").write_text("pd-from-a-file")
    (files / "AMQP_PREFIX").write_text("from-file")
    settings = WriterSettings()
    assert settings.api_token_pipedrive.get_secret_value() == "pd-from-a-file"
    assert settings.amqp_prefix == "from-file"


def test_the_environment_wins_over_a_file(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (files / "api_token_github").write_text("from-the-file")
    (files / "amqp_prefix").write_text("from-the-file")
    monkeypatch.setenv("API_TOKEN_GITHUB", "from-the-environment")
    settings = PollerSettings()
    assert settings.api_token_github.get_secret_value() == "from-the-environment"
    assert settings.amqp_prefix == "from-the-file"  # what the environment lacks, files give


def test_the_services_settings_read_files_too(files: Path) -> None:
    (files / "api_token_github").write_text("gh-file")
    (files / "api_token_pipedrive").write_text("pd-file")
    (files / "poll_interval_seconds").write_text("7.5")
    (files / "gateway_api_key").write_text("an-api-key-of-32-characters-long\n")
    poller = PollerServiceSettings()
    assert poller.api_token_github.get_secret_value() == "gh-file"
    assert poller.poll_interval_seconds == 7.5
    assert WriterServiceSettings().api_token_pipedrive.get_secret_value() == "pd-file"
    gateway = GatewayServiceSettings()
    assert gateway.api_key == "an-api-key-of-32-characters-long"
    assert "an-api-key-of-32-characters-long" in gateway.secrets()


def test_a_missing_directory_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path / "not-there"))
    monkeypatch.setenv("API_TOKEN_GITHUB", "from-the-environment")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning
        settings = PollerSettings()
    assert settings.api_token_github.get_secret_value() == "from-the-environment"


def test_the_default_directory_is_run_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRETS_DIR_VARIABLE, raising=False)
    assert str(secrets_dir()) == DEFAULT_SECRETS_DIR == "/run/secrets"
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, "")  # empty: as unset
    assert str(secrets_dir()) == DEFAULT_SECRETS_DIR


def test_the_directory_is_read_at_each_load_not_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_TOKEN_GITHUB", raising=False)
    for name, token in (("one", "token-one"), ("two", "token-two")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "api_token_github").write_text(token)
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path / "one"))
    assert PollerSettings().api_token_github.get_secret_value() == "token-one"
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(tmp_path / "two"))
    assert PollerSettings().api_token_github.get_secret_value() == "token-two"


def test_a_bad_value_in_a_file_is_named_without_the_value(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (files / "api_token_github").write_text("t")
    (files / "poll_interval_seconds").write_text("secret-looking-nonsense")
    with pytest.raises(SystemExit) as exited:
        load(PollerSettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gistsync: setting POLL_INTERVAL_SECONDS is invalid:")
    assert "secret-looking-nonsense" not in err


def test_a_token_from_a_file_is_masked_in_the_logs(files: Path) -> None:
    (files / "api_token_pipedrive").write_text("pd-token-in-a-file\n")
    settings = WriterSettings()
    formatter = JsonFormatter("pipedrive_writer", settings.secrets())
    record = logging.makeLogRecord(
        {"msg": "refused with pd-token-in-a-file", "levelname": "ERROR", "name": "t"}
    )
    line = json.loads(formatter.format(record))
    assert line["message"] == "refused with ***"
