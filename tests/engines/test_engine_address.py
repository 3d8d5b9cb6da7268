"""Engine endpoints reachable from other machines (issue 22): `--engine-address ADDR/DEV`, and the
floating address that moves with the machine running the engines (strata.engines.floating).

Other machines are network namespaces on veths made here (the addresses are this test's own: no
traffic leaves the machine). Needs root, `ip netns` and nftables; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from strata.config import ConfigError, EngineAddress, Settings, parse_engine_address
from strata.engines.blackhole import Blackhole
from strata.engines.endpoint import EndpointRouter
from strata.engines.floating import (
    adopt_record,
    claim_all,
    forget_public_host,
    holds,
    public_host,
    release_all,
    take_public_host,
)
from strata.engines.nft import nft_usable
from tests.services.elasticache.conftest import eventually
from tests.services.rds.helpers import PASSWORD, wait_status
from tests.strata_process import StrataProcess, free_port

REPO = Path(__file__).resolve().parents[2]
# A client in a namespace: what a TCP connect to argv[1]:argv[2] meets, and the first bytes after
# sending argv[3] (a dropped SYN times out: "dropped").
_DIAL = """
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except TimeoutError:
    print("dropped")
except ConnectionRefusedError:
    print("refused")
else:
    s.settimeout(10)
    s.sendall(sys.argv[3].encode())
    try:
        print(s.recv(64).decode().strip())
    except TimeoutError:
        print("silent")
"""
# A listener in a namespace that greets every connection with its name (argv[2]).
_GREETER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the floating address comes and goes
s.bind((sys.argv[1], 7000))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\\n")
    c.close()
"""


def sh(*cmd: str, ns: str | None = None) -> str:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{cmd[:3]} in {ns or 'this namespace'} failed: {done.stderr[-1500:]}"
    return done.stdout


