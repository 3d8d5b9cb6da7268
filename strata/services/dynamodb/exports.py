"""ExportTableToPointInTime, DescribeExport, ListExports: a table as it was at an instant of its
point-in-time recovery window, written into a Strata S3 bucket in DynamoDB's export layout.

    <S3Prefix>/AWSDynamoDB/<export id>/manifest-summary.json   what was exported (ExportManifest)
                                      /manifest-summary.md5
                                      /manifest-files.json     one JSON line per data file
                                      /manifest-files.md5
                                      /data/<name>.json.gz     DYNAMODB_JSON: one {"Item": ...} a line
                                      /data/<name>.ion.gz      ION: one $ion_1_0 {Item:{...}} a line

The items come from pitr.export (current items with the undo log applied, a consistent snapshot
read in a worker thread), so an export needs PITR on, as in DynamoDB. An export is IN_PROGRESS
while it runs in the background and COMPLETED or FAILED after (a missing bucket fails it the way
DynamoDB does: asynchronously, with FailureCode S3NoSuchBucket). Its description is kept durably
in `ddb_exports`; one interrupted by a restart is FAILED (nothing half-written is reported done).
The objects are written through the S3 provider, so they are ordinary objects of the bucket.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.dynamodb import incremental, ion, pitr
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.s3_access import authorize_s3
from strata.services.dynamodb.state import scope_of, table_name
from strata.services.dynamodb.store import loads
from strata.sim.clock import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_exports (
    arn TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    table_arn TEXT NOT NULL,
    started REAL NOT NULL,
    description TEXT NOT NULL
);
"""
ITEMS_PER_FILE = 100_000
_TOKEN_HOURS = 8  # a ClientToken names the same export for 8 hours


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def dynamodb_json(value: Any) -> Any:
    """An item (or attribute value) in DynamoDB JSON: binaries base64-encoded."""
    if isinstance(value, dict):
        return {k: dynamodb_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dynamodb_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


def _check_export_type(req: dict) -> bool:
    """Whether the request is an incremental export; DynamoDB's ValidationExceptions for an
    ExportType and IncrementalExportSpecification that do not go together."""
    kind, spec = req.get("ExportType"), req.get("IncrementalExportSpecification")
    if spec is not None and kind is None:
        raise validation(
            "Invalid Request: Export Type expected to be Incremental Export when incremental export "
            "specification is provided"
        )
    if spec is not None and kind == "FULL_EXPORT":
        raise validation(
            "Invalid Request: When Export Type is Full Export , Incremental Export Specification should not be provided"
        )
    if kind != "INCREMENTAL_EXPORT":
        return False
    if spec is None:
        raise validation(
            "Invalid Request: Incremental Export Specification expected when export type is set as Incremental Export"
        )
    if spec.get("ExportFromTime") is None:
        raise validation("Invalid Request: ExportFromTime must be provided in IncrementalExportSpecification")
    if req.get("ExportTime") is not None:
        raise validation(
            "Invalid Request: ExportTime should not be provided when Export Type is Incremental Export"
        )
    return True


def _bad_window(message: str) -> ServiceError:
    return ServiceError("InvalidExportTimeException", message, 400)


def _incremental_window(req: dict, earliest: float, now: float) -> tuple[float, float, str]:
    """(from, to, view) of an incremental export, checked as DynamoDB checks them: inside the
    point-in-time recovery window, not in the future, at least 15 minutes and at most 24 hours."""
    spec = req["IncrementalExportSpecification"]
    start = spec["ExportFromTime"].timestamp()
    end = spec["ExportToTime"].timestamp() if spec.get("ExportToTime") is not None else now
    seconds = "%Y-%m-%dT%H:%M:%SZ"
    if start < earliest or start >= end:
        raise _bad_window(
            "Incremental export period from time cannot be less than the table creation time : "
            + _ts(earliest).strftime(seconds)
        )
    if end > now:
        raise _bad_window(
            "Incremental export period to time cannot be greater than the current time : "
            + _ts(now).strftime(seconds)
        )
    if end - start < incremental.MIN_WINDOW:
        raise _bad_window(
            "Difference between export period from time and export period to time is less than 15 minutes"
        )
    if end - start > incremental.MAX_WINDOW:
        raise _bad_window(
            "Difference between export period from time and export period to time is more than 24 hours"
        )
    return start, end, spec.get("ExportViewType") or "NEW_AND_OLD_IMAGES"


def _export_not_found(arn: object) -> ServiceError:
    return ServiceError("ExportNotFoundException", f"Export not found: {arn}", 400)


class ExportOperations(DynamoDBCore):
    """Exports to S3 (see the module docstring)."""

    def _exports_ready(self) -> None:
        if not getattr(self, "_exports_schema", False):
            self.state.store.db.executescript(SCHEMA)
            self._exports_schema = True

    async def start(self) -> None:
        await super().start()
        self._exports_ready()
        store = self.state.store
        rows = store.w.execute("SELECT arn, description FROM ddb_exports").fetchall()
        stale = [(arn, json.loads(d)) for arn, d in rows if json.loads(d)["ExportStatus"] == "IN_PROGRESS"]
        if stale:
            with store.write():
                for arn, desc in stale:
                    desc.update(
                        ExportStatus="FAILED",
                        FailureCode="Interrupted",
                        FailureMessage="The export was interrupted by a restart of the server",
                        EndTime=clock.time(),
                    )
                    self._save_export(arn, desc)

    def _save_export(self, arn: str, desc: dict, scope: str = "", started: float = 0.0) -> None:
        self.state.store.w.execute(
            "INSERT INTO ddb_exports(arn, scope, table_arn, started, description) VALUES (?,?,?,?,?) "
            "ON CONFLICT(arn) DO UPDATE SET description = excluded.description",
            (arn, scope, desc["TableArn"], started, json.dumps(desc)),
        )

    def _load_export(self, ctx: RequestContext, arn: object) -> dict:
        self._exports_ready()
        row = self.state.store.r.execute(
            "SELECT description FROM ddb_exports WHERE arn = ? AND scope = ?", (arn, scope_of(ctx))
        ).fetchone()
        if row is None:
            raise _export_not_found(arn)
        return json.loads(row[0])

    @staticmethod
    def _export_wire(desc: dict) -> dict:
        out = dict(desc)
        for member in ("StartTime", "EndTime", "ExportTime"):
            if out.get(member) is not None:
                out[member] = _ts(out[member])
        if out.get("IncrementalExportSpecification"):
            spec = dict(out["IncrementalExportSpecification"])
            spec.update(ExportFromTime=_ts(spec["ExportFromTime"]), ExportToTime=_ts(spec["ExportToTime"]))
            out["IncrementalExportSpecification"] = spec
        return {k: v for k, v in out.items() if v is not None}

    async def export_table_to_point_in_time(self, ctx: RequestContext, req: dict) -> dict:
        self._exports_ready()
        incremental = _check_export_type(req)
        arn = req["TableArn"]
        meta = self.state.tables.get((scope_of(ctx), table_name(arn)))
        if meta is None or meta.arn != arn:
            raise ServiceError("TableNotFoundException", f"Table not found: {arn}", 400)
        if not meta.pitr:
            raise ServiceError(
                "PointInTimeRecoveryUnavailableException",
                f"Point in time recovery is not enabled for table '{meta.name}'",
                400,
            )
        now = clock.time()
        earliest, _ = pitr.window(meta, now)
        at = req["ExportTime"].timestamp() if req.get("ExportTime") is not None else now
        span = _incremental_window(req, earliest, now) if incremental else None
        if span is None and (at < earliest or at > now):
            raise ServiceError(
                "InvalidExportTimeException",
                "ExportTime must be within the point in time recovery window of the table: "
                f"{_iso(earliest)} - {_iso(now)}",
                400,
            )
        token = req.get("ClientToken")
        if token:
            known = self._export_by_token(ctx, token, now)
            if known is not None:
                same = all(
                    known.get(k) == v
                    for k, v in (
                        ("TableArn", arn),
                        ("S3Bucket", req["S3Bucket"]),
                        ("S3Prefix", req.get("S3Prefix")),
                    )
                )
                if not same:
                    raise ServiceError(
                        "ExportConflictException",
                        "There was a conflict when writing to the specified S3 bucket.",
                        400,
                    )
                return {"ExportDescription": self._export_wire(known)}
        export_id = f"{int(now * 1000):013d}-{secrets.token_hex(4)}"
        export_arn = f"{meta.arn}/export/{export_id}"
        desc: dict = {
            "ExportArn": export_arn,
            "ExportStatus": "IN_PROGRESS",
            "StartTime": now,
            "TableArn": meta.arn,
            "TableId": meta.table_id,
            "ExportTime": None if span else at,
            "ClientToken": token or secrets.token_hex(16),
            "S3Bucket": req["S3Bucket"],
            "S3BucketOwner": req.get("S3BucketOwner"),
            "S3Prefix": req.get("S3Prefix"),
            "S3SseAlgorithm": req.get("S3SseAlgorithm") or "AES256",
            "ExportFormat": req.get("ExportFormat") or "DYNAMODB_JSON",
            "ExportType": req.get("ExportType") or "FULL_EXPORT",
        }
        if span is not None:
            desc["IncrementalExportSpecification"] = {
                "ExportFromTime": span[0],
                "ExportToTime": span[1],
                "ExportViewType": span[2],
            }
        scope = scope_of(ctx)
        await self.state.store.db.write(lambda: self._save_export(export_arn, desc, scope, now))
        self.bulk.spawn(self._run_export(ctx, meta.tid, list(meta.key_names), export_id, desc))
        return {"ExportDescription": self._export_wire(desc)}

    def _export_by_token(self, ctx: RequestContext, token: str, now: float) -> dict | None:
        rows = self.state.store.r.execute(
            "SELECT description FROM ddb_exports WHERE scope = ? AND started >= ?",
            (scope_of(ctx), now - _TOKEN_HOURS * 3600),
        ).fetchall()
        for (text,) in rows:
            desc = json.loads(text)
            if desc.get("ClientToken") == token:
                return desc
        return None

    async def _run_export(
        self, ctx: RequestContext, tid: int, key_names: list[str], export_id: str, desc: dict
    ) -> None:
        try:
            await self._write_export(ctx, tid, key_names, export_id, desc)
            desc["ExportStatus"] = "COMPLETED"
        except ServiceError as e:
            desc.update(ExportStatus="FAILED", FailureCode=f"S3{e.code}", FailureMessage=e.message)
        except Exception as e:  # noqa: BLE001 - whatever broke, the export is reported failed
            desc.update(ExportStatus="FAILED", FailureCode="InternalError", FailureMessage=str(e))
        desc["EndTime"] = clock.time()
        await self.state.store.db.write(lambda: self._save_export(desc["ExportArn"], desc))

    async def _write_export(
        self, ctx: RequestContext, tid: int, key_names: list[str], export_id: str, desc: dict
    ) -> None:
        s3 = self.runtime.peer("s3")
        if s3 is None:
            raise ServiceError("NoSuchBucket", "The specified bucket does not exist", 404)
        bucket = s3.store.bucket(desc["S3Bucket"])
        if bucket is None:
            raise ServiceError("NoSuchBucket", "The specified bucket does not exist", 404)
        owner = bucket.config.get("owner", ctx.account_id)
        if owner != ctx.account_id and owner != desc.get("S3BucketOwner"):
            raise ServiceError("AccessDenied", "Access Denied", 403)
        lines: list[bytes] = []
        as_ion = desc["ExportFormat"] == "ION"
        spec = desc.get("IncrementalExportSpecification")
        if spec:
            keys, view = key_names, spec["ExportViewType"]

            def change(c: incremental.Change) -> None:
                rec = incremental.record(c, keys, view)
                lines.append(
                    incremental.ion_line(rec) if as_ion else incremental.json_line(rec, dynamodb_json)
                )

            await run_blocking(
                incremental.changes,
                self.state.store.snapshot_source,
                tid,
                spec["ExportFromTime"],
                spec["ExportToTime"],
                change,
            )
        else:

            def collect(_pk: bytes, _sk: bytes, blob: bytes) -> None:
                if as_ion:
                    lines.append(ion.item_line(loads(blob)))
                    return
                lines.append(json.dumps({"Item": dynamodb_json(loads(blob))}, separators=(",", ":")).encode())

            await run_blocking(
                pitr.export, self.state.store.snapshot_source, tid, desc["ExportTime"], collect
            )
        base = f"{desc['S3Prefix'].rstrip('/')}/" if desc.get("S3Prefix") else ""
        root = f"{base}AWSDynamoDB/{export_id}/"

        async def put(key: str, body: bytes) -> dict:
            authorize_s3(self.runtime, ctx, "PutObject", {"Bucket": desc["S3Bucket"], "Key": key})
            return await s3.put_object(ctx, {"Bucket": desc["S3Bucket"], "Key": key, "Body": body})

        await put(root + "_started", b"")
        files, billed = [], 0
        for start in range(0, max(len(lines), 1), ITEMS_PER_FILE):
            chunk = lines[start : start + ITEMS_PER_FILE]
            if not chunk and start:
                break
            body = gzip.compress(b"".join(line + b"\n" for line in chunk), mtime=0)
            key = f"{root}data/{secrets.token_hex(13)}.{'ion' if as_ion else 'json'}.gz"
            out = await put(key, body)
            billed += sum(len(line) for line in chunk)
            files.append(
                {
                    "itemCount": len(chunk),
                    "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode(),
                    "etag": out["ETag"].strip('"'),
                    "dataFileS3Key": key,
                }
            )
        manifest_files = "".join(json.dumps(f) + "\n" for f in files).encode()
        await put(root + "manifest-files.json", manifest_files)
        await put(root + "manifest-files.md5", hashlib.md5(manifest_files).hexdigest().encode())
        end = clock.time()
        summary = {
            "version": "2020-06-30",
            "exportArn": desc["ExportArn"],
            "startTime": _iso(desc["StartTime"]),
            "endTime": _iso(end),
            "tableArn": desc["TableArn"],
            "tableId": desc["TableId"],
            "exportTime": _iso(desc["ExportTime"]) if desc.get("ExportTime") is not None else None,
            "s3Bucket": desc["S3Bucket"],
            "s3Prefix": desc.get("S3Prefix"),
            "s3SseAlgorithm": desc["S3SseAlgorithm"],
            "s3SseKmsKeyId": None,
            "manifestFilesS3Key": root + "manifest-files.json",
            "billedSizeBytes": billed,
            "itemCount": len(lines),
            "outputFormat": desc["ExportFormat"],
            "exportType": desc["ExportType"],
        }
        if spec:
            summary.update(
                exportFromTime=_iso(spec["ExportFromTime"]),
                exportToTime=_iso(spec["ExportToTime"]),
                outputView=spec["ExportViewType"],
            )
            del summary["exportTime"]
        summary_body = json.dumps(summary).encode()
        await put(root + "manifest-summary.json", summary_body)
        await put(root + "manifest-summary.md5", hashlib.md5(summary_body).hexdigest().encode())
        desc.update(
            ExportManifest=root + "manifest-summary.json", ItemCount=len(lines), BilledSizeBytes=billed
        )

    def describe_export(self, ctx: RequestContext, req: dict) -> dict:
        return {"ExportDescription": self._export_wire(self._load_export(ctx, req["ExportArn"]))}

    def list_exports(self, ctx: RequestContext, req: dict) -> dict:
        self._exports_ready()
        limit = req.get("MaxResults") or 25
        sql = "SELECT arn, description FROM ddb_exports WHERE scope = ?"
        args: list = [scope_of(ctx)]
        if req.get("TableArn"):
            sql += " AND table_arn = ?"
            args.append(req["TableArn"])
        if req.get("NextToken"):
            sql += " AND arn > ?"
            args.append(req["NextToken"])
        rows = self.state.store.r.execute(sql + " ORDER BY arn LIMIT ?", (*args, limit + 1)).fetchall()
        out: dict = {
            "ExportSummaries": [
                {k: json.loads(d)[k] for k in ("ExportArn", "ExportStatus", "ExportType")}
                for _, d in rows[:limit]
            ]
        }
        if len(rows) > limit:
            out["NextToken"] = rows[limit - 1][0]
        return out
