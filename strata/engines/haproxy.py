"""Stable endpoints through HAProxy (TCP mode): the portable fallback of `strata.engines.endpoint`.

Used when kernel redirection is not available (Strata not root, or no nftables). One HAProxy in
master-worker mode serves every route of a router; a route keeps MAX_BACKENDS server slots, so
switching backends (failover) is an instant runtime-API update with no reload, and adding or
removing a route rewrites the config and reloads (listening sockets are handed over, so other
endpoints see no gap). Costs a user-space hop: see the numbers in `strata.engines.endpoint`.

With an engine address (strata.engines.floating) a route on 127.0.0.1, or one whose host is that
address, also listens on it (a route on another loopback address: on its pool address, if any;
nft.served_routes) (`transparent`: bound even while the address is not held here, as it
may be claimed only later or move away; HAProxy falls back to IP_FREEBIND when not root). The
workers then run as ENGINE_USER (when Strata is root): security groups judge a client of the
engine address by its own address as it arrives, and let the engines' user through
(strata.engines.firewall), so HAProxy's own connection on to a guarded loopback endpoint (an
ElastiCache primary) is not judged again as one from 127.0.0.1.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import threading
from pathlib import Path

from strata.engines.firewall import control_connection
from strata.engines.floating import EngineAddress
from strata.engines.nft import served_routes
from strata.engines.process import ENGINE_USER, EngineError, EngineProcess, ProcessSpec, wait_until
from strata.engines.routes import LOOPBACK, MAX_BACKENDS, Route, load_routes, save_routes
from strata.engines.socket_paths import private_dir, socket_path

# HAProxy binds a unix socket as `<path>.<pid>.tmp` and renames it, so it takes paths of 97 bytes
# at most ("socket path ... too long (max 97)"): deeper run dirs put them in a short private dir.
HAPROXY_SOCKET_MAX = 97


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if path is None:
        raise EngineError("haproxy is not installed (Debian package 'haproxy', see scripts/apt-packages.txt)")
    return path


class HaproxyRouter:
    """An HAProxy process serving a set of named TCP routes on loopback."""

    def __init__(self, run_dir: Path, name: str = "endpoints", exposed: EngineAddress | None = None) -> None:
        self.exposed = exposed
        self.run_dir = Path(run_dir)
        self.name = name
        self.routes: dict[str, Route] = {}
        self._lock = threading.RLock()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._state = self.run_dir / "routes.json"
        self._cfg = self.run_dir / "haproxy.cfg"
        self._admin = socket_path(self.run_dir, "admin.sock", "haproxy", HAPROXY_SOCKET_MAX)
        self._keepalive = socket_path(self.run_dir, "keepalive.sock", "haproxy", HAPROXY_SOCKET_MAX)
        self._proc = EngineProcess(
            ProcessSpec(
                name=name,
                run_dir=self.run_dir,
                stop_signal=signal.SIGTERM,
                death_signal=signal.SIGTERM,
                # The binary is looked up when HAProxy is first needed, so a machine without it
                # still serves everything that needs no endpoint.
                argv=[shutil.which("haproxy") or "/usr/sbin/haproxy", "-W", "-db", "-f", str(self._cfg)],
                match=str(self._cfg),
            )
        )
        self.routes.update(load_routes(self._state))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start HAProxy with every saved route (replacing one left by a previous Strata); with no
        route yet, HAProxy starts with the first one."""
        with self._lock:
            self._write_config()
            if self.routes:
                haproxy_binary()
                self._socket_dir()
                self._proc.start(ready=self._ready, timeout=20)
            else:
                self._proc.reap_orphan()

    def stop(self) -> None:
        with self._lock:
            self._proc.stop(timeout=5)
            if self._admin.parent != self.run_dir:  # the short directory outlives no HAProxy
                shutil.rmtree(self._admin.parent, ignore_errors=True)

    def running(self) -> bool:
        return self._proc.running()

    def _ready(self) -> bool:
        if not self._admin.exists() or "Uptime" not in self._command("show info"):
            return False
        return all(_listening(r.host, r.port) for r in self.routes.values() if r.host.startswith("127."))

    # -- routes ------------------------------------------------------------------------------------

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
        """Create or update a route; an existing route with the same port switches backends live,
        cutting the connections of a backend that left it unless `cut` is false (a relay handing
        over to the engine it relays to: its connections go on)."""
        if len(backends) > MAX_BACKENDS:
            raise ValueError(f"at most {MAX_BACKENDS} backends per endpoint")
        with self._lock:
            new = Route(name, port, [(h, int(p)) for h, p in backends], balance, host)
            old = self.routes.get(name)
            self.routes[name] = new
            self._save()
            if (
                old is not None
                and (old.port, old.balance, old.host) == (port, balance, host)
                and self.running()
            ):
                self._write_config()
                self._apply_backends(new, old if cut else new)
                return
            self._reload(wait_port=(host, port))

    def remove_route(self, name: str) -> None:
        with self._lock:
            if self.routes.pop(name, None) is None:
                return
            self._save()
            self._reload()

    def backends(self, name: str) -> list[tuple[str, int]]:
        r = self.routes.get(name)
        return list(r.backends) if r else []

    # -- internals ---------------------------------------------------------------------------------

    def _save(self) -> None:
        save_routes(self._state, self.routes)

    def _reload(self, wait_port: tuple[str, int] | None = None) -> None:
        self._write_config()
        if not self.running():
            haproxy_binary()
            self._socket_dir()
            self._proc.start(ready=self._ready, timeout=20)
            return
        old_workers = self._workers()
        # The reload is done when a new worker answers the admin socket and the new route listens.
        # A SIGUSR2 that lands while the master is still initialising is lost, hence the retries.
        for _ in range(4):
            self._proc.signal(signal.SIGUSR2)
            if wait_until(lambda: self._workers() - old_workers != set(), 3):
                break
        else:
            raise EngineError(f"haproxy reload did not finish: {self._proc.log_tail(1500)}")
        if (
            wait_port is not None
            and wait_port[0].startswith("127.")
            and not wait_until(lambda: _listening(*wait_port), 10)
        ):
            raise EngineError(f"endpoint port {wait_port} is not listening: {self._proc.log_tail(1500)}")

    def _workers(self) -> set[str]:
        """The pid of the worker answering the admin socket (a new one after a reload)."""
        for line in self._command("show info").splitlines():
            if line.startswith("Pid:"):
                return {line.split(":", 1)[1].strip()}
        return set()

    def _apply_backends(self, r: Route, old: Route) -> None:
        cmds = []
        for i in range(MAX_BACKENDS):
            srv = f"{_backend(r.name)}/s{i}"
            if i < len(r.backends):
                host, port = r.backends[i]
                cmds.append(f"set server {srv} addr {host} port {port}")
                cmds.append(f"set server {srv} state ready")
            else:
                cmds.append(f"set server {srv} state maint")
        # Connections still attached to a backend that is no longer there are cut, as a failover would.
        for i, backend in enumerate(old.backends):
            if i >= len(r.backends) or r.backends[i] != backend:
                cmds.append(f"shutdown sessions server {_backend(r.name)}/s{i}")
        out = self._command(";".join(cmds))
        if "No such" in out or "Unknown" in out:
            raise EngineError(f"haproxy runtime update failed: {out[:500]}")

    def _socket_dir(self) -> None:
        if self._admin.parent != self.run_dir:
            private_dir(self._admin.parent)

    def _command(self, cmd: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self._admin))
                s.sendall(cmd.encode() + b"\n")
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
        except OSError:
            return ""

    def _write_config(self) -> None:
        lines = [
            "global",
            f"    stats socket {self._admin} mode 600 level admin expose-fd listeners",
            "    maxconn 4000",
            "    log stderr format short local0 notice",
            *self._user(),
            "defaults",
            "    mode tcp",
            "    timeout connect 5s",
            "    timeout client 24h",
            "    timeout server 24h",
            "    option tcp-smart-accept",
            "    option tcp-smart-connect",
            # A stats-only listener keeps HAProxy running while no route exists.
            "listen strata_keepalive",
            f"    bind unix@{self._keepalive}",
            "    timeout client 1s",
            "    tcp-request connection reject",
        ]
        # the route each engine address and port is served by (nft.served_routes: one per pair)
        public = {r.name: r.host for r in served_routes(self.exposed, self.routes.values())}
        for r in sorted(self.routes.values(), key=lambda r: r.name):
            be = _backend(r.name)
            lines += [f"frontend fe_{be}"]
            if r.host.startswith("127."):
                lines.append(f"    bind {r.host}:{r.port}")
            if r.name in public:
                lines.append(f"    bind {public[r.name]}:{r.port} transparent")
            lines += [
                f"    default_backend {be}",
                f"backend {be}",
                f"    balance {'roundrobin' if r.balance else 'first'}",
            ]
            # No health checks: the owner re-points routes when it starts, stops or loses a backend
            # (as the nft mechanism needs anyway), and a check's warm-up would refuse the first
            # connections after a restart.
            for i in range(MAX_BACKENDS):
                if i < len(r.backends):
                    host, port = r.backends[i]
                    lines.append(f"    server s{i} {host}:{port}")
                else:
                    lines.append(f"    server s{i} {LOOPBACK}:1 disabled")
        tmp = self._cfg.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self._cfg)

    def _user(self) -> list[str]:
        """The global `user` line that drops the workers to ENGINE_USER (see the module's doc)."""
        if self.exposed is None or os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam(ENGINE_USER)
        except KeyError:
            return []
        return [f"    user {ENGINE_USER}"]


def _listening(host: str, port: int) -> bool:
    """Whether HAProxy listens on host:port: asked as Strata itself, which no security group
    guarding the endpoint filters (strata.engines.firewall)."""
    try:
        control_connection(host, port, 0.5).close()
        return True
    except OSError:
        return False


def _backend(name: str) -> str:
    return "be_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