class Lan:
    """Namespaces and links made for one test, all deleted at its end."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def namespace(self, name: str) -> str:
        ns = f"ea{self.tag}{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        return ns

    def link(self, name: str, ns: str | None, peer_ns: str, address: str, peer_address: str | None) -> str:
        """A veth pair: `name` in `ns` (None: here) with `address`, eth0 in `peer_ns`."""
        dev = f"ea{self.tag}{name}"
        sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer_ns)
        if ns is None:
            self.links.append(dev)
        else:
            sh("ip", "link", "set", dev, "netns", ns)
        for where, d, addr in ((ns, dev, address), (peer_ns, "eth0", peer_address)):
            if addr:
                sh("ip", "addr", "add", addr, "dev", d, ns=where)
            sh("ip", "link", "set", d, "up", ns=where)
        return dev

    def run(self, ns: str, code: str, *args: str) -> str:
        return sh(sys.executable, "-c", code, *args, ns=ns).strip()

    def start(self, ns: str, code: str, *args: str) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for dev in self.links:
            subprocess.run(["ip", "link", "del", dev], capture_output=True)


@pytest.fixture
def lan() -> Iterator[Lan]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    probe = f"eaprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no network namespaces here: {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    net = Lan()
    try:
        yield net
    finally:
        net.close()


def test_engine_address_is_parsed_and_checked() -> None:
    assert parse_engine_address("10.0.0.50/eth0") == EngineAddress("10.0.0.50", "eth0")
    pool = ("10.0.0.51", "10.0.0.52")
    assert parse_engine_address("10.0.0.50,10.0.0.51,10.0.0.52/eth0") == EngineAddress(
        "10.0.0.50", "eth0", pool
    )
    assert parse_engine_address("10.0.0.50-10.0.0.52/eth0") == EngineAddress("10.0.0.50", "eth0", pool)
    refused = (
        "10.0.0.50,10.0.0.50/eth0",  # twice
        "10.0.0.52-10.0.0.50/eth0",  # backwards
        "10.0.0.1-10.0.2.1/eth0",  # over 256
        "10.0.0.50,127.0.0.2/eth0",
        "10.0.0.50,/eth0",
        "10.0.0.50-/eth0",
        "127.0.0.5/lo",
        "0.0.0.0/eth0",
        "fe80::1/eth0",
        "10.0.0.50/a/b",
        "eth0",
        "224.0.0.1/eth0",
        "10.0.0.50",
    )
    for value in refused:
        with pytest.raises(ConfigError):
            parse_engine_address(value)
    with pytest.raises(ConfigError, match="no network device"):
        Settings(engine_address="10.0.0.50/nosuchdev0")
    assert Settings().engine_address is None  # loopback only, as before


def test_pool_addresses_are_kept_and_run_out(tmp_path: Path) -> None:
    """Each loopback address takes the next free pool address once and keeps it (a new process
    reads the record); a full pool leaves newcomers on loopback (None)."""
    exposed = EngineAddress("10.0.0.50", "eth0", ("10.0.0.51", "10.0.0.52"), str(tmp_path / "pool.json"))
    assert public_host(exposed, "127.0.0.1") == "10.0.0.50"
    assert public_host(exposed, "127.0.1.1", assign=False) is None
    assert [public_host(exposed, h) for h in ("127.0.1.1", "127.0.0.2", "127.0.1.1")] == [
        "10.0.0.51",
        "10.0.0.52",
        "10.0.0.51",
    ]
    assert public_host(exposed, "127.0.1.2") is None  # the pool is full
    assert public_host(exposed, "10.1.2.3") is None  # not a loopback endpoint
    # a restart (a new process): the same addresses, from the record
    code = (
        "import sys\nfrom strata.config import EngineAddress\nfrom strata.engines.floating import public_host\n"
        "e = EngineAddress('10.0.0.50', 'eth0', ('10.0.0.51', '10.0.0.52'), sys.argv[1])\n"
        "print(public_host(e, '127.0.0.2', assign=False), public_host(e, '127.0.1.1'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, exposed.state], capture_output=True, text=True, cwd=REPO
    )
    assert done.stdout.split() == ["10.0.0.52", "10.0.0.51"], done.stderr
    # a wider pool on restart: the newcomer gets the new address, the others keep theirs
    wider = EngineAddress("10.0.0.50", "eth0", ("10.0.0.51", "10.0.0.52", "10.0.0.53"), exposed.state)
    assert public_host(wider, "127.0.1.2") == "10.0.0.53"
    assert public_host(wider, "127.0.0.2") == "10.0.0.52"
    # an EFS mount target's own loopback address: a chosen free pool address, freed on deletion
    assert not take_public_host(wider, "127.100.0.7", "10.0.0.53")  # 127.0.1.2 has it
    assert not take_public_host(wider, "127.100.0.7", "10.0.0.60")  # not in the pool
    forget_public_host(wider, "127.0.1.2")
    assert take_public_host(wider, "127.100.0.7", "10.0.0.53")
    assert public_host(wider, "127.100.0.7", assign=False) == "10.0.0.53"
    assert json.loads(Path(wider.state or "").read_text())["127.100.0.7"] == "10.0.0.53"


def test_pool_record_lives_with_the_engines_and_is_read_anew(tmp_path: Path) -> None:
    """With --metadata the record is under the engines' state (one for every gateway, so a new
    engine host serves endpoints on the addresses clients know), a gateway's own record moves
    there once, and a process sees what another wrote after it first read the record."""
    data, blobs = tmp_path / "data", tmp_path / "blobs"
    alone = Settings(data_dir=data, engine_address="10.0.0.50-10.0.0.52/lo").exposed_engines
    assert alone is not None and alone.state == str(data / "engine-addresses.json")
    shared = Settings(
        data_dir=data,
        blob_dir=blobs,
        metadata="postgresql://db/strata",
        engine_address="10.0.0.50-10.0.0.52/lo",
    ).exposed_engines
    assert shared is not None and shared.state == str(blobs / "engines" / "engine-addresses.json")
    # an engine host that kept a record of its own before: moved, once, when none is shared yet
    data.mkdir()
    Path(alone.state or "").write_text('{"127.0.1.1": "10.0.0.52"}')
    adopt_record(shared, Path(alone.state or ""))
    assert not Path(alone.state or "").exists()
    assert public_host(shared, "127.0.1.1") == "10.0.0.52"
    Path(alone.state or "").write_text('{"127.0.1.1": "10.0.0.51"}')
    adopt_record(shared, Path(alone.state or ""))  # the shared one wins; this one is left as it is
    assert public_host(shared, "127.0.1.1") == "10.0.0.52"
    # another gateway, host meanwhile, frees it and gives it to another endpoint: seen here
    code = (
        "import sys\nfrom strata.config import EngineAddress\n"
        "from strata.engines.floating import forget_public_host, public_host\n"
        "e = EngineAddress('10.0.0.50', 'lo', ('10.0.0.51', '10.0.0.52'), sys.argv[1])\n"
        "forget_public_host(e, '127.0.1.1')\nprint(public_host(e, '127.100.0.9'), public_host(e, '127.0.0.2'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, shared.state or ""], capture_output=True, text=True, cwd=REPO
    )
    assert done.stdout.split() == ["10.0.0.51", "10.0.0.52"], done.stderr
    assert public_host(shared, "127.0.1.1", assign=False) is None
    assert public_host(shared, "127.0.0.2", assign=False) == "10.0.0.52"
    assert sorted(p.name for p in (blobs / "engines").iterdir()) == ["engine-addresses.json"]  # no temp left


def test_floating_address_moves_between_machines(lan: Lan) -> None:
    """claim/release move the address; the claim's gratuitous ARP makes a client whose ARP cache
    still names the old owner reach the new one at once."""
    hub = lan.namespace("h")
    sh("ip", "link", "add", "br0", "type", "bridge", ns=hub)
    sh("ip", "link", "set", "br0", "up", ns=hub)
    names = {"a": "10.222.24.1/24", "b": "10.222.24.2/24", "c": "10.222.24.3/24"}
    spaces = {}
    for name, address in names.items():
        spaces[name] = lan.namespace(name)
        port = lan.link(f"p{name}", hub, spaces[name], "", address)
        sh("ip", "link", "set", port, "master", "br0", ns=hub)
    addr = "10.222.24.50"
    for name in ("a", "b"):
        lan.start(spaces[name], _GREETER, addr, name)
    mover = "import sys\nfrom strata.engines.floating import claim, release\n{}(sys.argv[1], 'eth0')"

    def move(to: str, away: str | None) -> None:
        if away:
            lan.run(spaces[away], mover.format("release"), addr)
        lan.run(spaces[to], mover.format("claim"), addr)

    move("a", None)
    assert lan.run(spaces["c"], _DIAL, addr, "7000", "") == "a"
    move("b", "a")
    # c's ARP cache entry for the address was just confirmed (a's MAC): only the announcement moves it
    assert lan.run(spaces["c"], _DIAL, addr, "7000", "") == "b"
    move("a", "b")
    assert lan.run(spaces["c"], _DIAL, addr, "7000", "") == "a"
    lan.run(spaces["a"], mover.format("release"), addr)
    lan.run(spaces["a"], mover.format("release"), addr)  # idempotent
    assert lan.run(spaces["c"], _DIAL, addr, "7000", "") in ("dropped", "refused")


def first_dial(lan: Lan, client: str, addr: str, port: int) -> str:
    """The first dial of an address just claimed, tried up to three times as a client would: on
    the loaded 2-core machine, one in four first dials right after the claim went unanswered
    (connect timed out in nft mode, or accepted and silent for 10 s in HAProxy mode; not
    explained, noted as a gap); every later dial in the test must answer the first time."""
    got = ""
    for _ in range(3):
        got = lan.run(client, _DIAL, addr, str(port), "")
        if got not in ("dropped", "silent"):
            return got
    return got


def greeter(name: str) -> int:
    """A loopback listener (a stand-in engine) greeting each connection with `name`; its port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)

    def serve() -> None:
        while True:
            c, _ = s.accept()
            c.sendall(name.encode() + b"\n")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["nft", "haproxy"])
