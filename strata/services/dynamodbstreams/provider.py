"""DynamoDB Streams, the read side: ListStreams, DescribeStream, GetShardIterator, GetRecords.

The records are written by the DynamoDB provider with each item change (dynamodb/streams.py);
this provider reads them through that provider's store (`runtime.peer("dynamodb")`), from the
committed data only, so a consumer never sees a change that is not durable.

A stream's shards (dynamodb/streams.py) are ranges of its sequence numbers: the open one, and
closed ones (rolled over after four hours, or the stream disabled), each named by its child's
ParentShardId; a closed shard's last iterator ends without a NextShardIterator. A shard
iterator is the stream, the shard, the sequence number to read after and the time it was issued,
base64-encoded; it expires 15 minutes after issue on the simulated clock
(ExpiredIteratorException), as in DynamoDB. Each GetRecords is one streams read request on the
meter (DynamoDB's Streams-RequestsCount).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.constrained import constrained
from strata.services.dynamodb import streams
from strata.services.dynamodb.state import State, scope_of
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import item_size
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.sim.meter import meter

ITERATOR_LIFETIME = 900.0  # 15 minutes
MAX_RECORDS = 1000
MAX_BYTES = 1024 * 1024


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def _not_found(message: str = "Requested resource not found") -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, 400)


def _trimmed() -> ServiceError:
    return ServiceError(
        "TrimmedDataAccessException",
        "The operation attempted to read past the oldest stream record in a shard.",
        400,
    )


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _seq_text(seq: int) -> str:
    return f"{seq:021d}"


def _limit(value: object, top: int, member: str) -> int:
    if value is None:
        return top
    if not isinstance(value, int) or not 1 <= value <= top:
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have value {'less than or equal to ' + str(top) if isinstance(value, int) and value > top else 'greater than or equal to 1'}"
        )
    return value


@constrained("dynamodbstreams", _validation)
@refusing("dynamodbstreams")
class DynamoDBStreamsProvider:
    """Constructed once per server; holds no state of its own (the DynamoDB provider's store)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def health(self) -> str:
        return "running"

    def resource_arn(self, req: dict, arn: str) -> str | None:
        """GetRecords names its stream only inside the shard iterator: it is authorized on that
        stream's ARN, as in DynamoDB (not on "*"). An unreadable iterator is left to GetRecords."""
        if "ShardIterator" not in req or "StreamArn" in req:
            return None
        try:
            return _decode(req["ShardIterator"])[0]
        except ServiceError:
            return None

    @property
    def _state(self) -> State:
        ddb = self.runtime.peer("dynamodb")
        if ddb is None:
            raise ServiceError("InternalServerError", "DynamoDB is not running", 500)
        return ddb.state

    def _find(self, ctx: RequestContext, arn: object) -> tuple[TableMeta, dict]:
        """The table and stream of a stream ARN in the caller's account and region."""
        if not isinstance(arn, str) or ":table/" not in arn or "/stream/" not in arn:
            raise _validation(f"Invalid StreamArn: {arn}")
        head, _, rest = arn.partition(":table/")
        name, _, label = rest.partition("/stream/")
        parts = head.split(":")
        if len(parts) != 5 or parts[:3] != ["arn", "aws", "dynamodb"]:
            raise _validation(f"Invalid StreamArn: {arn}")
        missing = _not_found(f"Requested resource not found: Stream: {arn} not found")
        if f"{parts[4]}:{parts[3]}" != scope_of(ctx):
            raise missing
        state = self._state
        live = state.tables.get((scope_of(ctx), name))
        # A deleted table's streams stay readable for 24 hours (streams.retire).
        for meta in [*([live] if live is not None else []), *state.retired.values()]:
            if meta.arn != f"{head}:table/{name}":
                continue
            for s in meta.streams:
                if s["label"] == label:
                    return meta, s
        raise missing

    # -- ListStreams, DescribeStream --------------------------------------------------------------

    def list_streams(self, ctx: RequestContext, req: dict) -> dict:
        limit = _limit(req.get("Limit"), 100, "limit")
        scope = scope_of(ctx)
        name = req.get("TableName")
        now = clock.time()
        found = []
        every = [(key, meta) for key, meta in self._state.tables.items()]
        every += [((m.scope, m.name), m) for m in self._state.retired.values()]  # deleted tables
        for (s_scope, t_name), meta in sorted(every, key=lambda x: (x[0], x[1].created)):
            if s_scope != scope or (name is not None and t_name != name):
                continue
            for s in meta.streams:
                if s["disabled"] is None or now - s["disabled"] < streams.RETENTION:
                    found.append(
                        {
                            "StreamArn": f"{meta.arn}/stream/{s['label']}",
                            "TableName": t_name,
                            "StreamLabel": s["label"],
                        }
                    )
        if name is not None and (scope, name) not in self._state.tables:
            raise _not_found(f"Requested resource not found: Table: {name} not found")
        start = req.get("ExclusiveStartStreamArn")
        if start:
            arns = [f["StreamArn"] for f in found]
            if start not in arns:
                raise _validation(f"Invalid ExclusiveStartStreamArn: {start}")
            found = found[arns.index(start) + 1 :]
        out: dict = {"Streams": found[:limit]}
        if len(found) > limit:
            out["LastEvaluatedStreamArn"] = found[limit - 1]["StreamArn"]
        return out

    def describe_stream(self, ctx: RequestContext, req: dict) -> dict:
        meta, s = self._find(ctx, req.get("StreamArn"))
        limit = _limit(req.get("Limit"), 100, "limit")
        store = self._state.store
        sid = s["sid"]
        shards = []
        for sh in s["shards"]:
            first = streams.first_seq(store, sid, sh["start"], sh["end"])
            rng: dict = {"StartingSequenceNumber": _seq_text(first if first is not None else sh["start"])}
            if sh["end"] is not None:
                rng["EndingSequenceNumber"] = _seq_text(max(sh["end"], sh["start"]))
            shard: dict = {"ShardId": sh["id"], "SequenceNumberRange": rng}
            if sh["parent"]:
                shard["ParentShardId"] = sh["parent"]
            shards.append(shard)
        wanted = req.get("ShardFilter")
        if wanted is not None:  # CHILD_SHARDS: the children of one shard
            shards = [x for x in shards if x.get("ParentShardId") == wanted.get("ShardId")]
        start = req.get("ExclusiveStartShardId")
        if start is not None:
            shards = [x for x in shards if x["ShardId"] > start]
        desc: dict = {
            "StreamArn": f"{meta.arn}/stream/{s['label']}",
            "StreamLabel": s["label"],
            "StreamStatus": "ENABLED" if s["disabled"] is None else "DISABLED",
            "StreamViewType": s["view"],
            "CreationRequestDateTime": _ts(s["created"]),
            "TableName": meta.name,
            "KeySchema": meta.key_schema,
            "Shards": shards[:limit],
        }
        if len(shards) > limit:
            desc["LastEvaluatedShardId"] = shards[limit - 1]["ShardId"]
        return {"StreamDescription": desc}

    # -- GetShardIterator, GetRecords -------------------------------------------------------------

    @staticmethod
    def _shard(s: dict, arn: object, shard: object) -> dict:
        for sh in s["shards"]:
            if sh["id"] == shard:
                return sh
        raise _not_found(f"Requested resource not found: Shard does not exist: {shard} in {arn}")

    def get_shard_iterator(self, ctx: RequestContext, req: dict) -> dict:
        arn = req.get("StreamArn")
        meta, s = self._find(ctx, arn)
        sh = self._shard(s, arn, req.get("ShardId"))
        kind = req.get("ShardIteratorType")
        seq_text = req.get("SequenceNumber")
        store = self._state.store
        sid, start, end = s["sid"], sh["start"], sh["end"]
        trim = streams.trimmed(store, sid)
        last = end if end is not None else max(streams.last_seq(store, sid), start, trim)
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if seq_text is None:
                raise _validation("SequenceNumber must be provided when ShardIteratorType is " + kind)
            try:
                seq = int(seq_text)
            except ValueError:
                raise _validation(f"Invalid SequenceNumber: {seq_text}") from None
            if not start <= seq <= max(last, start):
                raise _validation(f"Invalid SequenceNumber {seq_text} for shard {sh['id']}")
            after = max(seq - 1, start) if kind == "AT_SEQUENCE_NUMBER" else seq
            if after < trim:
                raise _trimmed()
        elif seq_text is not None:
            raise _validation(f"SequenceNumber must not be provided when ShardIteratorType is {kind}")
        elif kind == "TRIM_HORIZON":  # the oldest record still kept
            after = max(start, min(trim, last))
        elif kind == "LATEST":
            after = last
        elif kind == "AT_TIMESTAMP":
            after = self._at_timestamp(store, sid, req.get("Timestamp"), start, last)
        else:
            raise _validation(
                f"1 validation error detected: Value '{kind}' at 'shardIteratorType' failed to satisfy "
                "constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, LATEST, "
                "AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, AT_TIMESTAMP]"
            )
        return {"ShardIterator": _encode(f"{meta.arn}/stream/{s['label']}", sh["id"], after, clock.time())}

    @staticmethod
    def _at_timestamp(store: Any, sid: int, value: object, start: int, last: int) -> int:
        if value is None:
            raise _validation("Timestamp must be provided when ShardIteratorType is AT_TIMESTAMP")
        at = value.timestamp() if isinstance(value, datetime) else float(value)  # type: ignore[arg-type]
        if at > clock.time():
            raise _validation("The timestamp is in the future")
        row = store.r.execute(
            "SELECT seq FROM ddb_stream WHERE sid = ? AND seq > ? AND seq <= ? AND at >= ? ORDER BY seq LIMIT 1",
            (sid, start, last, at),
        ).fetchone()
        return row[0] - 1 if row else last

    def get_records(self, ctx: RequestContext, req: dict) -> dict:
        limit = _limit(req.get("Limit"), MAX_RECORDS, "limit")
        arn, shard, after, issued = _decode(req.get("ShardIterator"))
        now = clock.time()
        if now - issued > ITERATOR_LIFETIME:
            raise ServiceError(
                "ExpiredIteratorException",
                f"Iterator expired. The iterator was created at time {_ts(issued).strftime('%a %b %d %H:%M:%S UTC %Y')} "
                f"while right now it is {_ts(now).strftime('%a %b %d %H:%M:%S UTC %Y')} which is further in the "
                "future than the tolerated delay of 900000 milliseconds.",
                400,
            )
        meta, s = self._find(ctx, arn)
        sh = self._shard(s, arn, shard)
        meter.record("dynamodb", "StreamsReadRequests", 1, "request", table=meta.name)
        store = self._state.store
        if after < min(streams.trimmed(store, s["sid"]), sh["end"] if sh["end"] is not None else 2**62):
            raise _trimmed()  # records this iterator had still to read were pruned
        region = meta.arn.split(":")[3]
        view = s["view"]
        records: list[dict] = []
        size, last = 0, after
        for seq, at, rec in streams.read(store, s["sid"], after, sh["end"], limit):
            record = _record(meta, view, region, seq, at, rec)
            records.append(record)
            last = seq
            size += record["dynamodb"]["SizeBytes"]
            if size >= MAX_BYTES:  # a response holds up to 1 MB of records
                break
        out: dict = {"Records": records}
        if sh["end"] is None or len(records) == limit or size >= MAX_BYTES:
            out["NextShardIterator"] = _encode(arn, sh["id"], last, now)
        return out


def _record(meta: TableMeta, view: str, region: str, seq: int, at: float, rec: tuple) -> dict:
    name, old, new, by_ttl = rec
    image = new if new is not None else old
    keys = {k: image[k] for k in meta.key_names}
    body: dict = {
        "ApproximateCreationDateTime": _ts(int(at)),
        "Keys": keys,
        "SequenceNumber": _seq_text(seq),
        "StreamViewType": view,
    }
    size = item_size(keys)
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new is not None:
        body["NewImage"] = new
        size += item_size(new)
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old is not None:
        body["OldImage"] = old
        size += item_size(old)
    body["SizeBytes"] = size
    out = {
        "eventID": hashlib.md5(f"{meta.tid}:{seq}".encode(), usedforsecurity=False).hexdigest(),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
    }
    if by_ttl:
        out["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    return out


def _encode(arn: str, shard: str, after: int, issued: float) -> str:
    raw = json.dumps([arn, shard, after, repr(issued)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(value: object) -> tuple[str, str, int, float]:
    try:
        arn, shard, after, issued = json.loads(base64.urlsafe_b64decode(str(value).encode()))
        return str(arn), str(shard), int(after), float(Decimal(issued))
    except (ValueError, TypeError, binascii.Error, ArithmeticError):
        raise _validation(f"Invalid ShardIterator: {value}") from None
