"""The EBS direct APIs: snapshots written and read block by block, over EC2's snapshot store.

StartSnapshot records a `pending` snapshot in EC2's store (so DescribeSnapshots shows it, and a
CreateVolume can restore it once completed); with ParentSnapshotId it starts as a copy of the
parent's block map. PutSnapshotBlock verifies the SHA256 checksum and writes one 512 KiB block
durably; CompleteSnapshot checks the count and (optional) linear aggregate checksum of the blocks
written and completes it. GetSnapshotBlock, ListSnapshotBlocks and ListChangedBlocks read any
completed snapshot, however it was made (CreateSnapshot, CopySnapshot or these APIs). A pending
snapshot not completed within its Timeout goes to `error`, from the simulated clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.ec2 import limits as lim
from strata.services.ec2.limits import BLOCK_SIZE, GIB
from strata.services.ec2.snapshots import current_state
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.sim.meter import meter

TOKEN_LIFETIME = 7 * 86400.0  # AWS: block tokens expire after seven days
BLOCKS_PER_GIB = GIB // BLOCK_SIZE


def validation(message: str, reason: str = "INVALID_PARAMETER_VALUE") -> ServiceError:
    return ServiceError("ValidationException", message, 400, fields={"Reason": reason})


def not_found(snapshot_id: str) -> ServiceError:
    return ServiceError(
        "ResourceNotFoundException",
        f"The snapshot '{snapshot_id}' does not exist.",
        404,
        fields={"Reason": "SNAPSHOT_NOT_FOUND"},
    )


def _token(snapshot_id: str, idx: int, block_id: str) -> str:
    return base64.b64encode(f"{snapshot_id}:{idx}:{block_id}".encode()).decode()


def _untoken(token: str | None) -> tuple[str, int, str]:
    try:
        snapshot_id, idx, block_id = base64.b64decode(token or "", validate=True).decode().split(":")
        return snapshot_id, int(idx), block_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise validation("The block token is not valid.", "INVALID_BLOCK_TOKEN") from None


@refusing("ebs")
class EBSProvider:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    @property
    def ec2(self) -> Any:
        ec2 = self.runtime.peer("ec2")
        if ec2 is None:
            raise ServiceError("InternalServerException", "EC2's snapshot store is not running.", 500)
        return ec2

    # -- records -----------------------------------------------------------------------------------

    def _doc(self, ctx: RequestContext, snapshot_id: str | None) -> dict:
        doc = self.ec2.store.get_doc("snapshot", snapshot_id or "")
        if doc is None or doc["region"] != ctx.region:
            raise not_found(snapshot_id or "")
        if doc["account"] != ctx.account_id and not self.ec2._may_restore(ctx, doc):
            raise not_found(snapshot_id or "")
        doc["state"] = current_state(doc)
        return doc

    def _completed(self, ctx: RequestContext, snapshot_id: str | None) -> dict:
        doc = self._doc(ctx, snapshot_id)
        if doc["state"] != "completed":
            raise validation(f"The snapshot '{doc['id']}' is not completed.", "INVALID_SNAPSHOT_ID")
        return doc

    def _pending(self, ctx: RequestContext, snapshot_id: str | None) -> dict:
        doc = self._doc(ctx, snapshot_id)
        if doc["state"] != "pending" or doc["account"] != ctx.account_id:
            raise validation(
                f"The snapshot '{doc['id']}' is not in the pending state.", "INVALID_SNAPSHOT_ID"
            )
        return doc

    # -- writing -----------------------------------------------------------------------------------

    async def start_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        ec2 = self.ec2
        size = req["VolumeSize"]
        if not 1 <= size <= 65536:
            raise validation(f"The volume size {size} GiB is not valid.", "INVALID_VOLUME_SIZE")
        timeout = req.get("Timeout") or 60
        if not 10 <= timeout <= 4320:
            raise validation("Timeout must be between 10 and 4320 minutes.")
        token = req.get("ClientToken")
        if token:
            seen = ec2.store.get_doc("ebs-token", f"{ctx.account_id}:{ctx.region}:{token}")
            if seen and ec2.store.get_doc("snapshot", seen["snapshot"]):
                return self._started(ec2.store.get_doc("snapshot", seen["snapshot"]))
        parent = self._completed(ctx, req["ParentSnapshotId"]) if req.get("ParentSnapshotId") else None
        if parent is not None and size < parent["volume_size"]:
            raise validation("The volume size cannot be smaller than the parent's.", "INVALID_VOLUME_SIZE")
        encrypted = bool(req.get("Encrypted")) or ec2.crypto.by_default(ctx)
        if parent is not None and parent["encrypted"] and not encrypted:
            raise validation(
                "The snapshot of an encrypted parent must be encrypted.", "INVALID_PARAMETER_VALUE"
            )
        if req.get("KmsKeyArn") and not encrypted:
            raise validation("KmsKeyArn requires Encrypted.", "INVALID_CUSTOMER_KEY")
        kms_key = None
        if encrypted:
            try:
                if req.get("KmsKeyArn"):
                    kms_key = ec2.crypto.resolve(ctx, req["KmsKeyArn"])
                elif parent is not None and parent["encrypted"]:
                    kms_key = parent["kms_key"]
                else:
                    kms_key = ec2.crypto.default_key(ctx)
            except ServiceError as e:
                raise validation(e.message, "INVALID_CUSTOMER_KEY") from None
        tags = {}
        for tag in req.get("Tags") or []:
            if not tag.get("Key"):
                raise validation("Tag keys cannot be empty.", "INVALID_TAG")
            tags[tag["Key"]] = tag.get("Value") or ""
        doc = await run_blocking(
            self._start, ctx, size, parent, kms_key, tags, req.get("Description") or "", timeout
        )
        if token:
            ec2.store.put_doc("ebs-token", f"{ctx.account_id}:{ctx.region}:{token}", {"snapshot": doc["id"]})
        return self._started(doc)

    def _start(
        self,
        ctx: RequestContext,
        size: int,
        parent: dict | None,
        kms_key: str | None,
        tags: dict,
        description: str,
        timeout: int,
    ) -> dict:
        ec2 = self.ec2
        snapshot_id = lim.new_id("snap")
        dek = None
        if kms_key is not None:
            if parent is not None and parent["encrypted"] and parent["kms_key"] == kms_key:
                dek = parent["dek"]
            else:
                dek, plain = ec2.crypto.new_data_key(ctx, kms_key)
                ec2.crypto.remember(dek, plain)
        if parent is not None:
            if parent.get("dek") == dek:
                ec2.blocks.copy_map(parent["id"], snapshot_id)
            else:
                target = ec2.crypto.sealer(ctx, {"dek": dek, "kms_key": kms_key})
                ec2.blocks.copy_resealed(parent["id"], ec2.crypto.sealer(ctx, parent), snapshot_id, target)
        doc = {
            "id": snapshot_id,
            "account": ctx.account_id,
            "region": ctx.region,
            "volume_id": "vol-ffffffff",
            "volume_size": size,
            "state": "pending",
            "start": clock.time(),
            "description": description,
            "encrypted": kms_key is not None,
            "kms_key": kms_key,
            "dek": dek,
            "tags": tags,
            "permissions": {"users": [], "groups": []},
            "parent": parent["id"] if parent else None,
            "timeout": timeout,
            "direct": True,
        }
        ec2.store.put_doc("snapshot", snapshot_id, doc)
        return doc

    @staticmethod
    def _started(doc: dict) -> dict:
        out: dict[str, Any] = {
            "SnapshotId": doc["id"],
            "OwnerId": doc["account"],
            "Status": doc["state"],
            "StartTime": datetime.fromtimestamp(doc["start"], UTC),
            "VolumeSize": doc["volume_size"],
            "BlockSize": BLOCK_SIZE,
            "Description": doc["description"],
            "Tags": [{"Key": k, "Value": v} for k, v in doc["tags"].items()],
            "SseType": "sse-ebs" if doc["encrypted"] else "none",
        }
        if doc.get("parent"):
            out["ParentSnapshotId"] = doc["parent"]
        if doc["encrypted"]:
            out["KmsKeyArn"] = doc["kms_key"]
        return out

    async def put_snapshot_block(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._pending(ctx, req["SnapshotId"])
        idx = req["BlockIndex"]
        if idx < 0 or idx >= doc["volume_size"] * BLOCKS_PER_GIB:
            raise validation(f"Block index {idx} is beyond the end of the volume.", "INVALID_BLOCK")
        if req["DataLength"] != BLOCK_SIZE:
            raise validation(f"DataLength must be {BLOCK_SIZE} bytes.", "INVALID_BLOCK")
        if req.get("ChecksumAlgorithm") != "SHA256":
            raise validation("Only SHA256 checksums are supported.", "INVALID_PARAMETER_VALUE")
        body = req["BlockData"]
        data = await body.read_all(BLOCK_SIZE + 1) if hasattr(body, "read_all") else bytes(body)
        if len(data) != BLOCK_SIZE:
            raise validation(f"The block data is {len(data)} bytes, not DataLength.", "INVALID_BLOCK")
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if checksum != req["Checksum"]:
            raise validation(
                "The checksum of the block data does not match the Checksum given.", "INVALID_BLOCK"
            )
        ec2 = self.ec2
        sealer = ec2.crypto.sealer(ctx, doc)

        def write() -> None:
            ec2.blocks.put_blocks(doc["id"], {idx: data}, sealer)
            with ec2.store.transaction():
                ec2.store.execute(
                    "INSERT INTO direct_puts(snapshot, idx, checksum) VALUES (?,?,?) "
                    "ON CONFLICT(snapshot, idx) DO UPDATE SET checksum = excluded.checksum",
                    (doc["id"], idx, checksum),
                )

        await run_blocking(write)
        return {"Checksum": checksum, "ChecksumAlgorithm": "SHA256"}

    async def complete_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._pending(ctx, req["SnapshotId"])
        ec2 = self.ec2
        rows = ec2.store.query(
            "SELECT checksum FROM direct_puts WHERE snapshot = ? ORDER BY idx", (doc["id"],)
        )
        if req["ChangedBlocksCount"] != len(rows):
            raise validation(
                f"ChangedBlocksCount is {req['ChangedBlocksCount']} but {len(rows)} blocks were written.",
                "INVALID_PARAMETER_VALUE",
            )
        if req.get("Checksum"):
            if req.get("ChecksumAlgorithm") != "SHA256" or req.get("ChecksumAggregationMethod") != "LINEAR":
                raise validation("The aggregate checksum must be SHA256 with the LINEAR aggregation method.")
            joined = b"".join(base64.b64decode(r[0]) for r in rows)
            if base64.b64encode(hashlib.sha256(joined).digest()).decode() != req["Checksum"]:
                raise validation(
                    "The aggregate checksum does not match the blocks written.", "INVALID_PARAMETER_VALUE"
                )

        def complete() -> None:
            with ec2.store.transaction():
                ec2.store.execute("DELETE FROM direct_puts WHERE snapshot = ?", (doc["id"],))
                doc["state"] = "completed"
                doc["incremental_bytes"] = ec2.blocks.stored_bytes(doc["id"], besides=doc.get("parent"))
                doc["full_bytes"] = ec2.blocks.stored_bytes(doc["id"])
                ec2.store.put_doc("snapshot", doc["id"], doc)

        await run_blocking(complete)
        meter.record(
            "ec2", "SnapshotStored", doc["incremental_bytes"], "byte", snapshot=doc["id"], region=ctx.region
        )
        return {"Status": "completed"}

    # -- reading -----------------------------------------------------------------------------------

    async def get_snapshot_block(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._completed(ctx, req["SnapshotId"])
        snapshot_id, idx, block_id = _untoken(req.get("BlockToken"))
        if snapshot_id != doc["id"] or idx != req["BlockIndex"]:
            raise validation(
                "The block token does not name this block of this snapshot.", "INVALID_BLOCK_TOKEN"
            )
        ec2 = self.ec2
        if ec2.blocks.block_of(doc["id"], idx) != block_id:
            raise validation("The block token is not valid.", "INVALID_BLOCK_TOKEN")
        data = await run_blocking(ec2.blocks.read_block, block_id, ec2.crypto.sealer(ctx, doc))
        return {
            "DataLength": len(data),
            "BlockData": data,
            "Checksum": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "ChecksumAlgorithm": "SHA256",
        }

    @staticmethod
    def _window(req: dict) -> tuple[int, int]:
        start = req.get("StartingBlockIndex") or 0
        if req.get("NextToken"):
            try:
                start = max(start, int(base64.b64decode(req["NextToken"], validate=True).decode()))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise validation("The pagination token is not valid.", "INVALID_PAGE_TOKEN") from None
        limit = req.get("MaxResults") or 10000
        if not 100 <= limit <= 10000:
            raise validation("MaxResults must be between 100 and 10000.")
        return start, limit

    def _listing(self, doc: dict, items: list[dict], limit: int) -> dict:
        out: dict[str, Any] = {
            "ExpiryTime": datetime.fromtimestamp(clock.time() + TOKEN_LIFETIME, UTC),
            "VolumeSize": doc["volume_size"],
            "BlockSize": BLOCK_SIZE,
        }
        if len(items) > limit:
            out["NextToken"] = base64.b64encode(str(items[limit]["BlockIndex"]).encode()).decode()
            items = items[:limit]
        return out | {"items": items}

    def list_snapshot_blocks(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._completed(ctx, req["SnapshotId"])
        start, limit = self._window(req)
        items = [
            {"BlockIndex": idx, "BlockToken": _token(doc["id"], idx, block_id)}
            for idx, block_id in self.ec2.blocks.block_map(doc["id"]).items()
            if idx >= start
        ]
        out = self._listing(doc, items, limit)
        out["Blocks"] = out.pop("items")
        return out

    def list_changed_blocks(self, ctx: RequestContext, req: dict) -> dict:
        second = self._completed(ctx, req["SecondSnapshotId"])
        first = self._completed(ctx, req["FirstSnapshotId"]) if req.get("FirstSnapshotId") else None
        if first is not None and (
            first["volume_size"] > second["volume_size"] or first.get("dek") != second.get("dek")
        ):
            raise validation("The snapshots are not related.", "UNRELATED_SNAPSHOTS")
        start, limit = self._window(req)
        blocks = self.ec2.blocks
        new = blocks.block_map(second["id"])
        old = blocks.block_map(first["id"]) if first else {}
        items = []
        for idx in sorted(set(new) | set(old)):
            if idx < start or new.get(idx) == old.get(idx):
                continue
            item: dict[str, Any] = {"BlockIndex": idx}
            if idx in old:
                item["FirstBlockToken"] = _token(first["id"], idx, old[idx])  # type: ignore[index]
            if idx in new:
                item["SecondBlockToken"] = _token(second["id"], idx, new[idx])
            items.append(item)
        out = self._listing(second, items, limit)
        out["ChangedBlocks"] = out.pop("items")
        return out