def test_router_serves_its_routes_on_engine_address(lan: Lan, tmp_path: Path, mode: str) -> None:
    """An RDS-style route on 127.0.0.1 is also served on the engine address, and follows a
    failover there, in both router modes."""
    if mode == "nft" and not nft_usable():
        pytest.skip("kernel redirection needs nftables (root)")
    if mode == "haproxy" and shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    client = lan.namespace("c")
    dev = lan.link("s", None, client, "10.222.27.1/24", "10.222.27.2/24")
    addr, port = "10.222.27.50", free_port()
    one, two = greeter("one"), greeter("two")
    exposed = EngineAddress(addr, dev, ("10.222.27.51", "10.222.27.52"), str(tmp_path / "pool.json"))
    router = EndpointRouter(tmp_path / "routes", "ea", mode, exposed=exposed)
    router.start()
    try:
        router.set_route("db", port, [("127.0.0.1", one)])
        # an Aurora-style reader endpoint, on a loopback address of its own: on a pool address
        router.set_route("ro", port, [("127.0.0.1", two)], host="127.0.0.2")
        claim_all(exposed)  # after the route: HAProxy listens on an address it does not hold yet
        assert first_dial(lan, client, addr, port) == "one"
        assert public_host(exposed, "127.0.0.2") == "10.222.27.51"
        assert lan.run(client, _DIAL, "10.222.27.51", str(port), "") == "two"
        assert lan.run(client, _DIAL, "10.222.27.52", str(port), "") in ("refused", "dropped")
        router.set_route("db", port, [("127.0.0.1", two)])
        assert lan.run(client, _DIAL, addr, str(port), "") == "two"
        if nft_usable():  # FIS's network disruption cuts the endpoint off there too
            blackhole = Blackhole(exposed=addr)
            blackhole.add("fis", frozenset({("127.0.0.1", port)}))
            try:
                assert lan.run(client, _DIAL, addr, str(port), "") == "dropped"
            finally:
                blackhole.remove("fis")
            assert lan.run(client, _DIAL, addr, str(port), "") == "two"
        # a route on the engine address alone (an ElastiCache primary, which its node binds itself)
        cache = free_port()
        router.set_route("cache", cache, [("127.0.0.1", one)], host=addr)
        assert lan.run(client, _DIAL, addr, str(cache), "") == "one"
        router.remove_route("db")
        assert lan.run(client, _DIAL, addr, str(port), "") == "refused"
    finally:
        router.stop()
        release_all(exposed)


