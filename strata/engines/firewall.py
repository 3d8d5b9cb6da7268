"""Security groups made real: inbound filtering of loopback endpoints (an nftables filter table).

A guard is one endpoint (address, TCP port, as Describe shows it) and the sources allowed to open
connections to it (CIDR blocks). A new connection (its SYN) to a guarded endpoint from any other
source is dropped, so the client's connect times out, as with a security group on AWS;
connections already open stay open when a rule is revoked (AWS tracks them the same way).

The chain hooks the loopback OUTPUT path at priority -150, before the endpoint routers' NAT (-100),
so it sees the address and port the client dialed, not the engine's own port: Strata's admin and
replication connections, which dial engines directly, are not filtered. Where Strata dials an
endpoint itself (an NFS server's readiness, admin connections to cache nodes, which listen on
their endpoint addresses), it uses `control_connection`, whose socket carries CONTROL_MARK: the
chain lets it through, since security groups filter clients, not the service.

An engine is a client too when a user makes it dial (a PostgreSQL subscription, a dblink-style
connection): on AWS it comes from its instance's address, and the destination's groups judge it.
So the connections of a resource's engines that run in a cgroup of their own (`Engines`, as the
egress rules' filter knows them) meet the guards as any client's, except the destinations they
dial for Strata's replication (a Redis replica to its primary's node, a MariaDB replica to its
source's node port). A second chain after the NAT (priority 0) keeps those engines off other
resources' node ports (127.0.0.1 on `private_ports`, where Strata allocates them) unless they came
through an endpoint (conntrack's dnat status: the guards judged them) or are replication. Engines not in a
cgroup of their own (NFS servers), which no user makes dial, run as
ENGINE_USER and pass as before.

With an engine address (`exposed`, strata.engines.floating), other machines' clients dial the
endpoints at that address: a chain on the PREROUTING hook at the same priority, before the
routers' NAT there, sends their SYNs to the same guards, which also match the engine address with
the union of the sources of the guards on that port (the endpoints sharing a port, as an Aurora
cluster's writer and reader, belong to one resource), judged by the client's real address.

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

from strata.engines.cgroups import CgroupRef
from strata.engines.egress_filter import Allow
from strata.engines.nft import drop_table, owned_table, remove_dead_tables, run_script, start_janitor
from strata.engines.process import ENGINE_USER

NODE_ADDRESS = "127.0.0.1"  # where engines' own ports listen (a cache's nodes: on their endpoints)
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


@dataclass(frozen=True)
class Engines:
    """One resource's engine processes (their cgroup) and what they dial for Strata's
    replication (TCP destinations), which no group filters."""

    cgroup: CgroupRef
    replication: tuple[Allow, ...]


class Firewall:
    """Named guards in one nft table of this process (blocking methods: call off the loop).
    `private_ports`: the range engines' own ports are allocated from (see the module's doc)."""

    def __init__(
        self, name: str = "firewall", private_ports: tuple[int, int] | None = None, exposed: str | None = None
    ) -> None:
        self.exposed = exposed
        self.table = owned_table(name)
        self.private_ports = private_ports
        self.guards: dict[str, Guard] = {}
        self.engines: dict[str, Engines] = {}
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def set_all(self, guards: dict[str, Guard], engines: dict[str, Engines] | None = None) -> None:
        """Replace every guard (and the engines whose connections meet them) at once (one nft
        transaction)."""
        engines = dict(engines or {})
        with self._lock:
            if (guards, engines) == (self.guards, self.engines) and (self._janitor is not None or not guards):
                return
            self.guards, self.engines = dict(guards), engines
            self._apply()

    def stop(self) -> None:
        with self._lock:
            self.guards, self.engines = {}, {}
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
        rules, ports = [], set()
        for _, g in sorted(self.guards.items()):
            match = f"ip daddr {g.address} tcp dport {g.port}"  # address: may be a prefix
            nets = [ipaddress.ip_network(s, strict=False) for s in g.sources]
            if any(n.prefixlen == 0 for n in nets):
                continue  # open to all: no rule at all
            rules += [f"{match} ip saddr {n} accept" for n in sorted(set(nets))]
            rules.append(f"{match} drop")
            ports.add(g.port)
        rules += self._exposed_rules()
        to_guards = f"tcp dport {{ {', '.join(str(p) for p in sorted(ports))} }} jump guards" if ports else ""
        chains: dict[str, list[str]] = {"guards": rules}
        after_nat: list[str] = []
        guarded = {g.port for g in self.guards.values()}
        for i, (_, e) in enumerate(sorted(self.engines.items(), key=lambda kv: kv[0])):
            sock = f'socket cgroupv2 level {e.cgroup.level} "{e.cgroup.path}"'
            service = [r for r in map(_accept, e.replication) if r]
            chains[f"engines_{i}"] = [*service, *([to_guards] if to_guards else []), "accept"]
            entry.append(f"{sock} jump engines_{i}")
            if self.private_ports is not None:
                lo, hi = self.private_ports
                chains[f"direct_{i}"] = [
                    *service,
                    f"tcp dport {{ {', '.join(str(p) for p in sorted(guarded))} }} accept" if guarded else "",
                    f"ip daddr {NODE_ADDRESS} tcp dport {lo}-{hi} drop",
                ]
                after_nat.append(f"{sock} jump direct_{i}")
        uid = engine_uid()
        if uid is not None:  # engines in no cgroup of their own: no user makes them dial
            entry.append(f"meta skuid {uid} accept")
        if to_guards:
            entry.append(to_guards)
        script = [f"table ip {self.table}", f"delete table ip {self.table}", f"table ip {self.table} {{"]
        for name, body in chains.items():
            script += [f"  chain {name} {{", *(f"    {r}" for r in body if r), "  }"]
        script += ["  chain out {", "    type filter hook output priority -150; policy accept;"]
        script += [f"    {r}" for r in entry] + ["  }"]
        if to_guards and self.exposed is not None:
            script += ["  chain pre {", "    type filter hook prerouting priority -150; policy accept;"]
            # (this machine's own connections, loopback included, were judged on the OUTPUT hook)
            script += ['    iif "lo" accept', f"    {entry[0]}", f"    {to_guards}", "  }"]
        if after_nat:
            script += ["  chain direct {", "    type filter hook output priority 0; policy accept;"]
            script += ["    tcp flags & (syn | ack) != syn accept", "    ct status dnat accept"]
            script += [f"    {r}" for r in after_nat] + ["  }"]
        run_script("\n".join([*script, "}"]) + "\n")
        if self._janitor is None:
            self._janitor = start_janitor(self.table)

    def _exposed_rules(self) -> list[str]:
        """The guards on the engine address: per port, the sources of every guard on it."""
        if self.exposed is None:
            return []
        by_port: dict[int, set] = {}
        for g in self.guards.values():
            by_port.setdefault(g.port, set()).update(ipaddress.ip_network(s, strict=False) for s in g.sources)
        rules = []
        for port, nets in sorted(by_port.items()):
            if any(n.prefixlen == 0 for n in nets):
                continue
            match = f"ip daddr {self.exposed} tcp dport {port}"
            rules += [f"{match} ip saddr {n} accept" for n in sorted(nets)]
            rules.append(f"{match} drop")
        return rules


def _accept(a: Allow) -> str | None:
    """The rule accepting a TCP replication destination (IPv4: the loopback path's)."""
    net = ipaddress.ip_network(a.net, strict=False)
    if net.version != 4 or a.proto not in ("tcp", "-1"):
        return None
    ports = "" if a.proto == "-1" else f" tcp dport {a.lo}" if a.lo == a.hi else f" tcp dport {a.lo}-{a.hi}"
    return f"ip daddr {net}{ports} accept"
