"""deploy/k8s, checked without a cluster: kustomize's resource resolution done here, every
built-in object against the Kubernetes JSON schemas (`kubernetes_validate`, strict), and what
the manifests say against what the code, the Dockerfile and docker-compose.yml say.

The custom resources, RabbitmqCluster (rabbitmq.com/v1beta1, the RabbitMQ Cluster Operator),
ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1, the Prometheus Operator), are not
in those schemas: they are checked structurally here (apiVersion, kind, the spec fields used,
the values that matter), which is weaker than the operators' CRD schemas would be. The
PrometheusRule must say what monitor/prometheus/alerts.yml says. test_k8s_network.py checks
what the NetworkPolicies let through.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp import web
from pydantic import ValidationError

from gistsync.ops import add_ops_routes
from sandbox.testing import DEFAULT_GITHUB_TOKEN, DEFAULT_PIPEDRIVE_TOKEN
from tests.deploy.prometheus_rule import prometheus_rule
from tests.monitor.monitoring import (
    COMPOSE_FILE,
    PROMETHEUS_DIR,
    REPO,
    SETTINGS,
    code_settings,
    env_fields,
    load_yaml,
    ops_port,
    sandbox_env,
)
from tests.monitor.test_dockerfile import instructions

K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
# Every kustomization one applies: the base (real APIs) and its overlays.
ENTRY_POINTS = {"base": BASE, "sandbox": K8S / "overlays" / "sandbox"}
# What `build` below implements; any other kustomization field fails rather than being ignored.
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches"}
CLUSTER_SCOPED = {"Namespace"}
SCHEMA_VERSIONS = (
    kubernetes_validate.utils.all_versions()[0],
    kubernetes_validate.latest_version(),
)
CUSTOM_RESOURCES = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"

REPLICAS = {"gateway": 2, "github_poller": 2, "pipedrive_writer": 3}
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
# Measured RSS is 60-100 MiB per service at 10,000 users.
MEMORY = {"requests": "128Mi", "limits": "256Mi"}
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY", re.IGNORECASE)
# The operator's Secret `<cluster>-default-user` (rabbitmq/cluster-operator,
# internal/resource/default_user_secret.go): the keys AMQP_URL is composed of.
DEFAULT_USER_KEYS = {"username", "password", "host", "port"}
# The spec fields of the RabbitmqCluster CRD (rabbitmq.com_rabbitmqclusters.yaml).
RABBITMQ_SPEC_FIELDS = {
    "replicas", "image", "imagePullSecrets", "service", "persistence", "resources", "affinity",
    "tolerations", "rabbitmq", "tls", "override", "skipPostDeploySteps",
    "terminationGracePeriodSeconds", "delayStartSeconds", "secretBackend",
}  # fmt: skip
SERVICE_MONITOR_SPEC_FIELDS = {
    "endpoints", "selector", "jobLabel", "namespaceSelector", "targetLabels", "podTargetLabels",
    "sampleLimit",
}  # fmt: skip
ENDPOINT_FIELDS = {"port", "path", "params", "interval", "scrapeTimeout", "scheme", "relabelings"}
RELABEL_FIELDS = {"sourceLabels", "separator", "regex", "targetLabel", "replacement", "action"}
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$")


# --- kustomize, as far as these manifests use it ------------------------------------------------


@dataclass(frozen=True)
class Build:
    objects: list[dict[str, Any]]
    files: frozenset[Path]  # every file the build read, kustomization.yaml files included


def documents(path: Path) -> list[dict[str, Any]]:
    found = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert found, f"{path} holds no object"
    return found


def apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any], source: Path) -> None:
    """A strategic-merge patch of a ConfigMap's data: for a map of strings, a plain merge."""
    assert patch["kind"] == "ConfigMap", f"{source}: only ConfigMap patches are resolved here"
    assert set(patch) == {"apiVersion", "kind", "metadata", "data"}, source
    targets = [
        obj
        for obj in objects
        if (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        == (patch["apiVersion"], patch["kind"], patch["metadata"]["name"])
    ]
    assert len(targets) == 1, f"{source}: patches {len(targets)} objects"
    targets[0]["data"].update(patch["data"])


@functools.cache
def build(directory: Path) -> Build:
    """What `kustomize build directory` gives for these files."""
    path = directory / "kustomization.yaml"
    spec = load_yaml(path)
    assert (spec["apiVersion"], spec["kind"]) == (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    )
    unknown = set(spec) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{path}: {sorted(unknown)} are not resolved by this test"
    objects: list[dict[str, Any]] = []
    files = {path}
    for entry in spec.get("resources", []):
        resource = (directory / entry).resolve()
        assert resource.exists(), f"{path} lists {entry}, which does not exist"
        if resource.is_dir():
            nested = build(resource)
            objects += copy.deepcopy(nested.objects)
            files |= nested.files
        else:
            objects += documents(resource)
            files.add(resource)
    for patch in spec.get("patches", []):
        assert set(patch) == {"path"}, f"{path}: only patch files are resolved here"
        source = (directory / patch["path"]).resolve()
        assert source.is_file(), f"{path} lists {patch['path']}, which does not exist"
        files.add(source)
        for document in documents(source):
            apply_patch(objects, document, source)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return Build(objects, frozenset(files))


@pytest.fixture(scope="module", params=sorted(ENTRY_POINTS))
def built(request: pytest.FixtureRequest) -> Build:
    return build(ENTRY_POINTS[request.param])


@pytest.fixture(scope="module")
def base() -> Build:
    return build(BASE)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Deployments and StatefulSets of the three services, by the code's service name."""
    found: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS and pod_labels(obj).get(COMPONENT) in SETTINGS:
            service = pod_labels(obj)[COMPONENT]
            assert service not in found, f"two workloads run {service}"
            found[service] = obj
    return found


def the_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are read here"
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


# --- files -------------------------------------------------------------------------------------


def test_every_manifest_is_listed_by_a_kustomization() -> None:
    """`build` asserts that every listed file exists; this, that nothing is left out."""
    on_disk = {path.resolve() for path in K8S.rglob("*") if path.suffix in {".yaml", ".yml"}}
    listed = frozenset[Path]().union(*(build(entry).files for entry in ENTRY_POINTS.values()))
    assert sorted(map(str, on_disk - listed)) == []
    assert listed <= on_disk


def test_every_object_is_defined_once(built: Build) -> None:
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in built.objects]
    assert sorted(key for key in set(keys) if keys.count(key) > 1) == []


