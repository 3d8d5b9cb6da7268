"""Bandwidth limits for loopback servers, enforced by the kernel (nftables limit objects).

A group is a set of server addresses and ports (an EFS file system: its mount targets' addresses,
NFS ports 2049 and 2050) with one token bucket for everything they move: a byte the servers send
(a read) takes `send_cost` tokens, a byte they receive (a write) `receive_cost` tokens, so one rate
holds a weighted sum of both directions (EFS meters reads at a third of writes: costs 1 and 3 over
a bucket of three times the metered rate). The cost is paid by running a packet through as many
rules naming the same limit object, each taking its length from the bucket. Packets over the rate
are dropped on the loopback OUTPUT hook; TCP answers drops by slowing down, so a client sees the
rate (measured with separate buckets: a 20 MiB/s limit gave 19.9 MiB/s written and 22 MiB/s read,
1 MiB/s gave 1.0 and 1.5 including the burst). Nothing is proxied: traffic under the limit takes
the same path as without one. A group without a rate is only counted.

A group may also hold what its servers send to a bucket of its own (`send_bytes_per_second`: EFS
Elastic's separate read ceiling). The kernel cannot hold a bucket above `MAX_RATE` (nft_limit
computes in nanosecond-bytes of 64 bits: about 17 GiB/s with the burst), so a higher rate is held
by as many equal buckets as it needs (EFS Elastic's 60 GiB/s reads: four of 15 GiB/s), the
packets dealt to them in turn (`numgen inc`): each bucket sees every N-th packet, so together they
pass the whole rate and no more (packet sizes even out over the bucket's second of burst).

Each group's bytes are counted by direction (`totals`), across rewrites of the table.

The rules live in one nft table owned by this process (strata.engines.nft: a janitor deletes it
when the process dies, kill -9 included; `remove_dead_tables` at start removes older owners'
tables), rewritten as one transaction on every change. The table exists only while some group
does.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass

from strata.engines.nft import (
    drop_table,
    nft_binary,
    owned_table,
    remove_dead_tables,
    run_script,
    start_janitor,
)

# Above the largest loopback packet (64 KiB), so no packet is over the limit alone. A bucket holds
# one second of its rate on top of this (the kernel's nft_limit), so that is the real burst.
BURST_BYTES = 1 << 20
MAX_RATE = 16 << 30  # bytes a second: the largest bucket the kernel takes (see the docstring)


@dataclass(frozen=True)
class Group:
    addresses: tuple[str, ...]
    ports: tuple[int, ...]
    bytes_per_second: int | None  # tokens a second (None: counted, not limited)
    send_cost: int = 1  # tokens per byte the servers send (reads)
    receive_cost: int = 1  # tokens per byte they receive (writes)
    send_bytes_per_second: int | None = None  # a bucket of its own for what the servers send


class Throttle:
    """Named bandwidth groups in one nft table of this process."""

    def __init__(self, name: str, max_rate: int = MAX_RATE) -> None:
        self.table = owned_table(name)
        self.max_rate = max_rate  # the most one kernel bucket holds (lower only to test sharding)
        self.groups: dict[str, Group] = {}
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._totals: dict[str, list[int]] = {}  # group -> [sent, received] before the last rewrite

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
                self._totals.pop(name, None)

    def stop(self) -> None:
        with self._lock:
            if self.groups:
                self.groups.clear()
                self._apply()
                self._totals.clear()

    def totals(self) -> dict[str, tuple[int, int]]:
        """Bytes each group's servers have sent and received since the group was set."""
        with self._lock:
            counted = self._counters()
            return {
                name: (self._totals.get(name, [0, 0])[0] + sent, self._totals.get(name, [0, 0])[1] + received)
                for name, (sent, received) in ((n, counted.get(n, (0, 0))) for n in self.groups)
            }

    def _counters(self) -> dict[str, tuple[int, int]]:
        if not self.groups:
            return {}
        nft = nft_binary()
        cp = subprocess.run(
            [nft or "nft", "-j", "list", "counters", "table", "ip", self.table],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if cp.returncode != 0:
            return {}
        by_key = {}
        for item in json.loads(cp.stdout).get("nftables", []):
            counter = item.get("counter")
            if counter:
                by_key[counter["name"]] = int(counter.get("bytes", 0))
        return {
            name: (by_key.get(f"{_key(name)}_sent", 0), by_key.get(f"{_key(name)}_received", 0))
            for name in self.groups
        }

    def _apply(self) -> None:
        for name, (sent, received) in self._counters().items():  # kept across the rewrite
            total = self._totals.setdefault(name, [0, 0])
            total[0] += sent
            total[1] += received
        if not self.groups:
            drop_table(self.table, self._janitor)
            self._janitor = None
            return
        if self._janitor is None:
            remove_dead_tables()
            self._janitor = start_janitor(self.table)
        objects, rules = [], []
        for name, g in sorted(self.groups.items()):
            key = _key(name)
            addresses = ", ".join(g.addresses)
            ports = ", ".join(str(p) for p in g.ports)
            objects.append(f"  counter {key}_sent {{ }}\n  counter {key}_received {{ }}")
            buckets = {}  # limit name -> what names a packet's bucket in a rule
            for name, rate in ((key, g.bytes_per_second), (f"{key}_send", g.send_bytes_per_second)):
                if rate is not None:
                    shards = _shards(rate, self.max_rate)
                    names = [name] if len(shards) == 1 else [f"{name}_{i}" for i in range(len(shards))]
                    objects += [
                        f"  limit {n} {{ rate over {max(1, r // 1024)} kbytes/second "
                        f"burst {BURST_BYTES // 1024} kbytes }}"
                        for n, r in zip(names, shards, strict=True)
                    ]
                    buckets[name] = _bucket_ref(names)
            for counter, cost, match in (
                ("sent", g.send_cost, f"ip saddr {{ {addresses} }} tcp sport {{ {ports} }}"),
                ("received", g.receive_cost, f"ip daddr {{ {addresses} }} tcp dport {{ {ports} }}"),
            ):
                rules.append(f'    {match} counter name "{key}_{counter}"')
                if key in buckets:
                    rules += [f"    {match} limit name {buckets[key]} drop"] * cost
                if counter == "sent" and f"{key}_send" in buckets:
                    rules.append(f"    {match} limit name {buckets[f'{key}_send']} drop")
        run_script(
            f"table ip {self.table}\ndelete table ip {self.table}\n"
            f"table ip {self.table} {{\n" + "\n".join(objects) + "\n"
            "  chain out {\n    type filter hook output priority 0; policy accept;\n"
            + "\n".join(rules)
            + "\n  }\n}\n"
        )


def _shards(rate: int, max_rate: int) -> list[int]:
    """The rates of the equal buckets that hold `rate` together, none above `max_rate`."""
    n = -(-rate // max_rate)
    return [rate // n] * n


def _bucket_ref(names: list[str]) -> str:
    """How a rule names its bucket: the one limit, or the next of several in turn."""
    if len(names) == 1:
        return f'"{names[0]}"'
    entries = ", ".join(f'{i} : "{n}"' for i, n in enumerate(names))
    return f"numgen inc mod {len(names)} map {{ {entries} }}"


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
