"""SEARCH expressions of metric math: which stored metrics a search text names.

    {AWS/DynamoDB,TableName} MetricName="ConsumedReadCapacityUnits" orders

`{Namespace,Dim...}` (optional) is the schema: the namespace, and exactly these dimension names.
`key="value"` must match exactly (MetricName, Namespace or a dimension name); a bare or quoted
term matches part of the namespace, the metric name, or any dimension name or value (ignoring
case). Terms are ANDed; OR, NOT and parentheses are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.services.cloudwatch.expressions import invalid

MAX_RESULTS = 500  # series a SEARCH returns at most, as CloudWatch
_TOKEN = re.compile(
    r'\s*(?:([\w.\-/:]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s"\']+))|"([^"]*)"|\'([^\']*)\'|([^\s"\']+))'
)


@dataclass(frozen=True)
class Query:
    namespace: str | None
    schema: frozenset[str] | None  # dimension names the metric must have, exactly
    exact: tuple[tuple[str, str], ...]
    terms: tuple[str, ...]

    def matches(self, namespace: str, name: str, dims: dict[str, str]) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.schema is not None and frozenset(dims) != self.schema:
            return False
        for key, value in self.exact:
            have = {"MetricName": name, "Namespace": namespace}.get(key, dims.get(key))
            if have != value:
                return False
        words = [namespace, name, *dims, *dims.values()]
        return all(any(term in w.lower() for w in words) for term in self.terms)


def parse(text: str) -> Query:
    rest = text.strip()
    namespace = schema = None
    if rest.startswith("{"):
        end = rest.find("}")
        if end < 0:
            raise invalid(f"Error in SEARCH expression '{text}': unclosed schema")
        parts = [p.strip().strip("\"'") for p in rest[1:end].split(",")]
        if not parts or not parts[0]:
            raise invalid(f"Error in SEARCH expression '{text}': the schema names no namespace")
        namespace, schema = parts[0], frozenset(p for p in parts[1:] if p)
        rest = rest[end + 1 :]
    exact, terms = [], []
    at = 0
    while at < len(rest.rstrip()):
        m = _TOKEN.match(rest, at)
        if m is None or m.end() == at:
            raise invalid(f"Error in SEARCH expression '{text}': cannot read it at '{rest[at:]}'")
        at = m.end()
        key, quoted, single, bare, term, term_single, word = m.groups()
        if key is not None:
            exact.append((key, next(v for v in (quoted, single, bare) if v is not None)))
            continue
        token = next(v for v in (term, term_single, word) if v is not None)
        if word in ("OR", "NOT") or (word or "").startswith(("(", ")")):
            raise invalid(f"Error in SEARCH expression '{text}': {word} is not supported by Strata")
        if word == "AND":
            continue
        terms.append(token.lower())
    return Query(namespace, schema, tuple(exact), tuple(terms))