# --- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_objects_follow_the_kubernetes_schemas(built: Build, version: str) -> None:
    errors = []
    custom = set()
    for obj in built.objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM_RESOURCES:
            custom.add(key)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(map(str, error.absolute_path))
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {error.message}")
    assert errors == []
    assert custom == CUSTOM_RESOURCES, "the custom resources checked structurally below"


def test_the_schema_check_would_catch_a_mistake(base: Build) -> None:
    """Guards the test above against schemas that accept anything."""
    broken = copy.deepcopy(named(base.objects, "Deployment", "gateway"))
    the_container(broken)["livenessprobe"] = the_container(broken).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_rabbitmq_cluster(built: Build) -> None:
    [cluster] = of_kind(built.objects, "RabbitmqCluster")
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert set(cluster) == {"apiVersion", "kind", "metadata", "spec"}
    spec = cluster["spec"]
    assert set(spec) <= RABBITMQ_SPEC_FIELDS, sorted(set(spec) - RABBITMQ_SPEC_FIELDS)
    # Quorum queues need a majority: three nodes survive the loss of one.
    assert spec["replicas"] == 3
    assert spec["image"] == compose()["services"]["rabbitmq"]["image"]
    plugins = spec["rabbitmq"]["additionalPlugins"]
    assert "rabbitmq_prometheus" in plugins
    assert all(re.fullmatch(r"\w+", plugin) for plugin in plugins)
    assert QUANTITY.match(str(spec["persistence"]["storage"]))
    for bound in ("requests", "limits"):
        assert all(QUANTITY.match(str(v)) for v in spec["resources"][bound].values()), bound
    # The operator labels the broker's pods with the cluster's name and component "rabbitmq".
    operator_labels = {NAME: cluster["metadata"]["name"], COMPONENT: "rabbitmq"}
    budgets = of_kind(built.objects, "PodDisruptionBudget")
    covering = [b for b in budgets if selects(b["spec"]["selector"], operator_labels)]
    assert [b["spec"] for b in covering] == [
        {"maxUnavailable": 1, "selector": {"matchLabels": operator_labels}}
    ]


