"""The engine processes behind ElastiCache resources, and the addresses they listen on.

Every node of one deployment (a standalone cache cluster, or a replication group) listens on the
deployment's port on its own loopback address, 127.0.1.<n>. A stable endpoint is one more address
that the node holding the role also listens on: `PRIMARY` (a group's primary endpoint, a
cluster-mode group's configuration endpoint, and the first node of a standalone redis cluster, so
the deployment's port stays visibly taken) and `READER` (a group's reader endpoint). A memcached
cluster's configuration endpoint (PRIMARY too) is Strata's own `discovery.DiscoveryEndpoint`,
because it must answer Auto Discovery's `config get cluster`, which memcached does not know. Failover moves the address to the promoted
node with `CONFIG SET bind`: clients keep dialing the same host:port and reach the engine itself,
with nothing in between (see `bench/elasticache_endpoint.py`).

Methods here block (processes, admin commands): call them through `run_blocking`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from strata.engines import redis as redis_engine
from strata.engines.memcached import MemcachedNodeConfig, MemcachedServer
from strata.engines.process import EngineError
from strata.engines.redis import RedisNodeConfig, RedisServer
from strata.engines.tls import ServerCert, authority_for
from strata.services.elasticache import cache_parameters as cp
from strata.services.elasticache.validate import node_memory_mb

log = logging.getLogger("strata.elasticache")

PRIMARY = "127.0.0.1"
READER = "127.0.0.2"
Server = RedisServer | MemcachedServer
Key = tuple[str, str]  # (the cache cluster's engine key, cache node id)


def engine_cgroup(dep: dict) -> str:
    """The engine cgroup (strata.engines.cgroups) of a deployment's nodes, whose outbound
    connections its security groups' egress rules filter: named by its port, which no other
    deployment holds and which stays with a primary retained as a standalone cluster."""
    return f"elasticache-{dep['port']}"


def node_cgroup(dep: dict, cluster_id: str) -> str:
    """The engine cgroup of a redis/valkey node (the member cache cluster `cluster_id`)."""
    return f"{engine_cgroup(dep)}/{cluster_id}"


def node_address(index: int) -> str:
    """The loopback address of the index-th node (1-based) of a deployment."""
    index -= 1
    return f"127.0.{1 + index // 254}.{1 + index % 254}"


def _answers(server: Server) -> bool:
    try:
        return server.ping()
    except (redis.RedisError, OSError):
        return False


def durable_nodes(metadata: str | None) -> bool:
    """Whether redis/valkey nodes keep their writes in an append-only file fsynced every second
    (RedisNodeConfig.append_only): with --metadata, for every cache, with replicas or not.

    With --metadata the engines run on the engine host and, when it dies, another gateway restarts
    them from their files in `<blob dir>/engines` (strata.gateway.engine_host). For a group with
    replicas AWS promises a failover: a replica is promoted, losing at most the writes not yet
    replicated (asynchronous replication: moments). Here every node of the group dies with the
    host and restarts from disk, so only the AOF keeps that promise (at most ~1 s lost). All caches,
    not only those with replicas, because:
    - the host's death is not the loss of a cache's node: on AWS one machine's loss takes down the
      nodes on that machine, never every cache of the account at once, and a cache without
      replicas keeps its data through everything short of losing its own node;
    - a group can gain and lose replicas while it runs (IncreaseReplicaCount, a replica's
      deletion): a per-cache choice would switch the AOF on and off under writes;
    - it costs a write() per command and one fsync a second per node, in a mode that already
      keeps its state on shared storage.
    Without --metadata (one machine, nothing restarts the engines elsewhere) nodes keep Redis's
    save points and the save at shutdown, as before: no AOF, nothing slower. The cache's parameters
    still show `appendonly` as AWS does (cache_parameters: fixed "no"): this is Strata's own
    durability, not a setting of the cache."""
    return metadata is not None


def free_address_index(used: list[str]) -> int:
    taken = set(used)
    n = 1
    while node_address(n) in taken:
        n += 1
    return n


class Engines:
    """The live engine processes of the service, keyed by (cache cluster key, node id).

    Methods take cache cluster ids of the account being served; `key` (OwnedDocs.engine_key)
    names their directories and processes apart from another account's of the same id."""

    def __init__(
        self,
        data_dir: Path,
        strata_data_dir: Path,
        key: Callable[[str], str] = str,
        encrypted_root: Callable[[str], Path | None] = lambda _cluster_id: None,
        parameters: Callable[[dict], dict[str, str]] = lambda _dep: {},
        announce: Callable[[dict, str], str | None] = lambda _dep, _address: None,
        append_only: bool = False,
    ) -> None:
        self.root = Path(data_dir) / "nodes"
        self.key = key
        # A member of a group encrypted at rest keeps its nodes in the group's volume (at_rest.py).
        self.encrypted_root = encrypted_root
        # a deployment's effective cache parameters (its parameter group over the family defaults)
        self.parameters = parameters
        # a deployment's cluster-mode node at a loopback address -> the host name it announces (exposure.py)
        self.announce = announce
        # redis/valkey nodes keep their writes in an AOF (see `durable_nodes`)
        self.append_only = append_only
        self.ca = authority_for(strata_data_dir)
        self.servers: dict[Key, Server] = {}
        self._lock = threading.Lock()
        # the secret names of the commands ElastiCache does not let clients run (one per service)
        self.admin_token = redis_engine.admin_token(Path(data_dir) / "engine-admin.token")

    def cluster_dir(self, cluster_id: str) -> Path:
        return self.encrypted_root(cluster_id) or self.root / self.key(cluster_id)

    def node_dir(self, cluster_id: str, node_id: str) -> Path:
        return self.cluster_dir(cluster_id) / node_id

    def get(self, cluster_id: str, node_id: str = "0001") -> Server | None:
        return self.servers.get((self.key(cluster_id), node_id))

    def redis(self, cluster_id: str, node_id: str = "0001") -> RedisServer:
        server = self.servers.get((self.key(cluster_id), node_id))
        assert isinstance(server, RedisServer), f"{cluster_id}/{node_id} is not a running redis node"
        return server

    # -- building and starting nodes ---------------------------------------------------------------

    def build_redis(
        self,
        dep: dict,
        cluster_id: str,
        node: dict,
        *,
        replica_of: tuple[str, int] | None = None,
        binds: list[str] | None = None,
    ) -> RedisServer:
        """A (not yet started) server for a redis/valkey node, from the deployment settings `dep`."""
        directory = self.node_dir(cluster_id, node["id"])
        tls = self._certificate(dep, cluster_id, node)
        config = RedisNodeConfig(
            address=node["address"],
            port=dep["port"],
            data_dir=directory,
            password=dep.get("auth"),
            tls=tls,
            replica_of=replica_of,
            cluster_bus_port=dep.get("bus_port") if dep.get("cluster_mode") else None,
            announce_hostname=self.announce(dep, node["address"]) if dep.get("cluster_mode") else None,
            extra_binds=list(binds or []),
            admin_token=self.admin_token,
            acl_users=list(dep.get("acl") or []),
            append_only=self.append_only,
        )
        self.configure(dep, config)
        binary = redis_engine.server_binary(dep["engine"], tls=bool(tls))
        server = RedisServer(f"{cluster_id}/{node['id']}", binary, config)
        # its own, under the deployment's (whose egress rules filter it): FIS zone cuts tell the
        # nodes apart (strata.engines.partition)
        server.process.spec.cgroup = node_cgroup(dep, cluster_id)
        with self._lock:
            self.servers[(self.key(cluster_id), node["id"])] = server
        return server

    def _certificate(self, dep: dict, cluster_id: str, node: dict) -> ServerCert | None:
        """The node's TLS files when the deployment encrypts in transit (None otherwise)."""
        if not dep.get("transit"):
            return None
        directory = self.node_dir(cluster_id, node["id"])
        issued = self.ca.issue(directory, f"{cluster_id}-{node['id']}", [node["address"], PRIMARY, READER])
        # a copy of the CA beside the certificate: the engine reads only its own directory
        local_ca = directory / "ca.pem"
        if not local_ca.exists() or local_ca.read_bytes() != issued.ca.read_bytes():
            shutil.copyfile(issued.ca, local_ca)
        return ServerCert(issued.cert, issued.key, local_ca)

    def build_memcached(
        self, dep: dict, cluster_id: str, node: dict, binds: list[str] | None = None
    ) -> MemcachedServer:
        config = MemcachedNodeConfig(
            address=node["address"],
            port=dep["port"],
            data_dir=self.node_dir(cluster_id, node["id"]),
            extra_binds=list(binds or []),
            tls=self._certificate(dep, cluster_id, node),
        )
        self.configure(dep, config)
        server = MemcachedServer(f"{cluster_id}/{node['id']}", config)
        server.process.spec.cgroup = engine_cgroup(dep)
        with self._lock:
            self.servers[(self.key(cluster_id), node["id"])] = server
        return server

    def configure(self, dep: dict, config: RedisNodeConfig | MemcachedNodeConfig) -> None:
        """Put the deployment's node type and cache parameters into a node's configuration (read at
        its next start; redis settings that change at once are also sent with CONFIG SET)."""
        values = self.parameters(dep)
        if isinstance(config, RedisNodeConfig):
            config.maxmemory = cp.redis_maxmemory(node_memory_mb(dep["node_type"]) * 1024 * 1024, values)
            config.parameters = cp.redis_directives(values) if values else {}
        else:
            config.memory_mb = cp.memcached_memory_mb(node_memory_mb(dep["node_type"]), values)
            config.options = cp.memcached_options(values) if values else []

    def start_all(self, servers: list[Server], timeout: float = 30) -> None:
        """Start servers side by side: fork each, then wait until all answer; raise the first failure
        (stopping the others of this batch).

        Forked from the calling thread on purpose: a child's die-with-parent signal is tied to the
        thread that forked it, so engines are forked from the long-lived executor thread running
        this call. Only the waiting is shared: a node takes tens of milliseconds to answer, and
        several nodes of one deployment used to add those up.
        """
        pending: list[Server] = []
        try:
            for server in servers:
                if not server.running():
                    server.launch()
                    pending.append(server)
            deadline = time.monotonic() + timeout
            while pending:
                for server in list(pending):
                    if not server.running():
                        tail = server.process.log_tail(1500)
                        raise EngineError(f"{server.name} exited while starting: {tail}")
                    if _answers(server):
                        pending.remove(server)
                if pending and time.monotonic() > deadline:
                    raise EngineError(f"{pending[0].name} was not ready after {timeout}s")
                if pending:
                    time.sleep(0.01)
        except BaseException:
            for server in pending:  # launched but not ready: leave no half-started process behind
                server.stop()
            raise

    def stop(self, cluster_id: str, node_id: str, remove: bool = False) -> None:
        self._stop((self.key(cluster_id), node_id))
        if remove:
            self._remove_dir(lambda: self.node_dir(cluster_id, node_id))

    def _remove_dir(self, where: Callable[[], Path]) -> None:
        try:
            directory = where()
        except EngineError:  # in a locked encrypted volume: its files go with the volume
            return
        shutil.rmtree(directory, ignore_errors=True)

    def _stop(self, key: Key) -> None:
        with self._lock:
            server = self.servers.pop(key, None)
        if server is not None:
            server.stop()

    def stop_cluster(self, cluster_id: str, remove: bool = False) -> None:
        name = self.key(cluster_id)
        for key in [k for k in list(self.servers) if k[0] == name]:
            self._stop(key)
        if remove:
            self._remove_dir(lambda: self.cluster_dir(cluster_id))

    def stop_everything(self) -> None:
        for key in list(self.servers):
            try:
                self._stop(key)
            except Exception:  # noqa: BLE001 - stopping the rest matters more
                log.exception("stopping %s", key)

    def dead(self) -> list[Key]:
        """Nodes whose process has exited although Strata did not stop them."""
        return [k for k, s in list(self.servers.items()) if not s.running()]

    # -- endpoint addresses -------------------------------------------------------------------------

    def apply_binds(self, wanted: dict[str, list[str]]) -> None:
        """Move endpoint addresses between the running redis nodes of one deployment.

        `wanted` maps cache cluster id -> endpoint addresses it should hold. Addresses are first
        released everywhere they should no longer be, then taken, so one never collides with itself.
        """
        wanted = {self.key(cid): addresses for cid, addresses in wanted.items()}
        live = {
            cid: s for (cid, _), s in self.servers.items() if cid in wanted and isinstance(s, RedisServer)
        }
        for cid, server in live.items():
            keep = [a for a in server.config.extra_binds if a in wanted[cid]]
            if keep != server.config.extra_binds and server.running():
                server.set_binds(keep)
        for cid, server in live.items():
            if sorted(server.config.extra_binds) != sorted(wanted[cid]) and server.running():
                server.set_binds(wanted[cid])


def port_owner(doc: dict, kind: str) -> str:
    """The allocation owner of a deployment's port (its cluster-mode bus port is owner + "/bus")."""
    return doc.get("port_owner") or f"elasticache/{kind}/{doc['id']}"
