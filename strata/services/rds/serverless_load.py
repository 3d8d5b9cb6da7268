"""What an engine is doing right now, read from the kernel: the load Serverless v2 scales on.

- CPU: the cores the engine's process tree used between two samples (a process's own time and
  its exited children's, as backends end with their sessions);
- connections: established TCP connections to the engine's port, from /proc/net/tcp, without
  Strata's own (its CloudWatch sampler, readiness probes) and without those engines open to one
  another (a MariaDB reader's replication connection to its writer; PostgreSQL's standbys
  connect over Unix sockets, never seen here): AWS counts connections "initiated by user
  activity". A relay's connection to the engine carries a client's, so `carried` ports (the local
  ports of those) are counted.

One read of /proc/net/tcp serves every engine of a sampling round; nothing here touches an engine.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import psutil

_ESTABLISHED = "01"


class LoadSampler:
    """Keeps the previous CPU reading of each engine process; `cpu_cores` is a rate between reads."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (monotonic s, cpu s)

    def cpu_cores(self, pid: int | None, now: float) -> float | None:
        """Cores the tree of `pid` used since its last sample (None at its first)."""
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return None
        used = 0.0
        for p in tree:
            try:
                t = p.cpu_times()
            except psutil.Error:  # a backend that exited while it was read
                continue
            used += t.user + t.system + t.children_user + t.children_system
        last = self._last.get(pid)
        self._last[pid] = (now, used)
        if last is None or now <= last[0]:
            return None
        return max(0.0, used - last[1]) / (now - last[0])

    def forget(self, live_pids: set[int]) -> None:
        for pid in set(self._last) - live_pids:
            del self._last[pid]


def connections_by_port(
    ports: set[int],
    carried: set[int] | frozenset[int] = frozenset(),
    engine_pids: set[int] | frozenset[int] = frozenset(),
) -> dict[int, int]:
    """Established connections to each of `ports` (on any local address), less Strata's own and
    those of the engine processes `engine_pids` (and their children)."""
    own = _own_socket_inodes() | engine_socket_inodes(engine_pids)
    served: Counter[int] = Counter()
    ours: Counter[int] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[3] != _ESTABLISHED:
                continue
            local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
            if local in ports:
                served[local] += 1
            elif remote in ports and f[9] in own and local not in carried:
                ours[remote] += 1
    return {p: max(0, served[p] - ours[p]) for p in ports}


def _own_socket_inodes() -> set[str]:
    return _socket_inodes("self")


def engine_socket_inodes(pids: set[int] | frozenset[int]) -> set[str]:
    """The sockets held by the processes `pids` and their children (an engine's backends)."""
    tree: set[int] = set()
    for pid in pids:
        tree.add(pid)
        try:
            tree.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            continue
    out: set[str] = set()
    for pid in tree:
        out |= _socket_inodes(str(pid))
    return out


def _socket_inodes(pid: str) -> set[str]:
    out: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # exited meanwhile
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out