# --- the workloads -----------------------------------------------------------------------------


def test_each_service_runs_with_its_replicas(built: Build) -> None:
    found = workloads(built.objects)
    assert {name: w["spec"]["replicas"] for name, w in found.items()} == REPLICAS
    for workload in found.values():
        labels = pod_labels(workload)
        assert selects(workload["spec"]["selector"], labels), workload["metadata"]["name"]
        others = [w for w in found.values() if w is not workload]
        assert not any(selects(workload["spec"]["selector"], pod_labels(o)) for o in others)


def test_workloads_run_the_image_compose_builds(built: Build) -> None:
    """docker-compose.yml builds the Dockerfile (`build: .`) under this image name."""
    ours = {
        service["image"]
        for service in compose()["services"].values()
        if service.get("build") == "."
    }
    assert len(ours) == 1, ours
    image = ours.pop()
    for obj in built.objects:
        if obj["kind"] in WORKLOAD_KINDS:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                assert container["image"] == image, obj["metadata"]["name"]
                # A tag-only image loaded into the nodes must not be pulled.
                assert container["imagePullPolicy"] == "IfNotPresent"


def python_module(container: dict[str, Any]) -> str:
    """The module the container runs: `python -m X`, directly or exec'd by a shell script."""
    command = container["command"]
    if command[:2] == ["python", "-m"]:
        assert len(command) == 3, command
        return str(command[2])
    assert command[:2] == ["/bin/sh", "-c"] and len(command) == 3, command
    execs = re.findall(r"^exec python -m (\w+)$", command[2], re.MULTILINE)
    assert len(execs) == 1 and command[2].rstrip().endswith(f"exec python -m {execs[0]}")
    return str(execs[0])


def test_each_workload_runs_its_service(built: Build) -> None:
    for service, workload in workloads(built.objects).items():
        assert python_module(the_container(workload)) == service


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def code_port(service: str) -> int:
    return int(str(env_fields(SETTINGS[service])[f"{service.upper()}_PORT"].default))


def ops_paths() -> set[str]:
    """The GET paths gistsync.ops serves, on each service's ops port."""
    app = web.Application()
    add_ops_routes(app, lambda: True)
    return {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }


def test_probes_ask_the_ops_port_at_the_real_paths(built: Build) -> None:
    served = ops_paths()
    assert set(PROBE_PATHS.values()) <= served, f"the ops server serves {served}"
    for service, workload in workloads(built.objects).items():
        container = the_container(workload)
        assert {"livenessProbe", "readinessProbe"} <= set(container), service
        for kind, path in PROBE_PATHS.items():
            if kind not in container:
                continue
            probe = container[kind]["httpGet"]
            assert probe["path"] == path, f"{service} {kind}"
            assert container_port(container, probe["port"]) == ops_port(service), f"{service}"


def test_every_workload_has_a_disruption_budget_that_leaves_it_running(built: Build) -> None:
    budgets = of_kind(built.objects, "PodDisruptionBudget")
    for service, workload in workloads(built.objects).items():
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(workload))]
        assert len(matching) == 1, f"{service}: {len(matching)} budgets"
        spec = matching[0]["spec"]
        # One pod at a time may go: the others keep serving, and a drain can still proceed.
        assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, service
        assert workload["spec"]["replicas"] > 1, f"{service}: a budget of 1 of 1 stops drains"


