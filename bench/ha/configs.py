"""The cluster of the high-availability proof (bench/ha_proof.py) as data, and the command lines and
configuration files of its parts: a 3-node etcd, PostgreSQL nodes under Patroni, two HAProxies
sharing a virtual address by keepalived (VRRP), and Strata gateways, each node in its own network
namespace on one bridge.

Kept apart from the harness (which needs root, namespaces and the Debian packages) so that what it
writes can be checked cheaply (tests/bench/test_ha_configs.py) and read as the example of
README's "Several gateways".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 5000  # HAProxy's port for PostgreSQL (the Patroni leader)
STRATA_PORT = 4566  # HAProxy's and each gateway's port for Strata
VRRP_ROUTER_ID = 22  # the virtual router's id: unique among the VRRP routers of one network


@dataclass(frozen=True)
class Node:
    """One machine of the cluster: a network namespace with one address on the bridge."""

    name: str
    ip: str


@dataclass(frozen=True)
class Secrets:
    """Passwords and the Strata key of one run (made up per run by the harness)."""

    superuser: str
    replication: str
    strata_db: str
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Topology:
    """Where everything of one run lives: addresses, namespaces, directories."""

    run_dir: Path
    prefix: str = "ha22"
    subnet: str = "10.222.22"
    etcd: tuple[Node, ...] = field(default=())
    pg: tuple[Node, ...] = field(default=())
    gateways: tuple[Node, ...] = field(default=())
    lbs: tuple[Node, ...] = field(default=())  # the HAProxy + keepalived nodes
    vip: str = ""  # the virtual address clients use, held by one of `lbs` at a time
    engine_ip: str = ""  # the engines' endpoints (--engine-address), held by the engine host
    # further engine addresses (a pool: cache reader/node endpoints, EFS mount targets), held by
    # the engine host with engine_ip; empty: --engine-address is the one address
    engine_pool: tuple[str, ...] = ()
    ttl: int = 15
    loop_wait: int = 2
    retry_timeout: int = 5

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def host_ip(self) -> str:
        """The root namespace's address on the bridge (where the load runs)."""
        return f"{self.subnet}.1"

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (*self.etcd, *self.pg, *self.lbs, *self.gateways)

    def netns(self, node: Node) -> str:
        return f"{self.prefix}-{node.name}"

    def veth(self, node: Node) -> str:
        """The root-side end of the node's cable (at most 15 characters, Linux's limit)."""
        return f"{self.prefix}v{node.name}"[:15]

    @property
    def blob_dir(self) -> Path:
        """S3's bytes: one directory every gateway sees (here the host's file system; NFS,
        CephFS or EFS across machines)."""
        return self.run_dir / "blobs"

    def home(self, node: Node) -> Path:
        """The node's own directory under the run directory (data, configuration, pid files)."""
        return self.run_dir / node.name

    @property
    def engine_address(self) -> str:
        """The gateways' --engine-address: `A/eth0`, or with a pool the range `A-Z/eth0` (the
        pool follows A without a gap)."""
        last = f"-{self.engine_pool[-1]}" if self.engine_pool else ""
        return f"{self.engine_ip}{last}/eth0"

    @property
    def engine_addresses(self) -> tuple[str, ...]:
        """Every address the engine host holds (a dead host's go with it)."""
        return (self.engine_ip, *self.engine_pool)

    @property
    def strata_url(self) -> str:
        """What clients use: the virtual address, wherever it is."""
        return f"http://{self.vip}:{STRATA_PORT}"


def topology(run_dir: Path, *, subnet: str = "10.222.22", gateways: int = 3, pool: int = 0) -> Topology:
    """The proof's cluster: etcd at .11-.13, PostgreSQL at .21-.22, gateways .31-, HAProxy +
    keepalived at .41 and .42 sharing the virtual address .40; the engine address .50 and `pool`
    more after it (.51-)."""
    if not 1 <= gateways <= 8:
        raise ValueError("between 1 and 8 gateways")
    if not 0 <= pool <= 9:
        raise ValueError("at most 9 pool addresses (.51-.59)")
    return Topology(
        run_dir=run_dir,
        subnet=subnet,
        etcd=tuple(Node(f"etcd{i}", f"{subnet}.{10 + i}") for i in (1, 2, 3)),
        pg=tuple(Node(f"pg{i}", f"{subnet}.{20 + i}") for i in (1, 2)),
        gateways=tuple(Node(f"gw{i}", f"{subnet}.{30 + i}") for i in range(1, gateways + 1)),
        lbs=(Node("lb1", f"{subnet}.41"), Node("lb2", f"{subnet}.42")),
        vip=f"{subnet}.40",
        engine_ip=f"{subnet}.50",
        engine_pool=tuple(f"{subnet}.{51 + i}" for i in range(pool)),
    )


