"""Where the vendors' specifications live: `specs/` at the repository's root (see its README)."""

from pathlib import Path

import pytest

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
PIPEDRIVE_SPEC = SPECS_DIR / "pipedrive-v2.yaml"
GITHUB_SPEC = SPECS_DIR / "github-gists-subset.json"
COMPOSE_SPEC = SPECS_DIR / "compose-spec.json"


def spec_file(path: Path) -> Path:
    """The spec file, or a failure naming it: a test that needs a spec never skips."""
    if not path.is_file():
        pytest.fail(f"spec file {path} is missing from the repository")
    return path
