"""Security groups' egress rules made real: the connections a resource's engines open, filtered
(an nftables table of family inet, beside the inbound `firewall`'s).

An egress set is one engine cgroup (strata.engines.cgroups: the resource's engine processes and
their workers) and the destinations it may reach (protocol, port range, IPv4 or IPv6 CIDR block).
A new TCP connection (its SYN) or a UDP datagram from a socket of that cgroup to any other
destination is dropped, so the engine's connect times out, as an instance's does on AWS when its
group's egress rules do not allow the destination. What passes whatever the rules say, as on AWS
or because Strata needs it: packets of connections already open (replies to clients included:
groups are stateful), DNS queries (UDP port 53: AWS's resolver is not filtered by groups), UDP on
loopback (PostgreSQL before 15 sends its statistics to itself over it) and ICMP. Replication
between a resource's nodes does not use this path (PostgreSQL replicas stream over unix sockets).

The chain hooks the OUTPUT path at priority -150, before the endpoint routers' NAT (-100), so it
sees the address and port the engine dialed. The table belongs to this process as the firewall's
does (strata.engines.nft: a janitor deletes it when Strata dies) and exists only while some
egress set does.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from dataclasses import dataclass

from strata.engines.cgroups import CgroupRef
from strata.engines.nft import (
    NFT_TIMEOUT,
    drop_table,
    nft_binary,
    owned_table,
    remove_dead_tables,
    run_script,
    start_janitor,
)

FAMILY = "inet"


@dataclass(frozen=True)
class Allow:
    proto: str  # "-1" (all), "tcp", "udp", "icmp"
    lo: int  # port range; -1 for all protocols / ICMP
    hi: int
    net: str  # IPv4 or IPv6 CIDR block


@dataclass(frozen=True)
class Egress:
    cgroup: CgroupRef
    allowed: tuple[Allow, ...]


def _rule(a: Allow) -> str | None:
    net = ipaddress.ip_network(a.net, strict=False)
    match = f"{'ip' if net.version == 4 else 'ip6'} daddr {net}"
    if a.proto == "-1":
        return f"{match} return"
    if a.proto in ("tcp", "udp"):
        ports = str(a.lo) if a.lo == a.hi else f"{a.lo}-{a.hi}"
        return f"{match} {a.proto} dport {ports} return"
    return None  # ICMP is not filtered


def supported(cgroup: CgroupRef) -> bool:
    """Whether this host's nft and kernel take a `socket cgroupv2` rule (checked, not applied)."""
    nft = nft_binary()
    if nft is None:
        return False
    script = (
        "table inet strata_probe {\n  chain out {\n    type filter hook output priority -150; policy accept;\n"
        f'    socket cgroupv2 level {cgroup.level} "{cgroup.path}" meta l4proto tcp drop\n  }}\n}}\n'
    )
    try:
        done = subprocess.run(
            [nft, "-c", "-f", "-"], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class EgressFilter:
    """Named egress sets in one nft table of this process (blocking methods: call off the loop)."""

    def __init__(self, name: str = "egress") -> None:
        self.table = owned_table(name)
        self.sets: dict[str, Egress] = {}
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def set_all(self, sets: dict[str, Egress]) -> None:
        """Replace every egress set at once (one nft transaction)."""
        with self._lock:
            if sets == self.sets and (self._janitor is not None or not sets):
                return
            self.sets = dict(sets)
            self._apply()

    def stop(self) -> None:
        with self._lock:
            self.sets = {}
            self._apply()

    def _apply(self) -> None:
        sets = {k: e for k, e in self.sets.items() if not _open(e)}
        if not sets:
            drop_table(self.table, self._janitor, FAMILY)
            self._janitor = None
            return
        if self._janitor is None:
            remove_dead_tables()
        entry = ["tcp flags & (syn | ack) != syn accept"]
        chains = []
        for i, (_, e) in enumerate(sorted(sets.items())):
            entry.append(f'socket cgroupv2 level {e.cgroup.level} "{e.cgroup.path}" jump egress_{i}')
            rules = sorted({r for r in map(_rule, e.allowed) if r})
            rules += [
                "udp dport 53 return",
                "ip daddr 127.0.0.0/8 meta l4proto udp return",
                "ip6 daddr ::1 meta l4proto udp return",
                "meta l4proto { tcp, udp } drop",
            ]
            chains.append(f"  chain egress_{i} {{\n" + "".join(f"    {r}\n" for r in rules) + "  }\n")
        run_script(
            f"table {FAMILY} {self.table}\ndelete table {FAMILY} {self.table}\n"
            f"table {FAMILY} {self.table} {{\n"
            + "".join(chains)
            + "  chain out {\n    type filter hook output priority -150; policy accept;\n"
            + "".join(f"    {r}\n" for r in entry)
            + "  }\n}\n"
        )
        if self._janitor is None:
            self._janitor = start_janitor(self.table, FAMILY)


def _open(e: Egress) -> bool:
    """Whether the set allows all traffic to 0.0.0.0/0 (AWS's default rule): no rule needed, as
    `strata.services.ec2.rules.restricts_egress` judges (IPv6 reaches only this machine here)."""
    return any(a.proto == "-1" and a.net == "0.0.0.0/0" for a in e.allowed)
