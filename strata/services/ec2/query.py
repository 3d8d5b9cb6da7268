"""What every EC2 Describe* shares: filters, pagination and tags.

Filters are `[{"Name": n, "Values": [...]}]`; a resource matches when, for every filter, one of
its values for that name matches one of the filter's values (`*` and `?` are wildcards, as on
AWS). `tag:<key>`, `tag-key` and `tag-value` work on every resource with tags.
"""

from __future__ import annotations

import base64
import fnmatch
from collections.abc import Callable

from strata.services.ec2.limits import fault, invalid

Values = Callable[[dict, str], list[str] | None]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tag_values(doc: dict, name: str) -> list[str] | None:
    tags = doc.get("tags") or {}
    if name.startswith("tag:"):
        key = name[4:]
        return [v for k, v in tags.items() if k == key]
    if name == "tag-key":
        return list(tags)
    if name == "tag-value":
        return list(tags.values())
    return None


def matching(docs: list[dict], filters: list[dict] | None, values_of: Values) -> list[dict]:
    """The docs that pass every filter; an unknown filter name is AWS's InvalidParameterValue."""
    if not filters:
        return docs
    out = []
    for doc in docs:
        for f in filters:
            name = f.get("Name") or ""
            have = tag_values(doc, name)
            if have is None:
                have = values_of(doc, name)
            if have is None:
                raise invalid(f"The filter '{name}' is invalid")
            wanted = f.get("Values") or []
            if not any(fnmatch.fnmatchcase(_text(h), w) for h in have for w in wanted):
                break
        else:
            out.append(doc)
    return out


def page(
    items: list[dict], req: dict, *, low: int = 5, high: int = 1000, ids_member: str | None = None
) -> tuple[list[dict], str | None]:
    """One page of `items` (sorted by id) and the token of the next, from MaxResults/NextToken."""
    limit = req.get("MaxResults")
    if limit is not None and ids_member and req.get(ids_member):
        raise combination_error(ids_member)
    if limit is not None and not low <= limit <= high:
        raise invalid(
            f"Value ( {limit} ) for parameter maxResults is invalid. Expecting a value between {low} and {high}."
        )
    items = sorted(items, key=lambda d: d["id"])
    token = req.get("NextToken")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            raise fault("InvalidNextToken", "The specified token is invalid") from None
        items = [d for d in items if d["id"] > after]
    if limit is None or len(items) <= limit:
        return items, None
    shown = items[:limit]
    return shown, base64.urlsafe_b64encode(shown[-1]["id"].encode()).decode()


def combination_error(ids_member: str) -> Exception:
    return fault(
        "InvalidParameterCombination",
        f"The parameter {ids_member[0].lower() + ids_member[1:]} cannot be used with the parameter maxResults",
    )


def tag_list(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def check_tags(tags: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        key = tag.get("Key")
        if key is None or key == "":
            raise invalid("Tag key cannot be empty")
        if len(key) > 128 or len(tag.get("Value") or "") > 256:
            raise invalid("Tag key must be at most 128 and a tag value at most 256 characters")
        if key.lower().startswith("aws:"):
            raise invalid("Tag keys starting with 'aws:' are reserved for internal use")
        out[key] = tag.get("Value") or ""
    if len(out) > 50:
        raise fault("TagLimitExceeded", "The maximum number of tags for a resource is 50")
    return out


def spec_tags(req: dict, resource_type: str) -> dict[str, str]:
    """The tags TagSpecifications give a resource of `resource_type` (AWS's errors otherwise)."""
    out: dict[str, str] = {}
    for spec in req.get("TagSpecifications") or []:
        kind = spec.get("ResourceType")
        if kind != resource_type:
            raise invalid(f"'{kind}' is not a valid taggable resource type for this operation.")
        out.update(check_tags(spec.get("Tags") or []))
    return out
