"""The Dockerfile, read instruction by instruction: a multi-stage build from the lock, a slim
base pinned by digest, a non-root user, a healthcheck, OCI labels, no secret, nothing only
BuildKit understands. tests/deploy/compose builds and runs it on a real engine."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass

import pytest

from gistsync.metrics import REVISION_VARIABLE
from tests.monitor.monitoring import HEALTH_PORT, REPO, ops_port

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """Continuation lines joined, comments and blank lines dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip()))
    return found


def stages() -> list[list[Instruction]]:
    """The instructions of each stage, each list starting with its FROM."""
    split: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


@pytest.fixture(scope="module")
def final() -> list[Instruction]:
    return stages()[-1]


def args_defaults() -> dict[str, str]:
    defaults = {}
    for instruction in instructions():
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, value = instruction.args.split("=", 1)
            defaults[name] = value
    return defaults


def test_the_build_has_stages_and_the_image_copies_only_the_result(
    final: list[Instruction],
) -> None:
    assert len(stages()) >= 2, "multi-stage: build tools stay out of the image"
    assert any(i.keyword == "COPY" and i.args.startswith("--from=") for i in final)
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in final)


def test_the_base_image_is_a_slim_python_311_pinned_by_digest() -> None:
    defaults = args_defaults()
    for stage in stages():
        image = stage[0].args.split()[0]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}", image), image


def test_the_build_runs_on_any_debian_python() -> None:
    """Only `python3` (the official image has it, and so has Debian's python3 package), then
    the venv's own interpreter: a Debian base with python3-venv builds the same image."""
    for stage in stages()[:-1]:
        for instruction in stage:
            if instruction.keyword == "RUN":
                assert not re.search(r"(^|[\s;&|])python(\s|$)", instruction.args), instruction


def test_the_image_says_what_it_is() -> None:
    """OCI labels from build arguments the release build sets, declared in the final stage
    (an ARG before FROM is not visible after it)."""
    final = stages()[-1]
    declared = {i.args.split("=", 1)[0] for i in final if i.keyword == "ARG"}
    labels = {}
    for instruction in final:
        if instruction.keyword == "LABEL":
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                labels[key] = value
    for name, arg in (("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")):
        assert labels.get(f"org.opencontainers.image.{name}") == f"${{{arg}}}", name
        assert arg in declared, f"ARG {arg} is not declared in the final stage"


def test_nothing_needs_buildkit() -> None:
    """The classic builder (the only one on some engines) must build it."""
    text = (REPO / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE | re.IGNORECASE)
    for instruction in instructions():
        assert "--mount" not in instruction.args, instruction
        assert "<<" not in instruction.args, f"heredoc: {instruction}"


def test_dependencies_come_from_the_lock_and_nothing_else() -> None:
    build = [i for stage in stages()[:-1] for i in stage]
    assert any(i.keyword == "COPY" and "requirements.lock" in i.args for i in build)
    runs = [i.args for i in build if i.keyword == "RUN"]
    installs = [args for args in runs if "pip install" in args]
    for lock in ("requirements.lock", "requirements-build.lock"):
        assert any(f"--require-hashes -r {lock}" in args for args in installs), lock
    # The wheel comes from the locked backend, never from an isolated build's fetch.
    wheel = [args for args in runs if re.search(r"pip wheel [^;&]*\s\.(\s|$)", args)]
    assert wheel, "the project's wheel is built"
    assert all("--no-build-isolation" in a and "--no-deps" in a for a in wheel)
    project = [args for args in installs if re.search(r"pip install [^;&]*\.whl", args)]
    assert project, "the project itself is installed"
    assert all("--no-deps" in args for args in project), "only the lock brings dependencies"


def test_the_image_runs_as_a_user_other_than_root(final: list[Instruction]) -> None:
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_image_has_a_healthcheck_on_the_health_port(final: list[Instruction]) -> None:
    checks = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    assert checks and "NONE" not in checks[-1].split()
    assert HEALTH_PORT in checks[-1] and "/healthz" in checks[-1]
    assert any(i.keyword == "ENV" and HEALTH_PORT in i.args for i in final), "a default port"


def env_defaults(final: list[Instruction]) -> dict[str, str]:
    found = {}
    for instruction in final:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                found[name] = value
    return found


def test_the_default_health_port_is_the_default_commands_ops_port(
    final: list[Instruction],
) -> None:
    """`docker run gistsync` runs the gateway, whose /healthz is on its ops port only."""
    command = json.loads([i.args for i in instructions() if i.keyword == "CMD"][-1])
    assert env_defaults(final)[HEALTH_PORT] == str(ops_port(command[2]))


def test_the_image_carries_its_revision_for_the_build_info_metric(
    final: list[Instruction],
) -> None:
    """gistsync_build_info's revision label comes from it (gistsync.metrics); the ARG must be
    declared before the ENV that reads it, in the final stage."""
    keywords = [(i.keyword, i.args) for i in final]
    [declared] = [n for n, (k, a) in enumerate(keywords) if k == "ARG" and a.startswith("REVISION")]
    assert env_defaults(final)[REVISION_VARIABLE] == "${REVISION}"
    [used] = [n for n, (k, a) in enumerate(keywords) if k == "ENV" and REVISION_VARIABLE in a]
    assert declared < used


def test_the_default_command_runs_a_service() -> None:
    commands = [i.args for i in instructions() if i.keyword == "CMD"]
    command = json.loads(commands[-1])
    assert command[:2] == ["python", "-m"]
    assert importlib.util.find_spec(f"{command[2]}.__main__") is not None


def test_no_secret_is_baked_in() -> None:
    for instruction in instructions():
        if instruction.keyword == "ARG":
            names = [instruction.args.split("=", 1)[0]]
        elif instruction.keyword == "ENV":
            words = shlex.split(instruction.args)
            # ENV a=b c=d, or the legacy ENV name value
            names = [w.split("=", 1)[0] for w in words] if "=" in words[0] else words[:1]
        else:
            continue
        secret = [name for name in names if SECRET_NAME.search(name)]
        assert secret == [], f"{instruction.keyword} {instruction.args}"


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    """Everything ignored, then only the COPY sources let back in: a new file at the root,
    a local .env first, stays out of the context until someone lists it."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied: set[str] = set()
    for instruction in instructions():
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from="):
            copied.update(source.rstrip("/") for source in shlex.split(instruction.args)[:-1])
    assert allowed == copied
    assert {"**/.env", "**/.env.*"} <= set(patterns), "a .env inside libs/ or services/"