def test_pods_run_unprivileged_on_a_read_only_root(built: Build) -> None:
    user = next(i.args for i in reversed(instructions()) if i.keyword == "USER")
    uid, gid = (int(part) for part in user.split(":"))
    for obj in built.objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        name = obj["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, f"{name}: needs no API access"
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            assert container["resources"]["requests"]["memory"] == MEMORY["requests"], name
            assert container["resources"]["limits"]["memory"] == MEMORY["limits"], name


# --- environment -------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# Stand-ins for what the cluster provides at run time.
FAKE_DEFAULT_USER = {
    "username": "default_user_abc",
    "password": "pw-xyz",
    "host": "rabbitmq.gistsync.svc",
    "port": "5672",
}
# A Secret made with `kubectl create secret` (long enough for the gateway's keys).
FAKE_SECRET = "a-value-set-with-kubectl-create-secret"


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    source: str  # "configmap", "value", "secret:<name>/<key>", "field:<path>"
    references: frozenset[str]  # the $(NAME)s its value used


def expand(value: str, defined: dict[str, EnvVar]) -> tuple[str, frozenset[str]]:
    """Kubernetes' $(NAME): replaced when NAME is defined earlier, `$$` escapes, else kept."""
    used: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1]
        if name in defined:
            used.add(name)
            return defined[name].value
        return match[0]

    return _REFERENCE.sub(replace, value), frozenset(used)


def pod_env(objects: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, EnvVar]:
    """The container's environment as the kubelet builds it: envFrom, then env in order."""
    container = the_container(workload)
    env: dict[str, EnvVar] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets come in by name (secretKeyRef)"
        config = named(objects, "ConfigMap", source["configMapRef"]["name"])
        for name, value in config["data"].items():
            env[name] = EnvVar(name, value, "configmap", frozenset())
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            value, used = expand(item["value"], env)
            env[name] = EnvVar(name, value, "value", used)
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            defined = [
                s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == ref["name"]
            ]
            if defined:
                value = defined[0]["stringData"][ref["key"]]
            elif ref["name"].endswith("-default-user"):
                value = FAKE_DEFAULT_USER[ref["key"]]
            else:
                value = FAKE_SECRET
            env[name] = EnvVar(name, value, f"secret:{ref['name']}/{ref['key']}", frozenset())
        else:
            path = source["fieldRef"]["fieldPath"]
            assert path == "metadata.name", path
            value = f"{workload['metadata']['name']}-0"
            env[name] = EnvVar(name, value, f"field:{path}", frozenset())
    return env


def script_exports(container: dict[str, Any]) -> set[str]:
    command = container["command"]
    return (
        set(re.findall(r"^export (\w+)$", command[2], re.MULTILINE))
        if command[0] == "/bin/sh"
        else set()
    )


def test_every_variable_is_a_setting_its_code_reads_or_feeds_one(built: Build) -> None:
    """A name the code does not read is allowed only as an ingredient: used by a later value
    ($(NAME)) or by the container's own command."""
    expected = code_settings()
    for service, workload in workloads(built.objects).items():
        container = the_container(workload)
        env = pod_env(built.objects, workload)
        script = container["command"][2] if container["command"][0] == "/bin/sh" else ""
        used = set().union(*(var.references for var in env.values()))
        for name in set(env) - expected[service]:
            assert name in used or f"${{{name}" in script, f"{service}: {name} is read by nobody"
        assert script_exports(container) <= expected[service], service


