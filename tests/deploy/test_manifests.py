"""deploy/k8s: every kustomization renders, every object is valid Kubernetes, and the rendered
objects keep the promises docs/deploy.md makes (hardened pods, probes, budgets, policies,
autoscaling, no secret in clear)."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from rechecker.config import Settings
from rechecker.core.metrics import CoreMetrics
from tests.deploy.tools import (
    K8S,
    URL_CREDENTIALS,
    Doc,
    kubernetes_validate,
    kustomize,
    load_documents,
    run,
    strings,
)

TARGETS = ("base", "overlays/dev", "overlays/prod")
OVERLAYS = ("overlays/dev", "overlays/prod")
#: The oldest Kubernetes these manifests support, and a recent one.
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
#: Custom resources: no schema in kubernetes-validate; their required fields are checked here.
CUSTOM_KINDS = {"ServiceMonitor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
#: The placeholder secret.env holds instead of passwords.
PLACEHOLDER = "CHANGE_ME"
#: Each component's port (config.py's defaults), and the component that serves it.
COMPONENT_OF_PORT = {8080: "frontend", 8081: "backend", 8082: "core"}

_rendered: dict[str, tuple[str, list[Doc]]] = {}


def render(target: str) -> list[Doc]:
    """``kustomize build deploy/k8s/TARGET``, once per session."""
    if target not in _rendered:
        done = run([kustomize(), "build", K8S / target])
        assert done.returncode == 0, f"kustomize build {target} failed:\n{done.stderr}"
        _rendered[target] = (done.stdout, load_documents(done.stdout))
    return _rendered[target][1]


def rendered_text(target: str) -> str:
    render(target)
    return _rendered[target][0]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    found = [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]
    assert found, "no workload rendered"
    return found


def pod_spec(workload: Doc) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Doc) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) matches these labels."""
    wanted: dict[str, str] = selector.get("matchLabels", {})
    if any(labels.get(key) != value for key, value in wanted.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, a number or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


# --- valid Kubernetes -----------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_object_is_valid_kubernetes(target: str, version: str, tmp_path: Path) -> None:
    docs = render(target)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered_text(target))
    done = run([kubernetes_validate(), "--strict", "-k", version, manifest])
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    assert not errors, "\n".join(errors)
    custom = [doc for doc in docs if doc["kind"] in CUSTOM_KINDS]
    no_schema = [line for line in lines if "Couldn't find schema" in line]
    assert len(no_schema) == len(custom), "\n".join(no_schema)
    assert all(any(f"kind {kind} " in line for kind in CUSTOM_KINDS) for line in no_schema)
    passed = [line for line in lines if " passed for resource " in line]
    assert len(passed) == len(docs) - len(custom), "\n".join(lines)
    assert done.returncode == 0, "\n".join(lines)


def test_the_service_monitor_has_what_the_operator_needs() -> None:
    docs = render("overlays/prod")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    assert monitor["metadata"]["namespace"] == "rechecker"
    selector = monitor["spec"]["selector"]
    endpoints = monitor["spec"]["endpoints"]
    assert endpoints, "a ServiceMonitor without endpoints scrapes nothing"
    scraped = [
        svc for svc in of_kind(docs, "Service") if selects(selector, svc["metadata"]["labels"])
    ]
    assert sorted(svc["metadata"]["name"] for svc in scraped) == [
        "rechecker-backend",
        "rechecker-core",
    ]
    for endpoint in endpoints:
        assert endpoint["path"] == "/metrics"
        for service in scraped:
            assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]


