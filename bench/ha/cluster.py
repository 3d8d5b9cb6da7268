"""The proof's cluster as processes (bench/ha_proof.py): the bridge and network namespaces, each
node's processes started in its namespace (etcd, Patroni, HAProxy and keepalived, the gateways)
and everything taken down again; the cluster brought up in order, and what the harness asks it
(HTTP checks, HAProxy's per-server stats, a process's CPU, the Patroni leader).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from client_load import client
from configs import (
    PG_PORT,
    STRATA_PORT,
    Node,
    Secrets,
    Topology,
    etcd_command,
    gateway_command,
    haproxy_command,
    haproxy_config,
    keepalived_command,
    keepalived_config,
    patroni_config,
)
from pool_phase import unmount_under
from timeline import say

# -- processes and namespaces ------------------------------------------------------------------


class Cluster:
    """Starts the nodes' processes in their namespaces and takes everything down again."""

    def __init__(self, t: Topology, keys: Secrets) -> None:
        self.t = t
        self.keys = keys
        self.procs: dict[str, subprocess.Popen] = {}
        self.gateway_cmd: Any = None  # Node -> the gateway's command line (set by bring_up)
        self.gateway_env: dict[str, str] = {}

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def teardown(self) -> None:
        """Kill every process of every namespace of this prefix, delete them and the bridge."""
        for node in self.t.nodes:
            ns = self.t.netns(node)
            pids = self.sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
        unmount_under(self.t.run_dir)  # EFS volumes a killed engine host left mounted
        for node in self.t.nodes:
            self.sh("ip", "netns", "del", self.t.netns(node), check=False)
            self.sh("ip", "link", "del", self.t.veth(node), check=False)
        self.sh("ip", "link", "del", self.t.bridge, check=False)

    def network(self) -> None:
        t = self.t
        self.sh("ip", "link", "add", t.bridge, "type", "bridge")
        self.sh("ip", "addr", "add", f"{t.host_ip}/24", "dev", t.bridge)
        self.sh("ip", "link", "set", t.bridge, "up")
        for node in t.nodes:
            ns, veth = t.netns(node), t.veth(node)
            self.sh("ip", "netns", "add", ns)
            self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.sh("ip", "link", "set", veth, "master", t.bridge, "up")
            self.sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{node.ip}/24", "dev", "eth0")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def start(
        self, node: Node, cmd: list[str], *, user: str = "", env: dict | None = None, name: str = ""
    ) -> None:
        """Run `cmd` in the node's namespace; `name` (default the node's) keys the process and its
        log when a node runs more than one (HAProxy and keepalived)."""
        name = name or node.name
        prefix = ["ip", "netns", "exec", self.t.netns(node)]
        if user:  # PostgreSQL refuses to run as root
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        if (before := self.procs.get(name)) is not None:
            before.poll()  # a killed one being restarted: reaped
        log = open(self.t.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen(
            prefix + cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=self.t.run_dir,
            start_new_session=True,
        )
        log.close()

    def kill_node(self, node: Node) -> None:
        """The machine dies: SIGKILL to every process of its namespace."""
        for pid in self.sh("ip", "netns", "pids", self.t.netns(node), check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_haproxy(self, node: Node) -> None:
        """HAProxy dies on the node (master and worker, SIGKILL); its keepalived goes on. The
        master is reaped at once: a zombie still matches keepalived's pgrep check."""
        ns_pids = self.sh("ip", "netns", "pids", self.t.netns(node), check=False).stdout.split()
        for pid in ns_pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy":
                    os.kill(int(pid), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        self.procs[node.name].wait(timeout=10)

    def vip_holder(self) -> Node | None:
        """The HAProxy node whose interface has the virtual address now (None while it moves)."""
        for node in self.t.lbs:
            out = self.sh(
                "ip", "-n", self.t.netns(node), "-o", "-4", "addr", "show", "dev", "eth0", check=False
            )
            if f" {self.t.vip}/" in out.stdout:
                return node
        return None

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.t.run_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - not up yet
            last = e
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}: {last}")


def http_status(ip: str, port: int, path: str) -> int:
    """The status of a plain HTTP GET (Patroni's REST API), 0 when unreachable."""
    try:
        with socket.create_connection((ip, port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
            head = s.recv(64).decode(errors="replace")
        return int(head.split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def haproxy_stats(t: Topology, node: Node) -> dict[tuple[str, str], dict[str, str]]:
    """One HAProxy's `show stat`, by (proxy, server)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(t.home(node) / "haproxy.sock"))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(header, line.split(","), strict=False))
            out[(row["pxname"], row["svname"])] = row
    return out


def gateway_responses(t: Topology) -> dict[str, int]:
    """Responses per gateway, summed over both HAProxies (the backup's are those of its checks'
    era only: none, unless the virtual address moved)."""
    out = dict.fromkeys((n.name for n in t.gateways), 0)
    for lb in t.lbs:
        try:
            stats = haproxy_stats(t, lb)
        except OSError:  # a dead HAProxy
            continue
        for n in t.gateways:
            row = stats.get(("gateways", n.name), {})
            out[n.name] += sum(int(row.get(k) or 0) for k in ("hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx"))
    return out


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_pid(cluster: Cluster, node: Node) -> int:
    return cluster.procs[node.name].pid  # `ip netns exec` execs the command: the same process


def start_patroni(cluster: Cluster, n: Node) -> None:
    cluster.start(n, ["patroni", str(cluster.t.run_dir / n.name / "patroni.yml")], user="postgres")


def bring_up(cluster: Cluster, python: str, source: Path) -> None:
    t, keys = cluster.t, cluster.keys
    cluster.network()
    say("network: bridge and namespaces up")
    for n in t.etcd:
        cluster.start(n, etcd_command(t, n))
    endpoints = ",".join(f"http://{n.ip}:2379" for n in t.etcd)
    wait_for(
        "etcd",
        lambda: (
            cluster.sh("etcdctl", f"--endpoints={endpoints}", "endpoint", "health", check=False).returncode
            == 0
        ),
    )
    say("etcd: 3 members healthy")
    for i, n in enumerate(t.pg):
        home = t.run_dir / n.name
        home.mkdir(mode=0o700)
        (home / "patroni.yml").write_text(patroni_config(t, n, keys))
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(home / "patroni.yml", "postgres", "postgres")
        start_patroni(cluster, n)
        if i == 0:  # the first bootstraps the cluster; the second is cloned from it
            wait_for(
                "the first Patroni node to lead", lambda n=n: http_status(n.ip, 8008, "/primary") == 200, 120
            )
            say(f"patroni: {n.name} leads")
    wait_for(
        "a synchronous standby",
        lambda: any(http_status(n.ip, 8008, "/sync") == 200 for n in t.pg),
        120,
    )
    say("patroni: synchronous standby streaming")
    for n in t.lbs:  # HAProxy on both, keepalived giving the virtual address to one
        t.home(n).mkdir()
        (t.home(n) / "haproxy.cfg").write_text(haproxy_config(t, n))
        (t.home(n) / "keepalived.conf").write_text(keepalived_config(t, n))
        cluster.start(n, haproxy_command(t, n))
        wait_for(f"{n.name}'s HAProxy", lambda n=n: haproxy_stats(t, n))
        cluster.start(n, keepalived_command(t, n), name=f"{n.name}-keepalived")
    holder = wait_for("keepalived to give the virtual address to a node", cluster.vip_holder)
    say(f"keepalived: {t.vip} on {holder.name} ({', '.join(n.name for n in t.lbs)} run HAProxy)")
    admin = f"postgresql://postgres:{keys.superuser}@{t.vip}:{PG_PORT}/postgres"
    with wait_for(
        "PostgreSQL through HAProxy", lambda: psycopg.connect(admin, autocommit=True, connect_timeout=2)
    ) as c:
        c.execute(f"CREATE ROLE strata LOGIN PASSWORD '{keys.strata_db}'")
        c.execute("CREATE DATABASE strata OWNER strata TEMPLATE template0 LOCALE 'C' ENCODING 'UTF8'")
    with psycopg.connect(admin.rsplit("/", 1)[0] + "/strata", autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
    say("haproxy: PostgreSQL leader reachable through the virtual address; database strata made")
    t.blob_dir.mkdir()
    env = {
        "STRATA_ACCESS_KEY_ID": keys.access_key,
        "STRATA_SECRET_ACCESS_KEY": keys.secret_key,
        # this tree's strata, not the one the virtualenv was installed from
        "PYTHONPATH": str(source),
    }
    cluster.gateway_cmd = lambda n: gateway_command(t, n, keys, python)
    cluster.gateway_env = env
    for n in t.gateways:
        cluster.start(n, cluster.gateway_cmd(n), env=env)
    for n in t.gateways:
        wait_gateway(cluster, n)
    wait_for(
        "both HAProxies to see every gateway up",
        lambda: all(
            haproxy_stats(t, lb)[("gateways", n.name)]["status"] == "UP" for lb in t.lbs for n in t.gateways
        ),
    )
    say(f"strata: {len(t.gateways)} gateways answer; HAProxy in front at {t.strata_url}")


def wait_gateway(cluster: Cluster, n: Node) -> None:
    def up() -> bool:
        if cluster.procs[n.name].poll() is not None:
            raise SystemExit(f"gateway {n.name} exited:\n{cluster.log_tail(n.name)}")
        client(cluster.t, cluster.keys, f"http://{n.ip}:{STRATA_PORT}").list_buckets()
        return True

    wait_for(f"gateway {n.name}", up, 120)


def leader(t: Topology) -> Node:
    return wait_for(
        "a Patroni leader",
        lambda: next((n for n in t.pg if http_status(n.ip, 8008, "/primary") == 200), None),
    )
