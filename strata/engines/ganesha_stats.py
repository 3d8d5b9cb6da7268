"""The operations the NFS servers (strata.engines.ganesha) served, read from ganesha's own counters.

ganesha counts what it serves: per export and NFS version the READs and WRITEs with the bytes they
moved, and (Enable_FULLV4_Stats) every NFSv4 operation by name. It answers those counters on D-Bus
only (`org.ganesha.nfsd.exportstats`). The host's system bus is not Strata's to use (and is absent
in most containers), so `StatsBus` runs a private dbus-daemon per data dir that every ganesha
joins (DBUS_SYSTEM_BUS_ADDRESS) under a name of its own (Dbus_Name_Prefix "<server>": two ganesha
processes cannot share "org.ganesha.nfsd"). Its policy lets only root connect; nothing but the
counters is asked of it.

Counters are cumulative for the life of one ganesha process (a restarted server starts from
zero): callers difference them per process id. Without dbus-daemon (Debian dbus-daemon, which
nfs-ganesha depends on) or when the bus is down, the servers run as before and `counters` answers
nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from jeepney import DBusAddress, new_method_call
from jeepney.bus import get_bus
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, DBusConnectionBase, Proxy, prep_socket
from jeepney.io.common import MessageFilters
from jeepney.wrappers import DBusErrorResponse

from strata.engines.process import EngineError, EngineProcess, ProcessSpec, write_private

log = logging.getLogger("strata.engines")
STATS_PATH = "/org/ganesha/nfsd/ExportMgr"
STATS_INTERFACE = "org.ganesha.nfsd.exportstats"
# NFSv4 operations on metadata, by what they do to the file system (RFC 8881's operations less the
# data ones, READ and WRITE, and the session plumbing every compound carries: SEQUENCE, PUTFH,
# GETFH, SAVEFH, EXCHANGE_ID, ...).
METADATA_READS = frozenset(
    {"ACCESS", "GETATTR", "LOOKUP", "LOOKUPP", "NVERIFY", "VERIFY", "READDIR", "READLINK", "LOCKT"}
    | {"SEEK", "GETXATTR", "LISTXATTR"}
)
METADATA_WRITES = frozenset(
    {"CLOSE", "COMMIT", "CREATE", "LINK", "LOCK", "LOCKU", "OPEN", "OPEN_CONFIRM", "OPEN_DOWNGRADE"}
    | {"REMOVE", "RENAME", "SETATTR", "DELEGRETURN", "ALLOCATE", "DEALLOCATE", "SETXATTR", "REMOVEXATTR"}
)
# dbus-daemon 1.14 refuses a unix:path of 100 bytes or more ("Socket name too long"; sun_path
# holds 108): a longer one, as a deep test data dir gives, goes to the abstract namespace.
MAX_SOCKET_PATH = 99
TIMEOUT = 5.0  # seconds for any answer on the bus (a stuck daemon or server must not hang a caller)


@dataclass(frozen=True)
class Counters:
    """What one ganesha process has served since it started."""

    read_ops: int = 0
    read_bytes: int = 0
    write_ops: int = 0
    write_bytes: int = 0
    metadata_reads: int = 0
    metadata_writes: int = 0

    def since(self, before: Counters) -> Counters:
        return Counters(*(max(0, a - b) for a, b in zip(self.astuple(), before.astuple(), strict=True)))

    def plus(self, other: Counters) -> Counters:
        return Counters(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (
            self.read_ops,
            self.read_bytes,
            self.write_ops,
            self.write_bytes,
            self.metadata_reads,
            self.metadata_writes,
        )


def bus_prefix(server: str) -> str:
    """The Dbus_Name_Prefix of a server named `server` (ganesha takes letters, digits and "_"
    only, and ignores any other prefix)."""
    prefix = "".join(c if c.isascii() and c.isalnum() else "_" for c in server)
    return prefix if prefix[:1].isalpha() else f"s{prefix}"


def bus_name(server: str) -> str:
    """A ganesha's name on the bus: its prefix, then ganesha's own name."""
    return f"{bus_prefix(server)}.org.ganesha.nfsd"


class StatsBus:
    """A private dbus-daemon in `run_dir` that the data dir's ganesha servers join."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.conf = self.run_dir / "bus.conf"
        socket = self.run_dir / "bus"
        if len(str(socket)) <= MAX_SOCKET_PATH:
            self.listen = f"unix:path={socket}"
        else:  # a deep data dir: the abstract namespace has no length limit (the policy still holds)
            self.listen = f"unix:abstract=strata-nfs-stats-{os.urandom(8).hex()}"
        self.address = self.listen
        self._warned = False
        daemon = shutil.which("dbus-daemon") or "dbus-daemon"
        self.process = EngineProcess(
            ProcessSpec(
                name="dbus",
                argv=[daemon, "--nofork", "--nopidfile", f"--config-file={self.conf}"],
                run_dir=self.run_dir,
                match=str(self.conf),
            )
        )

    def usable(self) -> bool:
        return shutil.which("dbus-daemon") is not None

    def start(self, timeout: float = 15) -> bool:
        """Start the bus (if not running); False (logged) when it cannot run: no statistics then."""
        if self.process.running():
            return True
        if not self.usable():
            if not self._warned:
                log.warning("dbus-daemon is not installed: EFS I/O metrics are not collected")
                self._warned = True
            return False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.conf, _config(self.listen))
        try:
            self.process.start(ready=self._answers, timeout=timeout)
        except EngineError as e:
            log.warning("the NFS statistics bus did not start: %s", e)
            return False
        return True

    def running(self) -> bool:
        return self.process.running()

    def stop(self) -> None:
        self.process.stop()

    def _answers(self) -> bool:
        try:
            _connect(self.address).close()
            return True
        except (OSError, ValueError, DBusErrorResponse):
            return False

    def counters(self, servers: list[str]) -> dict[str, Counters]:
        """Each named server's counters (servers that do not answer are left out); blocking."""
        if not self.running():
            return {}
        out: dict[str, Counters] = {}
        try:
            conn = _connect(self.address)
        except (OSError, ValueError, DBusErrorResponse) as e:
            log.debug("statistics bus: %s", e)
            return {}
        try:
            for server in servers:
                try:
                    out[server] = _read(conn, bus_name(server))
                except Exception as e:  # noqa: BLE001 - a server starting, stopping or gone
                    log.debug("no NFS statistics from %s: %s", server, e)
        finally:
            conn.close()
        return out


