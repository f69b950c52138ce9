"""The Kubernetes manifests in deploy/: valid for the API server, least privilege, consistent.

Validation is offline, against the schemas kubernetes-validate bundles, in strict mode
(unknown fields are errors): for the newest Kubernetes it knows and for 1.29, the oldest
release that runs the git-sync native sidecar (an init container with restartPolicy
Always; the field exists from 1.28, but there it is alpha and off by default). The rest
are the checks a security regression would trip: RBAC grants, the pod's security
settings, who gets an API token.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from backfill_ctl.spec.loader import load_files
from backfill_ctl.spec.source import SourceFile

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
NEWEST = kubernetes_validate.latest_version()
OLDEST = "1.29"  # native sidecars on by default
NAMESPACE = "backfill"
LABELS = {"app.kubernetes.io/name": "backfillctl", "app.kubernetes.io/component": "controller"}
ROLE_GRANTS = {
    ("batch", "jobs", "create"),
    ("batch", "jobs", "get"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "delete"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
}
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def all_documents() -> list[Doc]:
    return [d for path in MANIFESTS for d in documents(path)]


def one(kind: str, name: str) -> Doc:
    found = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def deployment() -> Doc:
    return one("Deployment", "backfillctl-controller")


def pod_spec() -> Doc:
    spec: Doc = deployment()["spec"]["template"]["spec"]
    return spec


def container(name: str) -> Doc:
    spec = pod_spec()
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def env(c: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def mounts(c: Doc) -> dict[str, Doc]:
    return {m["name"]: m for m in c.get("volumeMounts", [])}


def volumes() -> dict[str, Doc]:
    return {v["name"]: v for v in pod_spec()["volumes"]}


# -- the Kubernetes schemas ------------------------------------------------------------------


@pytest.mark.parametrize("version", [NEWEST, OLDEST])
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_validates_strictly(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        # validate() falls back to an older bundled schema when it lacks the version
        # asked for: the version it reports must be the one asked for.
        validated = kubernetes_validate.validate(doc, version, strict=True)
        assert validated == ".".join(version.split(".")[:2]), doc["metadata"]["name"]


def test_the_validation_is_strict_and_pins_the_oldest_release() -> None:
    typo = copy.deepcopy(deployment())
    controller = typo["spec"]["template"]["spec"]["containers"][0]
    controller["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(typo, NEWEST, strict=True)
    # Before native sidecars the only unknown field is the sidecar's restartPolicy.
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(deployment(), "1.27", strict=True)
    assert list(caught.value.path)[-2:] == ["initContainers", 0]
    assert "'restartPolicy' was unexpected" in caught.value.message


# -- the files -------------------------------------------------------------------------------


def test_kustomization_lists_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in MANIFESTS}
    assert kustomization["namespace"] == NAMESPACE


def test_every_yaml_file_opens_with_a_comment_and_names_its_namespace() -> None:
    for path in [*MANIFESTS, DEPLOY / "kustomization.yaml"]:
        assert path.read_text(encoding="utf-8").startswith("# "), path.name
    kinds = set()
    for doc in all_documents():
        kinds.add(doc["kind"])
        meta = doc["metadata"]
        assert meta["labels"]["app.kubernetes.io/name"] == "backfillctl", meta["name"]
        if doc["kind"] == "Namespace":
            assert meta["name"] == NAMESPACE
        else:
            assert meta["namespace"] == NAMESPACE, meta["name"]
    # Nothing cluster-wide beyond the namespace itself: no ClusterRole(Binding), no webhooks.
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    }


def test_the_controller_is_probed_and_scraped_through_serve() -> None:
    (deployment,) = [d for d in all_documents() if d["kind"] == "Deployment"]
    (service,) = [d for d in all_documents() if d["kind"] == "Service"]
    pod = deployment["spec"]["template"]
    (controller,) = [c for c in pod["spec"]["containers"] if c["name"] == "controller"]
    args = controller["args"]
    assert args[args.index("--serve") + 1] == ":9090"
    assert controller["ports"] == [{"name": "http", "containerPort": 9090}]
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert controller[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert service["spec"]["selector"] == pod["metadata"]["labels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 9090, "targetPort": "http"}]


# -- RBAC ------------------------------------------------------------------------------------


def test_the_role_grants_exactly_what_the_job_backend_needs() -> None:
    rules = one("Role", "backfillctl-controller")["rules"]
    grants = set()
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames etc.
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    grants.add((group, resource, verb))
    assert grants == ROLE_GRANTS
    assert not any("*" in part for grant in grants for part in grant)
    assert not any(resource == "secrets" for _, resource, _ in grants)


def test_the_role_is_what_the_kubernetes_backend_checks_it_may_do() -> None:
    from backfill_ctl.backends.kubernetes import PERMISSIONS

    wanted = {(g, f"{r}/{sub}" if sub else r, verb) for verb, g, r, sub in PERMISSIONS}
    assert wanted == ROLE_GRANTS


def test_only_the_controller_is_bound_and_the_runner_has_no_token() -> None:
    bindings = [d for d in all_documents() if d["kind"] == "RoleBinding"]
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "backfillctl-controller",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod_spec()["serviceAccountName"], "namespace": NAMESPACE}
    ]
    one("ServiceAccount", pod_spec()["serviceAccountName"])
    assert one("ServiceAccount", "backfill-runner")["automountServiceAccountToken"] is False


# -- the Deployment --------------------------------------------------------------------------


def test_one_controller_at_a_time() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == LABELS
    assert spec["template"]["metadata"]["labels"] == LABELS
    assert pod_spec()["terminationGracePeriodSeconds"] == 60


def test_every_container_runs_unprivileged() -> None:
    spec = pod_spec()
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["fsGroup"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in spec["volumes"])
    for c in spec["initContainers"] + spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert not sc.get("privileged"), c["name"]
        assert sc.get("runAsUser", 10001) != 0, c["name"]
        assert set(c["resources"]) == {"requests", "limits"}, c["name"]


def test_only_the_controller_container_gets_the_api_token() -> None:
    spec = pod_spec()
    assert spec["automountServiceAccountToken"] is False
    projected = [
        name
        for name, v in volumes().items()
        if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))
    ]
    assert len(projected) == 1
    holders = {
        c["name"]: mounts(c)[projected[0]]
        for c in spec["initContainers"] + spec["containers"]
        if projected[0] in mounts(c)
    }
    assert list(holders) == ["controller"]
    assert holders["controller"]["mountPath"] == TOKEN_PATH
    assert holders["controller"]["readOnly"] is True


def test_the_controller_runs_the_synced_specs_on_the_volume_store() -> None:
    controller, sync = container("controller"), container("git-sync")
    assert controller["args"][0] == "controller"
    # The store named by $BACKFILLCTL_STATE lies on the PVC, mounted writable.
    state = Path(env(controller)["BACKFILLCTL_STATE"])
    claim = one("PersistentVolumeClaim", "backfillctl-state")
    on_pvc = [
        m
        for m in controller["volumeMounts"]
        if volumes()[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
        == claim["metadata"]["name"]
    ]
    assert len(on_pvc) == 1
    assert state.parent == Path(on_pvc[0]["mountPath"])
    assert not on_pvc[0].get("readOnly")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The specs path lies in git-sync's published link, on the volume both mount; the
    # controller only reads it.
    published = Path(env(sync)["GITSYNC_ROOT"]) / env(sync)["GITSYNC_LINK"]
    assert Path(controller["args"][1]).is_relative_to(published)
    shared = mounts(sync)["git"]
    assert shared["mountPath"] == env(sync)["GITSYNC_ROOT"]
    assert mounts(controller)["git"] == {"name": "git", "mountPath": "/git", "readOnly": True}
    assert "emptyDir" in volumes()["git"]


def test_git_sync_is_a_native_sidecar_that_gates_the_controller() -> None:
    spec = pod_spec()
    sync = container("git-sync")
    assert spec["initContainers"] == [sync]
    assert sync["restartPolicy"] == "Always"
    # Without a startup probe the kubelet starts the controller once git-sync has
    # started, before the first clone; git-sync's "/" answers 200 only after it.
    probe = sync["startupProbe"]["httpGet"]
    port = next(p for p in sync["ports"] if p["name"] == probe["port"])
    assert env(sync)["GITSYNC_HTTP_BIND"] == f":{port['containerPort']}"
    assert probe["path"] == "/"


# -- the image and the docs ------------------------------------------------------------------


def test_the_image_runs_backfillctl_with_the_kubernetes_extra_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    instructions = re.findall(r"^([A-Z]+) (.*)$", text, flags=re.MULTILINE)
    entrypoints = [json.loads(args) for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoints == [["backfillctl"]]
    assert ("FROM", "python:3.11-slim") in instructions
    # the PostgreSQL store too (deploy/ha/)
    assert re.search(r"pip install --no-cache-dir '\.\[kubernetes,postgresql\]'", text)
    users = [args for op, args in instructions if op == "USER"]
    assert users == ["10001:10001"]  # numeric: runAsNonRoot can check it


def test_the_readme_config_is_valid_and_names_these_objects() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    configs = [b for b in blocks if "kind: Config" in b]
    assert len(configs) == 2  # the minimal one, and the one that runs the example as Jobs
    for block in configs:
        text = textwrap.dedent(block)  # the first sits in a numbered list
        specs = load_files([SourceFile("deploy/README.md", text)])
        assert specs.diagnostics == []
        assert specs.config.backend == "kubernetes"
        assert specs.config.kubernetes.namespace == NAMESPACE
        assert specs.config.kubernetes.service_account == "backfill-runner"
        one("ServiceAccount", specs.config.kubernetes.service_account)
    # The example runs `python jobs/etl.py` from the directory the image holds it in.
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert specs.config.kubernetes.working_dir == "/app/specs"
    assert "COPY --chown=10001:10001 specs/jobs/ /app/specs/jobs/" in dockerfile
    # Every `deploy/NAME -c CONTAINER` of a kubectl command names this Deployment's own.
    targets = set(re.findall(r"deploy/([\w-]+) -c ([\w-]+)", readme))
    assert targets
    names = {(deployment()["metadata"]["name"], c) for c in ("controller", "git-sync")}
    assert targets <= names


# -- deploy/ha/: two controllers on PostgreSQL -------------------------------------------------

HA = DEPLOY / "ha"
HA_MANIFESTS = sorted(p for p in HA.glob("*.yaml") if p.name != "kustomization.yaml")


def ha_one(kind: str) -> Doc:
    (found,) = [d for path in HA_MANIFESTS for d in documents(path) if d["kind"] == kind]
    return found


@pytest.mark.parametrize("version", [NEWEST, OLDEST])
@pytest.mark.parametrize("path", HA_MANIFESTS, ids=lambda p: f"ha/{p.name}")
def test_every_ha_manifest_validates_strictly(path: Path, version: str) -> None:
    for doc in documents(path):
        validated = kubernetes_validate.validate(doc, version, strict=True)
        assert validated == ".".join(version.split(".")[:2]), doc["metadata"]["name"]


def test_the_ha_kustomization_lists_its_manifests_and_every_file_says_what_it_is() -> None:
    kustomization = yaml.safe_load((HA / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["resources"] == [p.name for p in HA_MANIFESTS]
    assert kustomization["namespace"] == NAMESPACE
    for path in [*HA_MANIFESTS, HA / "kustomization.yaml"]:
        assert path.read_text(encoding="utf-8").startswith("# "), path.name
    kinds = []
    for path in HA_MANIFESTS:
        for doc in documents(path):
            kinds.append(doc["kind"])
            assert doc["metadata"]["namespace"] == NAMESPACE
            assert doc["metadata"]["labels"] == LABELS
    assert sorted(kinds) == ["Deployment", "PodDisruptionBudget", "Service"]


def ha_changes(base: Doc) -> Doc:
    """deploy/controller.yaml's Deployment with the changes deploy/ha/ makes, and only
    them: two replicas rolled one at a time, spread over nodes, the store's URL from a
    Secret, ready while alive, and no SQLite volume."""
    ha = copy.deepcopy(base)
    spec = ha["spec"]
    spec["replicas"] = 2
    spec["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    pod["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": LABELS},
        }
    ]
    (controller,) = [c for c in pod["containers"] if c["name"] == "controller"]
    controller["readinessProbe"]["httpGet"]["path"] = "/healthz"
    secret = {"secretKeyRef": {"name": "backfillctl-state", "key": "url"}}
    controller["env"] = [
        {"name": e["name"], "valueFrom": secret} if e["name"] == "BACKFILLCTL_STATE" else e
        for e in controller["env"]
    ]
    controller["volumeMounts"] = [m for m in controller["volumeMounts"] if m["name"] != "state"]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "state"]
    return ha


def test_the_ha_deployment_is_deploy_s_with_only_its_changes() -> None:
    assert ha_one("Deployment") == ha_changes(deployment())
    assert ha_one("Service") == one("Service", "backfillctl-controller")


def test_the_ha_controllers_share_a_postgresql_store_from_a_secret_with_no_volume() -> None:
    ha = ha_one("Deployment")
    assert ha["spec"]["replicas"] == 2
    pod = ha["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    (controller,) = [c for c in pod["containers"] if c["name"] == "controller"]
    (state,) = [e for e in controller["env"] if e["name"] == "BACKFILLCTL_STATE"]
    assert state == {
        "name": "BACKFILLCTL_STATE",
        "valueFrom": {"secretKeyRef": {"name": "backfillctl-state", "key": "url"}},
    }
    # the working directory, where the logs of ended Jobs are copied, is writable
    assert {m["mountPath"] for m in controller["volumeMounts"]} >= {"/tmp"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert controller[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    args = controller["args"]
    assert args[args.index("--serve") + 1] == ":9090"


def test_the_disruption_budget_keeps_one_controller_and_never_blocks_a_drain() -> None:
    budget = ha_one("PodDisruptionBudget")
    assert budget["metadata"]["name"] == "backfillctl-controller"
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == {"matchLabels": LABELS}
    assert ha_one("Deployment")["spec"]["template"]["metadata"]["labels"] == LABELS
    # a stuck controller may be evicted; a standby counts as available (ready while alive)
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_kustomize_builds_the_ha_variant_as_its_files_say() -> None:
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (its kustomize) is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(HA)], capture_output=True, text=True, check=True, timeout=60
    )
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    ours = [d for path in HA_MANIFESTS for d in documents(path)]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(docs, key=key) == sorted(ours, key=key)
