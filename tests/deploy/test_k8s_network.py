"""deploy/k8s's NetworkPolicies, evaluated: what each pod may reach and who may reach it, as
Kubernetes defines it (a pod selected by no policy of a direction is open in it; one selected
by some is open only to what one of their rules allows), against the ports the workloads
really listen on. test_k8s validates the objects themselves against the schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.test_k8s import (
    COMPONENT,
    ENTRY_POINTS,
    NAME,
    Build,
    build,
    code_port,
    of_kind,
    pod_labels,
    the_container,
)
from tests.monitor.monitoring import SETTINGS, ops_port, sandbox_env

NAMESPACE = "here"
RABBITMQ = {NAME: "rabbitmq", COMPONENT: "rabbitmq"}
AMQP = 5672


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (its labels, namespace and named ports) or, with no
    labels, an address outside the cluster."""

    labels: dict[str, str] | None = None
    namespace: str = NAMESPACE
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def pod(self) -> bool:
        return self.labels is not None


OUTSIDE = Peer()
ELSEWHERE = Peer({"app": "prometheus"}, namespace="monitoring")


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def peer_matches(rule_peer: dict[str, Any], peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        return not peer.pod  # every block used here is "anywhere"; pods are not matched by it
    if not peer.pod:
        return False
    assert peer.labels is not None
    namespaces = rule_peer.get("namespaceSelector")
    if namespaces is None and peer.namespace != NAMESPACE:
        return False
    if namespaces is not None:
        assert namespaces == {}, "only 'every namespace' is read here"
    return matches(rule_peer.get("podSelector", {}), peer.labels)


def port_matches(
    rule_ports: list[dict[str, Any]] | None, port: int, protocol: str, to: Peer
) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        wanted = item.get("port")
        if wanted is None or wanted == port or to.ports.get(str(wanted)) == port:
            return True
    return False


def allowed(
    objects: list[dict[str, Any]], source: Peer, target: Peer, port: int, protocol: str = "TCP"
) -> bool:
    policies = of_kind(objects, "NetworkPolicy")

    def side(pod: Peer, kind: str, rules_key: str, peers_key: str, other: Peer) -> bool:
        if not pod.pod or pod.namespace != NAMESPACE:
            return True  # outside, or another namespace's pods: none of our policies apply
        assert pod.labels is not None
        applying = [
            p["spec"]
            for p in policies
            if kind in p["spec"]["policyTypes"] and matches(p["spec"]["podSelector"], pod.labels)
        ]
        if not applying:
            return True
        return any(
            port_matches(rule.get("ports"), port, protocol, target)
            and (peers_key not in rule or any(peer_matches(p, other) for p in rule[peers_key]))
            for spec in applying
            for rule in spec.get(rules_key, [])
        )

    return side(source, "Egress", "egress", "to", target) and side(
        target, "Ingress", "ingress", "from", source
    )


def pods(objects: list[dict[str, Any]]) -> dict[str, Peer]:
    """Every workload's pod by component (the sandbox included), with its named ports."""
    found = {}
    for obj in objects:
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        labels = pod_labels(obj)
        ports = {p["name"]: p["containerPort"] for p in the_container(obj).get("ports", [])}
        found[labels[COMPONENT]] = Peer(dict(labels), ports=ports)
    return found


@pytest.fixture(scope="module", params=sorted(ENTRY_POINTS))
def built(request: pytest.FixtureRequest) -> Build:
    return build(ENTRY_POINTS[request.param])


def test_every_gistsync_pod_is_closed_by_default(built: Build) -> None:
    """Whatever is not allowed below is refused, in both directions."""
    for name, pod in pods(built.objects).items():
        assert not allowed(built.objects, pod, OUTSIDE, 80), f"{name} reaches out on :80"
        assert not allowed(built.objects, OUTSIDE, pod, 22), f"{name} is reachable on :22"


def test_every_service_reaches_the_broker_and_dns(built: Build) -> None:
    broker = Peer(RABBITMQ)
    dns = Peer({"k8s-app": "kube-dns"}, namespace="kube-system")
    for service in SETTINGS:
        pod = pods(built.objects)[service]
        assert allowed(built.objects, pod, broker, AMQP), service
        assert allowed(built.objects, pod, dns, 53, "UDP"), service
        assert allowed(built.objects, pod, dns, 53, "TCP"), service


def test_only_the_token_holders_reach_out_over_https(built: Build) -> None:
    found = pods(built.objects)
    assert allowed(built.objects, found["github_poller"], OUTSIDE, 443)
    assert allowed(built.objects, found["pipedrive_writer"], OUTSIDE, 443)
    assert not allowed(built.objects, found["gateway"], OUTSIDE, 443), "the gateway holds no token"


def test_each_service_is_reachable_on_its_own_ports_only(built: Build) -> None:
    """The gateway's HTTP port from anywhere; every service's ops port ("metrics"), for
    Prometheus wherever it runs."""
    found = pods(built.objects)
    every = {port for other in SETTINGS for port in (code_port(other), ops_port(other))}
    for service in SETTINGS:
        own = {code_port(service), ops_port(service)}
        assert set(found[service].ports.values()) == own, service
        for port in own:
            for client in (OUTSIDE, ELSEWHERE):
                assert allowed(built.objects, client, found[service], port), (service, port)
        for other in every - own:
            assert not allowed(built.objects, OUTSIDE, found[service], other), (service, other)


def test_services_do_not_call_each_other_over_http(built: Build) -> None:
    """They talk through RabbitMQ only."""
    found = pods(built.objects)
    for source in SETTINGS:
        for target in SETTINGS:
            if source != target:
                for port in (code_port(target), ops_port(target)):
                    assert not allowed(built.objects, found[source], found[target], port), (
                        f"{source} → {target}:{port}"
                    )


def test_the_sandbox_serves_the_token_holders_only() -> None:
    objects = build(ENTRY_POINTS["sandbox"]).objects
    found = pods(objects)
    sandbox = found["sandbox"]
    ports = sandbox_env()
    github, pipedrive = int(ports["SANDBOX_GITHUB_PORT"]), int(ports["SANDBOX_PIPEDRIVE_PORT"])
    assert set(sandbox.ports.values()) == {github, pipedrive}
    for service in ("github_poller", "pipedrive_writer"):
        for port in (github, pipedrive):
            assert allowed(objects, found[service], sandbox, port), (service, port)
    assert not allowed(objects, found["gateway"], sandbox, github)
    assert not allowed(objects, OUTSIDE, sandbox, github)
    assert not allowed(objects, sandbox, OUTSIDE, 443), "the simulators call no one"


def test_the_evaluation_would_catch_a_mistake(built: Build) -> None:
    """Guards the tests above against an evaluation that allows or refuses everything."""
    policies = [obj for obj in built.objects if obj["kind"] == "NetworkPolicy"]
    others = [obj for obj in built.objects if obj["kind"] != "NetworkPolicy"]
    gateway, poller = pods(others)["gateway"], pods(others)["github_poller"]
    assert allowed(others, gateway, OUTSIDE, 443), "no policy at all: everything is open"
    without_upstreams = others + [
        p for p in policies if p["metadata"]["name"] != "gistsync-upstreams"
    ]
    assert not allowed(without_upstreams, poller, OUTSIDE, 443)
