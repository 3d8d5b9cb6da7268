"""Bandwidth limits for loopback servers, enforced by the kernel (nftables limit objects).

A group is a set of server addresses and ports (an EFS file system: its mount targets' addresses,
NFS ports 2049 and 2050) with two token buckets: bytes the servers send (reads) and bytes they
receive (writes). Packets over a bucket's rate are dropped on the loopback OUTPUT hook; TCP
answers drops by slowing down, so a client sees the rate (measured here: a 20 MiB/s limit gave
19.9 MiB/s written and 22 MiB/s read, 1 MiB/s gave 1.0 and 1.5 including the burst). Nothing is
proxied: traffic under the limit takes the same path as without one.

The rules live in one nft table owned by this process (strata.engines.nft: a janitor deletes it
when the process dies, kill -9 included; `remove_dead_tables` at start removes older owners'
tables), rewritten as one transaction on every change. The table exists only while some group
does.
"""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass

from strata.engines.nft import drop_table, owned_table, remove_dead_tables, run_script, start_janitor

# Above the largest loopback packet (64 KiB), so no packet is over the limit alone. A bucket holds
# one second of its rate on top of this (the kernel's nft_limit), so that is the real burst.
BURST_BYTES = 1 << 20


@dataclass(frozen=True)
class Group:
    addresses: tuple[str, ...]
    ports: tuple[int, ...]
    send_bytes_per_second: int  # what the servers send: reads
    receive_bytes_per_second: int  # what they receive: writes


class Throttle:
    """Named bandwidth groups in one nft table of this process."""

    def __init__(self, name: str) -> None:
        self.table = owned_table(name)
        self.groups: dict[str, Group] = {}
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def set(self, name: str, group: Group) -> None:
        """Limit the group's traffic from now on (replacing its earlier limits); blocking."""
        with self._lock:
            if self.groups.get(name) == group:
                return
            self.groups[name] = group
            self._apply()

    def remove(self, name: str) -> None:
        with self._lock:
            if self.groups.pop(name, None) is not None:
                self._apply()

    def stop(self) -> None:
        with self._lock:
            if self.groups:
                self.groups.clear()
                self._apply()

    def _apply(self) -> None:
        if not self.groups:
            drop_table(self.table, self._janitor)
            self._janitor = None
            return
        if self._janitor is None:
            remove_dead_tables()
            self._janitor = start_janitor(self.table)
        limits, rules = [], []
        for name, g in sorted(self.groups.items()):
            key = re.sub(r"[^A-Za-z0-9_]", "_", name)
            addresses = ", ".join(g.addresses)
            ports = ", ".join(str(p) for p in g.ports)
            for direction, rate, match in (
                ("send", g.send_bytes_per_second, f"ip saddr {{ {addresses} }} tcp sport {{ {ports} }}"),
                (
                    "receive",
                    g.receive_bytes_per_second,
                    f"ip daddr {{ {addresses} }} tcp dport {{ {ports} }}",
                ),
            ):
                limits.append(
                    f"  limit {key}_{direction} {{ rate over {max(1, rate // 1024)} kbytes/second "
                    f"burst {BURST_BYTES // 1024} kbytes }}"
                )
                rules.append(f'    {match} limit name "{key}_{direction}" drop')
        run_script(
            f"table ip {self.table}\ndelete table ip {self.table}\n"
            f"table ip {self.table} {{\n" + "\n".join(limits) + "\n"
            "  chain out {\n    type filter hook output priority 0; policy accept;\n"
            + "\n".join(rules)
            + "\n  }\n}\n"
        )
