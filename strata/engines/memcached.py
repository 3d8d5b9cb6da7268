"""Memcached servers (Debian's memcached 1.6): command line, readiness and a stats probe.

Memcached keeps no data on disk, so a node is its command line: the loopback addresses it listens
on (its own, plus an endpoint address such as a cluster's configuration endpoint), the port every
node of a cluster shares, and the memory cap from the node type.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from strata.engines.firewall import control_connection
from strata.engines.process import ENGINE_USER, EngineError, EngineProcess, ProcessSpec, chown_tree
from strata.engines.tls import ServerCert


@cache
def binary() -> tuple[str, str]:
    """(path, version) of the memcached binary."""
    path = shutil.which("memcached") or (
        "/usr/bin/memcached" if Path("/usr/bin/memcached").exists() else None
    )
    if path is None:
        raise EngineError("memcached is not installed: run scripts/install.sh (Debian package memcached)")
    out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10).stdout.split()
    return path, (out[1] if len(out) > 1 else "1.6")


@dataclass
class MemcachedNodeConfig:
    address: str
    port: int
    data_dir: Path  # logs and pidfile only
    memory_mb: int = 64
    extra_binds: list[str] = field(default_factory=list)
    max_connections: int = 1024
    threads: int = 2
    tls: ServerCert | None = None  # files inside data_dir (the process starts there)
    options: list[str] = field(default_factory=list)  # from the cache parameter group

    def argv(self, path: str) -> list[str]:
        listen = ",".join([self.address, *self.extra_binds])
        return (
            [
                path,
                "-p",
                str(self.port),
                "-l",
                listen,
                "-U",
                "0",
                "-m",
                str(self.memory_mb),
                "-c",
                str(self.max_connections),
                "-t",
                str(self.threads),
            ]
            + (
                ["-Z", "-o", f"ssl_chain_cert={self.tls.cert.name},ssl_key={self.tls.key.name}"]
                if self.tls
                else []
            )
            + list(self.options)
        )

    @property
    def match(self) -> str:
        """A piece of /proc/<pid>/cmdline that only this node's process has."""
        return f"-p {self.port} -l {self.address}"


class MemcachedServer:
    """One supervised memcached process."""

    def __init__(self, name: str, config: MemcachedNodeConfig) -> None:
        self.name = name
        self.config = config
        path, self.version = binary()
        self.process = EngineProcess(
            ProcessSpec(
                name="memcached",
                argv=config.argv(path),
                run_dir=Path(config.data_dir),
                cwd=Path(config.data_dir),
                user=ENGINE_USER,
                match=config.match,
            )
        )

    def start(self, timeout: float = 30) -> None:
        self._prepare()
        self.process.start(ready=self.ping, timeout=timeout)

    def launch(self) -> None:
        """Fork the server without waiting for it (see `ping` for readiness), so several nodes
        start side by side."""
        self._prepare()
        self.process.start()

    def _prepare(self) -> None:
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(data_dir, ENGINE_USER)
        path, _ = binary()
        self.process.spec.argv = self.config.argv(path)

    def stop(self, timeout: float = 15) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def running(self) -> bool:
        return self.process.running()

    def ping(self) -> bool:
        return bool(self.stats())

    def _connect(self) -> socket.socket:
        raw = control_connection(self.config.address, self.config.port, timeout=2)
        if self.config.tls is None:
            return raw
        context = ssl.create_default_context(cafile=str(self.config.tls.ca))
        return context.wrap_socket(raw, server_hostname=self.config.address)

    def stats(self) -> dict[str, str]:
        """The node's `stats` (empty when it does not answer)."""
        try:
            with self._connect() as s:
                s.sendall(b"stats\r\n")
                data = b""
                while not data.endswith(b"END\r\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except (OSError, ssl.SSLError):
            return {}
        out = {}
        for line in data.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
        return out
