"""Network partitions between engines: the TCP connections between the engine nodes of some cgroups
(a cut-off Availability Zone's) and every other engine node of this Strata carry nothing, both ways,
for as long as the cut lasts (FIS aws:network:disrupt-connectivity, scope availability-zone).

On one machine every node runs as the same user on loopback, so neither addresses nor the user
tell one node's connections from another's; each node's cgroup does (strata.engines.cgroups: a
node runs in `<resource's cgroup>/<node>`). nftables's `socket cgroupv2` sees the cgroup of the
socket that sends a packet, never the peer's, so one connection is judged by both of its ends:
a packet sent from a cut-side socket adds the connection (its conntrack id) to one set, a packet
from any other engine socket to a second; a connection in both sets joins the two sides, and every
packet of it is dropped from then on, as a partition drops them. A connection opened before the
cut is caught by its next packet each way (Redis replicas acknowledge every second); a new one
never completes its handshake. Connections with a client that is no engine (Strata itself, users)
are not touched: the endpoint blackhole (strata.engines.blackhole) cuts those.

A cut's sets last as long as it does (when the cgroups of a cut change, only its rules are
replaced); they go with it, and the table when no cut is left: nothing of a cut outlives it, and a
connection dropped during the cut carries packets again at once after it (TCP retransmits; the
engines reconnect when they gave up). The table is this process's
own (strata.engines.nft: a janitor deletes it when Strata dies). PostgreSQL nodes replicate over
unix sockets, which nftables does not see; strata.services.rds.zone_cut pauses them instead.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading

from strata.engines.cgroups import CgroupRef, engine_cgroups
from strata.engines.nft import drop_table, owned_table, remove_dead_tables, run_script, start_janitor

FAMILY = "inet"
SET_SIZE = 65536  # connections remembered per side of one cut


def _rule(ref: CgroupRef, verdict: str) -> str:
    return f'socket cgroupv2 level {ref.level} "{ref.path}" {verdict}'


class Partition:
    """Named cuts, each a set of engine cgroups severed from all other engines (blocking methods:
    call off the event loop)."""

    def __init__(self, name: str = "partition") -> None:
        self.table = owned_table(name)
        self.cuts: dict[str, frozenset[CgroupRef]] = {}
        self._janitor: subprocess.Popen | None = None
        self._made: set[str] = set()  # the cuts whose sets and chains the table holds
        self._lock = threading.Lock()

    @staticmethod
    def base() -> CgroupRef | None:
        """The cgroup every engine node of this Strata runs under (None where there are none)."""
        cgroups = engine_cgroups()
        return None if cgroups is None else cgroups.base_ref()

    def cut(self, key: str, side: frozenset[CgroupRef]) -> None:
        """Sever the engines of `side` from every other engine under `key` (replacing its cut)."""
        with self._lock:
            if self.cuts.get(key) == side and (self._janitor is not None or not side):
                return
            self.cuts = {**self.cuts, key: side}
            self._apply()

    def remove(self, key: str) -> None:
        with self._lock:
            if key in self.cuts:
                self.cuts = {k: v for k, v in self.cuts.items() if k != key}
                self._apply()

    def _apply(self) -> None:
        base = self.base()
        cuts = {_name(k): side for k, side in sorted(self.cuts.items()) if side}
        if not cuts or base is None:
            drop_table(self.table, self._janitor, FAMILY)
            self._janitor, self._made = None, set()
            return
        if self._janitor is None:
            remove_dead_tables()
        t = f"{FAMILY} {self.table}"
        # Each cut's sets are kept while it lasts (a rebuilt set would let the next packets of a cut
        # connection through until both of its ends had sent again); only the rules are replaced.
        script = [
            f"table {t} {{\n  chain out {{ type filter hook output priority -155; policy accept; }}\n}}"
        ]
        script.append(f"flush chain {t} out")
        for n in sorted(self._made - set(cuts)):  # cuts that ended: their rules and sets go
            script += [
                f"delete chain {t} cut_{n}",
                f"delete chain {t} side_{n}_c",
                f"delete chain {t} side_{n}_r",
            ]
            script += [f"delete set {t} c_{n}", f"delete set {t} r_{n}"]
        for n, side in cuts.items():
            if n not in self._made:
                script += [
                    f"add set {t} c_{n} {{ typeof ct id; flags dynamic; size {SET_SIZE}; }}",
                    f"add set {t} r_{n} {{ typeof ct id; flags dynamic; size {SET_SIZE}; }}",
                    f"add chain {t} side_{n}_c",
                    f"add chain {t} side_{n}_r",
                    f"add chain {t} cut_{n}",
                    f"add rule {t} side_{n}_c add @c_{n} {{ ct id }}",
                    f"add rule {t} side_{n}_c ct id @r_{n} drop",
                    f"add rule {t} side_{n}_r add @r_{n} {{ ct id }}",
                    f"add rule {t} side_{n}_r ct id @c_{n} drop",
                ]
            script.append(f"flush chain {t} cut_{n}")
            script += [
                f"add rule {t} cut_{n} {_rule(ref, f'goto side_{n}_c')}" for ref in sorted(side, key=repr)
            ]
            script.append(f"add rule {t} cut_{n} {_rule(base, f'goto side_{n}_r')}")
            script.append(f"add rule {t} out meta l4proto tcp jump cut_{n}")
        run_script("\n".join(script) + "\n")
        self._made = set(cuts)
        if self._janitor is None:
            self._janitor = start_janitor(self.table, FAMILY)


def _name(key: str) -> str:
    """A cut's name in nft (chain and set names): short, and the same for the same key."""
    return hashlib.sha1(key.encode()).hexdigest()[:12]
