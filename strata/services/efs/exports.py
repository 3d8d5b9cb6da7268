"""The NFS side of EFS: file system directories, and the NFS servers behind each mount target.

A file system's files live in `fs_dir(fs_id)` (its volume's `files/`, or `<data>/efs/fs/<fs-id>/`). Each
mount target owns a loopback address and two ganesha servers on it (strata.engines.ganesha):
port 2049 exports the file system's root at "/", port 2050 exports each access point's root
directory at "/<fsap-id>" as the access point's POSIX user. Both run from `<data>/efs/nfs/<mt-id>/`.
Port 2050 is the credential proxy (strata.engines.nfs_cred_proxy) in front of the access points'
server (on port 2051, reserved source ports only): it refuses filehandles that name a file outside
their access point's root, and stamps each call with the identity of an access point with
SecondaryGids (which ganesha's squash would drop).

Access point root directories are created (with CreationInfo's owner and permissions) when their
export is first set up, as AWS creates them on first use; a root that would resolve outside the
file system (through a symlink a client made) is never exported.

Port 2050's pseudo root is not ganesha's listable pseudo file system but a directory of the mount
target's own (`access-points/pseudo/`, mode 711, one empty mode-711 directory per access point on
which its export is mounted), exported read-only with every request run as nobody: a client can
step through it to the access point it names, but cannot list it, so no client learns the other
access points' ids from it. Because of that, an access point's export is never removed from a
running server (ganesha 4.3 crashes when a reread removes an export mounted in another VFS
export): a deleted access point's export is retired — kept, refusing every client — until the
server next starts (`_retired`).

Each file system's files are on a file system of their own (an ext4 volume, see
strata.services.efs.provider), so a filehandle made by hand names nothing outside it. Within it,
ganesha does not check that a handle lies under its export's root; the proxy does
(strata.engines.nfs_subtree), so a handle made by hand (inode and generation) reaches nothing
above an access point's root, nor outside port 2050's pseudo root.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from strata.engines.ganesha import (
    ACCESS_POINT_PORT,
    ACCESS_POINT_UPSTREAM_PORT,
    NFS_PORT,
    CredProxy,
    Export,
    NfsServer,
)
from strata.engines.ganesha_stats import Counters, StatsBus
from strata.engines.ports import port_is_free
from strata.services.efs.client_access import FULL, ClientAccess

log = logging.getLogger("strata.efs")
# Port 2050's pseudo root (access points' exports count from 2, see mounts.py).
PSEUDO_ROOT_EXPORT_ID = 1
NOBODY = (65534, 65534)
# Exports of deleted access points a running server keeps, refusing everything (see `_retired`);
# past this many, the access points' server is restarted without them.
MAX_RETIRED = 32


class Exports:
    """The file system directories and the running NFS servers of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.servers: dict[str, tuple[NfsServer, NfsServer]] = {}
        # The proxy in front of each mount target's port 2050.
        self.proxies: dict[str, CredProxy] = {}
        # Mount target -> the file system root its servers were started on, and its (device, inode).
        self._exported: dict[str, tuple[Path, tuple[int, int] | None]] = {}
        # File systems whose root is elsewhere: an encrypted volume's directory (encryption.py).
        self.roots: dict[str, Path] = {}
        # Where the servers publish what they served (started with the first server).
        self.stats_bus = StatsBus(self.data_dir / "nfs" / "stats-bus")
        self._lock = threading.RLock()

    def fs_dir(self, fs_id: str) -> Path:
        return self.roots.get(fs_id) or self.plain_dir(fs_id)

    def plain_dir(self, fs_id: str) -> Path:
        """Where a file system without a volume of its own keeps its files (see provider.py)."""
        return self.data_dir / "fs" / fs_id

    def create_fs_dir(self, fs_id: str) -> None:
        path = self.fs_dir(fs_id)
        path.mkdir(parents=True, exist_ok=True)
        # The root of a new EFS file system: owned by root, mode 755.
        os.chmod(path, 0o755)

    def remove_fs_dir(self, fs_id: str) -> None:
        shutil.rmtree(self.fs_dir(fs_id), ignore_errors=True)

    def free_address(self, taken: set[str]) -> str:
        """A loopback address nobody uses on both NFS ports (random: several Stratas share a host)."""
        for _ in range(2000):
            address = f"127.{random.randint(100, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
            if address in taken:
                continue
            if self.address_free(address):
                return address
        raise RuntimeError("no free loopback address for an NFS server")

    def address_free(self, address: str) -> bool:
        ports = (NFS_PORT, ACCESS_POINT_PORT, ACCESS_POINT_UPSTREAM_PORT)
        return all(port_is_free(port, address) for port in ports)

    def _access_point_exports(
        self, fs_id: str, access_points: list[dict], access: Callable[[dict | None], ClientAccess]
    ) -> list[Export]:
        root = self.fs_dir(fs_id).resolve()
        out = []
        for ap in access_points:
            path = self.ap_root(fs_id, ap)
            if path is None:
                continue
            try:
                real = path.resolve(strict=True)
            except OSError:
                continue  # no root and no CreationInfo: mounting fails, as on AWS
            if real != root and root not in real.parents:
                log.warning("access point %s: root directory leaves the file system; not exported", ap["id"])
                continue
            posix = ap["posix"]
            squash = (int(posix["Uid"]), int(posix["Gid"])) if posix else None
            allowed = access(ap)
            export = Export(
                ap["export_id"], real, f"/{ap['id']}", squash, _access_type(allowed), not allowed.root
            )
            if posix and posix.get("SecondaryGids"):
                # ganesha's squash would drop the groups: the credential proxy stamps them instead.
                stamped = (
                    int(posix["Uid"]),
                    int(posix["Gid"]),
                    tuple(int(g) for g in posix["SecondaryGids"]),
                )
                export = Export(export.export_id, real, export.pseudo, None, export.access, False, stamped)
            out.append(export)
        return out

    def ap_root(self, fs_id: str, ap: dict) -> Path | None:
        """The access point's root directory, created with CreationInfo when missing."""
        rel = (ap.get("root") or {}).get("Path") or "/"
        path = self.fs_dir(fs_id) / rel.lstrip("/")
        info = (ap.get("root") or {}).get("CreationInfo")
        if not path.exists() and info:
            parent = self.fs_dir(fs_id)
            for part in Path(rel.lstrip("/")).parts:
                parent = parent / part
                if parent.is_symlink():
                    return None
                if not parent.exists():
                    try:
                        parent.mkdir()
                        os.chown(parent, int(info["OwnerUid"]), int(info["OwnerGid"]))
                        os.chmod(parent, int(info["Permissions"], 8))
                    except OSError as e:  # a locked encrypted volume, a full disk
                        log.warning("access point %s: cannot create its root directory: %s", ap["id"], e)
                        return None
        return path

    def serve(
        self,
        mt: dict,
        access_points: list[dict],
        access: Callable[[dict | None], ClientAccess] = lambda ap: FULL,
        wait: bool = True,
    ) -> None:
        """Start (or re-point) the mount target's two servers; blocking. `access(ap)` is what the
        file system policy lets clients do (through access point `ap`, or None for the root)."""
        fs_id, address = mt["fs"], mt["ip"]
        allowed = access(None)
        root = [Export(1, self.fs_dir(fs_id), "/", None, _access_type(allowed), not allowed.root)]
        run = self.data_dir / "nfs" / mt["id"]
        pseudo = run / "access-points" / "pseudo"
        aps = self._access_point_exports(fs_id, access_points, access)
        aps.insert(0, Export(PSEUDO_ROOT_EXPORT_ID, pseudo, "/", NOBODY, "RO"))
        with self._lock:
            _junctions(pseudo, aps, keep_others=True)
            pair = self.servers.get(mt["id"])
            proxy = self.proxies.get(mt["id"])
            kept = aps + _retired(pair[1].exports, aps) if pair is not None else aps
            if (
                pair is not None
                and proxy is not None
                and self._up(mt["id"])
                and len(kept) - len(aps) <= MAX_RETIRED
            ):
                if proxy.exports != kept:
                    proxy.reload(kept)  # identities and roots first: ganesha serves the new exports next
                if pair[0].exports != root:
                    pair[0].reload(root)
                if pair[1].exports != kept:
                    pair[1].reload(kept)
                _junctions(pseudo, kept, keep_others=False)
                return
            # First start, a server died, or too many retired exports: start them all afresh (the
            # retired exports are left out).
            for server in [*(pair or ()), *([proxy] if proxy else [])]:
                server.stop()
            self.proxies.pop(mt["id"], None)
            _junctions(pseudo, aps, keep_others=False)
            bus = self.stats_bus.address if self.stats_bus.start() else None
            pair = (
                NfsServer(f"{mt['id']}", address, NFS_PORT, run / "root", root, bus),
                NfsServer(
                    f"{mt['id']}-ap",
                    address,
                    ACCESS_POINT_UPSTREAM_PORT,
                    run / "access-points",
                    aps,
                    bus,
                    privileged=True,
                ),
            )
            proxy = CredProxy(f"{mt['id']}-proxy", address, run / "access-points", aps, PSEUDO_ROOT_EXPORT_ID)
            self.proxies[mt["id"]] = proxy
            started: list[NfsServer | CredProxy] = [*pair, proxy]
            for server in started:
                server.launch()
            self.servers[mt["id"]] = pair
            self._exported[mt["id"]] = (self.fs_dir(fs_id), _inode(self.fs_dir(fs_id)))
        if wait:
            for server in started:
                server.wait_ready()

    def _up(self, mt_id: str) -> bool:
        pair = self.servers.get(mt_id)
        proxy = self.proxies.get(mt_id)
        running = pair is not None and all(s.running() for s in pair) and (proxy is None or proxy.running())
        return running and not self._root_replaced(mt_id)

    def _root_replaced(self, mt_id: str) -> bool:
        """True when the file system's root directory is another one than the servers started on
        (removed and made again behind them): ganesha holds the old one's handle, and answers every
        new mount NFS4ERR_STALE until it starts again. A root that is not there (a locked volume)
        is not a reason to restart."""
        path, inode = self._exported.get(mt_id, (None, None))
        if path is None or inode is None:
            return False
        now = _inode(path)
        return now is not None and now != inode

    def dead(self) -> list[str]:
        """Mount targets whose servers were started and one of them has exited since."""
        with self._lock:
            return [mt for mt in self.servers if not self._up(mt)]

    def running(self, mt_id: str) -> bool:
        return self._up(mt_id)

    def unserve(self, mt_id: str) -> None:
        with self._lock:
            pair = self.servers.pop(mt_id, None)
            proxy = self.proxies.pop(mt_id, None)
            self._exported.pop(mt_id, None)
        for server in [*(pair or ()), *([proxy] if proxy else [])]:
            server.stop()
        shutil.rmtree(self.data_dir / "nfs" / mt_id, ignore_errors=True)

    def stop_all(self) -> None:
        with self._lock:
            pairs = list(self.servers.values())
            proxies = list(self.proxies.values())
            self.servers.clear()
            self.proxies.clear()
        for proxy in proxies:
            proxy.stop()
        for pair in pairs:
            for server in pair:
                server.stop()
        self.stats_bus.stop()

    def served(self) -> dict[str, list[tuple[str, int | None, Counters]]]:
        """mount target id -> (server name, process id, what it has served) of each of its running
        servers that answered (cumulative per process: difference them by process id); blocking."""
        with self._lock:
            pairs = {mt: list(pair) for mt, pair in self.servers.items()}
        counted = self.stats_bus.counters([s.name for pair in pairs.values() for s in pair if s.running()])
        return {
            mt: [(s.name, s.process.pid, counted[s.name]) for s in pair if s.name in counted]
            for mt, pair in pairs.items()
        }


