"""Where an attempt's processes live, which the local backend records in its handle.

A pid names a process only in one pid namespace of one kernel. The place is the host
(its name and machine id), the boot (`/proc/sys/kernel/random/boot_id`) and the pid
namespace (the device and inode of `/proc/self/ns/pid`), read once per process. A
controller that takes over a shared store from one in another place (another host,
another container of this one) can neither see the attempts' processes in its /proc nor
signal them: a pid missing there says nothing of whether they still run. It follows
such an attempt by its pid file alone (`elsewhere.py`).

One place can follow another's attempts by their pids (`Place.follows`):
- its own (the common case: the handle's place is this process's, one comparison), or
  its pid namespace under another host name (a UTS namespace's, or a renamed host);
- the same machine in an earlier boot (same host name and machine id, another boot
  id): a restart ended every process of that boot, so its /proc tells the truth, which
  is that none of them is left (a restarted single machine goes on as before). Without
  a machine id (a container may have none) nothing is assumed: the attempt is followed
  as running elsewhere. (A clone that kept a machine's name and id would be taken for
  it: a clone is given a machine id of its own.)

On one kernel (the same boot id) device and inode numbers mean the same file, so a
runs directory is known to be shared with another pid namespace when its device and
inode are those recorded (`same_kernel`): only then may a claim settle an attempt begun
there (`elsewhere.py`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

_MACHINE_IDS = ("/etc/machine-id", "/var/lib/dbus/machine-id")


@dataclass(frozen=True)
class Place:
    """A host, a boot of it, and a pid namespace of that boot ("" where not known)."""

    host: str  # the host name (a container's own, in a container)
    machine: str = ""  # the machine id: the same across the host's restarts
    boot: str = ""  # the kernel's boot id: the same in every namespace of one boot
    pids: str = ""  # the pid namespace: "<st_dev>:<st_ino>" of /proc/self/ns/pid

    def __str__(self) -> str:
        """As a handle records it: the four parts joined by "/" (which no id or number
        holds; a host name that does is read back as a place known only by name)."""
        return f"{self.host}/{self.machine}/{self.boot}/{self.pids}"

    @classmethod
    def parse(cls, text: str) -> Place:
        """A place as `str` wrote it; anything else is a place known only by that name
        (followed as elsewhere: nothing is assumed of it)."""
        parts = text.split("/")
        return cls(*parts) if len(parts) == 4 else cls(text)

    def same_kernel(self, other: Place) -> bool:
        """Do both run on one kernel in one boot (where pids, devices and inodes mean
        the same things, whatever their namespaces)?"""
        return bool(self.boot) and self.boot == other.boot

    def follows(self, other: Place) -> bool:
        """Can a process here follow processes started at `other` by their pids (see
        the module's docstring)?"""
        if self.same_kernel(other):  # (whatever the host names: a UTS namespace's own)
            return bool(self.pids) and other.pids == self.pids
        restarted = bool(self.machine) and (other.host, other.machine) == (self.host, self.machine)
        return restarted and bool(other.boot)

    def describe(self, other: Place) -> str:
        """Where `other` is, seen from here, for an operator: `on host web-2`, or `in
        another pid namespace of this machine (pid:[4026532178], host name vm)`."""
        if self.same_kernel(other):
            namespace = f"pid:[{other.pids.partition(':')[2]}]" if other.pids else "unknown"
            return f"in another pid namespace of this machine ({namespace}, host name {other.host})"
        boot = f", boot {other.boot}" if other.boot else ""
        return f"on host {other.host}{boot}"


@functools.cache
def here() -> Place:
    """This process's place, read once."""
    return Place(os.uname().nodename, _machine(), _read("/proc/sys/kernel/random/boot_id"), _pids())


def _machine() -> str:
    for path in _MACHINE_IDS:
        if found := _read(path):
            return found
    return ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pids() -> str:
    try:
        info = os.stat("/proc/self/ns/pid")  # noqa: PTH116 (one call, no Path)
    except OSError:
        return ""
    return f"{info.st_dev}:{info.st_ino}"