@pytest.mark.skipif(not nft_usable(), reason="kernel redirection and security groups need nftables (root)")
def test_cache_endpoint_served_on_engine_address(lan: Lan, tmp_path: Path) -> None:
    """A client on another machine reaches a redis cluster at the engine address Describe shows;
    the cluster's security group judges it by its own address."""
    client = lan.namespace("c")
    dev = lan.link("s", None, client, "10.222.23.1/24", "10.222.23.2/24")
    addr, option = "10.222.23.50", f"10.222.23.50-10.222.23.58/{dev}"
    exposed = parse_engine_address(option)
    claim_all(exposed)
    assert holds(addr, dev) and holds("10.222.23.54", dev)
    server = StrataProcess(tmp_path / "data", extra_args=["--engine-address", option]).start()
    try:
        _cache_checks(lan, server, client, addr, exposed.pool)
        _efs_checks(lan, server, client, exposed, tmp_path)
    finally:
        server.stop()
        release_all(exposed)
    assert not holds(addr, dev)
    # route_localnet goes back with the guard: loopback is never left open to the link
    localnet = Path(f"/proc/sys/net/ipv4/conf/{dev}/route_localnet")
    eventually(lambda: localnet.read_text().strip() == "0", what="route_localnet to be reset")


# A cluster-mode client in a namespace (it follows CLUSTER SLOTS to the nodes' announced hosts):
# the sum of what it wrote and read back over both shards, and the primaries' hosts.
_CLUSTER = """
import sys
from redis.cluster import RedisCluster
c = RedisCluster(host=sys.argv[1], port=int(sys.argv[2]), socket_timeout=10, decode_responses=True)
for i in range(20):
    c.set(f"k{i}", i)
print(sum(int(c.get(f"k{i}")) for i in range(20)), *sorted({n.host for n in c.get_primaries()}))
"""


