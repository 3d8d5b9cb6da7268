"""Engines' own ports kept behind their endpoints (an nftables filter table of this process).

Security groups judge connections at the endpoints (strata.engines.firewall): the loopback ports
users are given, which the routers rewrite (NAT) to the engines' own ports. Those own ports listen
on loopback too, so a process that dialed one directly (any user of the machine, or an engine a
user makes dial: a PostgreSQL subscription, a FEDERATED table, a Redis MIGRATE) would reach the
engine past every group. So a new TCP connection to an internal port (a port of
`strata.engines.ports`' table, on any 127.0.0.0/8 address, that is no endpoint: `open`) is taken
only when:
- it came through an endpoint (conntrack: its destination was rewritten, `ct status dnat`, which
  the routers' `redirect` and `dnat` both set), so the group there judged it;
- it is Strata's own: a socket of Strata's cgroup (`EngineCgroups.enter_own`: Strata and what it
  forks, so its health checks, admin connections, HAProxy and pg tools) or one marked CONTROL_MARK
  (the in-process proxies and relays that dial through `control_socket`);
- it is a resource's engine dialing a destination of its replication (`Engines.replication`, as
  the egress filter exempts them: a MariaDB replica to its source's node, a Redis cluster bus), or
  an engine in no cgroup of its own (ENGINE_USER: NFS servers), as the firewall lets them pass.
  Every ElastiCache node, a serverless cache's included, runs in its deployment's cgroup.
Anything else is refused (TCP reset) before the engine sees it.

Two chains do it, as nft sees each end of a loopback connection at one hook only. On the OUTPUT
path (priority 10, after the routers' NAT at -100 and the firewall's chains, so it sees the port
the connection ends at) the SYN's socket is judged and a connection allowed gets the conntrack
mark bit ALLOWED. On the INPUT path the listening socket the SYN reaches is looked up: one of this
Strata's engines (under its engine cgroups' base) or of Strata's own cgroup (the engines it runs in
no cgroup of their own), without the mark, refuses it, unless the connection came through an
endpoint: one from another machine to the engine address (strata.engines.floating), which the
PREROUTING hook's NAT sent here, never passed the OUTPUT chain. So another Strata's engine that holds a
port this Strata's table also lists (one of a stopped instance's, taken meanwhile: the range is
shared) is never refused here, and each Strata keeps only its own engines.

The internal ports are the port table's, read again whenever it changes (`PortAllocator.watch`: a
new node's port is covered before its engine listens), so only this Strata's ports are guarded,
never another program's. Usable where the firewall is (nft, root) and engines run in cgroups
(strata.engines.cgroups); elsewhere Strata keeps the ports as they were and logs so.
"""

from __future__ import annotations

import logging
import subprocess
import threading

from strata.engines.cgroups import CgroupRef, engine_cgroups
from strata.engines.firewall import CONTROL_MARK, Engines, _accept, engine_uid
from strata.engines.nft import drop_table, owned_table, remove_dead_tables, run_script, start_janitor
from strata.engines.ports import PortAllocator
from strata.engines.process import EngineError

log = logging.getLogger("strata.engines")
LOOPBACK_NET = "127.0.0.0/8"
ALLOWED = 0x4000_0000  # conntrack mark bit: the connection's source may reach an internal port


def _socket(ref: CgroupRef) -> str:
    return f'socket cgroupv2 level {ref.level} "{ref.path}"'


