"""Describe* paging and filters as RDS does them, so neither is accepted and ignored.

- `page`: MaxRecords (20-100, default 100) and the opaque Marker the previous page returned.
- `filtered`: Filters by the names each operation documents (a table per operation, name -> the
  record's value or values); any other name is refused with InvalidParameterValue, as RDS does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strata.services.rds.model import fault

DEFAULT_MAX_RECORDS = 100
MIN_MAX_RECORDS = 20


def page(items: list, req: dict, key: str) -> dict:
    """`{key: one page of items}` plus `Marker` when more follow."""
    size = req.get("MaxRecords")
    if size is None:
        size = DEFAULT_MAX_RECORDS
    elif not MIN_MAX_RECORDS <= size <= DEFAULT_MAX_RECORDS:
        raise fault(
            "InvalidParameterValue",
            f"Invalid value {size} for MaxRecords. Must be between {MIN_MAX_RECORDS} and {DEFAULT_MAX_RECORDS}",
        )
    start = 0
    marker = req.get("Marker")
    if marker:
        if not (marker.isascii() and marker.isdigit()) or len(marker) > 9:
            raise fault("InvalidParameterValue", f"The parameter Marker is not valid: {marker}")
        start = int(marker)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["Marker"] = str(start + size)
    return out


def filtered(docs: list, req: dict, fields: dict[str, Callable[[Any], Any]]) -> list:
    """The docs every filter matches (a filter matches when the doc's value is one of its Values)."""
    for f in req.get("Filters") or []:
        name = f.get("Name")
        value_of = fields.get(name)
        if value_of is None:
            raise fault("InvalidParameterValue", f"Unrecognized filter name: {name}")
        wanted = set(f.get("Values") or [])
        docs = [d for d in docs if wanted & _as_set(value_of(d))]
    return docs


def _as_set(value: Any) -> set:
    if value is None:
        return set()
    if isinstance(value, list | tuple | set):
        return {v for v in value if v is not None}
    return {value}
