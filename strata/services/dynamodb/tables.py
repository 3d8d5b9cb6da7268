"""Table and index metadata: CreateTable validation, the in-memory model, DescribeTable output.

A `TableMeta` is loaded once and cached by the provider; the hot paths read its key names and
types from attributes instead of walking the request's KeySchema each time.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from strata.services.dynamodb.errors import invalid_parameter, validation

MAX_GSI = 20
MAX_LSI = 5
MAX_INDEX_KEY_ATTRIBUTES = 4  # a GSI's partition and sort keys: up to four attributes each
_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")


@dataclass
class IndexMeta:
    name: str
    iid: int
    is_global: bool
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    projection_type: str
    non_key_attributes: list[str]
    throughput: dict | None = None
    created: float = 0.0
    # A GSI added by UpdateTable to a large table is CREATING while bulk.py backfills it; the
    # cursor (hex pk, sk) is the last table key indexed, saved with each chunk so a restart resumes.
    backfilling: bool = False
    cursor: list[str] | None = None
    provisioning: dict = field(default_factory=dict)  # capacity-change history (provisioning.py)
    # A GSI with a multi-attribute key: its partition- and sort-key attributes after the first,
    # each [name, type] (the first stay in hash_key / range_key, so a simple index reads as before).
    extra_hash: list[list[str]] = field(default_factory=list)
    extra_range: list[list[str]] = field(default_factory=list)
    # An on-demand GSI's maximum throughput, as TableMeta.on_demand (throttle.py).
    on_demand: dict | None = None

    @property
    def hash_attrs(self) -> list[tuple[str, str]]:
        """The partition-key attributes (name, type), in KeySchema order."""
        return [(self.hash_key, self.hash_type), *((n, t) for n, t in self.extra_hash)]

    @property
    def range_attrs(self) -> list[tuple[str, str]]:
        """The sort-key attributes (name, type), in KeySchema order; [] without a sort key."""
        if self.range_key is None:
            return []
        return [(self.range_key, self.range_type or ""), *((n, t) for n, t in self.extra_range)]

    @property
    def key_names(self) -> list[str]:
        """Every key attribute of the index."""
        return [n for n, _ in self.hash_attrs + self.range_attrs]

    @property
    def key_schema(self) -> list[dict]:
        ks = [{"AttributeName": n, "KeyType": "HASH"} for n, _ in self.hash_attrs]
        ks += [{"AttributeName": n, "KeyType": "RANGE"} for n, _ in self.range_attrs]
        return ks

    @property
    def projection(self) -> dict:
        p: dict = {"ProjectionType": self.projection_type}
        if self.projection_type == "INCLUDE":
            p["NonKeyAttributes"] = list(self.non_key_attributes)
        return p


@dataclass
class TableMeta:
    scope: str
    name: str
    tid: int
    table_id: str
    arn: str
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    attribute_definitions: list[dict]
    billing_mode: str
    throughput: dict
    created: float
    indexes: list[IndexMeta] = field(default_factory=list)
    stream: dict | None = None  # the StreamSpecification while a stream is enabled
    streams: list[dict] = field(default_factory=list)  # every stream, the latest last (streams.py)
    sse: dict | None = None
    tags: dict[str, str] = field(default_factory=dict)
    ttl: dict | None = None
    deletion_protection: bool = False
    table_class: str = "STANDARD"
    pitr: bool = False
    pitr_since: float = 0.0  # when PITR was last turned on (pitr.py)
    pitr_days: int = 35  # RecoveryPeriodInDays
    status: str = "ACTIVE"  # DELETING while bulk.py removes a large table's rows
    dropped: list[int] = field(default_factory=list)  # deleted GSIs whose rows are still removed
    provisioning: dict = field(default_factory=dict)  # capacity-change history (provisioning.py)
    restore: dict | None = None  # a restored table's source and progress (backups.py)
    # An on-demand table's maximum throughput: {"MaxReadRequestUnits": n, "MaxWriteRequestUnits": n}
    # (-1: no maximum), None when neither is set (throttle.py).
    on_demand: dict | None = None
    # Global tables (replication.py): the regions of every replica, this one's included ([]: not
    # a global table), and while this replica is CREATING its copy's progress.
    group: list[str] = field(default_factory=list)
    replica: dict | None = None

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)

    @property
    def key_schema(self) -> list[dict]:
        ks = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            ks.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        return ks

    def index(self, name: str) -> IndexMeta:
        for ix in self.indexes:
            if ix.name == name:
                if ix.backfilling:
                    raise validation(f"Cannot read from backfilling global secondary index: {name}")
                return ix
        raise validation(f"The table does not have the specified index: {name}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TableMeta:
        data = dict(data)
        data["indexes"] = [IndexMeta(**ix) for ix in data.get("indexes", [])]
        return cls(**data)


def check_table_name(name: object, member: str = "tableName") -> str:
    """Table and index names: DynamoDB reports each broken constraint (pattern, length) in turn."""
    text = name if isinstance(name, str) else ""
    broken = []
    if not _NAME.fullmatch(text):
        broken.append("Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
    if len(text) < 3:
        broken.append("Member must have length greater than or equal to 3")
    elif len(text) > 255:
        broken.append("Member must have length less than or equal to 255")
    if broken:
        count = f"{len(broken)} validation error{'s' if len(broken) > 1 else ''} detected: "
        raise validation(
            count
            + "; ".join(f"Value '{name}' at '{member}' failed to satisfy constraint: {b}" for b in broken)
        )
    return text


def _key_schema(
    ks: list[dict], types: dict[str, str], what: str, multi: bool = False
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (name, type) of the partition- and sort-key attributes of a KeySchema. A table or an
    LSI has one of each at most; a GSI (`multi`) up to four of each, partition keys first."""
    limit = 2 * MAX_INDEX_KEY_ATTRIBUTES if multi else 2
    if not ks or len(ks) > limit:
        raise validation(
            f"1 validation error detected: Value '{ks}' at 'keySchema' failed to satisfy constraint: "
            f"Member must have length less than or equal to {limit}"
        )
    if ks[0].get("KeyType") != "HASH":
        raise validation("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    kinds = [k.get("KeyType") for k in ks]
    if not multi and len(ks) == 2 and kinds[1] != "RANGE":
        raise validation("Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")
    n_hash = kinds.index("RANGE") if "RANGE" in kinds else len(kinds)
    if any(k != "RANGE" for k in kinds[n_hash:]):
        raise validation(
            f"Invalid KeySchema: all HASH KeySchemaElements must come before the RANGE ones for index: {what}"
        )
    n_range = len(kinds) - n_hash
    for count, kind in ((n_hash, "HASH"), (n_range, "RANGE")):
        if count > MAX_INDEX_KEY_ATTRIBUTES:
            raise validation(
                f"Invalid KeySchema: a global secondary index can have at most {MAX_INDEX_KEY_ATTRIBUTES} "
                f"{kind} KeySchemaElements; index: {what} has {count}"
            )
    names = [k["AttributeName"] for k in ks]
    if len(set(names)) != len(names):
        if len(ks) == 2:
            raise invalid_parameter(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name"
            )
        dup = next(n for n in names if names.count(n) > 1)
        raise invalid_parameter(f"Duplicate attribute name in KeySchema: {dup}")
    missing = [n for n in names if n not in types]
    if missing:
        raise invalid_parameter(
            f"Some index key attributes are not defined in AttributeDefinitions. Keys: [{', '.join(missing)}], "
            f"AttributeDefinitions: [{', '.join(types)}]"
        )
    return [(n, types[n]) for n in names[:n_hash]], [(n, types[n]) for n in names[n_hash:]]


def check_throughput(tp: dict | None, billing: str, what: str = "") -> dict:
    if billing == "PAY_PER_REQUEST":
        if tp:
            raise invalid_parameter(
                "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
            )
        return {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    if not tp or "ReadCapacityUnits" not in tp or "WriteCapacityUnits" not in tp:
        if what:
            raise invalid_parameter(f"ProvisionedThroughput must be specified for index: {what}")
        raise invalid_parameter(
            "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"
        )
    for k in ("ReadCapacityUnits", "WriteCapacityUnits"):
        if tp[k] < 1:
            raise invalid_parameter(f"ProvisionedThroughput {k} must be greater than zero")
    return {"ReadCapacityUnits": tp["ReadCapacityUnits"], "WriteCapacityUnits": tp["WriteCapacityUnits"]}


def check_on_demand(
    spec: dict | None,
    billing: str,
    current: dict | None = None,
    creating: bool = True,
    index: str | None = None,
) -> dict | None:
    """OnDemandThroughput (CreateTable/UpdateTable, of the table or of its GSI `index`): each
    maximum at least 1 (UpdateTable: or -1, which removes it), only for PAY_PER_REQUEST; the
    resulting setting, None when it sets no maximum. The table's texts are DynamoDB's (each
    differs a little between the two operations); an index's name the index instead."""
    if not spec:
        return current
    if billing != "PAY_PER_REQUEST":
        member = next(
            (k for k in ("MaxReadRequestUnits", "MaxWriteRequestUnits") if k in spec), "MaxReadRequestUnits"
        )
        table = "table" if creating else "the table"
        where = f" for index {index}" if index else ""
        raise invalid_parameter(
            f"{member} for OnDemandThroughput{where} cannot be specified when {table} BillingMode is PROVISIONED"
            + ("." if creating else "")
        )
    out = dict(current or {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": -1})
    for key in ("MaxReadRequestUnits", "MaxWriteRequestUnits"):
        value = spec.get(key)
        if value is None:
            continue
        if value < 1 and (creating or value != -1):
            what = f"index {index}" if index else "table"
            raise invalid_parameter(
                f"Requested {key} for OnDemandThroughput for {what} is outside of valid range"
            )
        out[key] = value
    return out if any(v > 0 for v in out.values()) else None


def ask_warm(ix: IndexMeta, spec: dict | None, creating: bool) -> None:
    """A GSI's WarmThroughput request, kept until warm.settle_indexes validates and applies it
    (it needs the account's quota): every path that builds or updates a GSI settles it."""
    if spec:
        ix.provisioning["warm_asked"] = [dict(spec), creating]


def _projection(p: dict | None) -> tuple[str, list[str]]:
    p = p or {}
    ptype = p.get("ProjectionType", "ALL" if not p else "")
    if ptype not in ("ALL", "KEYS_ONLY", "INCLUDE"):
        raise invalid_parameter("Unknown ProjectionType: " + str(ptype))
    nka = list(p.get("NonKeyAttributes") or [])
    if ptype != "INCLUDE" and nka:
        raise invalid_parameter(f"ProjectionType is {ptype}, but NonKeyAttributes is specified")
    if ptype == "INCLUDE" and not nka:
        raise invalid_parameter("NonKeyAttributes must not be empty when ProjectionType is INCLUDE")
    return ptype, nka


def attribute_types(defs: list[dict]) -> dict[str, str]:
    types: dict[str, str] = {}
    for d in defs or []:
        if d.get("AttributeType") not in ("S", "N", "B"):
            raise invalid_parameter(
                f"Member must satisfy enum value set: [B, N, S] for AttributeType of {d.get('AttributeName')}"
            )
        if d["AttributeName"] in types:
            raise invalid_parameter("Cannot have two attributes with the same name")
        types[d["AttributeName"]] = d["AttributeType"]
    return types


def build_index(
    spec: dict,
    types: dict[str, str],
    iid: int,
    is_global: bool,
    billing: str,
    now: float,
    table_hash: str | None = None,
) -> IndexMeta:
    name = check_table_name(spec.get("IndexName", ""), "indexName")
    hashes, ranges = _key_schema(spec.get("KeySchema") or [], types, name, multi=is_global)
    (h, ht), (r, rt) = hashes[0], ranges[0] if ranges else (None, None)
    if not is_global:
        if r is None:
            raise invalid_parameter(f"Index KeySchema does not have a range key for index: {name}")
        if h != table_hash:
            raise invalid_parameter(
                f"Index KeySchema does not have the same leading hash key as table KeySchema for index: {name}. "
                f"index hash key: {h}, table hash key: {table_hash}"
            )
    ptype, nka = _projection(spec.get("Projection"))
    throughput = check_throughput(spec.get("ProvisionedThroughput"), billing, name) if is_global else None
    ix = IndexMeta(name, iid, is_global, h, ht, r, rt, ptype, nka, throughput, now)
    if is_global:
        ix.on_demand = check_on_demand(spec.get("OnDemandThroughput"), billing, index=name)
        ask_warm(ix, spec.get("WarmThroughput"), creating=True)
    ix.extra_hash = [[n, t] for n, t in hashes[1:]]
    ix.extra_range = [[n, t] for n, t in ranges[1:]]
    return ix


def build_table(
    req: dict, scope: str, region: str, account: str, tid: int, next_iid, now: float
) -> TableMeta:
    """Validate a CreateTable request and build the table's metadata."""
    name = check_table_name(req.get("TableName"))
    types = attribute_types(req.get("AttributeDefinitions") or [])
    hashes, ranges = _key_schema(req.get("KeySchema") or [], types, name)
    (h, ht), (r, rt) = hashes[0], ranges[0] if ranges else (None, None)
    billing = req.get("BillingMode") or "PROVISIONED"
    throughput = check_throughput(req.get("ProvisionedThroughput"), billing)
    gsis = req.get("GlobalSecondaryIndexes") or []
    lsis = req.get("LocalSecondaryIndexes") or []
    if len(gsis) > MAX_GSI:
        raise validation(
            f"One or more parameter values were invalid: GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GSI}"
        )
    if len(lsis) > MAX_LSI:
        raise validation(
            f"One or more parameter values were invalid: Number of LocalSecondaryIndexes exceeds per-table limit of {MAX_LSI}"
        )
    if lsis and r is None:
        raise invalid_parameter(
            "Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex"
        )
    indexes = []
    seen: set[str] = set()
    for spec, is_global in [(s, True) for s in gsis] + [(s, False) for s in lsis]:
        ix = build_index(spec, types, next_iid(), is_global, billing, now, h)
        if ix.name in seen:
            raise invalid_parameter(f"Duplicate index name: {ix.name}")
        seen.add(ix.name)
        indexes.append(ix)
    if set(types) != key_attribute_names(h, r, indexes):
        raise invalid_parameter(
            "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions"
        )
    sse = req.get("SSESpecification")
    stream = req.get("StreamSpecification")
    tags = {t["Key"]: t["Value"] for t in req.get("Tags") or []}
    return TableMeta(
        scope=scope,
        name=name,
        tid=tid,
        table_id=str(uuid.uuid4()),
        arn=f"arn:aws:dynamodb:{region}:{account}:table/{name}",
        hash_key=h,
        hash_type=ht,
        range_key=r,
        range_type=rt,
        attribute_definitions=[{"AttributeName": k, "AttributeType": v} for k, v in types.items()],
        billing_mode=billing,
        throughput=throughput,
        created=now,
        indexes=indexes,
        stream=stream if stream and stream.get("StreamEnabled") else None,
        sse=sse if sse and sse.get("Enabled") else None,
        tags=tags,
        deletion_protection=bool(req.get("DeletionProtectionEnabled")),
        table_class=req.get("TableClass") or "STANDARD",
        on_demand=check_on_demand(req.get("OnDemandThroughput"), billing),
    )


def key_attribute_names(hash_key: str, range_key: str | None, indexes: list[IndexMeta]) -> set[str]:
    """Every attribute a table's or its indexes' keys use (what AttributeDefinitions must list)."""
    used = {hash_key, *(n for ix in indexes for n in ix.key_names)}
    if range_key:
        used.add(range_key)
    return used


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _throughput_desc(tp: dict, prov: dict, now: float) -> dict:
    from strata.services.dynamodb.provisioning import throughput_description

    return throughput_description(tp, prov, now)


def describe(
    meta: TableMeta,
    item_count: int,
    size: int,
    index_counts: dict[str, tuple[int, int]],
    status: str = "ACTIVE",
    now: float = 0.0,
) -> dict:
    """The TableDescription shape (`now`: the simulated time, for the day's decrease count)."""
    d: dict = {
        "AttributeDefinitions": meta.attribute_definitions,
        "TableName": meta.name,
        "KeySchema": meta.key_schema,
        "TableStatus": status,
        "CreationDateTime": _ts(meta.created),
        "ProvisionedThroughput": _throughput_desc(meta.throughput, meta.provisioning, now),
        "TableSizeBytes": size,
        "ItemCount": item_count,
        "TableArn": meta.arn,
        "TableId": meta.table_id,
        "DeletionProtectionEnabled": meta.deletion_protection,
    }
    if meta.billing_mode == "PAY_PER_REQUEST":
        d["BillingModeSummary"] = {
            "BillingMode": "PAY_PER_REQUEST",
            "LastUpdateToPayPerRequestDateTime": _ts(
                meta.provisioning.get("last_to_on_demand", meta.created)
            ),
        }
    if meta.on_demand:
        d["OnDemandThroughput"] = dict(meta.on_demand)
    if meta.table_class != "STANDARD":
        d["TableClassSummary"] = {"TableClass": meta.table_class}
    gsis, lsis = [], []
    for ix in meta.indexes:
        count, isize = index_counts.get(ix.name, (0, 0))
        desc = {
            "IndexName": ix.name,
            "KeySchema": ix.key_schema,
            "Projection": ix.projection,
            "IndexSizeBytes": isize,
            "ItemCount": count,
            "IndexArn": f"{meta.arn}/index/{ix.name}",
        }
        if ix.is_global:
            desc["IndexStatus"] = "CREATING" if ix.backfilling else "ACTIVE"
            if ix.backfilling:
                desc["Backfilling"] = True
            desc["ProvisionedThroughput"] = _throughput_desc(
                ix.throughput or {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}, ix.provisioning, now
            )
            if ix.on_demand:
                desc["OnDemandThroughput"] = dict(ix.on_demand)
            gsis.append(desc)
        else:
            lsis.append(desc)
    if gsis:
        d["GlobalSecondaryIndexes"] = gsis
    if lsis:
        d["LocalSecondaryIndexes"] = lsis
    if meta.stream:
        d["StreamSpecification"] = meta.stream
    if meta.streams:
        d["LatestStreamLabel"] = meta.streams[-1]["label"]
        d["LatestStreamArn"] = f"{meta.arn}/stream/{d['LatestStreamLabel']}"
    if meta.sse:
        d["SSEDescription"] = {
            "Status": "ENABLED",
            "SSEType": meta.sse.get("SSEType", "KMS"),
            "KMSMasterKeyArn": meta.sse.get("KMSMasterKeyId")
            or f"arn:aws:kms:{meta.arn.split(':')[3]}:{meta.arn.split(':')[4]}:key/aws-dynamodb",
        }
    if meta.restore and not meta.restore.get("import_arn"):  # an imported table has none
        summary: dict = {
            "RestoreDateTime": _ts(meta.restore["restore_time"]),
            "RestoreInProgress": status == "CREATING",
        }
        for key, member in (("backup_arn", "SourceBackupArn"), ("table_arn", "SourceTableArn")):
            if meta.restore.get(key):
                summary[member] = meta.restore[key]
        d["RestoreSummary"] = summary
    return d
