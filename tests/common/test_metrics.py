"""gistsync_build_info: the version from the installed package, the revision from the image's
environment, from the checkout's git, or unknown."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gistsync import metrics
from tests.conftest import need


def test_the_version_is_the_installed_packages() -> None:
    assert metrics.version() == metadata.version("gistsync")


def test_the_images_revision_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.REVISION_VARIABLE, "0123456789abcdef")
    assert metrics.revision() == "0123456789abcdef"


def test_without_an_image_or_a_checkout_the_revision_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(metrics.REVISION_VARIABLE, raising=False)
    monkeypatch.setattr(metrics, "CHECKOUT", tmp_path)
    assert metrics.revision() == "unknown"
    monkeypatch.setenv(metrics.REVISION_VARIABLE, "")  # as a build without REVISION leaves it
    assert metrics.revision() == "unknown"


def git(directory: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def repository(directory: Path) -> None:
    """A git repository with one commit."""
    if shutil.which("git") is None:
        need("git")
    git(directory, "init", "-q")
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.com")
    git(
        directory,
        *identity,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        ".",
    )


def test_a_checkout_says_its_head(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "libs" / "common").mkdir(parents=True)
    repository(tmp_path)
    monkeypatch.delenv(metrics.REVISION_VARIABLE, raising=False)
    monkeypatch.setattr(metrics, "CHECKOUT", tmp_path)
    assert metrics.revision() == git(tmp_path, "rev-parse", "--short=12", "HEAD")


def test_another_repository_is_not_ours(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A package installed inside some other repository must not report that one's HEAD."""
    repository(tmp_path)
    monkeypatch.delenv(metrics.REVISION_VARIABLE, raising=False)
    monkeypatch.setattr(metrics, "CHECKOUT", tmp_path)
    assert metrics.revision() == "unknown"


def test_build_info_is_one_series_set_once(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.record_build_info()
    monkeypatch.setenv(metrics.REVISION_VARIABLE, "another")
    metrics.record_build_info()
    [sample] = [s for f in REGISTRY.collect() if f.name == "gistsync_build_info" for s in f.samples]
    assert sample.value == 1
    assert sample.labels["version"] == metadata.version("gistsync")
    assert sample.labels["revision"] != "another"