def test_no_setting_of_the_code_is_left_to_a_service_link(built: Build) -> None:
    """With service links on, a Service named `gateway` gives every pod of the namespace
    GATEWAY_PORT=tcp://…:8080, and the gateway would read that as its port."""
    settings = set().union(*code_settings().values())
    for obj in built.objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        if obj["spec"]["template"]["spec"].get("enableServiceLinks", True) is False:
            continue
        for service in of_kind(built.objects, "Service"):
            if service["spec"].get("clusterIP") == "None":
                continue  # no links for headless Services
            prefix = service["metadata"]["name"].upper().replace("-", "_")
            linked = {f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT", f"{prefix}_PORT"}
            assert linked.isdisjoint(settings), f"{obj['metadata']['name']} gets {linked}"


def test_amqp_url_is_built_from_the_operators_default_user(built: Build) -> None:
    [cluster] = of_kind(built.objects, "RabbitmqCluster")
    secret = f"{cluster['metadata']['name']}-default-user"
    for service, workload in workloads(built.objects).items():
        env = pod_env(built.objects, workload)
        url = env["AMQP_URL"]
        sources = {env[name].source.rsplit("/", 1)[-1]: env[name].source for name in url.references}
        assert set(sources) == DEFAULT_USER_KEYS, service
        assert all(source.startswith(f"secret:{secret}/") for source in sources.values()), service
        parts = urlsplit(url.value)
        assert (parts.scheme, parts.path) == ("amqp", "/"), service
        assert (parts.username, parts.password, parts.hostname, str(parts.port)) == (
            FAKE_DEFAULT_USER["username"],
            FAKE_DEFAULT_USER["password"],
            FAKE_DEFAULT_USER["host"],
            FAKE_DEFAULT_USER["port"],
        ), service


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of this process's environment (AMQP_URL in CI, say) may fill a setting."""
    settings = set().union(*code_settings().values())
    for name in os.environ:
        if name.upper() in settings:
            monkeypatch.delenv(name)


def test_each_service_accepts_the_settings_its_pods_get(
    built: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code's own settings classes load what a pod's environment would hold."""
    for service, workload in workloads(built.objects).items():
        with monkeypatch.context() as patch:
            clear_settings(patch)
            for name, var in pod_env(built.objects, workload).items():
                patch.setenv(name, var.value)
            for name in script_exports(the_container(workload)):
                patch.setenv(name, FAKE_SECRET)
            try:
                settings = SETTINGS[service]()
            except ValidationError as error:
                pytest.fail(f"{service}: {error}")
            assert getattr(settings, f"{service}_port") == code_port(service)


def test_the_writers_together_keep_within_pipedrives_burst_limits(built: Build) -> None:
    """The burst limits belong to the token, which every writer replica shares; the code's
    defaults are the Lite plan's."""
    writer = workloads(built.objects)["pipedrive_writer"]
    env = pod_env(built.objects, writer)
    fields = env_fields(SETTINGS["pipedrive_writer"])
    replicas = writer["spec"]["replicas"]
    for name in ("PIPEDRIVE_BURST_LIMIT", "PIPEDRIVE_SEARCH_BURST_LIMIT"):
        assert replicas * int(env[name].value) <= int(str(fields[name].default)), name
    window = env["PIPEDRIVE_BURST_WINDOW_SECONDS"].value
    assert float(window) == float(str(fields["PIPEDRIVE_BURST_WINDOW_SECONDS"].default))


# --- secrets -----------------------------------------------------------------------------------


def secret_refs(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The Secrets the workloads read, with the keys, the operator's own left out."""
    refs: dict[str, set[str]] = {}
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref["name"].endswith("-default-user"):
                    refs.setdefault(ref["name"], set()).add(ref["key"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                refs.setdefault(volume["secret"]["secretName"], set())
    return refs


def test_the_base_defines_no_secret(base: Build) -> None:
    """`kubectl apply -k` of the base must never overwrite the real tokens."""
    assert of_kind(base.objects, "Secret") == []
    assert set(secret_refs(base.objects)) == {
        "gistsync-github",
        "gistsync-pipedrive",
        "gistsync-gateway",
    }


def test_the_sandbox_secrets_hold_only_the_simulators_tokens() -> None:
    objects = build(ENTRY_POINTS["sandbox"]).objects
    secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
    refs = secret_refs(objects)
    assert set(secrets) == set(refs)
    for name, keys in refs.items():
        assert "data" not in secrets[name], f"{name}: stringData, readable in review"
        assert keys <= set(secrets[name]["stringData"]), name
    poller = workloads(objects)["github_poller"]
    tokens = secrets["gistsync-github"]["stringData"]
    assert tokens == {f"token-{n}": DEFAULT_GITHUB_TOKEN for n in range(poller["spec"]["replicas"])}
    assert secrets["gistsync-pipedrive"]["stringData"] == {"token": DEFAULT_PIPEDRIVE_TOKEN}
    gateway = secrets["gistsync-gateway"]["stringData"]
    assert all(value.startswith("sandbox-") for value in gateway.values())
    # The gateway's own rule (MIN_SECRET_LENGTH): shorter, and it would not start.
    assert all(len(value) >= 16 for value in gateway.values())


def test_no_secret_sits_in_a_config_map(built: Build) -> None:
    secret_values = {
        value
        for secret in of_kind(built.objects, "Secret")
        for value in secret.get("stringData", {}).values()
    }
    for config in of_kind(built.objects, "ConfigMap"):
        for name, value in config["data"].items():
            assert not SECRET_NAME.search(name), f"{config['metadata']['name']}: {name}"
            assert value not in secret_values, f"{config['metadata']['name']}: {name}"
            assert not urlsplit(value).password, f"{config['metadata']['name']}: {name}"


def test_the_sandbox_overlay_points_the_services_at_the_simulators() -> None:
    objects = build(ENTRY_POINTS["sandbox"]).objects
    ports = sandbox_env()
    sandbox = named(objects, "Service", "sandbox")
    assert {p["port"] for p in sandbox["spec"]["ports"]} == {
        int(ports["SANDBOX_GITHUB_PORT"]),
        int(ports["SANDBOX_PIPEDRIVE_PORT"]),
    }
    found = workloads(objects)
    poller = pod_env(objects, found["github_poller"])
    writer = pod_env(objects, found["pipedrive_writer"])
    assert poller["GITHUB_API_URL"].value == f"http://sandbox:{ports['SANDBOX_GITHUB_PORT']}"
    assert writer["PIPEDRIVE_API_URL"].value == (
        f"http://sandbox:{ports['SANDBOX_PIPEDRIVE_PORT']}/api/v2"
    )
    base_poller = pod_env(build(BASE).objects, workloads(build(BASE).objects)["github_poller"])
    assert base_poller["GITHUB_API_URL"].value == "https://api.github.com"


# --- one GitHub token per poller replica -------------------------------------------------------


@pytest.fixture
def poller_script(base: Build, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The poller's start script, its token directory moved to tmp_path and its final exec
    printing the token instead of starting the poller."""
    workload = workloads(base.objects)["github_poller"]
    container = the_container(workload)
    [mount] = container["volumeMounts"]
    [volume] = [
        v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    assert volume["secret"]["secretName"] == "gistsync-github"
    script = container["command"][2]
    assert mount["mountPath"] in script
    script = script.replace(mount["mountPath"], str(tmp_path))
    script = script.replace("exec python -m github_poller", 'printf %s "$API_TOKEN_GITHUB"')
    yield script, tmp_path


def run_script(script: str, pod: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ["PATH"], "POD_NAME": pod},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_each_poller_pod_reads_its_own_token(poller_script: tuple[str, Path]) -> None:
    script, tokens = poller_script
    (tokens / "token-0").write_text("first-token")
    (tokens / "token-1").write_text("second-token")
    assert run_script(script, "github-poller-0").stdout == "first-token"
    assert run_script(script, "github-poller-1").stdout == "second-token"
    # Scaled beyond the tokens: the pod stops at once, naming the missing key.
    missing = run_script(script, "github-poller-2")
    assert missing.returncode != 0 and missing.stdout == ""
    assert "token-2" in missing.stderr


# --- monitoring --------------------------------------------------------------------------------


def scrape_jobs(objects: list[dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """job → (Service, endpoint) pairs the ServiceMonitors make, for this build's Services; the
    operator's client Service for RabbitMQ (labels and port "prometheus") stands in for it."""
    services = [
        (s["metadata"]["name"], s["metadata"]["labels"], {p["name"] for p in s["spec"]["ports"]})
        for s in of_kind(objects, "Service")
    ]
    [cluster] = of_kind(objects, "RabbitmqCluster")
    services.append(
        (
            cluster["metadata"]["name"],
            {NAME: cluster["metadata"]["name"], COMPONENT: "rabbitmq"},
            {"amqp", "management", "prometheus"},
        )
    )
    jobs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for monitor in of_kind(objects, "ServiceMonitor"):
        spec = monitor["spec"]
        for name, labels, ports in services:
            if not selects(spec["selector"], labels):
                continue
            for endpoint in spec["endpoints"]:
                if endpoint["port"] not in ports:
                    continue
                job = labels[spec["jobLabel"]] if "jobLabel" in spec else name
                for relabel in endpoint.get("relabelings", []):
                    if relabel.get("targetLabel") == "job":
                        job = relabel["replacement"]
                jobs.setdefault(job, []).append((name, endpoint))
    return jobs


def test_service_monitors_are_well_formed(built: Build) -> None:
    for monitor in of_kind(built.objects, "ServiceMonitor"):
        name = monitor["metadata"]["name"]
        assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}, name
        spec = monitor["spec"]
        assert set(spec) <= SERVICE_MONITOR_SPEC_FIELDS, name
        assert spec["selector"]["matchLabels"], f"{name}: selects every Service"
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= ENDPOINT_FIELDS, name
            assert isinstance(endpoint["port"], str), f"{name}: a port name"
            assert endpoint["path"].startswith("/metrics"), name
            for relabel in endpoint.get("relabelings", []):
                assert set(relabel) <= RELABEL_FIELDS, name


def test_prometheus_scrapes_the_jobs_compose_does(built: Build) -> None:
    """Same job names as monitor/prometheus/prometheus.yml, which the alerts and dashboards
    use; each gistsync job reaches every pod of its service through one endpoint."""
    jobs = scrape_jobs(built.objects)
    compose_jobs = {
        job["job_name"]: job
        for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
    }
    assert set(jobs) == set(compose_jobs)
    workload_of = workloads(built.objects)
    for service in SETTINGS:
        [(name, endpoint)] = jobs[service]
        target = named(built.objects, "Service", name)
        assert selects(
            {"matchLabels": target["spec"]["selector"]}, pod_labels(workload_of[service])
        )
        [port] = [p for p in target["spec"]["ports"] if p["name"] == endpoint["port"]]
        container = the_container(workload_of[service])
        assert container_port(container, port["targetPort"]) == ops_port(service), service
    for job in ("rabbitmq", "rabbitmq_queues"):
        [(_, endpoint)] = jobs[job]
        assert endpoint["path"] == compose_jobs[job].get("metrics_path", "/metrics"), job
        assert endpoint.get("params", {}) == compose_jobs[job].get("params", {}), job


# The fields of a rule in the PrometheusRule CRD (Rule in monitoring.coreos.com/v1).
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def test_the_prometheus_rule_is_the_rules_file(built: Build) -> None:
    """Regenerate with `python -m tests.deploy.prometheus_rule` after changing alerts.yml."""
    [rule] = of_kind(built.objects, "PrometheusRule")
    expected = prometheus_rule()
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert rule["apiVersion"] == expected["apiVersion"]
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}, group["name"]
        for item in group["rules"]:
            assert set(item) <= RULE_FIELDS, item.get("alert")
    assert rule["spec"] == expected["spec"], (
        "deploy/k8s/base/alerts.yaml differs from monitor/prometheus/alerts.yml: "
        "run `.venv/bin/python -m tests.deploy.prometheus_rule`"
    )
    # Selected by the same label as the ServiceMonitors.
    monitors = {m["metadata"]["labels"][NAME] for m in of_kind(built.objects, "ServiceMonitor")}
    assert {rule["metadata"]["labels"][NAME]} == monitors
