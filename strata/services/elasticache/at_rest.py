"""Encryption at rest (AtRestEncryptionEnabled, KmsKeyId): a group's RDB/AOF files are ciphertext on disk.

A replication group created with AtRestEncryptionEnabled=True gets an encrypted volume
(strata/storage/encrypted_volumes.py, `<data>/elasticache/volumes/group-<id>.img`) holding the
directories of all its member clusters' nodes (`Engines.node_dir` asks `_encrypted_root`), so
dump.rdb, the AOF and BGSAVE's temporary files never touch the disk in the clear. A snapshot of
such a group gets a volume of its own (`snapshot-<name>`), as do copies of it. Each volume's key is
a data key under the group's KMS key (KmsKeyId, or Strata's managed alias/aws/elasticache where AWS
would use a key of its own), sealed in the record and unsealed when Strata starts.

A serverless cache created with KmsKeyId gets one volume too (`serverless-<name>`, holding its
nodes' directories), and each of its snapshots one of its own (`sls-snapshot-<name>`): see
serverless_at_rest.py.

A machine that cannot mount encrypted volumes (no root, no loop devices) refuses
AtRestEncryptionEnabled, saying why; so does a KMS key that does not exist or is not enabled.
"""

from __future__ import annotations

import logging
from pathlib import Path

from strata.engines.process import EngineError
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.data_keys import DataKeys
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import combination, invalid
from strata.services.elasticache.serverless_ecpu import SUFFIX as SERVERLESS_SUFFIX
from strata.storage.encrypted_volumes import EncryptionError, unsupported

log = logging.getLogger("strata.elasticache")
MANAGED_ALIAS = "alias/aws/elasticache"


class AtRestOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider: the volumes of encrypted groups and their snapshots."""

    @property
    def _data_keys(self) -> DataKeys:
        return DataKeys(lambda: self.runtime.peer("kms"), MANAGED_ALIAS, "aws:elasticache:volume", invalid)

    def _group_volume(self, gid: str) -> str:
        return f"group-{self.store.engine_key(gid)}"

    def _snapshot_volume(self, name: str) -> str:
        return f"snapshot-{self.store.engine_key(name)}"

    def _sls_volume(self, name: str) -> str:
        return f"serverless-{self.store.engine_key(name)}"

    def _sls_snapshot_volume(self, name: str) -> str:
        return f"sls-snapshot-{self.store.engine_key(name)}"

    def _encrypted_root(self, cluster_id: str) -> Path | None:
        """Where the nodes of a member of an encrypted group (or of a serverless cache with a KMS
        key) live (in its volume), or None.

        Never falls back to the plain directory: a volume that is not open (its KMS key disabled)
        gives a path that does not exist, and the engine fails to start rather than write plaintext."""
        if cluster_id.endswith(SERVERLESS_SUFFIX):
            cache = self.store.get_doc("serverless", cluster_id.removesuffix(SERVERLESS_SUFFIX))
            if not cache or not cache.get("_dek"):
                return None
            volume = self._sls_volume(cache["id"])
            if not self.volumes.is_open(volume):
                raise EngineError(
                    f"the encrypted storage of {cache['id']} is locked (is its KMS key enabled?)"
                )
            return self.volumes.files(volume) / self.store.engine_key(cluster_id)
        cluster = self.store.get_doc("cluster", cluster_id)
        gid = cluster.get("group") if cluster else None
        group = self.store.get_doc("group", gid) if gid else None
        if not group or not group.get("_dek"):
            return None
        volume = self._group_volume(gid)
        if not self.volumes.is_open(volume):  # never run an engine on the bare mount point: plaintext
            raise EngineError(f"the encrypted storage of {gid} is locked (is its KMS key enabled?)")
        return self.volumes.files(volume) / self.store.engine_key(cluster_id)

    # -- choosing the key --------------------------------------------------------------------------

    def _at_rest_key(self, req: dict, restore: dict | None, region: str, account: str) -> str | None:
        """The KMS key ARN a new group's data is encrypted with, or None. A group restored from an
        encrypted snapshot is encrypted too (under the snapshot's key unless KmsKeyId names one)."""
        wanted = req.get("AtRestEncryptionEnabled")
        inherited = restore.get("_kms_arn") if restore else None
        if inherited and wanted is False:
            raise combination(
                f"Snapshot {restore['SnapshotName']} is encrypted at rest: it can only be restored into a "
                "replication group with AtRestEncryptionEnabled."
            )
        encrypted = bool(wanted) or inherited is not None
        if req.get("KmsKeyId") and not encrypted:
            raise combination("KmsKeyId can only be given with AtRestEncryptionEnabled.")
        if not encrypted:
            return None
        self._refuse_unsupported()
        # the inherited key is looked up again: it must still be enabled, as on AWS
        return self._data_keys.resolve(account, region, req.get("KmsKeyId") or inherited)

    @staticmethod
    def _refuse_unsupported() -> None:
        why = unsupported()
        if why:
            raise invalid(f"AtRestEncryptionEnabled cannot be served here: {why}.")

    # -- volumes -----------------------------------------------------------------------------------

    def _new_volume(self, volume: str, key_arn: str) -> str:
        """Make an encrypted volume under `key_arn` (blocking); its sealed key, for the record."""
        sealed, plain = self._data_keys.new(key_arn, volume)
        try:
            self.volumes.create(volume, plain)
        except EncryptionError as e:  # the machine will not mount it (a container without loop devices)
            raise invalid(f"AtRestEncryptionEnabled cannot be served here: {e}.") from None
        return sealed

    async def _encrypt_group(self, group: dict) -> None:
        """Give a new group record with a `_kms_arn` its volume, before any node of it exists and
        before it is recorded (meanwhile a second create of the name is refused: `_encrypting`)."""
        if group.get("_kms_arn"):
            volume = self._group_volume(group["id"])
            self._encrypting.add(volume)
            try:
                group["_dek"] = await run_blocking(self._new_volume, volume, group["_kms_arn"])
            finally:
                self._encrypting.discard(volume)

    async def _remove_group_volume(self, group: dict) -> None:
        volume = self._group_volume(group["id"])
        if group.get("_dek") and self.volumes.exists(volume):
            await run_blocking(self.volumes.remove, volume)

    def _encrypt_snapshot(self, snap: dict, key_arn: str | None) -> None:
        """Give a snapshot record of encrypted data its own volume under `key_arn` (blocking)."""
        if not key_arn:
            return
        volume = self._snapshot_volume(snap["SnapshotName"])
        if self.volumes.exists(volume):  # left by a snapshot cut short: made again
            self.volumes.remove(volume)
        snap["_dek"] = self._new_volume(volume, key_arn)
        snap["_kms_arn"] = snap["KmsKeyId"] = key_arn

    def _remove_snapshot_volume(self, name: str) -> None:
        volume = self._snapshot_volume(name)
        if self.volumes.exists(volume):
            self.volumes.remove(volume)

    # -- server life -------------------------------------------------------------------------------

    def _open_volumes(self) -> None:
        """Mount every encrypted volume with its key from KMS (blocking). A key KMS will not
        unseal (disabled, deleted) leaves its group or snapshot unreadable, as on AWS."""
        for kind, name_of, volume_of in (
            ("group", lambda d: d["id"], self._group_volume),
            ("snapshot", lambda d: d["SnapshotName"], self._snapshot_volume),
            ("serverless", lambda d: d["id"], self._sls_volume),
            ("serverless_snapshot", lambda d: d["name"], self._sls_snapshot_volume),
        ):
            for doc in self.store.list_docs(kind):
                if not doc.get("_dek"):
                    continue
                with self.store.acting_for(doc):
                    volume = volume_of(name_of(doc))
                    try:
                        key = self._data_keys.unseal(doc["_kms_arn"], doc["_dek"], volume)
                        self.volumes.open(volume, key)
                    except (ServiceError, EncryptionError) as e:
                        log.error("ElastiCache %s %s stays locked: %s", kind, name_of(doc), e)

    async def start(self) -> None:
        await run_blocking(self._open_volumes)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await run_blocking(self.volumes.close_all)
