"""backfillctl against a real cluster, through the real Typer app: the README's example
backfill as Jobs, `backend check` with the identity deploy/rbac.yaml gives the controller
(and a narrower one), and deploy/ and deploy/ha/ applied with a server-side dry run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.cli.helpers import run
from tests.k8s.cluster import Cluster, kubeconfig
from tests.k8s.cluster.images import RETAIL_ETL
from tests.k8s.helpers import configuration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMESPACE = "backfill"  # deploy/'s


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def use_cluster(specs: Path, settings: dict[str, Any]) -> None:
    """The example repo's Config, switched to the kubernetes backend."""
    path = specs / "backfillctl.yaml"
    (config,) = documents(path)
    config["spec"]["backend"] = "kubernetes"
    config["spec"]["kubernetes"] = settings
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_the_readme_example_runs_as_jobs(
    cluster: Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(
        ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("out", "__pycache__")
    )
    use_cluster(
        tmp_path / "specs",
        {
            "kubeconfig": str(cluster.admin),
            "namespace": namespace,
            "image": RETAIL_ETL,  # Python and the example's jobs/, at /app/specs
            "workingDir": "/app/specs",
            "podTemplate": {"spec": {"hostNetwork": True}},
        },
    )
    monkeypatch.chdir(tmp_path)

    applied = run("apply", "specs/", "--as", "oncall", "--wait", "--timeout", "10m")

    assert applied.exit_code == 0, applied.stderr
    assert applied.stderr.splitlines()[-3:] == [
        "backfill/clicks-late-data: succeeded",
        "backfill/dw-rebuild-2024-01: succeeded",
        "backfill/fix-orders-2024-03: succeeded",
    ]
    listed = run("get", "instances", "-o", "json")
    items = [i for i in listed_items(listed.stdout) if not i["spec"].get("dryRun")]
    assert {i["status"]["state"] for i in items} == {"succeeded"}
    batch = client.BatchV1Api(client.ApiClient(configuration(cluster)))
    jobs = batch.list_namespaced_job(namespace).items
    attempts = sorted(j.metadata.name for j in jobs if not j.metadata.name.endswith("-1"))
    assert not attempts, attempts  # each instance's first attempt succeeded
    assert len(jobs) == len(items)  # one Job per instance: nothing ran twice
    assert all(j.status.succeeded == 1 and not j.status.failed for j in jobs)
    some = next(i["metadata"]["name"] for i in items if i["spec"]["node"] == "dwd_orders")
    log = run("logs", some)
    assert log.exit_code == 0, log.stderr
    assert log.stdout.startswith("dwd_orders: wrote partition 2024")


def listed_items(text: str) -> list[dict[str, Any]]:
    import json

    doc = json.loads(text)
    assert doc["kind"] == "List"
    return list(doc["items"])


# -- deploy/ against the real API server ---------------------------------------------


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Iterator[client.ApiClient]:
    """deploy/namespace.yaml and deploy/rbac.yaml applied for real."""
    from kubernetes.utils import create_from_yaml

    api = client.ApiClient(configuration(cluster))
    for name in ("namespace.yaml", "rbac.yaml"):
        create_from_yaml(api, str(DEPLOY / name))
    yield api
    client.CoreV1Api(api).delete_namespace(NAMESPACE)


def token_kubeconfig(cluster: Cluster, api: client.ApiClient, account: str, path: Path) -> Path:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, NAMESPACE, request
    )
    return kubeconfig(path, cluster.server, cluster.ca, token.status.token)


