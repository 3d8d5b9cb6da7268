"""IAM for PartiQL: the actions and resources a statement needs, and the item-operation requests
fine-grained condition keys are read from.

As in DynamoDB, a statement is authorized as dynamodb:PartiQLSelect / PartiQLInsert /
PartiQLUpdate / PartiQLDelete on the table's ARN (the index's ARN for `"table"."index"`), one
pair per statement of a batch or transaction; an EXISTS condition check reads, so it is a
PartiQLSelect. A statement that does not parse touches nothing (the operation refuses it) and
needs nothing. `dynamodb:LeadingKeys` and `dynamodb:Attributes` come from the compiled requests,
exactly as for GetItem, Query, PutItem ...; `dynamodb:Select` says whether whole items come back.
"""

from __future__ import annotations

from collections.abc import Iterator

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.partiql import compile as comp
from strata.services.dynamodb.partiql import parser as p
from strata.services.dynamodb.state import State
from strata.services.dynamodb.tables import TableMeta

OPERATIONS = frozenset({"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"})
_ACTIONS = {
    p.Select: "dynamodb:PartiQLSelect",
    p.Exists: "dynamodb:PartiQLSelect",
    p.Insert: "dynamodb:PartiQLInsert",
    p.Update: "dynamodb:PartiQLUpdate",
    p.Delete: "dynamodb:PartiQLDelete",
}


def _statements(operation: str, req: dict) -> list[dict]:
    if operation == "ExecuteStatement":
        return [req]
    specs = req.get("Statements" if operation == "BatchExecuteStatement" else "TransactStatements")
    return [s for s in specs if isinstance(s, dict)] if isinstance(specs, list) else []


def _parsed(spec: dict) -> p.Parsed | None:
    text = spec.get("Statement")
    if not isinstance(text, str):
        return None
    try:
        return p.parse(text)
    except ServiceError:
        return None


def targets(operation: str, req: dict, region: str, account: str) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs a PartiQL request must be allowed."""
    out = []
    for spec in _statements(operation, req):
        parsed = _parsed(spec)
        if parsed is None:
            continue
        stmt = parsed.statement
        source = stmt.select if isinstance(stmt, p.Exists) else stmt
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{source.table}"
        if source.index is not None:
            arn += f"/index/{source.index}"
        out.append((_ACTIONS[type(stmt)], arn))
    return out


def select_key(operation: str, req: dict) -> str | None:
    """dynamodb:Select for PartiQL: ALL_ATTRIBUTES when a statement returns whole items (SELECT *,
    RETURNING ALL ...), SPECIFIC_ATTRIBUTES when its SELECTs all name their attributes."""
    answer = None
    for spec in _statements(operation, req):
        parsed = _parsed(spec)
        if parsed is None:
            continue
        stmt = parsed.statement
        if isinstance(stmt, p.Select):
            if stmt.projection is None:
                return "ALL_ATTRIBUTES"
            answer = "SPECIFIC_ATTRIBUTES"
        elif isinstance(stmt, (p.Update, p.Delete)) and (stmt.returning or "").startswith("ALL"):
            return "ALL_ATTRIBUTES"
    return answer


def requests(state: State, scope: str, operation: str, req: dict) -> Iterator[tuple[TableMeta, dict]]:
    """Each statement's table and compiled item-operation request (statements that do not
    compile are left out: the operation refuses them)."""
    for spec in _statements(operation, req):
        parsed = _parsed(spec)
        if parsed is None:
            continue
        stmt = parsed.statement
        table = stmt.select.table if isinstance(stmt, p.Exists) else stmt.table
        meta = state.tables.get((scope, table))
        if meta is None:
            continue
        try:
            bound = comp.bound_values(parsed, spec.get("Parameters"))
            r = comp.template(parsed, meta).bind(bound)
        except ServiceError:
            continue
        for one in r.parts if r.parts is not None else [r.req]:  # `pk IN (...)`: each partition
            yield meta, one
