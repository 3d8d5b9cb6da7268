"""ImportTable, DescribeImport, ListImports: a new table loaded from the objects under a prefix of a
Strata S3 bucket (DYNAMODB_JSON lines as an export writes them, Amazon Ion text (ion.py), or CSV;
plain, GZIP or ZSTD).

The objects are read through the S3 provider and parsed in a worker thread into a restore file
(backups.py): one record per item, the last of a key winning; a line that is not an item of the
table (bad JSON, a missing or mistyped key) is counted in ErrorCount and skipped, as DynamoDB
does. The table is created CREATING and loaded by the same Restorer a restore uses (durable,
resumed after a restart), then ACTIVE; the import is IN_PROGRESS until then, COMPLETED after.
A source that cannot be read (no bucket, no object) fails the import and creates no table.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import secrets
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import zstandard

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import FileBody
from strata.services.base import run_blocking
from strata.services.dynamodb import ion
from strata.services.dynamodb import items as itm
from strata.services.dynamodb.backups import write_file
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import resource_in_use, validation
from strata.services.dynamodb.s3_access import authorize_s3
from strata.services.dynamodb.state import scope_of
from strata.services.dynamodb.store import dumps
from strata.services.dynamodb.tables import build_table
from strata.services.dynamodb.types import check_value
from strata.sim.clock import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_imports (
    arn TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    table_arn TEXT NOT NULL,
    description TEXT NOT NULL
);
"""


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _binary(value: Any) -> Any:
    """DynamoDB JSON to the wire shape: base64 text of B/BS values to bytes, at any depth."""
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            if k == "B" and isinstance(v, str):
                out[k] = base64.b64decode(v)
            elif k == "BS" and isinstance(v, list):
                out[k] = [base64.b64decode(x) for x in v]
            else:
                out[k] = _binary(v)
        return out
    if isinstance(value, list):
        return [_binary(v) for v in value]
    return value


def parse(
    bodies: list[bytes], fmt: str, options: dict, types: dict[str, str], meta: Any
) -> tuple[dict[tuple[bytes, bytes], bytes], int, int]:
    """Items of the table from the source objects: {(pk, sk): stored bytes}, lines read, errors."""
    found: dict[tuple[bytes, bytes], bytes] = {}
    lines = errors = 0
    for body in bodies:
        if fmt == "CSV":
            opts = options.get("Csv") or {}
            reader = csv.reader(io.StringIO(body.decode()), delimiter=opts.get("Delimiter") or ",")
            header = opts.get("HeaderList") or next(reader, None) or []
            rows: Any = (dict(zip(header, row, strict=False)) for row in reader)
        elif fmt == "ION":
            rows = ion.read_items(body)
        else:
            rows = (line for line in body.decode().splitlines() if line.strip())
        for row in rows:
            lines += 1
            try:
                if row is None:
                    raise ValueError("not an item")
                if fmt == "ION":
                    item = row
                elif fmt == "CSV":
                    item = {}
                    for name, text in row.items():
                        t = types.get(name, "S")
                        if text == "" and name not in types:
                            continue
                        item[name] = {t: base64.b64decode(text) if t == "B" else text}
                else:
                    item = _binary(json.loads(row)["Item"])
                item = {k: check_value(v)[0] for k, v in item.items()}
                pk, sk = itm.key_of_item(meta, item)
                itm.check_index_keys(meta, item)
            except Exception:  # noqa: BLE001 - any line that is not an item of the table is an error
                errors += 1
                continue
            found[(pk, sk)] = dumps(item)
    return found, lines, errors


def _decompress(raw: bytes, compression: str, key: str) -> bytes:
    """One source object's bytes as the import's InputCompressionType says they are stored; data
    that is not what it says fails the import (never the request)."""
    try:
        if compression == "GZIP":
            return gzip.decompress(raw)
        if compression == "ZSTD":
            # a frame written by a streaming compressor has no content size: read it as a stream
            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
        raise ServiceError(
            "InvalidCompression", f"The object {key} is not {compression}-compressed data: {e}", 400
        ) from None
    return raw


async def _read_object(s3: Any, ctx: RequestContext, bucket: str, key: str) -> bytes:
    body = (await s3.get_object(ctx, {"Bucket": bucket, "Key": key}))["Body"]
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, FileBody):

        def read() -> bytes:
            with open(body.path, "rb") as f:
                f.seek(body.offset)
                return f.read() if body.length is None else f.read(body.length)

        return await run_blocking(read)
    return b"".join([bytes(piece) async for piece in body])


