"""A real Kubernetes cluster for the tests, on 127.0.0.1 only, and its teardown.

    cluster = Cluster.start(workdir)   # containerd, etcd, kube-apiserver,
    ...                                 # kube-controller-manager, kube-scheduler, kubelet
    cluster.stop()

The Kubernetes binaries come from build.py (a pinned release, built once into the
user's cache); containerd and runc are Debian's; the images are made here (images.py).

- The API server: RBAC and the Node authorizer, client certificates of its own CA,
  service-account tokens signed by a key of its own, the default admission chain.
- The controller manager: the Job, TTL-after-finished, garbage-collector, namespace,
  service-account, root-CA-publisher, pod-GC, node-lifecycle and resource-quota
  controllers, each with
  its own service account's credentials (as kubeadm sets it up).
- The scheduler, and a real kubelet (node `localhost`: it refuses a loopback node IP, so
  the API server reaches it by host name) on containerd's CRI with runc and cgroupfs.
  This host has cgroup v1 only (`failCgroupV1: false`) and no CAP_SYS_RESOURCE
  (containerd's `restrict_oom_score_adj`). Pods must use the host's network: there is no
  pod network (a loopback-only CNI configuration keeps the runtime's network ready).

Every process is started in its own session and dies with the process that started it
(PR_SET_PDEATHSIG); stop() also kills the containers, unmounts and removes the cgroups.
Each cluster's pods live under a cgroup root of their own, so clusters side by side on
one host (tests and a benchmark) never touch each other's pods.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.k8s.cluster import host
from tests.k8s.cluster.build import RELEASE, bin_dir
from tests.k8s.cluster.images import build_images
from tests.k8s.cluster.pki import Pair, Pki

NODE = "localhost"
REPO = Path(__file__).resolve().parents[3]
CONTROLLERS = ",".join(
    f"{name}-controller"
    for name in (
        "job", "ttl-after-finished", "garbage-collector", "namespace", "serviceaccount",
        "serviceaccount-token", "root-ca-certificate-publisher", "pod-garbage-collector",
        "node-lifecycle", "resourcequota",
    )
)  # fmt: skip
ISSUER = "https://kubernetes.default.svc.cluster.local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def kubeconfig(path: Path, server: str, ca: Path, user: Pair | str) -> Path:
    """A kubeconfig for a client certificate or a bearer token."""
    credentials = (
        {"token": user}
        if isinstance(user, str)
        else {"client-certificate": str(user.cert), "client-key": str(user.key)}
    )
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "user", "user": credentials}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def containerd_config(root: Path) -> str:
    state = root / "containerd"
    return f"""version = 2
root = "{state}/root"
state = "{state}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "backfillctl.local/pause:1"
  restrict_oom_score_adj = true
  enable_cdi = false
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{root}/cni/bin"
    conf_dir = "{root}/cni/net.d"
