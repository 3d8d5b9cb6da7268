"""Customer-managed prefix lists: Create/Describe/Modify/DeleteManagedPrefixList and
GetManagedPrefixListEntries ("prefix_list" documents in ec2.db).

A prefix list is a named, versioned set of CIDR blocks of one address family, at most MaxEntries
of them; each change of its entries makes a new version, and a change that names CurrentVersion
applies only to that version (PrefixListVersionMismatch otherwise). Every version's entries are
kept, so GetManagedPrefixListEntries can read an older one (TargetVersion). A create retried with the same
ClientToken answers the list it made. Changes take effect at
once: states go straight to create-complete / modify-complete. FIS's
aws:network:disrupt-connectivity with scope prefix-list reads a list's entries when it starts.
Security group rules that reference a prefix list are refused (rules.py); AWS-managed prefix
lists (com.amazonaws.<region>.s3 ...) are not listed.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.query import matching, page, spec_tags, tag_list

if TYPE_CHECKING:
    from strata.services.ec2.network import Network
    from strata.storage.metadata import MetadataStore

MAX_ENTRIES = 1000  # AWS's largest MaxEntries
LISTS_PER_REGION = 100  # AWS's default quota of customer-managed prefix lists per region
FAMILIES = ("IPv4", "IPv6")


def not_found(prefix_list_id: str | None) -> Exception:
    return lim.fault("InvalidPrefixListID.NotFound", f"The prefix list ID '{prefix_list_id}' does not exist")


def _cidr(family: str, value: Any) -> str:
    """An entry's CIDR block in its canonical form, of the list's address family."""
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        raise lim.invalid(f"The CIDR '{value}' is invalid.") from None
    if (net.version == 4) != (family == "IPv4"):
        raise lim.invalid(f"The CIDR '{value}' does not match the address family {family}.")
    return str(net)


def _entries(family: str, given: list[dict] | None) -> dict[str, str]:
    """CIDR -> description of the entries a request gives."""
    out: dict[str, str] = {}
    for entry in given or []:
        cidr = _cidr(family, entry.get("Cidr"))
        description = entry.get("Description") or ""
        if len(description) > 255:
            raise lim.invalid("An entry's description must be at most 255 characters.")
        if cidr in out:
            raise lim.invalid(f"The request contains the CIDR {cidr} more than once.")
        out[cidr] = description
    return out


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise lim.invalid("The prefix list name must be 1 to 255 characters.")
    if name.startswith("com.amazonaws"):
        raise lim.invalid("The prefix list name cannot start with com.amazonaws.")
    return name


def _check_max(value: Any) -> int:
    if not isinstance(value, int) or not 1 <= value <= MAX_ENTRIES:
        raise lim.invalid(
            f"Value ({value}) for parameter maxEntries is invalid. It must be 1 to {MAX_ENTRIES}."
        )
    return value


class PrefixListsMixin:
    """Mixed into EC2Provider, which holds these:"""

    store: MetadataStore
    network: Network

    def _prefix_lists(self, ctx: RequestContext) -> list[dict]:
        return [
            d
            for d in self.store.list_docs("prefix_list")
            if d["account"] == ctx.account_id and d["region"] == ctx.region
        ]

    def _prefix_list(self, ctx: RequestContext, prefix_list_id: str | None) -> dict:
        """A prefix list of the caller's account and region by id (NotFound otherwise)."""
        doc = self.store.get_doc("prefix_list", prefix_list_id or "")
        if doc is None or doc["account"] != ctx.account_id or doc["region"] != ctx.region:
            raise not_found(prefix_list_id)
        return doc

    def create_managed_prefix_list(self, ctx: RequestContext, req: dict) -> dict:
        for member in ("PrefixListName", "MaxEntries", "AddressFamily"):
            if req.get(member) is None:
                raise lim.missing(member)
        name, maximum = _check_name(req["PrefixListName"]), _check_max(req["MaxEntries"])
        family = req["AddressFamily"]
        if family not in FAMILIES:
            raise lim.invalid(f"The address family {family} is invalid. Valid values are IPv4 and IPv6.")
        entries = _entries(family, req.get("Entries"))
        if len(entries) > maximum:
            raise lim.invalid(
                f"The number of entries ({len(entries)}) exceeds the maximum entries ({maximum})."
            )
        tags = spec_tags(req, "prefix-list")
        token = req.get("ClientToken")
        with self.network.lock:
            again = [d for d in self._prefix_lists(ctx) if token and d.get("token") == token]
            if again:  # a retried request: the list it made (EC2's idempotency)
                return {"PrefixList": _out(again[0])}
            if len(self._prefix_lists(ctx)) >= LISTS_PER_REGION:
                raise lim.fault(
                    "PrefixListLimitExceeded", "The maximum number of prefix lists has been reached."
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            doc = {
                "id": lim.new_id("pl"),
                "account": ctx.account_id,
                "region": ctx.region,
                "name": name,
                "family": family,
                "max": maximum,
                "versions": [entries],  # versions[v - 1]: the entries of version v
                "state": "create-complete",
                "tags": tags,
                "token": token,
            }
            self.store.put_doc("prefix_list", doc["id"], doc)
        return {"PrefixList": _out(doc)}

    def describe_managed_prefix_lists(self, ctx: RequestContext, req: dict) -> dict:
        lists = self._prefix_lists(ctx)
        if req.get("DryRun"):
            raise lim.dry_run()
        for wanted in req.get("PrefixListIds") or []:
            if not any(d["id"] == wanted for d in lists):
                raise not_found(wanted)
        if req.get("PrefixListIds"):
            lists = [d for d in lists if d["id"] in req["PrefixListIds"]]

        def values(d: dict, name: str) -> list[Any] | None:
            table = {"owner-id": d["account"], "prefix-list-id": d["id"], "prefix-list-name": d["name"]}
            return [table[name]] if name in table else None

        shown, token = page(matching(lists, req.get("Filters"), values), req, low=1, high=100)
        out: dict[str, Any] = {"PrefixLists": [_out(d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    def get_managed_prefix_list_entries(self, ctx: RequestContext, req: dict) -> dict:
        if not req.get("PrefixListId"):
            raise lim.missing("PrefixListId")
        doc = self._prefix_list(ctx, req["PrefixListId"])
        version = req.get("TargetVersion")
        if version is not None and not 1 <= version <= len(doc["versions"]):
            raise lim.invalid(f"The prefix list version {version} does not exist.")
        if req.get("DryRun"):
            raise lim.dry_run()
        entries = doc["versions"][(version or len(doc["versions"])) - 1]
        items = [{"id": cidr, "Cidr": cidr, "Description": d} for cidr, d in entries.items()]
        shown, token = page(items, req, low=1, high=100)
        out: dict[str, Any] = {
            "Entries": [
                {k: v for k, v in (("Cidr", e["Cidr"]), ("Description", e["Description"])) if v}
                for e in shown
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def modify_managed_prefix_list(self, ctx: RequestContext, req: dict) -> dict:
        if not req.get("PrefixListId"):
            raise lim.missing("PrefixListId")
        with self.network.lock:
            doc = self._prefix_list(ctx, req["PrefixListId"])
            current = doc["versions"][-1]
            version = req.get("CurrentVersion")
            if version is not None and version != len(doc["versions"]):
                raise lim.fault(
                    "PrefixListVersionMismatch", "The prefix list has the incorrect version number."
                )
            add, remove = req.get("AddEntries") or [], req.get("RemoveEntries") or []
            if (add or remove) and req.get("MaxEntries") is not None:
                raise lim.combination(
                    "You cannot modify the entries and the maximum entries for the prefix list in the same request."
                )
            name = (
                _check_name(req["PrefixListName"]) if req.get("PrefixListName") is not None else doc["name"]
            )
            maximum = doc["max"]
            if req.get("MaxEntries") is not None:
                maximum = _check_max(req["MaxEntries"])
                if maximum < len(current):
                    raise lim.invalid(
                        f"The maximum entries ({maximum}) cannot be less than the number of entries ({len(current)})."
                    )
            entries = dict(current)
            for cidr in [_cidr(doc["family"], e.get("Cidr")) for e in remove]:
                if cidr not in entries:
                    raise lim.fault(
                        "InvalidPrefixListModification", f"The entry with the CIDR ({cidr}) does not exist."
                    )
                del entries[cidr]
            for cidr, description in _entries(doc["family"], add).items():
                if entries.get(cidr) == description:
                    raise lim.fault(
                        "InvalidPrefixListModification",
                        f"An entry with the CIDR ({cidr}) and description ({description}) already exists.",
                    )
                entries[cidr] = description
            if len(entries) > maximum:
                raise lim.invalid(
                    f"The number of entries ({len(entries)}) exceeds the maximum entries ({maximum})."
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            doc.update(name=name, max=maximum, state="modify-complete")
            if add or remove:
                doc["versions"].append(entries)
            self.store.put_doc("prefix_list", doc["id"], doc)
        return {"PrefixList": _out(doc)}

    def delete_managed_prefix_list(self, ctx: RequestContext, req: dict) -> dict:
        if not req.get("PrefixListId"):
            raise lim.missing("PrefixListId")
        with self.network.lock:
            doc = self._prefix_list(ctx, req["PrefixListId"])
            if req.get("DryRun"):
                raise lim.dry_run()
            self.store.delete_doc("prefix_list", doc["id"])
        return {"PrefixList": _out({**doc, "state": "delete-complete"})}


def entries_of(doc: dict) -> list[str]:
    """The CIDR blocks of a prefix list's current version."""
    return list(doc["versions"][-1])


def _out(d: dict) -> dict:
    out: dict[str, Any] = {
        "PrefixListId": d["id"],
        "AddressFamily": d["family"],
        "State": d["state"],
        "PrefixListArn": f"arn:aws:ec2:{d['region']}:{d['account']}:prefix-list/{d['id']}",
        "PrefixListName": d["name"],
        "MaxEntries": d["max"],
        "Version": len(d["versions"]),
        "OwnerId": d["account"],
    }
    if d.get("tags"):
        out["Tags"] = tag_list(d["tags"])
    return out
