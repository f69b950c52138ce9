"""What the real cluster tier's tests share: a client for the cluster, backends on it,
and finding a command among the host's processes."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client, config

from backfill_ctl.backends.kubernetes import KubernetesBackend
from backfill_ctl.spec.model import Kubernetes
from tests.k8s.cluster.images import BUSYBOX

if TYPE_CHECKING:
    from tests.k8s.cluster import Cluster

STORE = "0123456789ab"
GRACE = 3  # terminationGracePeriodSeconds


def configuration(cluster: Cluster) -> client.Configuration:
    """The cluster's admin, as the kubernetes client takes it."""
    made = client.Configuration()
    config.load_kube_config(config_file=str(cluster.admin), client_configuration=made)
    return made


class Backends:
    """Backends on the real cluster, one namespace and one runs directory."""

    def __init__(self, cluster: Cluster, namespace: str, root: Path) -> None:
        self.cluster, self.namespace, self.root = cluster, namespace, root
        self.made: list[KubernetesBackend] = []

    def settings(self, **changes: Any) -> Kubernetes:
        fields: dict[str, Any] = {
            "namespace": self.namespace,
            "image": BUSYBOX,
            # no pod network here; `sleep` as PID 1 ignores SIGTERM: KILL after 3 s
            "pod_spec": {"hostNetwork": True, "terminationGracePeriodSeconds": GRACE},
            "ttl_after_finished": 600,
        }
        return Kubernetes(**{**fields, **changes})

    def __call__(self, store: str = STORE, **changes: Any) -> KubernetesBackend:
        backend = KubernetesBackend(
            self.settings(**changes),
            runs=self.root / "runs",
            store_id=store,
            configuration=configuration(self.cluster),
        )
        self.made.append(backend)
        return backend

    def close(self) -> None:
        for backend in self.made:
            backend.close()


def running(marker: str) -> list[int]:
    """Processes of this host (containers included) whose command line has `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def marker() -> str:
    """A sleep duration no other process uses, to find the command among the host's."""
    return f"{60 + secrets.randbelow(10**6) / 10**6:.6f}"