"""


@dataclass
class Cluster:
    root: Path
    server: str
    ca: Path
    admin: Path  # kubeconfig of a system:masters user
    pki: Pki
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)  # how each was started
    release: str = RELEASE
    # the node's cgroup root: its pods only, apart from any other cluster's on this host
    cgroup: str = field(default_factory=lambda: f"backfillctl-{secrets.token_hex(4)}")

    @classmethod
    def start(
        cls, root: Path, binaries: Path | None = None, *, controller_qps: int | None = None
    ) -> Cluster:
        """Start a cluster in `root`. `controller_qps`: the controller manager's API rate
        (--kube-api-qps, burst twice that; its default is 20 requests/s)."""
        binaries = binaries or bin_dir()
        host.install_packages()
        begun = time.monotonic()
        root.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        pki = Pki(root / "pki")
        secure = free_port()
        server = f"https://127.0.0.1:{secure}"
        admin = pki.issue("admin", "/O=system:masters/CN=admin", client=True)
        config = kubeconfig(root / "admin.kubeconfig", server, pki.ca.cert, admin)
        cluster = cls(root, server, pki.ca.cert, config, pki)
        try:
            cluster._runtime(binaries)
            cluster._control_plane(binaries, secure, controller_qps)
            cluster._node(binaries)
        except BaseException:
            cluster.stop()
            raise
        cluster.timings["ready_s"] = time.monotonic() - begun
        return cluster

    def _mark(self, what: str, since: float) -> None:
        self.timings[what] = round(time.monotonic() - since, 2)

    def _runtime(self, binaries: Path) -> None:
        begun = time.monotonic()
        (self.root / "cni" / "net.d").mkdir(parents=True)
        (self.root / "cni" / "bin").mkdir()
        loopback = {"cniVersion": "0.4.0", "name": "lo-only", "plugins": [{"type": "loopback"}]}
        (self.root / "cni" / "net.d" / "10-loopback.conflist").write_text(json.dumps(loopback))
        (self.root / "containerd").mkdir()
        toml = self.root / "containerd" / "config.toml"
        toml.write_text(containerd_config(self.root), encoding="utf-8")
        self._spawn("containerd", ["containerd", "--config", str(toml)])
        self.wait_for("containerd", lambda: self.ctr("version").returncode == 0)
        for archive in build_images(self.root / "images", binaries / "pause", REPO).values():
            done = self.ctr("images", "import", str(archive))
            if done.returncode != 0:
                raise RuntimeError(f"ctr import {archive}: {done.stderr}")
        self._mark("runtime_s", begun)

    def _control_plane(self, binaries: Path, secure: int, qps: int | None) -> None:
        begun = time.monotonic()
        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            str(binaries / "etcd"), "--name", "test", "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])  # fmt: skip
        pki = self.pki
        serving = pki.issue("apiserver", "/CN=kube-apiserver", server=True)
        to_kubelet = pki.issue("apiserver-kubelet-client", "/CN=kube-apiserver", client=True)
        self._spawn("kube-apiserver", [
            str(binaries / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(secure),
            "--tls-cert-file", str(serving.cert), "--tls-private-key-file", str(serving.key),
            "--client-ca-file", str(pki.ca.cert),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", ISSUER, "--api-audiences", ISSUER,
            "--service-account-key-file", str(pki.service_accounts.cert),
            "--service-account-signing-key-file", str(pki.service_accounts.key),
            "--service-cluster-ip-range", "10.96.0.0/24",
            "--endpoint-reconciler-type", "none",
            "--kubelet-client-certificate", str(to_kubelet.cert),
            "--kubelet-client-key", str(to_kubelet.key),
            "--kubelet-certificate-authority", str(pki.ca.cert),
            "--kubelet-preferred-address-types", "Hostname,InternalIP",
            "--cert-dir", str(self.root / "apiserver-certs"),
            "--profiling=false", "--v=1",
        ])  # fmt: skip
        self.wait_for("a ready API server", lambda: self.get("/readyz")[0] == 200)
        self._mark("apiserver_s", begun)
        manager = self._identity("controller-manager", "/CN=system:kube-controller-manager")
        self._spawn("kube-controller-manager", [
            str(binaries / "kube-controller-manager"),
            "--kubeconfig", str(manager),
            "--authentication-kubeconfig", str(manager),
            "--authorization-kubeconfig", str(manager),
            "--controllers", CONTROLLERS,
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(pki.service_accounts.key),
            "--root-ca-file", str(pki.ca.cert),
            "--leader-elect=false", "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()), "--v=1",
            *(["--kube-api-qps", str(qps), "--kube-api-burst", str(2 * qps)] if qps else []),
        ])  # fmt: skip
        scheduler = self._identity("scheduler", "/CN=system:kube-scheduler")
        self._spawn("kube-scheduler", [
            str(binaries / "kube-scheduler"),
            "--kubeconfig", str(scheduler),
            "--authentication-kubeconfig", str(scheduler),
            "--authorization-kubeconfig", str(scheduler),
            "--leader-elect=false", "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()), "--v=1",
        ])  # fmt: skip

    def _identity(self, name: str, subject: str) -> Path:
        pair = self.pki.issue(name, subject, client=True)
        return kubeconfig(self.root / f"{name}.kubeconfig", self.server, self.ca, pair)

    def _node(self, binaries: Path) -> None:
        begun = time.monotonic()
        serving = self.pki.issue("kubelet", f"/CN={NODE}", server=True)
        identity = self._identity("kubelet-client", f"/O=system:nodes/CN=system:node:{NODE}")
        state = self.root / "containerd"
        settings = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup}",
            "failSwapOn": False,
            "failCgroupV1": False,
            "containerRuntimeEndpoint": f"unix://{state}/containerd.sock",
            "imageServiceEndpoint": f"unix://{state}/containerd.sock",
            "podLogsDir": str(self.root / "pod-logs"),
            "resolvConf": "",
            "clusterDomain": "cluster.local",
            "maxPods": 1100,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
        }
        host.make_cgroup_root(self.cgroup)
        config = self.root / "kubelet.json"
        config.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        self._spawn("kubelet", [
            str(binaries / "kubelet"), "--config", str(config), "--kubeconfig", str(identity),
            "--root-dir", str(self.root / "kubelet"), "--cert-dir", str(self.root / "kubelet-pki"),
            "--hostname-override", NODE, "--v=1",
        ])  # fmt: skip
        self.wait_for(f"Ready node {NODE}", self._node_ready, timeout=120)
        self.wait_for("the default service account", self._default_account)
        self._mark("node_s", begun)

    # -- processes -------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.argv[name] = argv
        with (self.root / "logs" / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the fixture's one thread starts them
            )

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        socket_path = self.root / "containerd" / "containerd.sock"
        return subprocess.run(
            ["ctr", "-a", str(socket_path), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def _end(self, name: str, timeout: float = 15) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        """No new pods, then the node and its containers, then the control plane."""
        for name in ("kube-scheduler", "kube-controller-manager", "kubelet"):
            self._end(name)
        if "containerd" in self.processes:
            for task in self.ctr("tasks", "ls", "-q").stdout.split():
                self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task)
        self._end("containerd")
        host.kill_shims(
            self.root / "containerd" / "state", self.root / "containerd" / "containerd.sock"
        )
        host.kill_pods(self.cgroup)
        host.unmount_under(self.root)
        host.remove_cgroup_root(self.cgroup)
        for name in list(self.processes)[::-1]:
            self._end(name)

    def stop_one(self, name: str) -> None:
        """Stop one component: TERM, then KILL after 15 s (a kubelet leaves its pods'
        containers running, as on a node that lost its kubelet)."""
        self._end(name)

    def start_one(self, name: str) -> None:
        """Start a component stopped by `stop_one` again, as it was; the API server and
        the kubelet: until the server is ready, the node Ready."""
        self._spawn(name, self.argv[name])
        if name == "kube-apiserver":
            self.wait_for("a ready API server", lambda: self.get("/readyz")[0] == 200)
        if name == "kubelet":
            self.wait_for(f"Ready node {NODE}", self._node_ready, timeout=120)

    def restart(self, name: str, down: float = 0.0) -> None:
        """`stop_one`, `down` seconds, `start_one`."""
        self.stop_one(name)
        time.sleep(down)
        self.start_one(name)

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = "\n".join(self.log(name).splitlines()[-30:])
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    # -- the API ---------------------------------------------------------------------

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        admin = self.root / "pki"
        context.load_cert_chain(str(admin / "admin.crt"), str(admin / "admin.key"))
        return context

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                self.server + path, context=self.context(), timeout=5
            ) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            with contextlib.suppress(OSError):
                if check():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster: no {what} after {timeout:.0f} s")
            time.sleep(0.1)

    def _default_account(self) -> bool:
        return self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    def _node_ready(self) -> bool:
        code, body = self.get(f"/api/v1/nodes/{NODE}")
        if code != 200:
            return False
        node = json.loads(body)
        conditions = node.get("status", {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return ready and not node["spec"].get("taints")
