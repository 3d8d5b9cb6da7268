"""Storage encryption (StorageEncrypted, KmsKeyId): encrypted instances' data is ciphertext on disk.

An instance created with StorageEncrypted=True gets an encrypted volume
(strata/storage/encrypted_volumes.py, `<data>/rds/volumes/instance-<id>.img`) whose directory is
the instance's whole directory (`Fleet.instance_dir`): every node's PGDATA or datadir, the WAL or
binlog archive, the automated base backups. An encrypted Aurora cluster's directory (its shared
archive, its automated backups) is a volume too (`cluster-<id>`), and each member gets one under
the cluster's key. A manual snapshot gets a volume of its own (`snapshot-<id>`,
`cluster-snapshot-<id>`), since it outlives its source. Each volume's key is a data key under the
resource's KMS key (default alias/aws/rds), kept sealed in the record and unsealed when Strata
starts. What is made from encrypted data is encrypted with its key (or the KmsKeyId given):
snapshots and their copies, restores, point-in-time restores, read replicas, cluster members.

A KMS key that does not exist or is not enabled is RDS's KMSKeyNotAccessibleFault; a machine that
cannot mount encrypted volumes (no root, no loop devices) refuses StorageEncrypted, saying why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.data_keys import DataKeys
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.storage.encrypted_volumes import EncryptedVolumes, EncryptionError, unsupported

log = logging.getLogger("strata.rds")


def _inaccessible(message: str) -> ServiceError:
    return m.fault("KMSKeyNotAccessibleFault", message)


class StorageEncryption(RDSCore):
    @property
    def _data_keys(self) -> DataKeys:
        return DataKeys(lambda: self.runtime.peer("kms"), "alias/aws/rds", "aws:rds:volume", _inaccessible)

    # -- choosing the key --------------------------------------------------------------------------

    def _storage_key(self, req: dict, inherited: str | None = None) -> str | None:
        """The KMS key ARN a new instance's storage is encrypted with, or None: StorageEncrypted
        with KmsKeyId (or the managed key), or `inherited` from what it is made from (a snapshot,
        a source instance), which a KmsKeyId may replace."""
        encrypted = bool(req.get("StorageEncrypted")) or inherited is not None
        if req.get("KmsKeyId") and not encrypted:
            raise m.fault(
                "InvalidParameterCombination", "You must enable StorageEncrypted when you specify KmsKeyId."
            )
        if not encrypted:
            return None
        why = unsupported()
        if why:
            raise m.fault("InvalidParameterCombination", f"StorageEncrypted cannot be served here: {why}.")
        # the inherited key is looked up again: it must still be enabled, as on AWS
        return self._data_keys.resolve(self.account, self.region, req.get("KmsKeyId") or inherited)

    # -- volumes -----------------------------------------------------------------------------------

    def _new_volume(self, volume: str, key_arn: str) -> str:
        """Make an encrypted volume under `key_arn` (blocking); its sealed key, for the record."""
        sealed, plain = self._data_keys.new(key_arn, volume)
        try:
            self.fleet.volumes.create(volume, plain)
        except EncryptionError as e:  # the machine will not mount it (a container without loop devices)
            raise m.fault(
                "InvalidParameterCombination", f"StorageEncrypted cannot be served here: {e}."
            ) from None
        return sealed

    def _being_encrypted(self, name: str) -> bool:
        """Is a create of `name` (an instance id, or "cluster:<id>") making its volume just now?"""
        return self.store.engine_key(name) in self._encrypting

    async def _encrypt(self, doc: dict, name: str, volume: str, ports: str) -> None:
        """Give a new record with a `kms_key_id` its volume, before any of its files exist and
        before it is saved (the caller saves it right after: no other create of the name can
        start meanwhile, `_being_encrypted`). On failure the ports under `ports` are released."""
        if not doc.get("kms_key_id"):
            return
        reserved = self.store.engine_key(name)
        self._encrypting.add(reserved)
        try:
            doc["dek"] = await run_blocking(self._new_volume, volume, doc["kms_key_id"])
        except ServiceError:
            self.fleet.ports.release_prefix(ports)
            raise
        finally:
            self._encrypting.discard(reserved)

    async def _encrypt_instance(self, doc: dict) -> None:
        key = self.store.engine_key(doc["id"])
        await self._encrypt(doc, doc["id"], self.fleet.volume_id(doc["id"]), f"rds/{key}/")

    async def _encrypt_cluster(self, c: dict) -> None:
        key = self.store.engine_key(c["id"])
        await self._encrypt(c, f"cluster:{c['id']}", self._cluster_volume(c["id"]), f"rds/cluster/{key}/")

    def encrypted_volume(self, ctx: RequestContext, ident: str) -> tuple[EncryptedVolumes, str] | None:
        """The instance's own volume, or None when it is not StorageEncrypted (for FIS's
        strata:rds:disk-full, in the caller's account); DBInstanceNotFound when there is none."""
        doc = self._get_instance(ident)
        if not doc.get("dek"):
            return None
        return self.fleet.volumes, self.fleet.volume_id(doc["id"])

    def _cluster_volume(self, cid: str) -> str:
        """The volume of an encrypted cluster: its shared WAL/binlog archive, its automated backups."""
        return f"cluster-{self.store.engine_key(cid)}"

    def _cluster_snapshot_volume(self, snap_id: str) -> str:
        return "cluster-snapshot-" + self.store.engine_key(snap_id).replace(":", "_")

    def _remove_volume(self, volume: str) -> None:
        if self.fleet.volumes.exists(volume):
            self.fleet.volumes.remove(volume)

    def _snapshot_volume(self, snap: dict) -> str:
        return "snapshot-" + self.store.engine_key(snap["id"]).replace(":", "_")

    def _encrypted_snapshot_path(self, snap: dict) -> Path:
        return self.fleet.volumes.files(self._snapshot_volume(snap)) / "data"

    def _make_snapshot_volume(self, snap: dict) -> None:
        """The volume of an encrypted manual snapshot or copy, made when its files are (blocking)."""
        volume = self._snapshot_volume(snap)
        self._remove_volume(volume)  # left by a snapshot cut short: made again
        snap["dek"] = self._new_volume(volume, snap["kms_key_id"])
        self.store.put_doc("snapshot", snap["id"], snap)

    def _remove_snapshot_volume(self, snap: dict) -> None:
        if snap.get("volume"):
            self._remove_volume(snap["volume"])

    # -- server life -------------------------------------------------------------------------------

    def _open_volumes(self) -> None:
        """Mount every encrypted volume with its key from KMS (blocking). A key KMS will not
        unseal (disabled, deleted) leaves its instance, cluster or snapshot unreadable, as on AWS."""
        volume_of = {
            "instance": lambda d: self.fleet.volume_id(d["id"]),
            "cluster": lambda d: self._cluster_volume(d["id"]),
            "snapshot": lambda d: d["volume"],
            "cluster_snapshot": lambda d: d["volume"],
        }
        for kind, volume in volume_of.items():
            for doc in self.store.list_docs(kind):
                if not doc.get("dek"):
                    continue
                with self.store.acting_for(doc):
                    try:
                        key = self._data_keys.unseal(doc["kms_key_id"], doc["dek"], volume(doc))
                        self.fleet.volumes.open(volume(doc), key)
                    except (ServiceError, EncryptionError) as e:
                        log.error("RDS %s %s stays locked: %s", kind, doc["id"], e)

    async def start(self) -> None:
        await run_blocking(self._open_volumes)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await run_blocking(self.fleet.volumes.close_all)
