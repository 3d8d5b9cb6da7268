"""Storage encryption (StorageEncrypted, KmsKeyId): an encrypted instance's data is ciphertext on disk.

An instance created with StorageEncrypted=True gets an encrypted volume
(strata/storage/encrypted_volumes.py, `<data>/rds/volumes/instance-<id>.img`) whose directory is
the instance's whole directory (`Fleet.instance_dir`): every node's PGDATA or datadir, the WAL or
binlog archive, the automated base backups. A manual snapshot of it gets a volume of its own
(`snapshot-<id>`), since it outlives the instance. Each volume's key is a data key under the
instance's KMS key (default alias/aws/rds), kept sealed in the record and unsealed when Strata
starts. What follows an encrypted instance is encrypted with its key: snapshots and their copies,
restores from them, point-in-time restores, read replicas.

A KMS key that does not exist or is not enabled is RDS's KMSKeyNotAccessibleFault; a machine that
cannot mount encrypted volumes (no root, no loop devices) refuses StorageEncrypted, saying why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.data_keys import DataKeys
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.storage.encrypted_volumes import EncryptionError, unsupported

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
        if inherited is not None and not req.get("KmsKeyId"):
            return inherited
        return self._data_keys.resolve(self.account, self.region, req.get("KmsKeyId"))

    # -- volumes -----------------------------------------------------------------------------------

    def _new_volume(self, volume: str, key_arn: str, account: str, region: str) -> str:
        """Make an encrypted volume under `key_arn` (blocking); its sealed key, for the record."""
        sealed, plain = self._data_keys.new(account, region, key_arn, volume)
        try:
            self.fleet.volumes.create(volume, plain)
        except EncryptionError as e:  # the machine will not mount it (a container without loop devices)
            raise m.fault(
                "InvalidParameterCombination", f"StorageEncrypted cannot be served here: {e}."
            ) from None
        return sealed

    async def _encrypt_instance(self, doc: dict) -> None:
        """Give a new instance record with a `kms_key_id` its volume, before any of its files exist;
        on failure its ports are released and nothing is recorded."""
        if not doc.get("kms_key_id"):
            return
        try:
            doc["dek"] = await run_blocking(
                self._new_volume,
                self.fleet.volume_id(doc["id"]),
                doc["kms_key_id"],
                self.account,
                self.region,
            )
        except ServiceError:
            self.fleet.ports.release_prefix(f"rds/{self.store.engine_key(doc['id'])}/")
            raise

    def _snapshot_volume(self, snap: dict) -> str:
        return "snapshot-" + self.store.engine_key(snap["id"]).replace(":", "_")

    def _encrypted_snapshot_path(self, snap: dict) -> Path:
        return self.fleet.volumes.files(self._snapshot_volume(snap)) / "data"

    def _make_snapshot_volume(self, snap: dict) -> None:
        """The volume of an encrypted manual snapshot or copy, made when its files are (blocking)."""
        volume = self._snapshot_volume(snap)
        if self.fleet.volumes.exists(volume):  # cut short by a restart: made again
            self.fleet.volumes.remove(volume)
        snap["dek"] = self._new_volume(volume, snap["kms_key_id"], self.account, self.region)
        self.store.put_doc("snapshot", snap["id"], snap)

    def _remove_snapshot_volume(self, snap: dict) -> None:
        if snap.get("volume") and self.fleet.volumes.exists(snap["volume"]):
            self.fleet.volumes.remove(snap["volume"])

    # -- server life -------------------------------------------------------------------------------

    def _open_volumes(self) -> None:
        """Mount every encrypted volume with its key from KMS (blocking). A key KMS will not
        unseal (disabled, deleted) leaves its instance or snapshot unreadable, as on AWS."""
        for kind in ("instance", "snapshot"):
            for doc in self.store.list_docs(kind):
                if not doc.get("dek"):
                    continue
                with self.store.acting_for(doc):
                    volume = self.fleet.volume_id(doc["id"]) if kind == "instance" else doc["volume"]
                    try:
                        account, _ = self.store.split_engine_key(self.store.engine_key(doc["id"]))
                        key = self._data_keys.unseal(
                            account, self.region, doc["kms_key_id"], doc["dek"], volume
                        )
                        self.fleet.volumes.open(volume, key)
                    except (ServiceError, EncryptionError) as e:
                        log.error("RDS %s %s stays locked: %s", kind, doc["id"], e)

    async def start(self) -> None:
        await run_blocking(self._open_volumes)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await run_blocking(self.fleet.volumes.close_all)