class _Connection(DBusConnection):
    """jeepney's blocking connection, its Hello bounded by TIMEOUT too (jeepney bounds only the
    authentication: a bus that never answers Hello would hang the caller)."""

    def __init__(self, sock: socket.socket) -> None:
        DBusConnectionBase.__init__(self, sock, False)
        self._filters = MessageFilters()
        self.bus_proxy = Proxy(message_bus, self, timeout=TIMEOUT)
        self.unique_name = self.bus_proxy.Hello()[0]


def _connect(address: str) -> DBusConnection:
    return _Connection(prep_socket(get_bus(address), False, timeout=TIMEOUT))


def _read(conn: DBusConnection, name: str) -> Counters:
    address = DBusAddress(STATS_PATH, bus_name=name, interface=STATS_INTERFACE)
    io = conn.send_and_get_reply(new_method_call(address, "GetNFSIO"), timeout=TIMEOUT).body
    reads = read_bytes = writes = written = 0
    if io[0]:
        # (export id, version, read, write); read/write: requested, transferred, ops, errors, ...
        for _export, _version, r, w in io[3]:
            read_bytes += r[1]
            reads += r[2]
            written += w[1]
            writes += w[2]
    meta_reads = meta_writes = 0
    ops = conn.send_and_get_reply(new_method_call(address, "GetFULLV4Stats"), timeout=TIMEOUT).body
    if ops[0]:
        for op, total, *_ in ops[3]:  # (name, total, errors, latency average, minimum, maximum)
            if op in METADATA_READS:
                meta_reads += total
            elif op in METADATA_WRITES:
                meta_writes += total
    return Counters(reads, read_bytes, writes, written, meta_reads, meta_writes)


def _config(listen: str) -> str:
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <deny user="*"/>
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""
