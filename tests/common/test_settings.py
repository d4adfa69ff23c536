from __future__ import annotations

import pytest

from gistsync.settings import PollerSettings, WriterSettings, load


def test_defaults_follow_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN_PIPEDRIVE", "secret-token")
    settings = WriterSettings()
    assert settings.pipedrive_org_name == "GITHUB_GISTS"
    assert str(settings.pipedrive_api_url) == "https://api.pipedrive.com/api/v2"
    assert "secret-token" in settings.secrets()
    assert "secret-token" not in repr(settings)


def test_missing_setting_stops_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("API_TOKEN_GITHUB", raising=False)
    with pytest.raises(SystemExit) as exited:
        load(PollerSettings)
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "gistsync: setting API_TOKEN_GITHUB is required but not set\n"
    )


def test_malformed_setting_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("API_TOKEN_GITHUB", "t")
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "soon")
    with pytest.raises(SystemExit):
        load(PollerSettings)
    err = capsys.readouterr().err
    assert err.startswith("gistsync: setting POLL_INTERVAL_SECONDS is invalid:")
    assert err.count("\n") == 1
