"""Endpoints that stop answering: every packet a client sends them is dropped (an nftables table).

Used by FIS's aws:network:disrupt-connectivity: like a network ACL that denies all traffic of a
subnet (or, scope prefix-list, the traffic from some CIDR blocks), it cuts open connections as well as new ones (every packet is looked at, not only the
opening SYN), so clients meet timeouts, not refusals. Strata's own connections (CONTROL_MARK) and
the engines' (replication between nodes) pass, as the firewall lets them (strata.engines.firewall):
the disruption is of the clients' network, not of Strata's control of its engines.

The chain hooks the loopback OUTPUT path at priority -160, before the security groups (-150) and
the endpoint routers' NAT (-100), so it sees the address and port the client dialed. The table is
this process's own (strata.engines.nft: a janitor removes it when Strata dies, kill -9 included)
and exists only while some endpoint is cut off.

With an engine address (`exposed`, strata.engines.floating), an endpoint on 127.0.0.1 is cut off
there too (the routers serve 127.0.0.1's routes on it with the same port): for this machine's
clients on the OUTPUT hook, for other machines' on PREROUTING at the same priority.
"""

from __future__ import annotations

import subprocess
import threading

from strata.config import EngineAddress
from strata.engines.firewall import CONTROL_MARK, engine_uid
from strata.engines.floating import public_host
from strata.engines.nft import (
    drop_table,
    nft_usable,
    owned_table,
    remove_dead_tables,
    run_script,
    start_janitor,
)

Endpoint = tuple[str, int]  # (IPv4 address, TCP port)


class Blackhole:
    """Named sets of cut-off endpoints in one nft table (blocking methods: call off the loop)."""

    def __init__(self, name: str = "blackhole", exposed: str | EngineAddress | None = None) -> None:
        # the engine address(es): a plain address stands for a single one with no pool
        self.exposed = EngineAddress(exposed, "") if isinstance(exposed, str) else exposed
        self.table = owned_table(name)
        self.cut: dict[str, frozenset[Endpoint]] = {}
        self.sources: dict[str, frozenset[str]] = {}  # keys that cut only these clients off
        self._janitor: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @staticmethod
    def usable() -> bool:
        return nft_usable()

    def add(self, key: str, endpoints: frozenset[Endpoint], sources: frozenset[str] | None = None) -> None:
        """Cut `endpoints` off under `key` (replacing what `key` cut before): for every client, or
        with `sources` (IPv4 CIDR blocks) only for clients whose address is in one of them."""
        with self._lock:
            self.cut = {**self.cut, key: endpoints}
            self.sources = {k: v for k, v in self.sources.items() if k != key}
            if sources is not None:
                self.sources[key] = sources
            self._apply()

    def remove(self, key: str) -> None:
        with self._lock:
            if key in self.cut:
                self.cut = {k: v for k, v in self.cut.items() if k != key}
                self.sources = {k: v for k, v in self.sources.items() if k != key}
                self._apply()

    def _with_exposed(self, group: frozenset[Endpoint]) -> set[Endpoint]:
        """`group` and, with an engine address, its loopback endpoints on their public addresses
        (127.0.0.1's on the first, others on their pool address: floating.public_host)."""
        if self.exposed is None:
            return set(group)
        public = {(public_host(self.exposed, address, assign=False), port) for address, port in group}
        return set(group) | {(address, port) for address, port in public if address is not None}

    def _apply(self) -> None:
        everyone = sorted(
            {e for k, group in self.cut.items() if k not in self.sources for e in self._with_exposed(group)}
        )
        limited = [
            (sorted(self.sources[k]), sorted(self._with_exposed(group)))
            for k, group in sorted(self.cut.items())
            if k in self.sources and group and self.sources[k]
        ]
        if not everyone and not limited:
            drop_table(self.table, self._janitor)
            self._janitor = None
            return
        if self._janitor is None:
            remove_dead_tables()
        rules = [f"meta mark {CONTROL_MARK:#x} accept"]
        uid = engine_uid()
        if uid is not None:
            rules.append(f"meta skuid {uid} accept")
        cut_set = ""
        if everyone:
            elements = ", ".join(f"{address} . {port}" for address, port in everyone)
            cut_set = (
                f"  set cut {{\n    type ipv4_addr . inet_service\n    elements = {{ {elements} }}\n  }}\n"
            )
            rules.append("ip daddr . tcp dport @cut drop")
        for cidrs, group in limited:
            targets = ", ".join(f"{address} . {port}" for address, port in group)
            rules.append(f"ip saddr {{ {', '.join(cidrs)} }} ip daddr . tcp dport {{ {targets} }} drop")
        run_script(
            f"table ip {self.table}\ndelete table ip {self.table}\n"
            f"table ip {self.table} {{\n"
            + cut_set
            + "  chain out {\n    type filter hook output priority -160; policy accept;\n"
            + "".join(f"    {r}\n" for r in rules)
            + "  }\n"
            + self._pre_chain(rules)
            + "}\n"
        )
        if self._janitor is None:
            self._janitor = start_janitor(self.table)

    def _pre_chain(self, rules: list[str]) -> str:
        """The cut on PREROUTING, for other machines' clients of the engine address (this machine's
        own packets, loopback included, were judged on OUTPUT)."""
        if self.exposed is None:
            return ""
        cuts = [r for r in rules if r.endswith(" drop")]
        return (
            "  chain pre {\n    type filter hook prerouting priority -160; policy accept;\n"
            '    iif "lo" accept\n' + "".join(f"    {r}\n" for r in cuts) + "  }\n"
        )
