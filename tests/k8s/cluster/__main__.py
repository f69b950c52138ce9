"""python -m tests.k8s.cluster build | up DIR

build: build (or find) the pinned binaries, install the Debian packages the node needs
       (containerd, runc, busybox-static, python3.11) when missing; print the binaries'
       directory.
up DIR: start a cluster in DIR, print its kubeconfig's path, stop it on Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.k8s.cluster import Cluster, host
from tests.k8s.cluster.build import build
from tests.tools import serve_until_stopped


def main(argv: list[str]) -> None:
    if argv[:1] == ["build"]:
        print(build())
        host.install_packages()
    elif argv[:1] == ["up"] and len(argv) == 2:
        cluster = Cluster.start(Path(argv[1]).resolve(), build())
        print(f"export KUBECONFIG={cluster.admin}   # {cluster.timings}", flush=True)
        serve_until_stopped(cluster.stop)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
