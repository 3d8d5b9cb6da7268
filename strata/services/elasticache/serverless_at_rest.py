"""KmsKeyId of a serverless cache: its data at rest under the customer managed key it names.

A cache created with KmsKeyId gets an encrypted volume (strata/storage/encrypted_volumes.py,
`<data>/elasticache/volumes/serverless-<name>.img`) holding its nodes' directories (at_rest.py's
`_encrypted_root`), so dump.rdb, the AOF, nodes.conf and BGSAVE's temporary files are ciphertext
on disk; each of its snapshots gets a volume of its own under the same key
(`sls-snapshot-<name>`), as does a copy (CreateServerlessCacheSnapshot's and
CopyServerlessCacheSnapshot's own KmsKeyId name another key, and encrypt a snapshot of a plain
cache), and a cache restored from such a snapshot is encrypted
under it too (unless its own KmsKeyId names another). The volumes' keys are data keys of that KMS
key, sealed in the records and unsealed when Strata starts: a key disabled or deleted leaves the
cache and its snapshots locked after the next restart (the engines do not start), as on AWS.

A cache created without KmsKeyId is not encrypted here (AWS encrypts it with a key of its own);
the response then names no KmsKeyId. A machine that cannot mount encrypted volumes refuses
KmsKeyId, saying why; so does a key that does not exist or is not enabled (InvalidParameterValue).
"""

from __future__ import annotations

from pathlib import Path

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.elasticache.core import ElastiCacheCore


class ServerlessAtRestOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider (with AtRestOperations)."""

    def _sls_kms_key(self, ctx: RequestContext, req: dict, restore: dict | None) -> str | None:
        """The KMS key ARN a new serverless cache's data is encrypted with, or None."""
        wanted = req.get("KmsKeyId") or (restore or {}).get("_kms_arn")
        if not wanted:
            return None
        self._refuse_unsupported()  # type: ignore[attr-defined]
        # an inherited key is looked up again: it must still be enabled, as on AWS
        return self._data_keys.resolve(ctx.account_id, ctx.region, wanted)  # type: ignore[attr-defined,no-any-return]

    async def _encrypt_serverless(self, doc: dict) -> None:
        """Give a new cache record with a `_kms_arn` its volume, before any node of it exists."""
        if doc.get("_kms_arn"):
            volume = self._sls_volume(doc["id"])  # type: ignore[attr-defined]
            if self.volumes.exists(volume):  # left by a create cut short: made again
                await run_blocking(self.volumes.remove, volume)
            doc["_dek"] = await run_blocking(self._new_volume, volume, doc["_kms_arn"])  # type: ignore[attr-defined]

    async def _remove_serverless_volume(self, doc: dict) -> None:
        volume = self._sls_volume(doc["id"])  # type: ignore[attr-defined]
        if doc.get("_dek") and self.volumes.exists(volume):
            await run_blocking(self.volumes.remove, volume)

    # -- snapshots ---------------------------------------------------------------------------------

    def _sls_snapshot_key(self, ctx: RequestContext, wanted: str | None, inherited: str | None) -> str | None:
        """The KMS key a new snapshot (or copy) is encrypted with: the KmsKeyId it names, else the
        key of what it is taken from (None: plain, as its source)."""
        if not wanted:
            return inherited
        self._refuse_unsupported()  # type: ignore[attr-defined]
        return self._data_keys.resolve(ctx.account_id, ctx.region, wanted)  # type: ignore[attr-defined,no-any-return]

    def _sls_snapshot_root(self, snap: dict) -> Path | None:
        """Where an encrypted snapshot's file lives (its volume's files), or None (plain)."""
        if not snap.get("_dek"):
            return None
        return self.volumes.files(self._sls_snapshot_volume(snap["name"]))  # type: ignore[attr-defined,no-any-return]

    def _encrypt_sls_snapshot(self, snap: dict, key_arn: str | None) -> None:
        """Give a snapshot record of an encrypted cache its own volume under `key_arn` (blocking)."""
        if not key_arn:
            return
        volume = self._sls_snapshot_volume(snap["name"])  # type: ignore[attr-defined]
        if self.volumes.exists(volume):  # left by a snapshot cut short: made again
            self.volumes.remove(volume)
        snap["_dek"] = self._new_volume(volume, key_arn)  # type: ignore[attr-defined]
        snap["_kms_arn"] = key_arn

    def _remove_sls_snapshot_volume(self, name: str) -> None:
        volume = self._sls_snapshot_volume(name)  # type: ignore[attr-defined]
        if self.volumes.exists(volume):
            self.volumes.remove(volume)
