"""The real cluster tier: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and a kubelet on containerd and runc (tests/k8s/cluster/), on 127.0.0.1.

Not part of the default run: `.ci/run` builds the binaries (`python -m tests.k8s.cluster
build`) and runs this tier with BACKFILLCTL_K8S=1; there a missing binary is an error,
not a skip.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.k8s.cluster import Cluster, host
from tests.k8s.cluster.build import bin_dir, built
from tests.k8s.helpers import Backends, configuration

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("BACKFILLCTL_K8S") == "1":
        return
    skip = pytest.mark.skip(
        reason="the real control plane tier: BACKFILLCTL_K8S=1 (.ci/run runs it)"
    )
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not built():
        pytest.fail(f"no cluster binaries in {bin_dir()}: python -m tests.k8s.cluster build")
    started = Cluster.start(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()
    # Nothing of it is left on the host: no shim, no mount, no cgroup.
    state = started.root / "containerd"
    assert not host.shims(state / "state", state / "containerd.sock")
    mounts = Path("/proc/self/mounts").read_text()
    assert f" {started.root}/" not in mounts
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{started.cgroup}"))


@pytest.fixture(scope="session")
def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(client.ApiClient(configuration(cluster)))


@pytest.fixture
def namespace(cluster: Cluster, core: client.CoreV1Api) -> Iterator[str]:
    """A namespace of its own for each test (job names repeat between tests)."""
    name = "t-" + secrets.token_hex(4)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(name).items:  # pods need "default"
        assert time.monotonic() < deadline, "the serviceaccount controller made no account"
        time.sleep(0.1)
    yield name
    core.delete_namespace(name)


@pytest.fixture
def backends(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Backends]:
    """Backends on the cluster, in the test's namespace; closed at the end."""
    made = Backends(cluster, namespace, tmp_path)
    yield made
    made.close()


@pytest.fixture
def batch(cluster: Cluster) -> client.BatchV1Api:
    return client.BatchV1Api(client.ApiClient(configuration(cluster)))
