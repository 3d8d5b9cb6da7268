"""Inputs for bench/fuzz_requests.py: random values for botocore shapes, and wire mutations.

Mostly well-typed values drawn from small pools of names that exist on the server (so requests
reach the providers), mixed with invalid ones: out of range, wrong length, odd strings, missing
required members, conflicting union members; then, for a share of requests, a change on the wire
(JSON values of the wrong type, query parameters replaced, XML cut or garbled, path bytes that
are not UTF-8).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape

REGION = "us-east-1"

ODD_STRINGS = [
    "",
    " ",
    "a" * 1025,
    "é" * 600,
    "\x00",
    "a\x00b",
    "\x01\x1f",
    "..",
    "../../etc/passwd",
    "%ff",
    "%00",
    "null",
    "true",
    "-1",
    "1e309",
    "NaN",
    "<a>&amp;</a>",
    "'\"",
    "${jndi:x}",
    "\u202e\ufeff",
    "😀" * 3,
    "\uffff",
    "#n",
    ":v",
    "arn:aws:s3:::x",
    "arn:aws:dynamodb:us-east-1:000000000000:table/fuzzt",
    "x" * 70000,
]
ODD_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53, 2**63, -(2**63) - 1, 10**20]
EXPR_TOKENS = [
    "pk", "sk", "a", "b.c", "l[0]", "l[99999999999]", "#n", "#m", ":v", ":w", "=", "<>", "<", "<=", ">", ">=",
    "(", ")", "AND", "OR", "NOT", "BETWEEN", "IN", ",", "SET", "REMOVE", "ADD", "DELETE", "+", "-",
    "attribute_exists(pk)", "begins_with(sk, :v)", "size(a)", "contains(a, :v)", "attribute_type(a, :w)",
    "if_not_exists(a, :v)", "list_append(l, :v)", "[", "]", ".", "#", ":", "size", "(((", ")))",
]  # fmt: skip


@dataclass
class Pools:
    """Names that exist on the server, so well-formed requests reach real resources."""

    prefix: str
    buckets: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=lambda: ["k", "dir/k", "a b+c", "é", "k/../x", "big"])
    table: str = ""

    def __post_init__(self) -> None:
        self.buckets = [f"{self.prefix}-a", f"{self.prefix}-v"]
        self.table = f"{self.prefix}-t"

    def by_member(self) -> dict[str, list[Any]]:
        table_arn = f"arn:aws:dynamodb:{REGION}:000000000000:table/{self.table}"
        return {
            "Bucket": self.buckets,
            "Key": self.keys,
            "Prefix": ["", "dir/", "k"],
            "Delimiter": ["/", "k"],
            "CopySource": [f"{b}/{k}" for b in self.buckets for k in self.keys[:2]],
            "TableName": [self.table],
            "IndexName": ["gsi", "lsi"],
            "ResourceArn": [table_arn],
            "TableArn": [table_arn],
            "AttributeName": ["pk", "sk", "a"],
            "N": [
                "1",
                "-0.5",
                "1e5",
                "0",
                "1E+126",
                "abc",
                "1e-131",
                "99999999999999999999999999999999999999999",
            ],
            "DBInstanceIdentifier": [f"{self.prefix}-db"],
            "DBClusterIdentifier": [f"{self.prefix}-cl"],
            "DBParameterGroupName": [f"{self.prefix}-pg", "default.postgres16"],
            "DBSubnetGroupName": [f"{self.prefix}-sg", "default"],
            "CacheClusterId": [f"{self.prefix}-cc"],
            "ReplicationGroupId": [f"{self.prefix}-rg"],
            "CacheParameterGroupName": [f"{self.prefix}-cpg", "default.redis7"],
            "CacheSubnetGroupName": [f"{self.prefix}-csg"],
            "Engine": ["postgres", "mysql", "mariadb", "aurora-postgresql", "redis", "valkey", "memcached"],
            "RoleArn": ["arn:aws:iam::000000000000:role/r"],
            "RoleSessionName": ["s"],
        }


class Maker:
    """Random values for botocore shapes: `odd` is the chance of an invalid value at each step."""

    def __init__(self, rng: random.Random, pools: Pools, odd: float = 0.12) -> None:
        self.rng = rng
        self.pools = pools.by_member()
        self.odd = odd

    def value(self, shape: Shape, name: str, depth: int = 0) -> Any:
        rng = self.rng
        kind = shape.type_name
        if kind == "structure":
            return self.structure(shape, depth)
        if kind == "list":
            n = self._count(shape, depth)
            return [self.value(shape.member, name, depth + 1) for _ in range(n)]
        if kind == "map":
            n = self._count(shape, depth)
            return {
                str(self.value(shape.key, name)): self.value(shape.value, name, depth + 1) for _ in range(n)
            }
        if kind == "string":
            return self.string(shape, name)
        if kind in ("integer", "long"):
            lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
            if rng.random() < self.odd:
                return rng.choice(
                    ODD_INTS + [v for v in (lo, hi) if v is not None] + [(hi or 0) + 1, (lo or 0) - 1]
                )
            low = int(lo) if lo is not None else 0
            return rng.randint(low, int(hi) if hi is not None else max(low, 100))
        if kind in ("float", "double"):
            return rng.choice([0.0, 1.5, -1.0, 1e308, rng.uniform(-1e6, 1e6)])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "blob":
            return rng.randbytes(rng.choice([0, 1, 16, 300]))
        if kind == "timestamp":
            if rng.random() < self.odd:
                return rng.choice([datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)])
            return datetime.fromtimestamp(rng.randint(0, 4102444800), UTC)
        return None

    def _count(self, shape: Shape, depth: int) -> int:
        rng = self.rng
        if depth > 4:
            return 0
        if rng.random() < self.odd:
            hi = shape.metadata.get("max")
            return rng.choice([0, 1] + ([int(hi) + 1] if hi is not None and hi < 40 else []))
        lo = int(shape.metadata.get("min", 0) or 0)
        return rng.randint(lo, max(lo, 3))

    def string(self, shape: Shape, name: str) -> str:
        rng = self.rng
        if name.endswith("Expression") and rng.random() > self.odd:
            return " ".join(rng.choice(EXPR_TOKENS) for _ in range(rng.randint(1, 9)))
        pool = self.pools.get(name)
        if pool and rng.random() < 0.8:
            return str(rng.choice(pool))
        if shape.enum and rng.random() < 0.8:
            return rng.choice(list(shape.enum))
        if rng.random() < self.odd * 2:
            return rng.choice(ODD_STRINGS)
        lo = int(shape.metadata.get("min", 0) or 0)
        hi = shape.metadata.get("max")
        length = rng.randint(lo, max(lo, min(int(hi) if hi is not None else 12, 12)))
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_."
        return "".join(rng.choice(alphabet) for _ in range(length))

    def structure(self, shape: Shape, depth: int) -> dict:
        rng = self.rng
        out: dict[str, Any] = {}
        if shape.is_document_type:
            return {"a": 1}
        if depth > 5:
            return out
        required = set(shape.required_members)
        for member_name, member in shape.members.items():
            if member.serialization.get("eventstream") or member.serialization.get("hostLabel"):
                continue
            if member_name in required:
                if rng.random() < 1 - self.odd / 3:
                    out[member_name] = self.value(member, member_name, depth + 1)
            elif rng.random() < (0.35 if depth < 2 else 0.15):
                out[member_name] = self.value(member, member_name, depth + 1)
        if (
            (shape.metadata.get("union") or shape.name == "AttributeValue")
            and out
            and rng.random() > self.odd
        ):
            keep = rng.choice(list(out))
            out = {keep: out[keep]}
        return out


def _wrong(rng: random.Random) -> Any:
    return rng.choice([None, 0, -1, 2**70, 1.5, "x", "", True, [], {}, [None], {"": None}, [[[[["deep"]]]]]])


def _mutate_json(rng: random.Random, doc: Any) -> Any:
    """Replace one random node of a JSON document with a value of the wrong type."""
    if not isinstance(doc, (dict, list)) or not doc:
        return _wrong(rng)
    if isinstance(doc, dict):
        k = rng.choice(list(doc))
        if rng.random() < 0.4:
            doc[k] = _wrong(rng)
        else:
            doc[k] = _mutate_json(rng, doc[k])
    else:
        i = rng.randrange(len(doc))
        doc[i] = _wrong(rng) if rng.random() < 0.4 else _mutate_json(rng, doc[i])
    return doc


def mutate(rng: random.Random, protocol: str, req: dict) -> None:
    """A wire-level change to a serialized request dict (botocore's serialize_to_request form)."""
    body = req.get("body")
    choice = rng.random()
    if protocol == "json" and body:
        try:
            doc = json.loads(body)
        except ValueError:
            return
        req["body"] = json.dumps(_mutate_json(rng, doc)).encode()
    elif protocol == "query" and isinstance(body, dict):
        if body and choice < 0.5:
            k = rng.choice([k for k in body if k not in ("Action", "Version")] or list(body))
            if k not in ("Action", "Version"):
                body[k] = rng.choice(ODD_STRINGS + ["1", "-1", "2147483648", "true", "x"])
        else:
            body[
                rng.choice(["Foo", "Marker", "MaxRecords", "Filters.member.1.Name", "Tags.member.1.Key"])
            ] = rng.choice(ODD_STRINGS)
    elif protocol == "rest-xml":
        if body and isinstance(body, bytes) and choice < 0.5:
            cut = rng.randrange(len(body) + 1)
            req["body"] = body[:cut] + rng.choice([b"", b"<", b"</x>", b"&bogus;", b"\xff", b"<![CDATA[x"])
        elif choice < 0.8:
            path, sep, query = req["url_path"].partition("?")
            bad = rng.choice(["%ff", "%fe%fd", "%00", "/..", "%ed%a0%80", "%c0%af"])
            req["url_path"] = path + bad + sep + query
        else:
            req["query_string"] = {
                **(req.get("query_string") or {}),
                rng.choice(["versionId", "uploadId", "partNumber", "max-keys", "list-type", "x"]): rng.choice(
                    ODD_STRINGS[:20]
                ),
            }