def check_repo(tmp_path: Path, kubeconfig_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    config = {
        "apiVersion": "backfillctl.dev/v1alpha1",
        "kind": "Config",
        "metadata": {"name": "cluster"},
        "spec": {
            "backend": "kubernetes",
            "kubernetes": {"kubeconfig": str(kubeconfig_path), "namespace": NAMESPACE},
        },
    }
    (specs / "backfillctl.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return specs


def test_backend_check_passes_with_the_controller_identity_of_deploy(
    cluster: Cluster, deployed: client.ApiClient, tmp_path: Path
) -> None:
    path = token_kubeconfig(cluster, deployed, "backfillctl-controller", tmp_path / "kc")
    result = run("backend", "check", str(check_repo(tmp_path, path)))
    assert result.exit_code == 0, result.stdout + result.stderr
    checks = [line.split()[:3] for line in result.stdout.splitlines()[2:]]
    assert {c[2] for c in checks} == {"ok"}, result.stdout
    assert len(checks) == 9  # (8 permissions, and the log copies' directory)
    assert checks[-1] == ["write", "logs", "ok"]
    assert result.stderr == "backend kubernetes: ready\n"


def test_backend_check_with_a_narrower_role_names_the_missing_permission(
    cluster: Cluster, deployed: client.ApiClient, tmp_path: Path
) -> None:
    (role,) = [d for d in documents(DEPLOY / "rbac.yaml") if d["kind"] == "Role"]
    narrow = "backfillctl-narrow"
    role["metadata"]["name"] = narrow
    jobs = next(r for r in role["rules"] if r["resources"] == ["jobs"])
    jobs["verbs"] = [v for v in jobs["verbs"] if v != "delete"]
    rbac = client.RbacAuthorizationV1Api(deployed)
    core = client.CoreV1Api(deployed)
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": narrow}})
    rbac.create_namespaced_role(NAMESPACE, role)
    rbac.create_namespaced_role_binding(
        NAMESPACE,
        {
            "metadata": {"name": narrow},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": narrow},
            "subjects": [{"kind": "ServiceAccount", "name": narrow, "namespace": NAMESPACE}],
        },
    )
    path = token_kubeconfig(cluster, deployed, narrow, tmp_path / "kc")

    result = run("backend", "check", str(check_repo(tmp_path, path)))

    assert result.exit_code == 1
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert [line.split()[:2] for line in failed] == [["delete", "jobs"]], result.stdout
    assert result.stderr == "backend kubernetes: 1 of 10 checks failed\n"


def test_deploy_applies_with_a_server_side_dry_run(
    cluster: Cluster, deployed: client.ApiClient
) -> None:
    """Every document of deploy/, as `kubectl apply -k deploy/ --server-side --dry-run=server
    --validate=strict` sends it: server-side apply, strict field validation, dry run."""
    kustomization = documents(DEPLOY / "kustomization.yaml")[0]
    applied = []
    for name in kustomization["resources"]:
        for doc in documents(DEPLOY / name):
            if doc["kind"] != "Namespace":
                doc["metadata"].setdefault("namespace", kustomization["namespace"])
            applied.append(server_side_apply(cluster, doc))
    kinds = {doc["kind"] for doc in applied}
    assert {"Deployment", "Namespace", "Role", "ServiceAccount"} <= kinds, kinds


def test_the_ha_variant_applies_with_a_server_side_dry_run(
    cluster: Cluster, deployed: client.ApiClient
) -> None:
    """deploy/ha/ (two controllers, the store's URL from a Secret, a PodDisruptionBudget)
    after deploy/'s namespace and RBAC, as `kubectl apply -k deploy/ha/ --server-side
    --dry-run=server --validate=strict` sends it."""
    kustomization = documents(DEPLOY / "ha" / "kustomization.yaml")[0]
    applied = [
        server_side_apply(cluster, doc)
        for name in kustomization["resources"]
        for doc in documents(DEPLOY / "ha" / name)
    ]
    assert sorted(doc["kind"] for doc in applied) == [
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ]


def server_side_apply(cluster: Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    version = doc["apiVersion"]
    path = f"/apis/{version}" if "/" in version else f"/api/{version}"
    meta = doc["metadata"]
    if "namespace" in meta:
        path += f"/namespaces/{meta['namespace']}"
    path += f"/{PLURALS[doc['kind']]}/{meta['name']}?" + urllib.parse.urlencode(
        {"fieldManager": "backfillctl-test", "dryRun": "All", "fieldValidation": "Strict"}
    )
    request = urllib.request.Request(
        cluster.server + path,
        data=json.dumps(doc).encode(),
        method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=cluster.context(), timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{doc['kind']}/{meta['name']}: {exc.read().decode()}") from None
    assert answer["kind"] == doc["kind"], answer
    return answer


PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "PodDisruptionBudget": "poddisruptionbudgets",
}


def test_an_image_that_is_not_there_fails_the_backfill_and_describe_says_why(
    cluster: Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an attempt running forever: its pod does not start within startTimeoutSeconds,
    and `describe` and `events` give the cluster's reason."""
    shutil.copytree(
        ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("out", "__pycache__")
    )
    use_cluster(
        tmp_path / "specs",
        {
            "kubeconfig": str(cluster.admin),
            "namespace": namespace,
            "image": "backfillctl.local/absent:1",
            "startTimeoutSeconds": 2,
            "podTemplate": {"spec": {"hostNetwork": True}},
        },
    )
    monkeypatch.chdir(tmp_path)
    applied = run("apply", "specs/", "--as", "oncall", "--wait", "--timeout", "5m")
    assert applied.exit_code != 0, applied.stderr
    assert "backfill/fix-orders-2024-03: failed" in applied.stderr.splitlines()
    items = listed_items(run("get", "instances", "-o", "json").stdout)
    failed = next(i["metadata"]["name"] for i in items if i["status"]["state"] == "failed")
    described = run("describe", failed)
    assert described.exit_code == 0, described.stderr
    assert "its pod did not start in 2s" in described.stdout, described.stdout
    assert "ImagePull" in described.stdout, described.stdout
    logged = run("logs", failed)
    assert logged.stdout.startswith("[backfillctl: its pod did not start in 2s"), logged
    assert (
        not client.BatchV1Api(client.ApiClient(configuration(cluster)))
        .list_namespaced_job(namespace)
        .items
    )