def _junctions(pseudo: Path, exports: list[Export], keep_others: bool) -> None:
    """Make port 2050's pseudo root hold exactly one directory per access point export (mode 711,
    so nobody can list it but anybody can pass through it); `keep_others` leaves directories of
    exports ganesha may still serve until its reload."""
    pseudo.mkdir(parents=True, exist_ok=True)
    os.chmod(pseudo, 0o711)
    wanted = {e.pseudo.lstrip("/") for e in exports if e.pseudo != "/"}
    for name in wanted:
        path = pseudo / name
        if not path.is_dir():
            path.mkdir(mode=0o711)
            os.chmod(path, 0o711)
    if keep_others:
        return
    for entry in os.scandir(pseudo):
        if entry.name not in wanted:
            try:
                os.rmdir(entry.path)
            except OSError as e:  # not ours to remove (not empty): leave it, never export it
                log.warning("access point pseudo root: cannot remove %s: %s", entry.path, e)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _retired(served: list[Export], wanted: list[Export]) -> list[Export]:
    """The exports in `served` that `wanted` leaves out, turned into exports no client may use.

    ganesha 4.3 crashes (a NULL dereference, SIGSEGV, with or without clients) when a reread of
    its configuration removes an export mounted inside another FSAL_VFS export — and every access
    point's export is mounted in port 2050's pseudo root, a VFS export. Changing an export's
    Access_Type is safe, even after its directory is gone: so an access point that goes away
    (deleted, its root no longer there) keeps its export id, path and junction with Access_Type
    None and the identity nobody until the server next starts."""
    ids = {e.export_id for e in wanted}
    return [
        e
        if e.access == "None" and e.squash == NOBODY
        else Export(e.export_id, e.path, e.pseudo, NOBODY, "None")
        for e in served
        if e.export_id not in ids
    ]


def _access_type(allowed: ClientAccess) -> str:
    if not allowed.mount:
        return "None"
    return "RW" if allowed.write else "RO"
