"""DescribeDBLogFiles and DownloadDBLogFilePortion from the engine's real log, and
DescribePendingMaintenanceActions (Strata never schedules maintenance, so none is ever pending).

An instance's log is what its primary engine process writes (PostgreSQL's and MariaDB's server
log: startup, errors, and whatever the parameter group asks for, log_statement=all say), cut into
RDS's hourly files on the simulated clock (log_rotation.py), on MariaDB with its slow query and
general logs (when the parameter group turns them on, slow_query_log / general_log); with the
MARIADB_AUDIT_PLUGIN option also the plugin's log and its size-rotated predecessors
(`audit/server_audit.log`, `audit/server_audit.log.1` ...), written in the data directory.

Paging as RDS does it: without Marker the newest lines (NumberOfLines, at most 10,000); with Marker
"0" the file from its start, NumberOfLines at a time, the returned Marker (a byte offset) naming
where the next portion starts and AdditionalDataPending saying whether the file goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strata.context import RequestContext
from strata.engines.mariadb import MariaNode
from strata.engines.process import EngineError
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.services.rds.listing import filtered, page
from strata.services.rds.log_rotation import (
    MARIADB_ERROR,
    MARIADB_GENERAL,
    MARIADB_RETENTION_MINUTES,
    MARIADB_SLOW,
    PG_RETENTION_MINUTES,
    POSTGRES_ERROR,
    LogNames,
    LogSegment,
    rotate,
    segments,
)
from strata.sim.clock import clock

AUDIT_LOG = "server_audit.log"  # the audit plugin's file in the data directory (options.py)
RETENTION_PARAM = "rds.log_retention_period"  # minutes, PostgreSQL's parameter groups
MAX_LINES = 10_000
MAX_BYTES = 1_000_000  # RDS returns at most 1 MB per portion
TAIL_READ = 16 * MAX_BYTES


def _read(path: Path, start: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


class LogOperations(RDSCore):
    def _engine_logs(self, doc: dict) -> tuple[list[tuple[Path, LogNames]], MariaNode | None]:
        """The primary engine's hourly-rotated logs (its server log first) and, on MariaDB, the node."""
        try:
            node = self.fleet.primary(doc)
            path = node.proc.spec.logfile
        except (EngineError, KeyError):  # no engine yet, or its encrypted storage is shut
            return [], None
        if not path.exists():
            return [], None
        if not isinstance(node, MariaNode):
            return [(path, POSTGRES_ERROR)], None
        logs = [(path, MARIADB_ERROR), (node.slow_log, MARIADB_SLOW), (node.general_log, MARIADB_GENERAL)]
        return [(p, names) for p, names in logs if p.exists()], node

    def _retention_minutes(self, doc: dict) -> int:
        """How long RDS keeps an instance's hourly logs: rds.log_retention_period of its parameter
        group(s) on PostgreSQL, 24 hours on MariaDB."""
        if doc["kind"] != "postgres":
            return MARIADB_RETENTION_MINUTES
        value = None
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        for kind, name in (
            ("cluster_param_group", (cluster or {}).get("param_group")),
            ("param_group", doc.get("param_group")),
        ):
            group = self.store.get_doc(kind, name.lower()) if name else None
            value = (group or {}).get("params", {}).get(RETENTION_PARAM, {}).get("value", value)
        return int(value) if value else PG_RETENTION_MINUTES

    def _log_files(self, doc: dict) -> dict[str, LogSegment]:
        """RDS's name of each log file of the instance -> the bytes that are its content."""
        logs, maria = self._engine_logs(doc)
        if not logs:
            raise m.fault("DBInstanceNotReady", f"DB instance {doc['id']} is not ready to read its logs.")
        retention, now = self._retention_minutes(doc), clock.time()
        files = {s.name: s for path, names in logs for s in segments(path, names, now, retention)}
        if maria is not None:
            audit = sorted(
                maria.datadir.glob(f"{AUDIT_LOG}*"),
                key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
            )
            files.update({f"audit/{p.name}": LogSegment(f"audit/{p.name}", p, 0, None, 0) for p in audit})
        return files

    async def _log_rule(self, since: float, until: float) -> dict[str, int]:
        """The scheduler's `rds.logs` rule: each running instance's log starts a new hourly file at
        the simulated hour (see log_rotation.py); idempotent within an hour."""
        started = 0
        for doc in self.store.list_docs("instance"):
            if doc["status"] != "available":
                continue
            with self.store.acting_for(doc):
                for path, _ in self._engine_logs(doc)[0]:
                    rotate(path, until, self._retention_minutes(doc))
                    started += 1
        return {"rotated": started}

    def describe_db_log_files(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        files: list[dict[str, Any]] = []
        for name, seg in self._log_files(doc).items():
            try:
                stat = seg.path.stat()
            except FileNotFoundError:  # rotated away meanwhile
                continue
            live = seg.end is None
            files.append(
                {
                    "LogFileName": name,
                    # a past hour was last written before the next began
                    "LastWritten": int(max(clock.to_simulated(stat.st_mtime), seg.hour) * 1000)
                    if live
                    else int((seg.ended or seg.hour) * 1000) - 1,
                    "Size": (stat.st_size if live else seg.end or 0) - seg.start,
                }
            )
        if req.get("FilenameContains"):
            files = [f for f in files if req["FilenameContains"] in f["LogFileName"]]
        if req.get("FileLastWritten") is not None:
            files = [f for f in files if f["LastWritten"] >= req["FileLastWritten"]]
        if req.get("FileSize") is not None:
            files = [f for f in files if f["Size"] >= req["FileSize"]]
        return page(files, req, "DescribeDBLogFiles")

    def download_db_log_file_portion(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBInstanceIdentifier", "LogFileName")
        doc = self._get_instance(req["DBInstanceIdentifier"])
        seg = self._log_files(doc).get(req["LogFileName"])
        missing = m.fault(
            "DBLogFileNotFoundFault",
            f"DBLog File: {req['LogFileName']}, is not found on the DB instance",
            404,
        )
        if seg is None:
            raise missing
        lines = req.get("NumberOfLines")
        if lines is not None and lines < 1:
            raise m.fault("InvalidParameterValue", f"Invalid value {lines} for NumberOfLines.")
        lines = min(lines or MAX_LINES, MAX_LINES)
        try:
            end = seg.path.stat().st_size if seg.end is None else seg.end
        except FileNotFoundError:  # rotated away since it was listed
            raise missing from None
        size = end - seg.start  # offsets below are within the hour's file
        marker = req.get("Marker")
        if marker is None:  # the newest lines
            start = max(0, size - TAIL_READ)
            tail = _read(seg.path, seg.start + start, size - start).splitlines(keepends=True)[-lines:]
            while len(tail) > 1 and sum(map(len, tail)) > MAX_BYTES:
                tail.pop(0)
            data = b"".join(tail)[-MAX_BYTES:]
            return {
                "LogFileData": data.decode(errors="replace"),
                "Marker": str(size),
                "AdditionalDataPending": False,
            }
        if not (marker.isascii() and marker.isdigit()):
            raise m.fault("InvalidParameterValue", f"The parameter Marker is not valid: {marker}")
        offset = min(int(marker), size)
        chunk = _read(seg.path, seg.start + offset, min(MAX_BYTES, size - offset))
        taken = chunk.splitlines(keepends=True)[:lines]
        if len(taken) > 1 and not taken[-1].endswith(b"\n") and offset + len(chunk) < size:
            taken.pop()  # a line cut at the 1 MB limit comes whole in the next portion
        data = b"".join(taken)
        stop = offset + len(data)
        return {
            "LogFileData": data.decode(errors="replace"),
            "Marker": str(stop),
            "AdditionalDataPending": stop < size,
        }

    # -- maintenance -------------------------------------------------------------------------------

    def describe_pending_maintenance_actions(self, ctx: RequestContext, req: dict) -> dict:
        """Strata applies no engine patches or OS updates on a schedule: no resource ever has a
        pending action, so the answer is always empty (after AWS's checks of the request)."""
        arn = req.get("ResourceIdentifier")
        if arn:
            parts = arn.split(":")
            kind = {"db": "instance", "cluster": "cluster"}.get(parts[5] if len(parts) == 7 else "")
            if (
                kind is None
                or parts[3] != self.region
                or parts[4] != self.account
                or self.store.get_doc(kind, parts[6].lower()) is None
            ):
                raise m.fault("ResourceNotFoundFault", f"Resource {arn} not found.", 404)
        actions: list[dict] = []
        actions = filtered(
            actions,
            req,
            {
                "db-cluster-id": lambda a: a["ResourceIdentifier"],
                "db-instance-id": lambda a: a["ResourceIdentifier"],
            },
        )
        return page(actions, req, "PendingMaintenanceActions")