class InternalGuard:
    """The guard of this Strata's internal ports (blocking methods: call off the event loop)."""

    def __init__(
        self,
        ports: PortAllocator,
        strata: CgroupRef,
        base: CgroupRef,
        engine_uid: int | None,
        *,
        public: set[int] | None = None,
        name: str = "internal_ports",
    ) -> None:
        """`public`: ports of the table that users reach directly, always (the NBD server's)."""
        self.table = owned_table(name)
        self.public = frozenset(public or ())
        self.ports = ports
        self.strata = strata  # Strata's own cgroup
        self.base = base  # the cgroup its engines' cgroups are under
        self.engine_uid = engine_uid
        self.open: frozenset[int] = frozenset()
        self.engines: dict[str, Engines] = {}
        self._applied: tuple | None = None
        self._janitor: subprocess.Popen | None = None
        self._stopped = False
        self._lock = threading.Lock()
        ports.watch(self.refresh)

    def set_all(self, open_ports: set[int], engines: dict[str, Engines]) -> None:
        """Replace the endpoints' ports (`open`: judged by the firewall, never internal) and the
        engines whose replication passes."""
        with self._lock:
            self.open, self.engines = frozenset(open_ports), dict(engines)
            self._apply()

    def refresh(self) -> None:
        """Read the port table again (it changed). A failed update is logged, not raised: the
        allocation that called it goes on, its port unguarded until the next update succeeds."""
        with self._lock:
            try:
                self._apply()
            except EngineError as e:
                log.error("engines' own ports could not be guarded (retried at the next change): %s", e)

    def internal_ports(self) -> set[int]:
        return set(self.ports.owned().values()) - self.open - self.public

    def stop(self) -> None:
        self.ports.unwatch(self.refresh)
        with self._lock:
            self._stopped = True
            drop_table(self.table, self._janitor)
            self._janitor, self._applied = None, None

    def _apply(self) -> None:
        if self._stopped:
            return
        internal = self.internal_ports()
        state = (frozenset(internal), sorted(self.engines.items(), key=lambda kv: kv[0]))
        if state == self._applied:
            return
        if not internal:
            drop_table(self.table, self._janitor)
            self._janitor, self._applied = None, state
            return
        if self._janitor is None:
            remove_dead_tables()
        t = self.table
        judge = [
            "ct status dnat goto allow",
            f"meta mark {CONTROL_MARK:#x} goto allow",
            f"{_socket(self.strata)} goto allow",
        ]
        script = [f"table ip {t}", f"delete table ip {t}", f"table ip {t} {{"]
        ports = ", ".join(map(str, sorted(internal)))
        script.append(f"  set internal {{ type inet_service; elements = {{ {ports} }} }}")
        script += ["  chain allow {", f"    ct mark set ct mark | {ALLOWED:#x}", "  }"]
        for i, (_, e) in enumerate(state[1]):
            accepts = [f"{r.removesuffix(' accept')} goto allow" for r in map(_accept, e.replication) if r]
            script += [f"  chain engine_{i} {{", *(f"    {r}" for r in accepts), "  }"]
            judge.append(f"{_socket(e.cgroup)} goto engine_{i}")
        if self.engine_uid is not None:  # engines in no cgroup of their own
            judge.append(f"meta skuid {self.engine_uid} goto allow")
        script += ["  chain judge {", *(f"    {r}" for r in judge), "  }"]
        syn = f"ip daddr {LOOPBACK_NET} tcp flags & (syn | ack) == syn tcp dport @internal"
        script += [
            "  chain listener {",
            *(f"    {_socket(c)} reject with tcp reset" for c in (self.base, self.strata)),
            "  }",
            "  chain outbound {",
            "    type filter hook output priority 10; policy accept;",
            f"    {syn} jump judge",
            "  }",
            "  chain inbound {",
            "    type filter hook input priority 0; policy accept;",
            f"    {syn} ct status & dnat == 0 ct mark & {ALLOWED:#x} == 0 jump listener",
            "  }",
            "}",
        ]
        run_script("\n".join(script) + "\n")
        self._applied = state
        if self._janitor is None:
            self._janitor = start_janitor(self.table)


def strata_guard(ports: PortAllocator, public: set[int]) -> InternalGuard | None:
    """The guard of this Strata's ports, Strata moved into its own cgroup first (None where engines
    cannot run in cgroups here: the caller logs that the ports stay unguarded)."""
    cgroups = engine_cgroups()
    if cgroups is None:
        return None
    return InternalGuard(ports, cgroups.enter_own(), cgroups.base_ref(), engine_uid(), public=public)
