"""Build the pinned Kubernetes control plane from the Go module proxy, once per release.

    python -m tests.k8s.cluster build      # prints the directory of the binaries

`k8s.io/kubernetes` is a Go module whose go.mod points its staging modules (`k8s.io/api`,
`k8s.io/client-go`, …) at directories of its own repository; a module that requires it
must pin each of them to its `v0.X.Y` release with a `replace` line. This writes such a
module under the user's cache directory, derives the replace lines from the go.mod of
the release itself, and builds kube-apiserver, kube-controller-manager, kube-scheduler,
the kubelet and etcd (the etcd server that release depends on) into
`<cache>/backfillctl/k8s-<release>/bin`, with the pod sandbox's `pause` (C, static, by
gcc). A warm run finds the binaries there and builds nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

RELEASE = "v1.37.2"  # the Kubernetes release the backend is tested against
STAGING = "v0." + RELEASE.removeprefix("v1.")  # k8s.io/api v0.37.2 goes with v1.37.2
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "etcd": "go.etcd.io/etcd/server/v3",
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backfillctl" / f"k8s-{RELEASE}"


def bin_dir() -> Path:
    return cache_dir() / "bin"


PAUSE_C = r"""
/* The pod sandbox's process: wait for SIGTERM or SIGINT, reap orphans. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void end(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction a = {0};
    a.sa_handler = end;
    sigaction(SIGTERM, &a, 0);
    sigaction(SIGINT, &a, 0);
    a.sa_handler = reap;
    a.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &a, 0);
    for (;;) pause();
}
"""


def missing() -> list[str]:
    return [n for n in [*PACKAGES, "pause"] if not os.access(bin_dir() / n, os.X_OK)]


def built() -> bool:
    return not missing()


def _go(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    done = subprocess.run(
        ["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def go_mod(kubernetes_mod: str) -> str:
    """A module requiring k8s.io/kubernetes, each staging module pinned to its release."""
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/\S+) => \./staging/", kubernetes_mod, re.M)))
    if not staging:
        raise SystemExit(f"no staging modules in the go.mod of k8s.io/kubernetes {RELEASE}")
    go = re.search(r"^go (\S+)", kubernetes_mod, re.M)
    lines = [
        "module backfillctl.test/k8s-control-plane",
        "",
        f"go {go.group(1) if go else '1.26.0'}",
        "",
        f"require k8s.io/kubernetes {RELEASE}",
        "",
        "replace (",
        *(f"\t{name} => {name} {STAGING}" for name in staging),
        ")",
        "",
    ]
    return "\n".join(lines)


def build() -> Path:
    todo = missing()
    if not todo:
        return bin_dir()
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    if "pause" in todo:
        (out / "pause.c").write_text(PAUSE_C, encoding="utf-8")
        subprocess.run(
            ["gcc", "-static", "-Os", "-s", "-o", str(out / "pause"), str(out / "pause.c")],
            check=True,
        )
    if any(name in PACKAGES for name in todo):
        _build_go([name for name in todo if name in PACKAGES], out)
    return out


def _build_go(names: list[str], out: Path) -> None:
    if shutil.which("go") is None:
        raise SystemExit("building the test control plane needs Go (the Go module proxy)")
    src = cache_dir() / "src"
    src.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    info = json.loads(_go("mod", "download", "-json", f"k8s.io/kubernetes@{RELEASE}", cwd=src))
    (src / "go.mod").write_text(go_mod(Path(info["GoMod"]).read_text()), encoding="utf-8")
    _go("mod", "download", cwd=src)
    version = RELEASE.removeprefix("v").split(".")
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={RELEASE}",
            f"-X k8s.io/component-base/version.gitMajor={version[0]}",
            f"-X k8s.io/component-base/version.gitMinor={version[1]}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    )
    for name in names:
        print(f"building {name} ({PACKAGES[name]})", file=sys.stderr, flush=True)
        target = str(out / f".{name}.new")
        _go("build", "-trimpath", "-ldflags", ldflags, "-o", target, PACKAGES[name], cwd=src)
        Path(target).replace(out / name)  # a build cut short leaves no half binary
    with (out / "build.log").open("a", encoding="utf-8") as log:
        log.write(f"{RELEASE}: {', '.join(names)} built in {time.monotonic() - started:.0f} s\n")
