"""A cgroup v2 of its own per resource's engines, so nftables can tell their connections apart.

Security groups' egress rules filter the connections a resource opens itself (a PostgreSQL
subscription or dblink-style connection to some address). On one machine those come from the
engine's processes, not from an address of their own, and every engine runs as the same OS user;
what tells one resource's processes from every other process is their cgroup, which nftables
matches (`socket cgroupv2 level N "<path>"`, a socket belonging to the cgroup its process was in
when it made the socket). So an engine whose spec names a cgroup (`ProcessSpec.cgroup`) starts in
`<Strata's own cgroup>/strata_<pid>_<start ticks>/<name>` (Strata's process and start time in the
name, as its nft tables are named: a directory left by a dead Strata is removed by the next one),
its restarts and failovers included: its workers inherit it.

Usable when Strata runs as root and the cgroup v2 hierarchy is mounted under /sys/fs/cgroup (nft
resolves a rule's path there): `/sys/fs/cgroup` itself on a systemd host, `/sys/fs/cgroup/unified`
on a hybrid one. Only the cgroup is created (no controller is enabled in it), so the engines'
memory and CPU stay accounted where Strata's are.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from strata.engines.nft import start_ticks

NFT_ROOT = Path("/sys/fs/cgroup")  # where nft looks a rule's cgroupv2 path up
_OWNED = re.compile(r"^strata_(\d+)_(\d+)(?:_self)?$")


@dataclass(frozen=True)
class CgroupRef:
    """How an nft rule names one engine cgroup: its level in the v2 hierarchy and its path."""

    level: int
    path: str  # relative to NFT_ROOT


def _v2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(" - ", 1)
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            mount = Path(fields[0].split()[4])
            if mount == NFT_ROOT or NFT_ROOT in mount.parents:
                return mount
    return None


def _own_path() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip()
    except OSError:
        return None
    return None


class EngineCgroups:
    """This Strata's engine cgroups (blocking methods)."""

    def __init__(self, mount: Path, own: str) -> None:
        self.mount = mount
        parent = mount / own.strip("/") if own.strip("/") else mount
        pid = os.getpid()
        self.base = parent / f"strata_{pid}_{start_ticks(pid) or 0}"
        self._lock = threading.Lock()
        _remove_dead(parent)

    def path(self, name: str) -> Path:
        """The cgroup directory of `name` (created when missing)."""
        with self._lock:
            d = self.base / name
            d.mkdir(parents=True, exist_ok=True)
            return d

    def ref(self, name: str) -> CgroupRef:
        d = self.path(name)
        return CgroupRef(len(d.relative_to(self.mount).parts), str(d.relative_to(NFT_ROOT)))

    def base_ref(self) -> CgroupRef:
        """The cgroup all of this Strata's engine cgroups are under (strata.engines.partition)."""
        with self._lock:
            self.base.mkdir(parents=True, exist_ok=True)
        return CgroupRef(len(self.base.relative_to(self.mount).parts), str(self.base.relative_to(NFT_ROOT)))

    def enter_own(self) -> CgroupRef:
        """Move this process (every thread) into a cgroup of its own, `strata_<pid>_<ticks>_self`
        beside its engines' base, and return how nft names it: the processes it forks from now on
        (pg tools, HAProxy, ...) and the sockets it makes are told from every other process of
        the machine by it (strata.engines.internal_guard). A sibling of the base, not a child,
        so that rules about "every engine" (strata.engines.partition) do not take Strata in."""
        d = self.base.with_name(self.base.name + "_self")
        with self._lock:
            d.mkdir(exist_ok=True)
            join(d)
        return CgroupRef(len(d.relative_to(self.mount).parts), str(d.relative_to(NFT_ROOT)))

    def remove(self) -> None:
        """Remove the directories whose engines have ended (at a clean stop)."""
        _rmdir_tree(self.base)


def _rmdir_tree(d: Path) -> None:
    if not d.is_dir():
        return
    for child in d.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    try:
        d.rmdir()
    except OSError:
        pass  # a process is still in it (an engine shutting down): the next Strata removes it


def _remove_dead(parent: Path) -> None:
    try:
        children = list(parent.iterdir())
    except OSError:
        return
    for d in children:
        m = _OWNED.match(d.name)
        if m and d.is_dir() and start_ticks(int(m.group(1))) != int(m.group(2)):
            _rmdir_tree(d)


def join(directory: Path) -> None:
    """Move the calling process into `directory` (in a child before exec, while still root)."""
    with open(directory / "cgroup.procs", "w") as f:
        f.write("0")


@cache
def engine_cgroups() -> EngineCgroups | None:
    """This process's engine cgroups, or None where they cannot be made (not root, no cgroup v2
    under /sys/fs/cgroup, a read-only hierarchy)."""
    if os.geteuid() != 0:
        return None
    mount, own = _v2_mount(), _own_path()
    if mount is None or own is None:
        return None
    try:
        cg = EngineCgroups(mount, own)
        probe = cg.path("probe")
        probe.rmdir()
    except OSError:
        return None
    return cg
