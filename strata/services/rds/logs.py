"""DescribeDBLogFiles and DownloadDBLogFilePortion from the engine's real log, and
DescribePendingMaintenanceActions (Strata never schedules maintenance, so none is ever pending).

An instance's log is what its primary engine process writes (PostgreSQL's and MariaDB's server
log: startup, errors, and whatever the parameter group asks for, log_statement=all say), under
RDS's name for its engine; on MariaDB with the MARIADB_AUDIT_PLUGIN option also the plugin's log
and its size-rotated predecessors (`audit/server_audit.log`, `audit/server_audit.log.1` ...),
written in the data directory.

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
from strata.sim.clock import clock

LOG_NAMES = {"postgres": "error/postgresql.log", "mariadb": "error/mysql-error.log"}
AUDIT_LOG = "server_audit.log"  # the audit plugin's file in the data directory (options.py)
MAX_LINES = 10_000
MAX_BYTES = 1_000_000  # RDS returns at most 1 MB per portion
TAIL_READ = 16 * MAX_BYTES


def _read(path: Path, start: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


class LogOperations(RDSCore):
    def _log_files(self, doc: dict) -> dict[str, Path]:
        """RDS's name of each log file of the instance -> where the engine writes it."""
        try:
            node = self.fleet.primary(doc)
            path = node.proc.spec.logfile
        except (EngineError, KeyError):  # no engine yet, or its encrypted storage is shut
            path = None
        if path is None or not path.exists():
            raise m.fault("DBInstanceNotReady", f"DB instance {doc['id']} is not ready to read its logs.")
        files = {LOG_NAMES[doc["kind"]]: path}
        if isinstance(node, MariaNode):
            audit = sorted(
                node.datadir.glob(f"{AUDIT_LOG}*"),
                key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
            )
            files.update({f"audit/{p.name}": p for p in audit})
        return files

    def describe_db_log_files(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        files: list[dict[str, Any]] = []
        for name, path in self._log_files(doc).items():
            try:
                stat = path.stat()
            except FileNotFoundError:  # rotated away meanwhile
                continue
            files.append(
                {
                    "LogFileName": name,
                    "LastWritten": int(clock.to_simulated(stat.st_mtime) * 1000),
                    "Size": stat.st_size,
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
        path = self._log_files(doc).get(req["LogFileName"])
        if path is None:
            raise m.fault(
                "DBLogFileNotFoundFault",
                f"DBLog File: {req['LogFileName']}, is not found on the DB instance",
                404,
            )
        lines = req.get("NumberOfLines")
        if lines is not None and lines < 1:
            raise m.fault("InvalidParameterValue", f"Invalid value {lines} for NumberOfLines.")
        lines = min(lines or MAX_LINES, MAX_LINES)
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # rotated away since it was listed
            raise m.fault(
                "DBLogFileNotFoundFault",
                f"DBLog File: {req['LogFileName']}, is not found on the DB instance",
                404,
            ) from None
        marker = req.get("Marker")
        if marker is None:  # the newest lines
            start = max(0, size - TAIL_READ)
            tail = _read(path, start, size - start).splitlines(keepends=True)[-lines:]
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
        chunk = _read(path, offset, min(MAX_BYTES, size - offset))
        taken = chunk.splitlines(keepends=True)[:lines]
        if len(taken) > 1 and not taken[-1].endswith(b"\n") and offset + len(chunk) < size:
            taken.pop()  # a line cut at the 1 MB limit comes whole in the next portion
        data = b"".join(taken)
        end = offset + len(data)
        return {
            "LogFileData": data.decode(errors="replace"),
            "Marker": str(end),
            "AdditionalDataPending": end < size,
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
