"""docker-compose.yml and .env.example, checked without a Docker engine: the file against the
Compose Specification's schema, and everything it names against what the code really reads."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import TypeAdapter
from pydantic_core import PydanticUndefined

from sandbox.testing import DEFAULT_GITHUB_TOKEN, DEFAULT_PIPEDRIVE_TOKEN
from tests.monitor.monitoring import (
    ALERTMANAGER_DIR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GRAFANA_DIR,
    HEALTH_PORT,
    PROMETHEUS_DIR,
    SETTINGS,
    all_setting_names,
    code_settings,
    env_fields,
    listen_ports,
    load_yaml,
    ops_port,
    sandbox_env,
)
from tests.specs import COMPOSE_SPEC, spec_file

IMAGE = "gistsync:latest"
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
# `docker compose up --scale github_poller=N --scale pipedrive_writer=M` must work as it is.
SCALED = ("github_poller", "pipedrive_writer")


# --- interpolation, as compose does it before validating ---------------------------------------

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


class Interpolation:
    """`${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME:+alt}`,
    `$NAME` and `$$`, resolved against `env`; records every name used and its default."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.names: set[str] = set()
        self.defaults: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return _VARIABLE.sub(self._replace, value)
        return value

    def _replace(self, match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            self.names.add(match["bare"])
            return self.env.get(match["bare"], "")
        parsed = _BRACED.fullmatch(match["braced"])
        if parsed is None:
            raise ValueError(f"invalid interpolation {match[0]!r}")
        name, op, arg = parsed["name"], parsed["op"], parsed["arg"]
        self.names.add(name)
        current = self.env.get(name)
        missing = not current if op and op.startswith(":") else current is None
        if op in (":-", "-"):
            self.defaults[name] = arg
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise ValueError(f"{name} is required: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""


@pytest.fixture(scope="module")
def interpolation() -> Interpolation:
    return Interpolation({})


@pytest.fixture(scope="module")
def compose(interpolation: Interpolation) -> dict[str, Any]:
    """The compose file with no variable set: what `docker compose config` sees without .env."""
    loaded: dict[str, Any] = interpolation(load_yaml(COMPOSE_FILE))
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def ours(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The services that run this repository's image."""
    for name, service in services(compose).items():
        if service.get("image") == IMAGE:
            yield name, service


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping; None means "passed on from the shell or .env"."""
    env = service.get("environment", {})
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


# --- the file itself ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(spec_file(COMPOSE_SPEC).read_text()))
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(compose)
    ]
    assert errors == []


def test_the_validation_would_catch_a_mistake(compose: dict[str, Any]) -> None:
    """Guards the test above against a schema that accepts anything."""
    validator = jsonschema.Draft7Validator(json.loads(spec_file(COMPOSE_SPEC).read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["restart_policy"] = "always"
    assert list(validator.iter_errors(broken))


def test_every_service_command_runs_a_module_of_the_code(compose: dict[str, Any]) -> None:
    commands = {name: service.get("command") for name, service in ours(compose)}
    assert set(commands) == {*SETTINGS, "sandbox"}, "one image for every gistsync process"
    for name, command in commands.items():
        assert isinstance(command, list), f"{name}: use the exec form, [python, -m, module]"
        assert command[:2] == ["python", "-m"] and len(command) == 3, f"{name}: {command}"
        module = command[2]
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, (
            f"{name}: {module} has no __main__, so `python -m {module}` cannot run it"
        )
    for name, service in ours(compose):
        assert service.get("build") == ".", f"{name} must build the repository's Dockerfile"


# --- environment -------------------------------------------------------------------------------


def test_each_service_gets_exactly_the_settings_its_code_reads(compose: dict[str, Any]) -> None:
    """Nothing the code ignores, nothing it reads left out, and no token where it has no owner."""
    expected = code_settings()
    for name, service in ours(compose):
        names = set(environment(service)) - {HEALTH_PORT}
        unknown, missing = names - expected[name], expected[name] - names
        assert not unknown, f"{name}: not read by its code: {sorted(unknown)}"
        assert not missing, f"{name}: settings compose does not pass on: {sorted(missing)}"


def test_every_interpolated_variable_is_a_setting(
    compose: dict[str, Any], interpolation: Interpolation
) -> None:
    # `compose` loads the file through `interpolation`, which records the names it meets.
    assert interpolation.names, "the interpolation found no variable at all"
    unknown = interpolation.names - all_setting_names()
    assert not unknown, f"not read by any code: {sorted(unknown)}"


def env_example() -> dict[str, str]:
    """NAME=value lines, active or commented out with '#' and at most one space."""
    listed: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            name, value = match.groups()
            assert name not in listed, f"{name} is listed twice"
            listed[name] = value
    return listed


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = set(env_example())
    missing, unknown = all_setting_names() - listed, listed - all_setting_names()
    assert not missing, f"settings missing from .env.example: {sorted(missing)}"
    assert not unknown, f"not read by any code: {sorted(unknown)}"


def effective_default(name: str, compose: dict[str, Any]) -> str | None:
    """What a container gets when NAME is set nowhere: compose's value (after interpolation
    with nothing set), else the code's default; None when neither gives one (unset)."""
    given = {
        environment(service)[name]
        for _, service in ours(compose)
        if environment(service).get(name) is not None
    }
    assert len(given) <= 1, f"{name} differs between services: {given}"
    if given:
        return given.pop()
    for cls in SETTINGS.values():
        field = env_fields(cls).get(name)
        if field is not None:
            return None if field.default in (None, PydanticUndefined) else str(field.default)
    return sandbox_env().get(name)


def normalized(name: str, value: str) -> object:
    """The value as the code parses it, so that 5 and 5.0 compare equal."""
    for cls in SETTINGS.values():
        field = env_fields(cls).get(name)
        if field is not None and field.annotation is not None:
            return TypeAdapter(field.annotation).validate_python(value)
    return value


def test_env_example_shows_the_value_a_container_gets(compose: dict[str, Any]) -> None:
    wrong = []
    for name, shown in env_example().items():
        actual = effective_default(name, compose)
        if shown == "" and actual in (None, ""):
            continue
        if actual is None or normalized(name, shown) != normalized(name, actual):
            wrong.append(f"{name}: .env.example says {shown!r}, a container gets {actual!r}")
    assert wrong == []


# --- ports -------------------------------------------------------------------------------------


def code_ports() -> dict[str, set[int]]:
    """The ports each process listens on by default."""
    ports = {name: set(listen_ports(name).values()) for name in SETTINGS}
    ports["sandbox"] = {int(v) for k, v in sandbox_env().items() if k.endswith("_PORT")}
    return ports


def published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(published, container) pairs of a service's `ports`, short or long syntax."""
    pairs = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            target = int(port["target"])
            pairs.append((int(port.get("published") or target), target))
            continue
        parts = str(port).split("/")[0].split(":")
        container = int(parts[-1])
        pairs.append((int(parts[-2]) if len(parts) > 1 else container, container))
    return pairs


def test_ports_and_health_ports_are_the_codes_defaults(compose: dict[str, Any]) -> None:
    expected = code_ports()
    for name, service in ours(compose):
        env = environment(service)
        for variable, value in env.items():
            if variable.endswith("_PORT") and variable != HEALTH_PORT:
                assert value is not None and int(value) in expected[name], f"{name}: {variable}"
        for outside, inside in published(service):
            assert inside in expected[name], f"{name} publishes {inside}: not a port it uses"
            assert outside == inside, f"{name}: {outside}:{inside}; the README uses the same port"
        if name in SETTINGS:
            assert env.get(HEALTH_PORT) is not None, f"{name}: the image's healthcheck needs it"
            assert int(str(env[HEALTH_PORT])) == ops_port(name), f"{name}: {HEALTH_PORT}"
    sandbox = services(compose)["sandbox"]
    assert {inside for _, inside in published(sandbox)} == expected["sandbox"]


def test_published_ports_stay_on_this_machine(compose: dict[str, Any]) -> None:
    """RabbitMQ's guest/guest, Grafana's first admin/admin, the simulators' control API:
    nothing is published beyond this machine; exposing the gateway is a deliberate step."""
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name}: {port}"


def scrape_targets(job: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(host, port, how) of each target a scrape job names: `static` or `dns` (an A lookup,
    which in compose returns every container of the service)."""
    known = {"job_name", "static_configs", "dns_sd_configs", "metrics_path", "params"}
    assert set(job) <= known, f"{job['job_name']}: unexpected {sorted(set(job) - known)}"
    found = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            found.append((host, int(port), "static"))
    for dns in job.get("dns_sd_configs", []):
        assert dns.get("type") == "A", f"{job['job_name']}: compose's DNS answers A records"
        found.extend((name, int(dns["port"]), "dns") for name in dns["names"])
    return found


def scrape_jobs() -> dict[str, list[tuple[str, int, str]]]:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    return {job["job_name"]: scrape_targets(job) for job in config["scrape_configs"]}


def test_prometheus_scrapes_compose_services_on_the_codes_ports(compose: dict[str, Any]) -> None:
    jobs = scrape_jobs()
    for job, targets in jobs.items():
        assert targets, f"{job} scrapes nothing"
        for host, port, _ in targets:
            assert host in services(compose), f"{job}: no service {host}"
            if host in SETTINGS:  # on its ops port: the gateway's public one has no /metrics
                assert port == ops_port(host), f"{job}: {host}:{port}"
    assert {*SETTINGS, "rabbitmq"} <= set(jobs)


def test_prometheus_scrapes_every_replica_of_each_service() -> None:
    """A static `github_poller:9101` would reach one replica, a different one from scrape to
    scrape; an A lookup of the service name returns them all."""
    jobs = scrape_jobs()
    for name in SETTINGS:
        assert jobs[name] == [(name, ops_port(name), "dns")], name
        others = [
            job for job, targets in jobs.items() if job != name for t in targets if t[0] == name
        ]
        assert others == [], f"{name} is scraped by other jobs too: {others}"


def test_scaled_services_have_no_fixed_name_or_host_port(compose: dict[str, Any]) -> None:
    """Compose refuses a second container of a service with a container_name or a fixed host
    port. Metrics stay on the compose network, where Prometheus finds every replica."""
    all_services = services(compose)
    for name in SCALED:
        service = all_services[name]
        assert "container_name" not in service, name
        assert service.get("ports", []) == [], f"{name} publishes {service['ports']}"
        assert "replicas" not in service.get("deploy", {}), f"{name}: leave the count to --scale"
    # One published gateway, at the README's fixed address; an override may scale it.
    assert "container_name" not in all_services["gateway"]
    assert published(all_services["gateway"]) == [(8080, 8080)]


def test_rabbitmq_exports_what_prometheus_scrapes(compose: dict[str, Any]) -> None:
    rabbitmq = services(compose)["rabbitmq"]
    plugins = {
        compose["configs"][item["source"]]["content"]
        for item in rabbitmq.get("configs", [])
        if item.get("target") == "/etc/rabbitmq/enabled_plugins"
    }
    assert len(plugins) == 1, "rabbitmq needs an enabled_plugins file"
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(re.findall(r"\w+", plugins.pop()))
    assert "management" in rabbitmq["image"]


# --- lifecycle ---------------------------------------------------------------------------------


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and check.get("test") not in (None, ["NONE"])
    return bool(service.get("image") == IMAGE)  # the Dockerfile's HEALTHCHECK


def test_every_service_restarts_has_a_healthcheck_and_waits_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        assert service.get("restart") in RESTART_POLICIES, f"{name}: restart policy"
        assert has_healthcheck(service), f"{name}: no healthcheck"
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, spec in depends.items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            assert spec.get("condition") == "service_healthy", f"{name} → {dependency}"
            assert has_healthcheck(all_services[dependency]), f"{dependency}: no healthcheck"
    for name in SETTINGS:
        assert "rabbitmq" in all_services[name]["depends_on"], f"{name} needs the broker"


def test_the_sandbox_is_a_profile_the_services_point_at_when_no_token_is_set(
    compose: dict[str, Any],
) -> None:
    all_services = services(compose)
    sandbox = all_services["sandbox"]
    assert sandbox.get("profiles") == ["sandbox"]
    for name, service in all_services.items():
        dependency = service.get("depends_on", {}).get("sandbox")
        if dependency is not None:
            # Without the profile the sandbox does not exist; it must not be required.
            assert dependency.get("required") is False, name
    ports = sandbox_env()
    poller = environment(all_services["github_poller"])
    writer = environment(all_services["pipedrive_writer"])
    assert poller["API_TOKEN_GITHUB"] == DEFAULT_GITHUB_TOKEN
    assert writer["API_TOKEN_PIPEDRIVE"] == DEFAULT_PIPEDRIVE_TOKEN
    assert poller["GITHUB_API_URL"] == f"http://sandbox:{ports['SANDBOX_GITHUB_PORT']}"
    assert writer["PIPEDRIVE_API_URL"] == f"http://sandbox:{ports['SANDBOX_PIPEDRIVE_PORT']}/api/v2"


def test_monitoring_files_are_mounted_where_the_tools_look(compose: dict[str, Any]) -> None:
    all_services = services(compose)

    def mounts(name: str) -> dict[str, str]:
        found = {}
        for volume in all_services[name].get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if source.startswith("./"):
                found[source] = target
        return found

    prometheus = mounts("prometheus")
    target = prometheus["./monitor/prometheus"]
    config_flag = f"--config.file={target}/prometheus.yml"
    assert config_flag in all_services["prometheus"]["command"]
    for rule_file in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file(), f"{rule_file} is not in the mount"

    alertmanager = mounts("alertmanager")
    config_target = alertmanager["./monitor/alertmanager"]
    command = all_services["alertmanager"]["command"]
    assert f"--config.file={config_target}/alertmanager.yml" in command
    assert (ALERTMANAGER_DIR / "alertmanager.yml").is_file()

    grafana = mounts("grafana")
    assert grafana["./monitor/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_target = grafana["./monitor/grafana/dashboards"]
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    assert [p["options"]["path"] for p in providers["providers"]] == [dashboards_target]
    home = environment(all_services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home is not None and home.startswith(dashboards_target + "/")
    assert (GRAFANA_DIR / "dashboards" / Path(home).name).is_file()


def test_prometheus_alerts_the_compose_alertmanager(compose: dict[str, Any]) -> None:
    """prometheus.yml's `alerting:` names compose's Alertmanager on the port it listens on
    (its default, 9093, which its healthcheck asks too)."""
    alertmanager = services(compose)["alertmanager"]
    assert not any("--web.listen-address" in arg for arg in alertmanager["command"])
    assert "127.0.0.1:9093/" in " ".join(alertmanager["healthcheck"]["test"])
    assert published(alertmanager) == [(9093, 9093)]
    alerting = load_yaml(PROMETHEUS_DIR / "prometheus.yml")["alerting"]
    targets = [
        t for m in alerting["alertmanagers"] for s in m["static_configs"] for t in s["targets"]
    ]
    assert targets == ["alertmanager:9093"]


def test_every_other_image_is_pinned_to_a_release(compose: dict[str, Any]) -> None:
    """Third-party images by an exact version (or digest), never a moving `latest`."""
    for name, service in services(compose).items():
        image = service["image"]
        if image == IMAGE:
            continue
        repository, _, tag = image.partition("@")[0].rpartition(":")
        assert repository and re.search(r"\d", tag) and tag != "latest", f"{name}: {image}"