class ImportOperations(DynamoDBCore):
    """Imports from S3 (see the module docstring)."""

    def _imports_ready(self) -> None:
        if not getattr(self, "_imports_schema", False):
            self.state.store.db.executescript(SCHEMA)
            self._imports_schema = True

    def _save_import(self, desc: dict, scope: str) -> None:
        self.state.store.w.execute(
            "INSERT INTO ddb_imports(arn, scope, table_arn, description) VALUES (?,?,?,?) "
            "ON CONFLICT(arn) DO UPDATE SET description = excluded.description",
            (desc["ImportArn"], scope, desc["TableArn"], json.dumps(desc)),
        )

    def _import_status(self, desc: dict, scope: str) -> dict:
        """An IN_PROGRESS import whose table is loaded and ACTIVE is COMPLETED (recorded so)."""
        if desc["ImportStatus"] == "IN_PROGRESS":
            meta = self.state.tables.get((scope, desc["TableArn"].split(":table/", 1)[1]))
            if meta is None and self.state.creating:
                self.state.promote_restored()
                meta = self.state.tables.get((scope, desc["TableArn"].split(":table/", 1)[1]))
            if meta is not None and meta.table_id == desc["TableId"]:
                desc.update(ImportStatus="COMPLETED", EndTime=clock.time())
                with self.state.store.write():
                    self._save_import(desc, scope)
        return desc

    def _import_by_token(self, scope: str, token: str) -> dict | None:
        since = clock.time() - 8 * 3600  # a ClientToken names the same import for 8 hours
        for (text,) in self.state.store.r.execute(
            "SELECT description FROM ddb_imports WHERE scope = ?", (scope,)
        ):
            desc = json.loads(text)
            if desc.get("ClientToken") == token and desc["StartTime"] >= since:
                return desc
        return None

    @staticmethod
    def _import_wire(desc: dict) -> dict:
        out = {k: v for k, v in desc.items() if v is not None}
        for member in ("StartTime", "EndTime"):
            if member in out:
                out[member] = _ts(out[member])
        return out

    async def import_table(self, ctx: RequestContext, req: dict) -> dict:
        self._imports_ready()
        scope = scope_of(ctx)
        params = dict(req["TableCreationParameters"])
        for member in ("SSESpecification", "VectorIndexes"):  # not performed here: refused
            if params.get(member) and (member != "SSESpecification" or params[member].get("Enabled")):
                raise validation(f"TableCreationParameters.{member} is not supported by Strata")
        if req.get("InputFormatOptions") and req["InputFormat"] != "CSV":  # only CSV has options
            raise validation("Unsupported InputFormatOptions for the given input format")
        token = req.get("ClientToken")
        if token:
            known = self._import_by_token(scope, token)
            if known is not None:
                if any(
                    known.get(k) != req.get(k)
                    for k in ("S3BucketSource", "InputFormat", "TableCreationParameters")
                ):
                    raise ServiceError(
                        "ImportConflictException",
                        "There was a conflict when importing from the specified S3 source. This can occur when "
                        "the current import conflicts with a previous import request that had the same client token.",
                        400,
                    )
                return {"ImportTableDescription": self._import_wire(self._import_status(known, scope))}
        name = params.get("TableName")
        if self.state.find(ctx, name) is not None:
            raise resource_in_use(f"Table already exists: {name}")
        self._table_operation(ctx, creates=True)
        store = self.state.store
        now = clock.time()
        with store.write():
            meta = build_table(
                params, scope, ctx.region, ctx.account_id, store.next_id("table"),
                lambda: store.next_id("index"), now,
            )  # fmt: skip
            self._check_quotas(meta)
        source = req["S3BucketSource"]
        import_id = f"{int(now * 1000):013d}-{secrets.token_hex(4)}"
        desc: dict = {
            "ImportArn": f"{meta.arn}/import/{import_id}",
            "ImportStatus": "IN_PROGRESS",
            "TableArn": meta.arn,
            "TableId": meta.table_id,
            "ClientToken": req.get("ClientToken"),
            "S3BucketSource": source,
            "ErrorCount": 0,
            "InputFormat": req["InputFormat"],
            "InputFormatOptions": req.get("InputFormatOptions"),
            "InputCompressionType": req.get("InputCompressionType") or "NONE",
            "TableCreationParameters": req["TableCreationParameters"],
            "StartTime": now,
        }
        try:
            bodies, size = await self._read_source(ctx, source, desc["InputCompressionType"])
            types = {d["AttributeName"]: d["AttributeType"] for d in meta.attribute_definitions}
            found, lines, errors = await run_blocking(
                parse, bodies, req["InputFormat"], req.get("InputFormatOptions") or {}, types, meta
            )
        except ServiceError as e:
            desc.update(
                ImportStatus="FAILED",
                FailureCode=f"S3{e.code}",
                FailureMessage=e.message,
                EndTime=clock.time(),
            )
            await store.db.write(lambda: self._save_import(desc, scope))
            return {"ImportTableDescription": self._import_wire(desc)}
        desc.update(
            ProcessedSizeBytes=size, ProcessedItemCount=lines, ErrorCount=errors, ImportedItemCount=len(found)
        )
        path = self.restorer.directory / f"{uuid.uuid4().hex}.bak"
        await run_blocking(
            write_file, path, lambda write: [write(pk, sk, blob) for (pk, sk), blob in sorted(found.items())]
        )
        meta.status = "CREATING"
        meta.restore = {
            "file": path.name,
            "done": 0,
            "loaded": False,
            "ready_at": now,
            "temporary": True,
            "import_arn": desc["ImportArn"],
            "restore_time": now,
        }

        def register() -> None:
            store.insert_table(meta.to_json())
            self._save_import(desc, scope)

        await store.db.write(register)
        self.state.creating[(scope, meta.name)] = meta
        self.bulk.spawn(self.restorer.load(meta))
        return {"ImportTableDescription": self._import_wire(desc)}

    async def _read_source(
        self, ctx: RequestContext, source: dict, compression: str
    ) -> tuple[list[bytes], int]:
        s3 = self.runtime.peer("s3")
        bucket = source["S3Bucket"]
        row = s3.store.bucket(bucket) if s3 is not None else None
        if row is None:
            raise ServiceError("NoSuchBucket", "The specified bucket does not exist", 404)
        owner = row.config.get("owner", ctx.account_id)
        if source.get("S3BucketOwner") not in (None, owner) or (
            owner != ctx.account_id and not source.get("S3BucketOwner")
        ):
            raise ServiceError("AccessDenied", "Access Denied", 403)
        authorize_s3(
            self.runtime, ctx, "ListObjectsV2", {"Bucket": bucket, "Prefix": source.get("S3KeyPrefix") or ""}
        )
        keys: list[str] = []
        token = None
        while True:
            page_req = {"Bucket": bucket, "Prefix": source.get("S3KeyPrefix") or ""}
            if token:
                page_req["ContinuationToken"] = token
            page = await s3.list_objects_v2(ctx, page_req)
            keys += [o["Key"] for o in page.get("Contents") or [] if not o["Key"].endswith("/")]
            token = page.get("NextContinuationToken")
            if not token:
                break
        if not keys:
            raise ServiceError("NoSuchKey", "No objects found under the given S3KeyPrefix", 404)
        bodies, size = [], 0
        for key in keys:
            authorize_s3(self.runtime, ctx, "GetObject", {"Bucket": bucket, "Key": key})
            raw = await _read_object(s3, ctx, bucket, key)
            size += len(raw)
            bodies.append(_decompress(raw, compression, key))
        return bodies, size

    def describe_import(self, ctx: RequestContext, req: dict) -> dict:
        self._imports_ready()
        scope = scope_of(ctx)
        row = self.state.store.r.execute(
            "SELECT description FROM ddb_imports WHERE arn = ? AND scope = ?", (req["ImportArn"], scope)
        ).fetchone()
        if row is None:
            raise ServiceError("ImportNotFoundException", f"Import not found: {req['ImportArn']}", 400)
        return {"ImportTableDescription": self._import_wire(self._import_status(json.loads(row[0]), scope))}

    def list_imports(self, ctx: RequestContext, req: dict) -> dict:
        self._imports_ready()
        scope = scope_of(ctx)
        limit = req.get("PageSize") or 25
        sql, args = "SELECT arn, description FROM ddb_imports WHERE scope = ?", [scope]
        if req.get("TableArn"):
            sql += " AND table_arn = ?"
            args.append(req["TableArn"])
        if req.get("NextToken"):
            sql += " AND arn > ?"
            args.append(req["NextToken"])
        rows = self.state.store.r.execute(sql + " ORDER BY arn LIMIT ?", (*args, limit + 1)).fetchall()
        keep = (
            "ImportArn",
            "ImportStatus",
            "TableArn",
            "S3BucketSource",
            "InputFormat",
            "StartTime",
            "EndTime",
        )
        summaries = []
        for _, text in rows[:limit]:
            desc = self._import_wire(self._import_status(json.loads(text), scope))
            summaries.append({k: desc[k] for k in keep if k in desc})
        out: dict = {"ImportSummaryList": summaries}
        if len(rows) > limit:
            out["NextToken"] = rows[limit - 1][0]
        return out