# Memcached Auto Discovery from a namespace: the node list (host|ip|port ...) `config get cluster`
# returns at argv[1]:argv[2].
_DISCOVER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"config get cluster\\r\\n")
data = b""
while not data.endswith(b"END\\r\\n"):
    data += s.recv(4096)
print(data.split(b"\\n")[2].decode())
"""


def tcp(cidr: str) -> dict:
    return {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIp": cidr}


# A PostgreSQL client in a namespace: the server's answer to SELECT 1 through argv[1]:argv[2].
_PG = """
import sys, psycopg
with psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="master", password=sys.argv[3],
                     dbname="postgres", connect_timeout=10) as c:
    print(c.execute("select 1").fetchone()[0])
"""


def _cache_checks(lan: Lan, server: StrataProcess, client: str, addr: str, pool: tuple[str, ...]) -> None:
    ec2, ec = server.client("ec2"), server.client("elasticache")
    sg = ec2.create_security_group(GroupName="app", Description="app servers")["GroupId"]
    ec.create_cache_cluster(
        CacheClusterId="sessions", Engine="redis", CacheNodeType="cache.t3.micro", SecurityGroupIds=[sg]
    )
    # a group's reader endpoint has a loopback address of its own: served on the pool address
    ec.create_replication_group(
        ReplicationGroupId="carts",
        ReplicationGroupDescription="carts",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=2,
        SecurityGroupIds=[sg],
    )
    # a memcached cluster: Auto Discovery lists its nodes on their pool addresses
    ec.create_cache_cluster(
        CacheClusterId="pages",
        Engine="memcached",
        CacheNodeType="cache.t3.micro",
        NumCacheNodes=2,
        SecurityGroupIds=[sg],
    )
    # a cluster-mode group: its nodes announce their pool addresses (CLUSTER SLOTS, MOVED)
    ec.create_replication_group(
        ReplicationGroupId="shards",
        ReplicationGroupDescription="shards",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumNodeGroups=2,
        ReplicasPerNodeGroup=0,
        SecurityGroupIds=[sg],
    )
    rds = server.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="ledger",
        Engine="aurora-postgresql",
        MasterUsername="master",
        MasterUserPassword=PASSWORD,
        VpcSecurityGroupIds=[sg],
    )
    rds.create_db_instance(
        DBInstanceIdentifier="ledger-1",
        DBClusterIdentifier="ledger",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )

    def available() -> dict:
        c = ec.describe_cache_clusters(CacheClusterId="sessions", ShowCacheNodeInfo=True)["CacheClusters"][0]
        return c if c["CacheClusterStatus"] == "available" else {}

    node = eventually(available, timeout=120, what="the cluster")["CacheNodes"][0]["Endpoint"]  # type: ignore[index]
    assert node["Address"] == addr
    port = str(node["Port"])
    dial: Callable[[], str] = lambda: lan.run(client, _DIAL, addr, port, "PING\r\n")  # noqa: E731
    assert dial() == "dropped"  # no rule lets 10.222.23.2 in
    ec2.authorize_security_group_ingress(GroupId=sg, **tcp("10.222.23.0/24"))
    assert dial() == "+PONG"

    def group(gid: str) -> dict:
        g = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]
        return g if g["Status"] == "available" else {}

    ng = eventually(lambda: group("carts"), timeout=120, what="the group")["NodeGroups"][0]  # type: ignore[index]
    assert ng["PrimaryEndpoint"]["Address"] == addr
    reader = ng["ReaderEndpoint"]["Address"]
    assert reader in pool
    members = [m["ReadEndpoint"]["Address"] for m in ng["NodeGroupMembers"]]
    assert set(members) <= set(pool) - {reader}, members  # each node on a pool address of its own
    read_port = str(ng["ReaderEndpoint"]["Port"])
    read: Callable[[], str] = lambda: lan.run(client, _DIAL, reader, read_port, "PING\r\n")  # noqa: E731
    assert read() == "+PONG"
    assert lan.run(client, _DIAL, members[1], read_port, "PING\r\n") == "+PONG"  # a node itself
    # An Aurora cluster (one instance, the writer): its instance and writer endpoints on the engine
    # address (the RDS router's copies of its 127.0.0.1 routes), its reader and custom endpoints
    # (the writer behind both) on pool addresses
    db = wait_status(rds, "ledger-1")["Endpoint"]
    aurora = rds.describe_db_clusters(DBClusterIdentifier="ledger")["DBClusters"][0]
    assert db["Address"] == aurora["Endpoint"] == addr and aurora["ReaderEndpoint"] in pool
    for pg_port in (db["Port"], aurora["Port"]):
        assert lan.run(client, _PG, addr, str(pg_port), PASSWORD) == "1"
    custom = rds.create_db_cluster_endpoint(
        DBClusterIdentifier="ledger", DBClusterEndpointIdentifier="reports", EndpointType="ANY"
    )["Endpoint"]
    assert custom in set(pool) - {aurora["ReaderEndpoint"]}
    for host in (aurora["ReaderEndpoint"], custom):
        assert lan.run(client, _PG, host, str(aurora["Port"]), PASSWORD) == "1"
    pages = eventually(
        lambda: (
            ec.describe_cache_clusters(CacheClusterId="pages")["CacheClusters"][0]["CacheClusterStatus"]
            == "available"
        ),
        timeout=120,
        what="the memcached cluster",
    )
    assert pages
    pages_conf = ec.describe_cache_clusters(CacheClusterId="pages")["CacheClusters"][0][
        "ConfigurationEndpoint"
    ]
    assert pages_conf["Address"] == addr
    listed = lan.run(client, _DISCOVER, addr, str(pages_conf["Port"])).split()
    assert len(listed) == 2 and {h.split("|")[0] for h in listed} <= set(pool), listed
    node_host, _, node_port = listed[1].partition("|")[2].partition("|")
    assert lan.run(client, _DIAL, node_host, node_port, "version\r\n").startswith("VERSION")
    sharded = eventually(lambda: group("shards"), timeout=120, what="the cluster-mode group")
    conf = sharded["ConfigurationEndpoint"]  # type: ignore[index]
    assert conf["Address"] == addr
    hosts = lan.run(client, _CLUSTER, conf["Address"], str(conf["Port"])).split()
    assert hosts[0] == "190" and set(hosts[1:]) <= set(pool) and len(hosts) == 3, hosts
    nbd_port = server.health()["services"]["ec2"]["nbd"][1]  # EBS's NBD export: its greeting
    assert lan.run(client, _DIAL, addr, str(nbd_port), "").startswith("NBDMAGIC")
    # Nothing else on this machine's loopback is reachable from outside: not the node's own
    # address (route_localnet would let it through; the routers' localnet guard drops it).
    sh("ip", "route", "del", "127.0.0.0/8", "dev", "lo", "table", "local", ns=client)
    sh("sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1", ns=client)
    sh("ip", "route", "add", "127.0.1.0/24", "via", "10.222.23.1", "dev", "eth0", ns=client)
    assert lan.run(client, _DIAL, "127.0.1.1", port, "PING\r\n") == "dropped"
    ec2.revoke_security_group_ingress(GroupId=sg, **tcp("10.222.23.0/24"))
    ec2.authorize_security_group_ingress(GroupId=sg, **tcp("10.222.23.9/32"))  # not the client
    assert dial() == "dropped"
    assert read() == "dropped"


def _efs_checks(lan: Lan, server: StrataProcess, client: str, exposed: EngineAddress, tmp: Path) -> None:
    """An EFS mount target on a pool address: NFS from another machine through ports 2049 (the
    file system) and 2050 (an access point), judged by the mount target's own security group,
    cut by FIS's blackhole on its loopback endpoint; deleting it frees the pool address."""
    efs, ec2 = server.client("efs"), server.client("ec2")
    sg = ec2.create_security_group(GroupName="nfs", Description="file servers")["GroupId"]
    subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])
    subnet = subnets[0]["SubnetId"]
    fs_id = efs.create_file_system(CreationToken="shared-files")["FileSystemId"]
    ap = efs.create_access_point(FileSystemId=fs_id, ClientToken="ap")["AccessPointId"]
    created = efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet, SecurityGroups=[sg])
    ip = created["IpAddress"]
    assert ip in exposed.pool, ip
    shown = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"][0]
    assert (shown["IpAddress"], shown["LifeCycleState"]) == (ip, "available")
    assert lan.run(client, _DIAL, ip, "2049", "") == "dropped"  # the group has no rule for it
    # a mount target in another zone, at the pool address it asks for, in the default group
    wanted = exposed.pool[-1]
    mt2 = efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnets[1]["SubnetId"], IpAddress=wanted)
    assert mt2["IpAddress"] == wanted
    for taken, code in ((ip, "IpAddressInUse"), ("127.0.9.9", "BadRequest")):
        with pytest.raises(ClientError) as refused:
            efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnets[2]["SubnetId"], IpAddress=taken)
        assert refused.value.response["Error"]["Code"] == code
    ec2.authorize_security_group_ingress(
        GroupId=sg, IpProtocol="tcp", FromPort=2049, ToPort=2050, CidrIp="10.222.23.0/24"
    )
    src = tmp / "note.txt"
    src.write_text("written from another machine\n")
    sh("nfs-cp", str(src), f"nfs://{ip}//note.txt?version=4", ns=client)
    assert sh("nfs-cat", f"nfs://{ip}//note.txt?version=4", ns=client) == "written from another machine\n"
    through_ap = f"nfs://{ip}/{ap}/note.txt?version=4&nfsport=2050"
    assert sh("nfs-cat", through_ap, ns=client) == "written from another machine\n"
    assert lan.run(client, _DIAL, wanted, "2049", "") == "dropped"  # its own group judges it
    # FIS's network disruption cuts the mount target's loopback endpoint, its pool address too
    state = EngineAddress(
        exposed.address, exposed.dev, exposed.pool, str(server.data_dir / "engine-addresses.json")
    )
    loopback = next(k for k, v in json.loads(Path(state.state or "").read_text()).items() if v == ip)
    blackhole = Blackhole(exposed=state)
    blackhole.add("fis", frozenset({(loopback, 2049)}))
    try:
        assert lan.run(client, _DIAL, ip, "2049", "") == "dropped"
    finally:
        blackhole.remove("fis")
    efs.delete_mount_target(MountTargetId=created["MountTargetId"])
    assert ip not in json.loads(Path(state.state or "").read_text()).values()  # free for the next one
    # nothing serves it (refused; dropped while other guards hold port 2049 on every engine address)
    assert lan.run(client, _DIAL, ip, "2049", "") in ("refused", "dropped")