# --- pods: hardened, sized, probed ----------------------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_as_non_root_on_a_read_only_root(target: str) -> None:
    for workload in workloads(render(target)):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == 10001, f"{name}: the Dockerfile's USER is 10001"
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec.get("hostNetwork", False) is False, name
        mounts_from = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in security["capabilities"], where
            assert security.get("privileged", False) is False, where
            # A read-only root needs somewhere to write: /tmp always, from a volume.
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in mounts_from[mounts["/tmp"]], where


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_resource_requests_and_limits(target: str) -> None:
    for workload in workloads(render(target)):
        for container in containers(workload):
            resources = container["resources"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            for bound in ("requests", "limits"):
                assert set(resources[bound]) >= {"cpu", "memory"}, f"{where}: {bound}"


@pytest.mark.parametrize("target", TARGETS)
def test_service_links_are_off_because_they_would_set_rechecker_settings(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Service named rechecker-backend makes Kubernetes set RECHECKER_BACKEND_PORT=tcp://…
    # in every pod of the namespace, which is a Rechecker setting and not a port:
    monkeypatch.setenv("RECHECKER_BACKEND_PORT", "tcp://10.0.0.1:8081")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
    for workload in workloads(render(target)):
        assert pod_spec(workload)["enableServiceLinks"] is False, workload["metadata"]["name"]


def probe_targets(target: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, component, container) of every container, the component told by its command."""
    for workload in workloads(render(target)):
        for container in containers(workload):
            (command,) = container["args"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            yield where, command, container


@pytest.mark.parametrize("target", TARGETS)
def test_probes_liveness_on_healthz_readiness_on_readyz(target: str) -> None:
    for where, component, container in probe_targets(target):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert kind in container, f"{where}: no {kind}"
        liveness = container["livenessProbe"]
        readiness = container["readinessProbe"]
        # Readiness follows the store; liveness must not, or a database outage restarts pods.
        assert readiness["httpGet"]["path"] in ("/readyz", "/healthz"), where
        assert liveness.get("httpGet", {}).get("path") != "/readyz", where
        if component != "frontend":
            assert liveness["httpGet"]["path"] == "/healthz", where
            assert readiness["httpGet"]["path"] == "/readyz", where
        # A liveness check fails only after the readiness one would have: never kill first.
        assert liveness["failureThreshold"] * liveness["periodSeconds"] >= (
            readiness["failureThreshold"] * readiness["periodSeconds"]
        ), where


def served_paths(tmp_path: Path) -> dict[str, set[str]]:
    """The paths each component's app answers, read off the apps themselves."""
    from rechecker.backend.api import create_app as backend_app
    from rechecker.core.api import create_app as core_app
    from rechecker.frontend.app import close_app
    from rechecker.frontend.app import create_app as frontend_app

    settings = Settings(_env_file=None, data_dir=tmp_path, schedulers_enabled=False)
    # The OpenAPI document lists every path the FastAPI apps route (the probes are in it).
    paths = {
        "backend": set(backend_app(settings).openapi()["paths"]),
        "core": set(core_app(settings).openapi()["paths"]),
    }
    flask_app = frontend_app(settings)
    try:
        paths["frontend"] = {rule.rule for rule in flask_app.url_map.iter_rules()}
    finally:
        close_app(flask_app)
    return paths


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_probe_asks_a_path_its_component_serves(target: str, tmp_path: Path) -> None:
    paths = served_paths(tmp_path)
    for where, _, container in probe_targets(target):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[kind].get("httpGet")
            if http is None:
                continue
            component = COMPONENT_OF_PORT[port_number(container, http["port"])]
            assert http["path"] in paths[component], f"{where} {kind}: {component} has no path"
    # Once the dashboard serves /readyz, its readiness must use it (frontend.yaml says how).
    if "/readyz" in paths["frontend"]:
        for where, component, container in probe_targets(target):
            if component == "frontend":
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where


def test_the_service_monitor_scrapes_paths_the_components_serve(tmp_path: Path) -> None:
    paths = served_paths(tmp_path)
    assert "/metrics" in paths["backend"]
    assert "/metrics" in paths["core"]


# --- wiring: Services, references, least privilege ------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_every_service_reaches_a_container_port(target: str) -> None:
    docs = render(target)
    for service in of_kind(docs, "Service"):
        name = service["metadata"]["name"]
        selector = {"matchLabels": service["spec"]["selector"]}
        pods = [w for w in workloads(docs) if selects(selector, pod_labels(w))]
        assert len(pods) == 1, f"Service {name} selects {len(pods)} workloads"
        (container,) = pod_spec(pods[0])["containers"]
        for port in service["spec"]["ports"]:
            number = port_number(container, port["targetPort"])
            assert number in [p["containerPort"] for p in container["ports"]], name
            assert COMPONENT_OF_PORT[number] == name.removeprefix("rechecker-"), name


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_reference_names_a_rendered_object(target: str) -> None:
    docs = render(target)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    secrets = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Secret")}
    for workload in workloads(docs):
        spec = pod_spec(workload)
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                assert ref["name"] in secrets, f"{variable['name']}: no Secret {ref['name']}"
                if not ref.get("optional", False):
                    assert ref["key"] in secrets[ref["name"]]["data"], variable["name"]


def test_only_the_backend_gets_the_inventory_and_only_the_core_the_alert_urls() -> None:
    """Each component gets the secrets it uses and no more: the API tokens go to the two
    components that serve an API."""
    tokens = {"RECHECKER_API__WRITE_TOKENS", "RECHECKER_API__READ_TOKENS"}
    wanted = {
        "backend": {"RECHECKER_STORE_URL", "RECHECKER_INVENTORY_URL", *tokens},
        "core": {"RECHECKER_STORE_URL", "RECHECKER_ALERTS__URLS", *tokens},
        "frontend": {"RECHECKER_STORE_URL"},
    }
    for where, component, container in probe_targets("overlays/prod"):
        from_secret = {
            variable["name"]
            for variable in container.get("env", [])
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        assert from_secret == wanted[component], where


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_in_clear_only_placeholders(target: str) -> None:
    docs = render(target)
    for doc in docs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        values = list(strings(doc))
        if doc["kind"] == "Secret":
            values += [base64.b64decode(v).decode() for v in doc.get("data", {}).values()]
            values += list(doc.get("stringData", {}).values())
        for value in values:
            for _user, password in URL_CREDENTIALS.findall(value):
                assert password == PLACEHOLDER, f"{where}: a password in clear"
    for workload in workloads(docs):
        for container in containers(workload):
            for variable in container.get("env", []):
                sensitive = any(
                    word in variable["name"] for word in ("URL", "PASSWORD", "SECRET", "TOKEN")
                )
                if sensitive:
                    assert "value" not in variable, f"{variable['name']} should come from a Secret"


# --- production -----------------------------------------------------------------------------
def test_prod_every_deployment_has_a_disruption_budget_that_allows_a_drain() -> None:
    docs = render("overlays/prod")
    autoscaled = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(docs, "HorizontalPodAutoscaler")
    }
    budgets = of_kind(docs, "PodDisruptionBudget")
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        covering = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        budget = covering[0]["spec"]
        if name in autoscaled:
            assert budget["maxUnavailable"] == 1, name
        else:
            # minAvailable below the replicas, or a node drain could never evict a pod.
            assert budget["minAvailable"] < deployment["spec"]["replicas"], name


def test_prod_the_autoscaler_scales_the_core_deployment() -> None:
    docs = render("overlays/prod")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    core = named(docs, "Deployment", target["name"])
    assert pod_spec(core)["containers"][0]["args"] == ["core"]
    # The autoscaler owns the count: a replicas field would reset it at every apply.
    assert "replicas" not in core["spec"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilisation is measured against requests: the core must request CPU.
    assert pod_spec(core)["containers"][0]["resources"]["requests"]["cpu"]


def test_prod_backend_and_frontend_run_more_than_one_replica() -> None:
    docs = render("overlays/prod")
    for name in ("rechecker-backend", "rechecker-frontend"):
        assert named(docs, "Deployment", name)["spec"]["replicas"] >= 2, name


def policies_for(docs: list[Doc], component: str, policy_type: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "rechecker", "app.kubernetes.io/component": component}
    return [
        policy["spec"]
        for policy in of_kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels)
        and policy_type in policy["spec"]["policyTypes"]
    ]


def rule_ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(port.get("protocol", "TCP"), port["port"]) for port in rule.get("ports", [])}


def reaches_anywhere(rule: dict[str, Any]) -> bool:
    """No `to` (any destination), or an ipBlock that is the whole IPv4 internet."""
    if "to" not in rule:
        return True
    return any(
        "ipBlock" in peer and ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen == 0
        for peer in rule["to"]
    )


def test_prod_network_policies_deny_by_default() -> None:
    docs = render("overlays/prod")
    for component in ("backend", "core", "frontend"):
        for policy_type in ("Ingress", "Egress"):
            policies = policies_for(docs, component, policy_type)
            key = policy_type.lower()
            assert any(key not in p for p in policies), f"{component}: no default {key} deny"


def test_prod_the_dashboard_is_reachable_on_8080_only() -> None:
    rules = [
        r
        for p in policies_for(render("overlays/prod"), "frontend", "Ingress")
        for r in p.get("ingress", [])
    ]
    assert rules
    assert all(rule_ports(rule) == {("TCP", 8080)} for rule in rules)


@pytest.mark.parametrize(("component", "port"), [("backend", 8081), ("core", 8082)])
def test_prod_the_apis_are_reachable_from_the_namespace_and_monitoring_only(
    component: str, port: int
) -> None:
    rules = [
        r
        for p in policies_for(render("overlays/prod"), component, "Ingress")
        for r in p.get("ingress", [])
    ]
    assert rules
    for rule in rules:
        assert rule_ports(rule) == {("TCP", port)}
        assert rule["from"], "an empty `from` admits everyone"
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            if "namespaceSelector" in peer:
                namespace = peer["namespaceSelector"]["matchLabels"]
                assert namespace == {"kubernetes.io/metadata.name": "monitoring"}
            else:
                assert peer["podSelector"] == {}, "this namespace's pods"


def test_prod_the_core_reaches_dns_and_web_anywhere_and_the_database() -> None:
    rules = [
        r
        for p in policies_for(render("overlays/prod"), "core", "Egress")
        for r in p.get("egress", [])
    ]
    anywhere = set().union(*(rule_ports(rule) for rule in rules if reaches_anywhere(rule)))
    assert anywhere >= {("UDP", 53), ("TCP", 53), ("TCP", 80), ("TCP", 443)}
    assert {("TCP", 27017), ("TCP", 3306)} <= anywhere, "the store and the inventory"


def test_prod_the_image_is_a_pinned_release() -> None:
    for workload in workloads(render("overlays/prod")):
        for container in containers(workload):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{image}: no tag"
            assert not image.endswith(":latest"), image


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(target: str) -> None:
    docs = render(target)
    (namespace,) = of_kind(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], doc["kind"]


# --- development ----------------------------------------------------------------------------
def test_dev_is_one_pod_running_everything_on_a_volume() -> None:
    docs = render("overlays/dev")
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "SQLite on a RWO volume"
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert container["args"] == ["all"]
    (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == data["name"]]
    claim = named(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The embedded default: no database URL, so nothing secret at all.
    assert not of_kind(docs, "Secret")
    assert not any("valueFrom" in variable for variable in container.get("env", []))
    # Production's Service names and ports, all pointing at the one pod.
    assert sorted(svc["metadata"]["name"] for svc in of_kind(docs, "Service")) == [
        "rechecker-backend",
        "rechecker-core",
        "rechecker-frontend",
    ]


def test_the_lag_metric_suggested_for_autoscaling_is_one_the_core_exports() -> None:
    suggested = re.findall(r"name: (rechecker_\w+)", (K8S / "overlays/prod/hpa.yaml").read_text())
    assert suggested, "hpa.yaml's comment names the metric"
    registry = CollectorRegistry()
    CoreMetrics(registry)
    exported = generate_latest(registry).decode()
    for metric in suggested:
        assert f"\n{metric} " in exported or exported.startswith(f"{metric} "), metric
