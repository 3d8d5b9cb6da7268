"""The running side of RDS: engine nodes behind each instance's stable endpoint.

An instance record (a dict in the metadata store, see core.py) names its nodes:
`doc["nodes"] = {"n1": {"port": 45002, "role": "primary", "az": "us-east-1a"}, "n2": {...
"role": "standby"}}`. A single-AZ instance has one node, a Multi-AZ instance a synchronous standby
too; a read replica's only node streams from its source's primary. The endpoint port (`doc["port"]`)
is routed to whichever node is primary; failover promotes the standby and re-routes.

Every method here blocks (engine commands, base backups) and is called through `run_blocking`;
callers serialise work per instance.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from strata.config import EngineAddress
from strata.engines.endpoint import EndpointRouter, Router
from strata.engines.floating import public_host
from strata.engines.mariadb import MariaNode, drop_node_account
from strata.engines.ports import PortAllocator, port_is_free
from strata.engines.postgres import STANDBY_NAME, PgNode
from strata.engines.process import EngineError, wait_until
from strata.sim import timings
from strata.storage.encrypted_volumes import EncryptedVolumes

Node = PgNode | MariaNode
log = logging.getLogger("strata.rds")


class Fleet:
    def __init__(
        self,
        data_dir: Path,
        ports: PortAllocator,
        key: Callable[[str], str] = str,
        exposed: EngineAddress | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        # Where clients reach the instance and writer endpoints (Describe*'s Address): the engine
        # address, whose router serves every route on 127.0.0.1 there too, or loopback.
        self.address = exposed.address if exposed is not None else "127.0.0.1"
        self.exposed = exposed
        self.ports = ports
        # An instance's engine-side name in the account being served (OwnedDocs.engine_key): two
        # accounts' "db1" get their own directories, ports, routes and locks.
        self.key = key
        self.router: Router = EndpointRouter(self.data_dir / "endpoints", name="rds", exposed=exposed)
        # StorageEncrypted instances and their snapshots: `<data>/rds/volumes/` (encryption.py)
        self.volumes = EncryptedVolumes(self.data_dir)
        self._nodes: dict[tuple[str, str], Node] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    # -- layout ------------------------------------------------------------------------------------

    def public(self, host: str) -> str:
        """Where clients reach an endpoint on loopback `host` (Describe*'s Endpoint): with an
        engine address list, the pool address the router serves it on (floating.public_host),
        else `host` itself (a full pool keeps it there)."""
        if self.exposed is None:
            return host
        return public_host(self.exposed, host) or host

    def volume_id(self, ident: str) -> str:
        """The encrypted volume of a StorageEncrypted instance (engine data, WAL archive, backups)."""
        return f"instance-{self.key(ident)}"

    def instance_dir(self, ident: str) -> Path:
        """Where everything of an instance lives: its encrypted volume's directory when it has one."""
        volume = self.volume_id(ident)
        if self.volumes.exists(volume):
            return self.volumes.files(volume)
        return self.data_dir / "instances" / self.key(ident)

    def archive_dir(self, ident: str) -> Path:
        return self.instance_dir(ident) / "archive"

    def lock(self, ident: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(self.key(ident), threading.RLock())

    def locked(self, ident: str) -> bool:
        """Is the instance's encrypted volume shut (its KMS key would not unseal its data key)?"""
        volume = self.volume_id(ident)
        return self.volumes.exists(volume) and not self.volumes.is_open(volume)

    def node(self, doc: dict, name: str) -> Node:
        key = (self.key(doc["id"]), name)
        node = self._nodes.get(key)
        if node is None:
            if self.locked(doc["id"]):  # never run an engine on the bare mount point: plaintext
                raise EngineError(f"the encrypted storage of {doc['id']} is locked (is its KMS key enabled?)")
            info = doc["nodes"][name]
            root = self.instance_dir(doc["id"]) / name
            # Cluster members share their cluster's archive (whichever of them writes).
            archive = Path(doc["archive_dir"]) if doc.get("archive_dir") else self.archive_dir(doc["id"])
            if doc["kind"] == "postgres":
                major = doc["engine_version"].split(".")[0] if doc.get("engine_version") else None
                made: Node = PgNode(root, info["port"], doc["master_username"], archive, major)
            else:
                made = MariaNode(root, info["port"], doc["master_username"], archive_dir=archive)
            # in its instance's engine cgroup: its groups' egress rules filter its connections
            made.proc.spec.cgroup = self.node_cgroup(doc, name)
            self._nodes[key] = node = made
        return node

    def node_cgroup(self, doc: dict, name: str) -> str:
        """A node's engine cgroup: its own (FIS zone cuts tell the nodes apart,
        strata.engines.partition), under its instance's (security.engine_cgroup), whose egress
        rules match every node below it."""
        return f"rds-{self.key(doc['id'])}/{name}"

    def engine_pids(self) -> set[int]:
        """The main processes of every engine node running now (every account's)."""
        with self._guard:
            nodes = list(self._nodes.values())
        return {pid for n in nodes if (pid := n.proc.pid) is not None and n.running()}

    def primary(self, doc: dict) -> Node:
        return self.node(doc, doc["primary"])

    def standby_name(self, doc: dict) -> str | None:
        return next((n for n, i in doc["nodes"].items() if i["role"] == "standby"), None)

    def new_node(self, doc: dict, role: str, az: str) -> str:
        """Add a node entry (name, port) to the record; the caller creates its data."""
        doc["next_node"] = doc.get("next_node", 0) + 1
        name = f"n{doc['next_node']}"
        port = self.ports.allocate(f"rds/{self.key(doc['id'])}/{name}")
        doc["nodes"][name] = {"port": port, "role": role, "az": az}
        return name

    def drop_node(self, doc: dict, name: str) -> None:
        node = self._nodes.pop((self.key(doc["id"]), name), None) or self.node(doc, name)
        self._nodes.pop((self.key(doc["id"]), name), None)
        node.remove()
        self.ports.release(f"rds/{self.key(doc['id'])}/{name}")
        doc["nodes"].pop(name, None)

    # -- endpoint ----------------------------------------------------------------------------------

    def route(self, doc: dict, up: bool = True) -> None:
        """Point the instance's stable endpoint at its primary (or at nothing while stopped)."""
        backends = [("127.0.0.1", doc["nodes"][doc["primary"]]["port"])] if up else []
        self.router.set_route(f"instance-{self.key(doc['id'])}", doc["port"], backends)

    def unroute(self, doc: dict) -> None:
        self.router.remove_route(f"instance-{self.key(doc['id'])}")

    # -- lifecycle ---------------------------------------------------------------------------------

    def with_free_port(self, doc: dict, name: str, build) -> Node:  # noqa: ANN001
        """Run `build(node)` (which creates and starts the node); if its port was taken meanwhile
        (another program on this machine), give the node a new port and build it once more."""
        try:
            build(self.node(doc, name))
        except EngineError as e:
            if "already in use" not in str(e):
                raise
            self.node(doc, name).stop()
            doc["nodes"][name]["port"] = self.ports.reassign(f"rds/{self.key(doc['id'])}/{name}")
            self._nodes.pop((self.key(doc["id"]), name), None)
            build(self.node(doc, name))
        return self.node(doc, name)

    def create_primary(self, doc: dict, password: str, params: dict[str, str]) -> None:
        def build(node: Node) -> None:
            node.initdb(password, params)
            node.start()

        node = self.with_free_port(doc, doc["primary"], build)
        if doc.get("db_name"):
            node.create_database(doc["db_name"])
        self.route(doc)

    def start(self, doc: dict, params: dict[str, str]) -> None:
        """Start every node (primary first) and route the endpoint; used by StartDBInstance and restarts.

        A node whose port another program took while it was down gets a new one (node ports are
        private; the endpoint port users see does not change)."""
        names = [doc["primary"]] + [n for n in doc["nodes"] if n != doc["primary"]]
        moved_primary = False
        for name in names:
            node = self.node(doc, name)
            if node.running():
                continue
            if not port_is_free(node.port):
                moved_primary = moved_primary or name == doc["primary"]
                doc["nodes"][name]["port"] = self.ports.reassign(f"rds/{self.key(doc['id'])}/{name}")
                self._nodes.pop((self.key(doc["id"]), name), None)
                node = self.node(doc, name)
            node.write_config(params)
            node.start()
            if name != doc["primary"] and moved_primary:
                node.follow(self.primary(doc), STANDBY_NAME)
        standby = self.standby_name(doc)
        if standby is not None:
            # MariaDB's semi-synchronous replication is a runtime setting, gone with a restart: without
            # this a Multi-AZ instance was asynchronous after every restart of Strata. The primary
            # first, so that the standby, reconnecting, is taken as a synchronous one.
            self.primary(doc).set_sync_standby(True)
            self.node(doc, standby).follow(self.primary(doc), STANDBY_NAME)
            if not wait_until(lambda: self.primary(doc).standby_caught_up(STANDBY_NAME), 60):
                log.warning("the standby of %s did not become synchronous again", doc["id"])
        self.keep_read_only(doc)
        self.route(doc)

    def keep_read_only(self, doc: dict) -> None:
        """A MariaDB reader (an Aurora or Multi-AZ DB cluster's, a read replica) refuses clients'
        writes again after its engine started: read_only is a runtime setting, gone with every
        restart (PostgreSQL's standbys are read-only by themselves)."""
        node = self.primary(doc)
        if isinstance(node, MariaNode) and (doc.get("cluster_role") == "reader" or doc.get("source")):
            node.set_read_only(True)

    def stop(self, doc: dict) -> None:
        if doc["kind"] == "postgres" and self.primary(doc).running() and not doc.get("source"):
            try:
                self.primary(doc).switch_wal()  # the archive then covers everything up to the stop
            except Exception:  # noqa: BLE001 - stopping must not fail because the engine is unwell
                pass
        self.route(doc, up=False)
        for name in list(doc["nodes"]):
            self.node(doc, name).stop()

    def destroy(self, doc: dict) -> None:
        self.unroute(doc)
        locked = self.locked(doc["id"])  # then no engine of it runs, and its files go with the volume
        for name in list(doc["nodes"]):
            if not locked:
                self.node(doc, name).remove()
            elif doc["kind"] != "postgres":  # its files go with the volume; its OS account too
                root = self.instance_dir(doc["id"]) / name
                drop_node_account(root, self.archive_of(doc), f"{root.parent.name}-{name}-bin")
            self._nodes.pop((self.key(doc["id"]), name), None)
        self.ports.release_prefix(f"rds/{self.key(doc['id'])}/")
        shutil.rmtree(self.instance_dir(doc["id"]), ignore_errors=True)
        if self.volumes.exists(self.volume_id(doc["id"])):
            self.volumes.remove(self.volume_id(doc["id"]))

    def apply_params(self, doc: dict, params: dict[str, str]) -> None:
        for name in doc["nodes"]:
            node = self.node(doc, name)
            node.write_config(params, recovery=None) if doc["kind"] == "postgres" else node.write_config(
                params
            )
            if node.running():
                node.reload()

    # -- Multi-AZ ----------------------------------------------------------------------------------

    def add_standby(self, doc: dict, az: str, params: dict[str, str]) -> None:
        """Build a synchronous standby from the primary (commits then wait for it)."""
        name = self.new_node(doc, "standby", az)
        primary = self.primary(doc)

        def build(node: Node) -> None:
            node.clone_from(primary, standby=True, params=params, app_name=STANDBY_NAME)
            node.start()

        self.with_free_port(doc, name, build)
        primary.set_sync_standby(True)
        # Commits made while the standby was being built were not waited for: only once it has
        # caught up does "every acknowledged commit is on the standby" hold.
        if not wait_until(lambda: primary.standby_caught_up(STANDBY_NAME), 120):
            raise RuntimeError("the new standby did not catch up with the primary")

    def restart_standby(self, doc: dict, params: dict[str, str]) -> None:
        """Start a standby whose process died, following the primary again (a MariaDB standby must
        also turn its semi-synchronous acknowledgements back on); the commits waiting for it go on."""
        name = self.standby_name(doc)
        if name is None:
            return
        if not port_is_free(self.node(doc, name).port):  # another program took it meanwhile
            doc["nodes"][name]["port"] = self.ports.reassign(f"rds/{self.key(doc['id'])}/{name}")
            self._nodes.pop((self.key(doc["id"]), name), None)
        node = self.node(doc, name)
        node.write_config(params)
        node.start()
        node.follow(self.primary(doc), STANDBY_NAME)

    def remove_standby(self, doc: dict) -> None:
        name = self.standby_name(doc)
        if name:
            self.primary(doc).set_sync_standby(False)
            self.drop_node(doc, name)

    def failover(self, doc: dict, replicas: list[dict], planned: bool = True, hold: float = 0.0) -> str:
        """Promote the standby, route the endpoint to it, retire the old primary; returns the old AZ.
        `hold`: seconds (simulated) between the old primary's stop and the promotion, while the
        endpoint answers nothing (`--timings aws`: strata.sim.timings).

        The old primary is stopped first, so no commit can land on it after the promotion: a planned
        failover (RebootDBInstance ForceFailover) shuts it down cleanly, which hands the standby every
        WAL record it wrote; after a crash, synchronous replication has already put every
        acknowledged commit on the standby.
        """
        standby_name = self.standby_name(doc)
        if standby_name is None:
            raise RuntimeError("no standby to fail over to")
        old_name = doc["primary"]
        old = self.node(doc, old_name)
        if planned:
            old.stop_handing_over()
        else:
            old.kill()
        if hold:
            timings.wait(hold)
        new = self.node(doc, standby_name)
        new.promote()
        new.set_sync_standby(False)  # until a new standby has been built
        doc["nodes"][standby_name]["role"] = "primary"
        doc["primary"] = standby_name
        self.route(doc)
        for rep in replicas:
            try:
                self.primary(rep).follow(new, rep["id"])
            except Exception:  # noqa: BLE001 - a replica that cannot follow is rebuilt by its owner
                pass
        old_az = doc["nodes"][old_name]["az"]
        self.drop_node(doc, old_name)
        return old_az

    # -- read replicas -----------------------------------------------------------------------------

    def create_replica(
        self, source: dict, doc: dict, params: dict[str, str], source_node: Node | None = None
    ) -> None:
        """Build `doc`'s node as a streaming replica of `source`'s primary (`source_node`: that
        node, looked up by the caller when the source is in another region's scope)."""
        primary = source_node or self.primary(source)

        def build(node: Node) -> None:
            node.clone_from(primary, standby=True, params=params, app_name=doc["id"])
            node.start()

        self.with_free_port(doc, doc["primary"], build)
        self.route(doc)

    def promote_replica(self, doc: dict) -> None:
        self.primary(doc).promote()

    # -- backups -----------------------------------------------------------------------------------

    def base_backup(self, doc: dict, dest: Path) -> None:
        self.primary(doc).base_backup(dest)

    def restore(
        self,
        doc: dict,
        backup: Path,
        params: dict[str, str],
        *,
        archive: Path | None = None,
        target_time: str | None = None,
    ) -> None:
        def build(node: Node) -> None:
            node.restore_from(backup, archive=archive, target_time=target_time, params=params)
            node.start(timeout=600)

        self.with_free_port(doc, doc["primary"], build).wait_recovered()
        self.route(doc)

    def archive_of(self, doc: dict) -> Path:
        return Path(doc["archive_dir"]) if doc.get("archive_dir") else self.archive_dir(doc["id"])

    def prepare_pitr(self, doc: dict) -> None:
        """Make the source's archive cover `now` (a marker commit after any restore time, archived)."""
        node = self.primary(doc)
        if node.running():
            node.switch_wal()
            node.wait_archived()
