"""Stable endpoints by kernel redirection (nftables NAT on the loopback OUTPUT hook).

A connection to 127.0.0.1:<stable port> is rewritten by the kernel to the engine's own port before
it leaves the client, so the data path has no extra hop at all. Failover replaces the rule: new
connections go to the new backend at once; connections to the dead backend are reset, as on AWS.

Each router owns one nft table, `strata_<pid>_<start>_<name>` (the owner's pid and its start time
in clock ticks, so a pid reused by another process never passes for the owner), rewritten
atomically (`nft -f`) on every change. A table must not outlive its owner: a stale rule would send
connections to a port some other program may hold by now, ahead of a new Strata's own rule for the
same endpoint. So a small janitor process watches the owner and deletes the table within about a
second of its death, kill -9 included, and every router start deletes the tables of owners that are
gone (e.g. left by a machine crash, or by a Strata from before the janitor). While a route exists the
router also holds a bound (not listening) socket on its stable port, so no other program — or
another Strata — is handed that port.

With an engine address (`--engine-address ADDR/DEV`, strata.engines.floating), every route on
127.0.0.1 is also served on ADDR with the same port, and so is a route whose host is ADDR itself:
the same rules on the PREROUTING hook catch connections from other machines (DNAT to the backend
on loopback, which `route_localnet` on DEV allows), and a filter chain after them drops whatever
else arrives from outside for 127.0.0.0/8 (LOCALNET_GUARD), so only the endpoints are reachable.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from strata.config import ConfigError, EngineAddress
from strata.engines.floating import public_host
from strata.engines.process import EngineError, pid_alive
from strata.engines.routes import LOOPBACK, MAX_BACKENDS, Route, load_routes, save_routes

log = logging.getLogger("strata.engines")
_TABLE = re.compile(r"^table (ip|inet) (strata_(\d+)_(?:(\d+)_)?\w+)$")
# The janitor: deletes the table once the owner (argument 1) is gone; Strata ends it on a clean stop.
_JANITOR = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" delete table "$4" "$3"'
# How long an nft command may take. It needs little CPU, but on a loaded host it waits its turn
# for a CPU: `nft list tables` once took over 10 s (load ~25 on two cores, several Stratas), and
# the 10 s bound then failed a CreateCacheCluster with a 500 after its record was written (SDKs
# retry a 500; the retry met CacheClusterAlreadyExists). A busy host is no failure, so the bound
# only catches an nft that hangs. A rewrite killed half-way would leave it unknown whether it
# committed, so it is given the time it needs rather than retried.
NFT_TIMEOUT = 300.0


def nft_binary() -> str | None:
    return shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)


def nft_usable() -> bool:
    """True if we may program NAT rules here (root with CAP_NET_ADMIN and nft installed)."""
    nft = nft_binary()
    if nft is None or os.geteuid() != 0:
        return False
    try:
        return (
            subprocess.run([nft, "list", "tables"], capture_output=True, timeout=NFT_TIMEOUT).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_script(script: str) -> None:
    """Run an nft script as one transaction (EngineError when nft refuses it)."""
    nft = nft_binary()
    if nft is None:
        raise EngineError("nft is not installed")
    try:
        cp = subprocess.run(
            [nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        raise EngineError(f"nft did not finish in {NFT_TIMEOUT:.0f} s") from e
    if cp.returncode != 0:
        raise EngineError(f"nft failed: {cp.stderr.strip()[:1000]}")


def start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _owner_alive(pid: int, ticks: str | None) -> bool:
    if not pid_alive(pid):
        return False
    return ticks is None or start_ticks(pid) == int(ticks)  # a table from before start times: pid only


def remove_dead_tables() -> list[str]:
    """Delete the tables of Strata processes that no longer run; returns their names.

    Housekeeping (each table's janitor deletes it when its owner dies): an nft that fails or is
    slow here is logged, never the failure of the request that asked for a port or a rule."""
    nft = nft_binary()
    if nft is None or os.geteuid() != 0:
        return []
    removed: list[str] = []
    try:
        cp = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, timeout=NFT_TIMEOUT)
        for line in cp.stdout.splitlines():
            m = _TABLE.match(line.strip())
            if m and not _owner_alive(int(m.group(3)), m.group(4)):
                subprocess.run(
                    [nft, "delete", "table", m.group(1), m.group(2)], capture_output=True, timeout=NFT_TIMEOUT
                )
                removed.append(m.group(2))
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("removing the nft tables of dead Stratas failed (the next attempt retries): %s", e)
    return removed


def owned_table(name: str) -> str:
    """The name of this process's nft table `name` (family ip or inet): `remove_dead_tables` and the
    janitor know its owner from it."""
    pid = os.getpid()
    return f"strata_{pid}_{start_ticks(pid) or 0}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def drop_table(table: str, janitor: subprocess.Popen | None, family: str = "ip") -> None:
    """Remove one of our tables (declared first, so deleting a missing one is no error) and stop
    its janitor: nothing of it is left to clean up."""
    run_script(f"table {family} {table}\ndelete table {family} {table}\n")
    if janitor is not None:
        janitor.kill()
        janitor.wait()


def start_janitor(table: str, family: str = "ip") -> subprocess.Popen:
    """A process that deletes `table` once this process is gone (kill -9 included); kill it on a
    clean stop, after deleting the table yourself."""
    return subprocess.Popen(
        ["sh", "-c", _JANITOR, "strata-nft-janitor", str(os.getpid()), str(nft_binary()), table, family],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to Strata's process group must not end it first
    )


# Resets route_localnet (argument 3) once the owner (1) is gone and no Strata's localnet guard is
# left (its janitors delete its tables within a second): never open without a guard.
_LOCALNET_JANITOR = (
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done; sleep 3; '
    '"$2" list chains 2>/dev/null | grep -q "chain localnet" || echo 0 > "$3"'
)
_localnet_watchers: dict[str, subprocess.Popen] = {}  # device -> its watcher


def allow_loopback_targets(dev: str) -> None:
    """Let the kernel hand connections arriving on `dev` to 127.0.0.0/8 (route_localnet): the
    routers redirect the engine address's ports to engines there, and their tables drop every
    other packet from outside to 127.0.0.0/8 (LOCALNET_GUARD). A watcher puts the setting back
    when this process is gone (kill -9 included) and no other Strata's guard is left."""
    path = Path(f"/proc/sys/net/ipv4/conf/{dev}/route_localnet")
    if not path.exists():
        raise ConfigError(f"no network device {dev!r} here (--engine-address ADDR/DEV)")
    if path.read_text().strip() != "1":
        path.write_text("1\n")
    if dev not in _localnet_watchers:
        _localnet_watchers[dev] = subprocess.Popen(
            [
                "sh",
                "-c",
                _LOCALNET_JANITOR,
                "strata-localnet-janitor",
                str(os.getpid()),
                str(nft_binary()),
                str(path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


# Packets from outside (not the loopback device) for 127.0.0.0/8 pass only when one of the routers
# redirected them there (route_localnet would let every one through).
LOCALNET_GUARD = (
    "  chain localnet {\n    type filter hook prerouting priority 0; policy accept;\n"
    '    iif != "lo" ip daddr 127.0.0.0/8 ct status dnat accept\n'
    '    iif != "lo" ip daddr 127.0.0.0/8 drop\n  }\n'
)


def dnat_rule(match: str, backends: list[tuple[str, int]], balance: bool) -> str:
    """The NAT rule sending connections that `match` to one of `backends` (none: reset)."""
    if not backends:
        return f"{match} reject with tcp reset"
    if len(backends) == 1 or not balance:
        h, p = backends[0]
        return f"{match} dnat to {h}:{p}"
    cases = ", ".join(f"{i} : {h} . {p}" for i, (h, p) in enumerate(backends))
    return f"{match} dnat ip addr . port to numgen inc mod {len(backends)} map {{ {cases} }}"


def served_routes(exposed: EngineAddress | None, routes: Iterable[Route]) -> list[Route]:
    """The routes that `exposed` serves to other machines, each with its public address as host
    (NftRouter.exposed_routes; HAProxy binds the same)."""
    if exposed is None:
        return []
    own = set(exposed.addresses)
    out: dict[tuple[str, int], Route] = {}
    for r in sorted(routes, key=lambda r: (r.host not in own, r.host, r.port)):
        host = r.host if r.host in own else public_host(exposed, r.host)
        if host is not None:
            out.setdefault((host, r.port), Route(r.name, r.port, r.backends, r.balance, host))
    return list(out.values())


def router_script(table: str, out: list[str], pre: list[str]) -> str:
    """One router table: `out` rules on the OUTPUT hook (this machine's clients), `pre` on
    PREROUTING (other machines', to the engine address) with the localnet guard beside them."""
    body = "".join(f"    {rule}\n" for rule in out)
    script = (
        f"table ip {table}\ndelete table ip {table}\n"
        f"table ip {table} {{\n  chain out {{\n    type nat hook output priority -100; policy accept;\n"
        f"{body}  }}\n"
    )
    if pre:
        script += "  chain pre {\n    type nat hook prerouting priority -100; policy accept;\n"
        script += "".join(f"    {rule}\n" for rule in pre) + "  }\n" + LOCALNET_GUARD
    return script + "}\n"


class NftRouter:
    """Named routes as NAT redirect rules in one nft table owned by this process."""

    def __init__(self, run_dir: Path, name: str = "endpoints", exposed: EngineAddress | None = None) -> None:
        self.exposed = exposed
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.table = owned_table(name)
        self._janitor: subprocess.Popen | None = None
        self._state = self.run_dir / "routes.json"
        self.routes: dict[str, Route] = load_routes(self._state)
        self._holds: dict[tuple[str, int], socket.socket] = {}
        self._lock = threading.RLock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            remove_dead_tables()
            if self.exposed is not None:
                allow_loopback_targets(self.exposed.dev)
            self._started = True
            self._apply()
            if self._janitor is None or self._janitor.poll() is not None:
                self._janitor = start_janitor(self.table)

    def stop(self) -> None:
        """Remove the rules (the routes stay saved for the next start)."""
        with self._lock:
            self._started = False
            if self._janitor is not None:
                self._janitor.kill()
                self._janitor.wait()
                self._janitor = None
            run_script(f"table ip {self.table}\ndelete table ip {self.table}\n")
            for s in self._holds.values():
                s.close()
            self._holds.clear()

    def running(self) -> bool:
        return self._started

    def set_route(
        self,
        name: str,
        port: int,
        backends: list[tuple[str, int]],
        *,
        balance: bool = False,
        host: str = LOOPBACK,
        cut: bool = True,
    ) -> None:
        if len(backends) > MAX_BACKENDS:
            raise ValueError(f"at most {MAX_BACKENDS} backends per endpoint")
        for backend_host, _ in backends:
            if backend_host != LOOPBACK:
                raise ValueError("kernel redirection only reaches loopback backends")
        with self._lock:
            self.routes[name] = Route(name, port, [(h, int(p)) for h, p in backends], balance, host)
            save_routes(self._state, self.routes)
            if self._started:
                self._apply()

    def remove_route(self, name: str) -> None:
        with self._lock:
            if self.routes.pop(name, None) is None:
                return
            save_routes(self._state, self.routes)
            if self._started:
                self._apply()

    def backends(self, name: str) -> list[tuple[str, int]]:
        r = self.routes.get(name)
        return list(r.backends) if r else []

    def _apply(self) -> None:
        routes = sorted(self.routes.values(), key=lambda r: (r.host, r.port))
        out = [self._rule(r) for r in routes if r.host.startswith("127.")]
        # On the engine address: this machine's clients (OUTPUT) and other machines' (PREROUTING).
        pre = [
            dnat_rule(f"ip daddr {r.host} tcp dport {r.port}", r.backends, r.balance)
            for r in self.exposed_routes()
        ]
        # Declaring then deleting the table makes the script valid whether or not it exists;
        # nft applies the whole file as one transaction.
        run_script(router_script(self.table, out + pre, pre))
        self._hold_ports({(r.host, r.port) for r in self.routes.values() if r.host.startswith("127.")})

    def _rule(self, r: Route) -> str:
        match = f"ip daddr {r.host} tcp dport {r.port}"
        ports = [p for _, p in r.backends]
        if not ports:
            return f"{match} reject with tcp reset"
        if len(ports) == 1 or not r.balance:
            return f"{match} redirect to :{ports[0]}"
        cases = ", ".join(f"{i} : {p}" for i, p in enumerate(ports))
        return f"{match} redirect to :numgen inc mod {len(ports)} map {{ {cases} }}"

    def exposed_routes(self) -> list[Route]:
        """The routes served on the engine addresses: those on a loopback address (as a copy on
        its public address, floating.public_host: 127.0.0.1's on the first) and those whose host is
        an engine address itself (one per address and port: the latter first)."""
        return served_routes(self.exposed, self.routes.values())

    def _hold_ports(self, ports: set[tuple[str, int]]) -> None:
        for port in list(self._holds):
            if port not in ports:
                self._holds.pop(port).close()
        for port in ports - set(self._holds):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(port)
            except OSError:
                s.close()  # someone else holds it (e.g. our previous incarnation's socket): rules still apply
                continue
            self._holds[port] = s
