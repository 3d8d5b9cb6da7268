"""NFS servers (Debian's nfs-ganesha 4.3, FSAL_VFS): one supervised process per listening address.

An EFS mount target is an IP address serving NFS on port 2049. Here it is a loopback address
(127.x.y.z) and a `ganesha.nfsd` bound to it alone (ganesha binds one address per process), which
exports the file system's directory in Strata's data dir at the pseudo path "/" — so
`mount -t nfs4 <address>:/ /mnt` and `nfs://<address>/` reach the file system's root, as on AWS.

Access points need their own identity and root, which one export at "/" cannot give, so a second
process on the same address exports each access point's root directory at "/<access point id>"
with every request squashed to the access point's uid/gid (ganesha's All_Squash +
Anonymous_Uid/Gid): a client reaches it at `nfs://<address>:2050/<fsap-id>/`, cannot name
anything above that directory (".." of an export root is the pseudo root), and every file it
creates belongs to the access point's user. That server listens on `ACCESS_POINT_UPSTREAM_PORT`
and takes calls from reserved ports only (`privileged`): `CredProxy`
(strata.engines.nfs_cred_proxy) holds port 2050 in front of it, refuses filehandles that name
files outside their access point's root (ganesha does not check), and stamps the identity of
access points with secondary groups (squashing drops the group list, so those are exported
unsquashed).

What a caller may rely on:
- NFSv4.0, 4.1 and 4.2 over TCP (4.0 because libnfs, the userspace client tests use, speaks only
  4.0); no NFSv3, NLM, rquota, rpcbind or pNFS. Owners are numeric ("1001"), not name@domain.
- Attribute caching is off (Attr_Expiration_Time = 0) so two processes exporting one directory
  (two mount targets of one file system) give close-to-open consistency: a client that opens a
  file after another closed it sees the other's writes.
- `reload(exports)` rewrites the configuration and sends SIGHUP: ganesha adds and changes exports
  without dropping its clients; it returns once ganesha has applied them. Removing an export this
  way is safe only for one mounted in ganesha's own pseudo file system: ganesha 4.3 dies
  (SIGSEGV) when a reread drops an export mounted inside another FSAL_VFS export, so callers
  retire such exports instead (strata.services.efs.exports).
- With a statistics bus (strata.engines.ganesha_stats) each server counts the operations it
  serves and answers its counters there under its own name.
- ganesha must run as root (it switches to each request's uid/gid per operation and opens files
  by handle, which needs CAP_DAC_READ_SEARCH); without root `start()` raises EngineError.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from strata.engines.firewall import control_connection
from strata.engines.ganesha_stats import bus_prefix
from strata.engines.process import (
    EngineError,
    EngineProcess,
    ProcessSpec,
    running_as_root,
    wait_until,
    write_private,
)

NFS_PORT = 2049
ACCESS_POINT_PORT = 2050
# Where the access points' ganesha listens when the credential proxy (strata.engines.nfs_cred_proxy)
# holds port 2050 for it.
ACCESS_POINT_UPSTREAM_PORT = 2051
RELOADED = b"Reread exports complete"
# glibc's malloc serves each 1 MiB READ/WRITE buffer ganesha allocates from a fresh mmap (its
# dynamic threshold never settles with ganesha's many worker threads) and gives it back at once: a
# page fault and a zeroed page for every 4 KiB of data. Kept on the heap instead, measured on a
# 1 GiB NFSv4.1 read: ganesha's CPU 0.72 -> 0.52 s. Up to 64 MiB of freed heap is kept (bench/efs_nfs.py).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


@cache
def binary() -> str:
    """The path of ganesha.nfsd (EngineError naming the Debian packages when it is missing)."""
    path = shutil.which("ganesha.nfsd") or (
        "/usr/bin/ganesha.nfsd" if Path("/usr/bin/ganesha.nfsd").exists() else None
    )
    if path is None:
        raise EngineError(
            "nfs-ganesha is not installed: run scripts/install.sh (Debian packages nfs-ganesha, nfs-ganesha-vfs)"
        )
    return path


@dataclass(frozen=True)
class Export:
    """One directory served at one pseudo path; `squash` = (uid, gid) runs every request as them.
    `stamped` = (uid, gid, gids): every request arrives with that identity from the credential
    proxy (strata.engines.nfs_cred_proxy), so it is taken as sent, group list included."""

    export_id: int
    path: Path
    pseudo: str
    squash: tuple[int, int] | None = None
    access: str = "RW"  # RW, RO or None (no client may mount it)
    root_squash: bool = False  # uid 0 becomes the anonymous user (when `squash` is not set)
    stamped: tuple[int, int, tuple[int, ...]] | None = None

    def block(self, privileged: bool = False) -> str:
        if self.stamped:
            identity = "Squash = No_Root_Squash; Manage_Gids = false;"
        elif self.squash:
            identity = (
                f"Squash = All_Squash; Anonymous_Uid = {self.squash[0]}; Anonymous_Gid = {self.squash[1]};"
            )
        else:
            identity = "Squash = Root_Squash;" if self.root_squash else "Squash = No_Root_Squash;"
        if privileged:
            identity += " PrivilegedPort = true;"
        return (
            f"EXPORT {{\n  Export_Id = {self.export_id};\n  Path = {_quoted(self.path)};\n"
            f"  Pseudo = {_quoted(self.pseudo)};\n  Access_Type = {self.access};\n  {identity}\n"
            "  SecType = sys;\n  Protocols = 4;\n  Transports = TCP;\n  Attr_Expiration_Time = 0;\n"
            "  FSAL { Name = VFS; }\n}\n"
        )


def _quoted(value: object) -> str:
    text = str(value)
    if '"' in text or "\n" in text:
        raise ValueError(f"unusable path for an NFS export: {text!r}")
    return f'"{text}"'


def config(
    address: str,
    port: int,
    run_dir: Path,
    exports: list[Export],
    stats_name: str | None = None,
    privileged: bool = False,
) -> str:
    """The ganesha.conf of one server (`stats_name`: its name on the statistics bus, which also
    turns on per-operation counters; strata.engines.ganesha_stats). `privileged`: every export
    takes calls from reserved ports only (the credential proxy's, which only root may bind)."""
    stats = (
        f"  Dbus_Name_Prefix = {_quoted(stats_name)};\n  Enable_FULLV4_Stats = true;\n" if stats_name else ""
    )
    head = (
        "NFS_CORE_PARAM {\n"
        f"  Protocols = 4;\n  NFS_Port = {port};\n  Bind_addr = {address};\n"
        "  Enable_NLM = false;\n  Enable_RQUOTA = false;\n  Enable_UDP = false;\n" + stats + "}\n"
        "NFSV4 {\n  Graceless = true;\n"
        f"  RecoveryRoot = {_quoted(run_dir / 'recovery')};\n"
        "  Minor_Versions = 0, 1, 2;\n  Only_Numeric_Owners = true;\n  Delegations = false;\n"
        # No pNFS (EFS has none): offered it, nfs-rs asks for a layout before every READ.
        "  pnfs_mds = false;\n  pnfs_ds = false;\n}\n"
        "NFS_KRB5 { Active_krb5 = false; }\n"
        # WARN: at EVENT ganesha logs every client disconnect, and the log is never rotated.
        # CONFIG at EVENT: "Reread exports complete" tells `reload` that new exports are in force.
        "LOG {\n  Default_Log_Level = WARN;\n  Components { CONFIG = EVENT; }\n}\n"
    )
    return head + "".join(e.block(privileged) for e in exports)


class NfsServer:
    """One ganesha.nfsd on `address:port` serving `exports`; its files live in `run_dir`. With
    `stats_bus` (a D-Bus address) it publishes its counters there as `name`; `privileged`: see
    `config`."""

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        run_dir: Path,
        exports: list[Export],
        stats_bus: str | None = None,
        privileged: bool = False,
    ) -> None:
        self.name = name
        self.stats_bus = stats_bus
        self.privileged = privileged
        self.address = address
        self.port = port
        self.run_dir = Path(run_dir)
        self.exports = list(exports)
        self.conf = self.run_dir / "ganesha.conf"
        argv = [binary(), "-F", "-f", str(self.conf), "-L", str(self.run_dir / "ganesha.log")]
        argv += ["-p", str(self.run_dir / "ganesha.nfsd.pid"), "-N", "NIV_WARN"]
        self.process = EngineProcess(
            ProcessSpec(
                name="nfs",
                argv=argv,
                run_dir=self.run_dir,
                cwd=self.run_dir,
                match=str(self.conf),
                extra_env={**MALLOC_ENV, **({"DBUS_SYSTEM_BUS_ADDRESS": stats_bus} if stats_bus else {})},
            )
        )

    def _write_config(self) -> None:
        (self.run_dir / "recovery").mkdir(parents=True, exist_ok=True)
        write_private(
            self.conf,
            config(self.address, self.port, self.run_dir, self.exports, self.stats_name, self.privileged),
        )

    @property
    def stats_name(self) -> str | None:
        return bus_prefix(self.name) if self.stats_bus else None

    def launch(self) -> None:
        """Start the server without waiting (see `ready`), so several start side by side."""
        if not running_as_root():
            raise EngineError("nfs-ganesha must run as root: start Strata as root to serve EFS over NFS")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.process.start()

    def start(self, timeout: float = 30) -> None:
        self.launch()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        if not wait_until(lambda: not self.running() or self.ready(), timeout):
            raise EngineError(f"nfs server {self.name} was not ready after {timeout}s: {self.log_tail()}")
        if not self.running():
            raise EngineError(f"nfs server {self.name} exited while starting: {self.log_tail()}")

    def ready(self) -> bool:
        """True once the server accepts TCP connections on its address and port."""
        try:
            with control_connection(self.address, self.port, timeout=1):
                return True
        except OSError:
            return False

    def reload(self, exports: list[Export], timeout: float = 30) -> None:
        """Serve `exports` from now on (SIGHUP: ganesha rereads its exports, clients stay);
        returns once ganesha has logged that the reread is complete."""
        self.exports = list(exports)
        self._write_config()
        before = self._reloads()
        self.process.signal(signal.SIGHUP)
        if not wait_until(lambda: self._reloads() > before or not self.running(), timeout):
            raise EngineError(f"nfs server {self.name} did not reload its exports: {self.log_tail()}")

    def _reloads(self) -> int:
        try:
            return (self.run_dir / "ganesha.log").read_bytes().count(RELOADED)
        except OSError:
            return 0

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 15) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def log_tail(self, n: int = 1500) -> str:
        try:
            return (self.run_dir / "ganesha.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return self.process.log_tail(n)


class CredProxy:
    """The credential proxy (strata.engines.nfs_cred_proxy) in front of an access-point server:
    listens on `address:ACCESS_POINT_PORT`, forwards to `address:ACCESS_POINT_UPSTREAM_PORT`,
    keeps filehandles inside their export's root and stamps the identity of each `stamped`
    export on the calls that work on it."""

    def __init__(self, name: str, address: str, run_dir: Path, exports: list[Export], root: int) -> None:
        self.name = name
        self.address = address
        self.run_dir = Path(run_dir)
        self.root = root
        self.exports = list(exports)
        self.conf = self.run_dir / "cred-proxy.json"
        package_root = str(Path(__file__).resolve().parents[2])
        self.process = EngineProcess(
            ProcessSpec(
                name="cred-proxy",
                argv=[sys.executable, "-m", "strata.engines.nfs_cred_proxy", str(self.conf)],
                run_dir=self.run_dir,
                cwd=self.run_dir,
                match=str(self.conf),
                extra_env={"PYTHONPATH": package_root},
            )
        )

    def _write_config(self) -> None:
        stamped = [e for e in self.exports if e.stamped]
        conf = {
            "listen": [self.address, ACCESS_POINT_PORT],
            "upstream": [self.address, ACCESS_POINT_UPSTREAM_PORT],
            "root": self.root,
            "exports": [e.export_id for e in self.exports],
            "identities": {
                str(e.export_id): [e.stamped[0], e.stamped[1], list(e.stamped[2])]
                for e in stamped
                if e.stamped
            },
            "junctions": {e.pseudo.lstrip("/"): e.export_id for e in stamped},
            "roots": {str(e.export_id): str(e.path) for e in self.exports},
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.conf.with_suffix(".tmp")
        write_private(tmp, json.dumps(conf))
        tmp.replace(self.conf)

    def launch(self) -> None:
        self._write_config()
        self.process.start()

    def wait_ready(self, timeout: float = 30) -> None:
        if not wait_until(lambda: not self.running() or self.ready(), timeout):
            raise EngineError(
                f"credential proxy {self.name} was not ready after {timeout}s: {self.process.log_tail()}"
            )
        if not self.running():
            raise EngineError(
                f"credential proxy {self.name} exited while starting: {self.process.log_tail()}"
            )

    def ready(self) -> bool:
        try:
            with control_connection(self.address, ACCESS_POINT_PORT, timeout=1):
                return True
        except OSError:
            return False

    def reload(self, exports: list[Export]) -> None:
        """Stamp `exports`' identities from the next call on (before ganesha serves them)."""
        self.exports = list(exports)
        self._write_config()
        self.process.signal(signal.SIGHUP)

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 15) -> None:
        self.process.stop(timeout)
