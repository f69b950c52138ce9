"""What the node needs from the host, and what it leaves there: Debian's containerd and
runc (the container runtime), busybox-static and python3.11 (for the images), and on the
way out the mounts, shims and pod cgroups a kubelet leaves."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

PACKAGES = {  # Debian package: a file it installs
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "busybox-static": "/bin/busybox",
    "python3.11-minimal": "/usr/bin/python3.11",
}


def install_packages() -> None:
    """apt-get install what is missing (CI runs as root on a fresh machine)."""
    missing = [name for name, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"the test node needs the Debian packages {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        capture_output=True,
    )


def kill_shims(state: Path, socket: Path) -> None:
    """containerd's shims outlive containerd by design: end those of this node."""
    for pid in shims(state, socket):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def shims(state: Path, socket: Path) -> set[int]:
    """The shims of this node, by their pid files and by the containerd socket on their
    command line (a shim caught while its sandbox was made may have no pid file yet)."""
    pids: set[int] = set()
    for pid_file in state.rglob("shim.pid") if state.exists() else ():
        with contextlib.suppress(ValueError, OSError):
            pids.add(int(pid_file.read_text().strip()))
    mark = f"-address\0{socket}\0".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if mark in (proc / "cmdline").read_bytes() + b"\0":
                    pids.add(int(proc.name))
    return {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def unmount_under(root: Path) -> None:
    """Unmount what the kubelet and containerd mounted below `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = [
        line.split()[1].replace("\\040", " ")
        for line in Path("/proc/self/mounts").read_text().splitlines()
    ]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        done = subprocess.run(["umount", point], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


CGROUPS = Path("/sys/fs/cgroup")


def _trees() -> list[Path]:
    """The cgroup hierarchies: one per controller (v1), or the unified one (v2)."""
    if (CGROUPS / "cgroup.controllers").exists():
        return [CGROUPS]
    return [t for t in CGROUPS.iterdir() if (t / "cgroup.procs").exists() and not t.is_symlink()]


def make_cgroup_root(name: str) -> None:
    """A cgroup of its own in each hierarchy, the kubelet's cgroupRoot: the pods of this
    node, and only they, live below it."""
    for tree in _trees():
        (tree / name).mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # a new v1 cpuset has none
            if (tree / knob).exists() and (tree / name / knob).exists():
                (tree / name / knob).write_text((tree / knob).read_text())
        controllers = tree / "cgroup.controllers"
        if controllers.exists():  # v2: let the pods' cgroups use every controller
            enable = " ".join(f"+{c}" for c in controllers.read_text().split())
            with contextlib.suppress(OSError):
                (tree / name / "cgroup.subtree_control").write_text(enable)


def remove_cgroup_root(name: str) -> None:
    """Remove the node's cgroups, deepest first, once they are empty."""
    for tree in (t / name for t in _trees() if (t / name).exists()):
        for directory in sorted(
            (d for d in tree.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            tree.rmdir()


def kill_pods(name: str) -> None:
    """Whatever still runs in the node's cgroups once containerd is gone."""
    for procs in (p for t in _trees() for p in (t / name).rglob("cgroup.procs")):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
