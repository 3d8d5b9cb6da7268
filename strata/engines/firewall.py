"""Security groups made real: inbound filtering of loopback endpoints (an nftables filter table).

A guard is one endpoint (address, TCP port, as Describe shows it) and the sources allowed to open
connections to it (CIDR blocks). A new connection (its SYN) to a guarded endpoint from any other
source is dropped, so the client's connect times out, as with a security group on AWS;
connections already open stay open when a rule is revoked (AWS tracks them the same way).

The chain hooks the loopback OUTPUT path at priority -150, before the endpoint routers' NAT (-100),
so it sees the address and port the client dialed, not the engine's own port: Strata's admin and
replication connections, which dial engines directly, are not filtered. Where Strata dials an
endpoint itself (an NFS server's readiness, admin connections to cache nodes, which listen on
their endpoint addresses), it uses `control_connection`, whose socket carries CONTROL_MARK, and
the engines run as ENGINE_USER: the chain lets both through (a replica syncing from its primary),
since security groups filter clients, not the service.

The rules live in one nft table owned by this process (strata.engines.nft: a janitor deletes it
when the process dies, kill -9 included; `remove_dead_tables` removes older owners' tables),
rewritten as one transaction on every change; the table exists only while some guard does.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import socket
import subprocess
import threading
from dataclasses import dataclass

from strata.engines.nft import drop_table, owned_table, remove_dead_tables, run_script, start_janitor
from strata.engines.process import ENGINE_USER

CONTROL_MARK = 0x5354_0001  # SO_MARK of Strata's own connections to the endpoints it guards


def control_socket() -> socket.socket:
    """An unconnected TCP socket of Strata itself (not a client's), which no security group filters."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.geteuid() == 0:  # SO_MARK needs CAP_NET_ADMIN; without it there is no firewall either
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, CONTROL_MARK)
    return s


def control_connection(address: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection from Strata itself, which no security group filters."""
    s = control_socket()
    try:
        s.settimeout(timeout)
        s.connect((address, port))
    except BaseException:
        s.close()
        raise
    return s


def engine_uid() -> int | None:
    try:
        return pwd.getpwnam(ENGINE_USER).pw_uid
    except KeyError:
        return None


@dataclass(frozen=True)
class Guard:
    address: str
    port: int
    sources: tuple[str, ...]  # IPv4 CIDR blocks allowed to connect; empty: none


class Firewall:
    """Named guards in one nft table of this process (blocking methods: call off the loop)."""

    def __init__(self, name: str = "firewall") -> None:
        self.table = owned_table(name)
        self.guards: dict[str, Guard] = {}
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def set_all(self, guards: dict[str, Guard]) -> None:
        """Replace every guard at once (one nft transaction)."""
        with self._lock:
            if guards == self.guards and (self._janitor is not None or not guards):
                return
            self.guards = dict(guards)
            self._apply()

    def stop(self) -> None:
        with self._lock:
            self.guards = {}
            self._apply()

    def _apply(self) -> None:
        if not self.guards:
            drop_table(self.table, self._janitor)
            self._janitor = None
            return
        if self._janitor is None:
            remove_dead_tables()
        # Only a connection's opening SYN is looked at (no conntrack needed), and only one to a
        # guarded port goes through the guards' rules: an open connection's packets meet one test.
        entry = ["tcp flags & (syn | ack) != syn accept", f"meta mark {CONTROL_MARK:#x} accept"]
        uid = engine_uid()
        if uid is not None:  # the engines' own connections (a replica to its primary) are the service's
            entry.append(f"meta skuid {uid} accept")
        rules, ports = [], set()
        for _, g in sorted(self.guards.items()):
            match = f"ip daddr {g.address} tcp dport {g.port}"  # address: may be a prefix
            nets = [ipaddress.ip_network(s, strict=False) for s in g.sources]
            if any(n.prefixlen == 0 for n in nets):
                continue  # open to all: no rule at all
            rules += [f"{match} ip saddr {n} accept" for n in sorted(set(nets))]
            rules.append(f"{match} drop")
            ports.add(g.port)
        if ports:
            entry.append(f"tcp dport {{ {', '.join(str(p) for p in sorted(ports))} }} jump guards")
        run_script(
            f"table ip {self.table}\ndelete table ip {self.table}\n"
            f"table ip {self.table} {{\n"
            "  chain guards {\n" + "".join(f"    {r}\n" for r in rules) + "  }\n"
            "  chain out {\n    type filter hook output priority -150; policy accept;\n"
            + "".join(f"    {r}\n" for r in entry)
            + "  }\n}\n"
        )
        if self._janitor is None:
            self._janitor = start_janitor(self.table)