def etcd_command(t: Topology, node: Node) -> list[str]:
    """One member of the 3-node etcd cluster (Patroni's distributed configuration store)."""
    cluster = ",".join(f"{n.name}=http://{n.ip}:2380" for n in t.etcd)
    return [
        "etcd",
        "--name", node.name,
        "--data-dir", str(t.run_dir / node.name),
        "--listen-peer-urls", f"http://{node.ip}:2380",
        "--initial-advertise-peer-urls", f"http://{node.ip}:2380",
        "--listen-client-urls", f"http://{node.ip}:2379,http://127.0.0.1:2379",
        "--advertise-client-urls", f"http://{node.ip}:2379",
        "--initial-cluster", cluster,
        "--initial-cluster-token", f"{t.prefix}-etcd",
        "--initial-cluster-state", "new",
    ]  # fmt: skip


def patroni_config(t: Topology, node: Node, secrets: Secrets) -> str:
    """Patroni's YAML for one PostgreSQL node (bench/ha/patroni.yml.in filled in)."""
    home = t.run_dir / node.name
    return Template((HERE / "patroni.yml.in").read_text()).substitute(
        scope=f"{t.prefix}-strata",
        name=node.name,
        ip=node.ip,
        etcd_hosts="[" + ", ".join(f"{n.ip}:2379" for n in t.etcd) + "]",
        ttl=t.ttl,
        loop_wait=t.loop_wait,
        retry_timeout=t.retry_timeout,
        subnet=f"{t.subnet}.0/24",
        data_dir=home / "data",
        bin_dir=PG_BIN,
        pgpass=home / "pgpass",
        socket_dir=home,
        superuser_password=secrets.superuser,
        replication_password=secrets.replication,
    )


def haproxy_config(t: Topology, node: Node) -> str:
    """One HAProxy's configuration (bench/ha/haproxy.cfg.in filled in); both are the same but for
    their stats socket and pid file."""
    return Template((HERE / "haproxy.cfg.in").read_text()).substitute(
        stats_socket=t.home(node) / "haproxy.sock",
        pid_file=t.home(node) / "haproxy.pid",
        pg_port=PG_PORT,
        strata_port=STRATA_PORT,
        pg_servers="\n".join(f"    server {n.name} {n.ip}:5432 maxconn 500 check port 8008" for n in t.pg),
        gateway_servers="\n".join(f"    server {n.name} {n.ip}:{STRATA_PORT}" for n in t.gateways),
    )


def haproxy_command(t: Topology, node: Node) -> list[str]:
    """HAProxy in the foreground as master and worker (as Debian's unit runs it): the master writes
    the pid file keepalived's check reads, and a worker dies with its master and the reverse."""
    return ["haproxy", "-W", "-db", "-f", str(t.home(node) / "haproxy.cfg")]


def keepalived_config(t: Topology, node: Node) -> str:
    """keepalived's configuration on one HAProxy node (bench/ha/keepalived.conf.in filled in):
    the first node has the higher priority, so it takes the virtual address when both start."""
    rank = t.lbs.index(node)
    return Template((HERE / "keepalived.conf.in").read_text()).substitute(
        router_name=node.name,
        haproxy_pid_file=t.home(node) / "haproxy.pid",
        interface="eth0",
        router_id=VRRP_ROUTER_ID,
        priority=150 - 50 * rank,
        ip=node.ip,
        peers="\n".join(f"        {n.ip}" for n in t.lbs if n != node),
        vip=f"{t.vip}/24",
    )


def keepalived_command(t: Topology, node: Node) -> list[str]:
    """keepalived in the foreground, VRRP only, logging to its stdout; pid files of its own (the
    default /run/keepalived.pid would be shared by the two on one machine)."""
    home = t.home(node)
    return [
        "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
        "--use-file", str(home / "keepalived.conf"),
        "--pid", str(home / "keepalived.pid"),
        "--vrrp_pid", str(home / "keepalived-vrrp.pid"),
    ]  # fmt: skip


def metadata_url(t: Topology, secrets: Secrets) -> str:
    """What every gateway gets as --metadata: the strata database through the virtual address."""
    return f"postgresql://strata:{secrets.strata_db}@{t.vip}:{PG_PORT}/strata"


def gateway_command(t: Topology, node: Node, secrets: Secrets, python: str) -> list[str]:
    """`strata serve` on one gateway: its own data dir, the shared metadata and blob dir; the
    engine address on its eth0 while it is the engine host, and the URL the others forward to."""
    return [
        python, "-m", "strata.cli", "serve",
        "--host", node.ip,
        "--port", str(STRATA_PORT),
        "--tls-port", "off",
        "--data-dir", str(t.run_dir / node.name),
        "--metadata", metadata_url(t, secrets),
        "--blob-dir", str(t.blob_dir),
        "--engine-address", t.engine_address,
        "--advertise-url", f"http://{node.ip}:{STRATA_PORT}",
        "--cpu-affinity", "off",
        "--quiet",
    ]  # fmt: skip
