"""Route tables: DescribeRouteTables, Create/DeleteRouteTable, Associate/DisassociateRouteTable,
ReplaceRouteTableAssociation (a subnet's, or the VPC's main association), CreateRoute/DeleteRoute,
with AWS's errors.

Every VPC has a main route table (derived from the VPC's id, as the default VPC itself is, so it
needs no record until it changes, and goes with its VPC) that subnets use unless associated with another. A route
table holds its `local` route (the VPC's block, target `local`), which cannot be removed, and
that is every route Strata has: it has no internet, NAT, virtual private or transit gateways, no
peering connections, network interfaces or endpoints to route to, so CreateRoute answers the
target's NotFound error (an instance as a target is refused: Strata's instances forward nothing),
and parameters.json refuses the targets AWS itself would not find here. So every table routes
exactly what Strata does: everything inside the VPC, and the tables a subnet is associated with
change nothing a client can observe. Created tables are "rtb" documents in ec2.db, each with its
explicit subnet associations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.services.ec2 import limits as lim
from strata.services.ec2.network import _hex, subnet_not_found, vpc_blocks
from strata.services.ec2.query import matching, page, spec_tags, tag_list

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

ROUTE_TABLES_PER_VPC = 200  # AWS's default quota
# CreateRoute's targets, none of which exists in Strata: AWS's NotFound error for each.
_TARGETS = {
    "GatewayId": ("InvalidGatewayID.NotFound", "The gateway ID '{}' does not exist"),
    "NatGatewayId": ("InvalidNatGatewayID.NotFound", "The natGateway ID '{}' does not exist"),
    "NetworkInterfaceId": (
        "InvalidNetworkInterfaceID.NotFound",
        "The networkInterface ID '{}' does not exist",
    ),
    "VpcPeeringConnectionId": (
        "InvalidVpcPeeringConnectionID.NotFound",
        "The vpcPeeringConnection ID '{}' does not exist",
    ),
    "TransitGatewayId": ("InvalidTransitGatewayID.NotFound", "The transitGateway ID '{}' does not exist"),
}


def main_table_id(vpc_id: str) -> str:
    return f"rtb-{_hex('main', vpc_id)}"


def _not_found(table_id: str) -> Exception:
    if not table_id.startswith("rtb-"):
        return lim.fault("InvalidRouteTableId.Malformed", f'Invalid id: "{table_id}"')
    return lim.fault("InvalidRouteTableID.NotFound", f"The routeTable ID '{table_id}' does not exist")


class RouteTablesMixin:
    """Mixed into EC2Provider (which holds `network`)."""

    def _route_tables(self: EC2Provider, ctx: RequestContext) -> list[dict]:
        """Every route table of the region: each VPC's main one, then the created ones."""
        vpcs = {v["id"]: v for v in self.network.vpcs(ctx.account_id, ctx.region)}
        # ReplaceRouteTableAssociation of a main association: {"id": vpc, "table", "assoc"}
        moved = {d["id"]: d for d in self.store.list_docs("rtb_main") if d["id"] in vpcs}
        stored = [
            d
            for d in self.store.list_docs("rtb")
            if d["account"] == ctx.account_id and d["region"] == ctx.region and d["vpc"] in vpcs
        ]
        kept = {d["id"] for d in stored}  # a first main table is stored once it changes
        out = [
            {
                "id": main_table_id(v),
                "vpc": v,
                "assocs": {},
                "tags": {},
                "account": ctx.account_id,
                "region": ctx.region,
            }
            for v in vpcs
            if v not in moved and main_table_id(v) not in kept  # moved: stored (or deleted)
        ]
        out += stored
        for d in out:
            d["cidrs"] = vpc_blocks(vpcs[d["vpc"]])
            m = moved.get(d["vpc"])
            d["main"] = d["id"] == (m["table"] if m else main_table_id(d["vpc"]))
            d["main_assoc"] = m["assoc"] if m else f"rtbassoc-{_hex('main-association', d['vpc'])}"
        return out

    def _route_table(self: EC2Provider, ctx: RequestContext, table_id: str | None) -> dict:
        if not table_id:
            raise lim.missing("RouteTableId")
        for d in self._route_tables(ctx):
            if d["id"] == table_id:
                return d
        raise _not_found(table_id)

    def create_route_table(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("VpcId"):
            raise lim.missing("VpcId")
        tags = spec_tags(req, "route-table")
        with self.network.lock:
            vpc = self.network.vpc(ctx.account_id, ctx.region, req["VpcId"])
            if sum(d["vpc"] == vpc["id"] for d in self._route_tables(ctx)) >= ROUTE_TABLES_PER_VPC:
                raise lim.fault(
                    "RouteTableLimitExceeded", "The maximum number of route tables has been reached."
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            doc = {
                "id": lim.new_id("rtb"),
                "account": ctx.account_id,
                "region": ctx.region,
                "vpc": vpc["id"],
                "assocs": {},
                "tags": tags,
            }
            self.store.put_doc("rtb", doc["id"], doc)
        out: dict[str, Any] = {"RouteTable": self._route_table_out(ctx, {**doc, "cidrs": vpc_blocks(vpc)})}
        if req.get("ClientToken"):
            out["ClientToken"] = req["ClientToken"]
        return out

    def delete_route_table(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        with self.network.lock:
            d = self._route_table(ctx, req.get("RouteTableId"))
            if d.get("main") or d["assocs"]:
                raise lim.fault(
                    "DependencyViolation",
                    f"The routeTable '{d['id']}' has dependencies and cannot be deleted.",
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            self.store.delete_doc("rtb", d["id"])
        return {}

    def associate_route_table(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        if not req.get("SubnetId"):
            raise lim.missing("SubnetId")
        net = self.network
        with net.lock:
            d = self._route_table(ctx, req.get("RouteTableId"))
            s = net.subnet(ctx.account_id, ctx.region, req["SubnetId"])
            if s is None:
                raise subnet_not_found(req["SubnetId"])
            if s["vpc"] != d["vpc"]:
                raise lim.invalid(f"Route table {d['id']} and subnet {s['id']} belong to different networks")
            if any(s["id"] in t["assocs"].values() for t in self._route_tables(ctx)):
                raise lim.fault(
                    "Resource.AlreadyAssociated",
                    f"the specified association for route table {d['id']} conflicts with an existing association",
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            assoc = lim.new_id("rtbassoc")
            self.store.put_doc("rtb", d["id"], self._stored(d, {**d["assocs"], assoc: s["id"]}))
        return {"AssociationId": assoc, "AssociationState": {"State": "associated"}}

    def disassociate_route_table(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        assoc = req.get("AssociationId")
        if not assoc:
            raise lim.missing("AssociationId")
        with self.network.lock:
            tables = self._route_tables(ctx)
            if any(self._main_association(t) == assoc for t in tables if t.get("main")):
                raise lim.invalid(f"cannot disassociate the main route table association {assoc}")
            d = next((t for t in tables if assoc in t["assocs"]), None)
            if d is None:
                raise lim.fault(
                    "InvalidAssociationID.NotFound", f"The association ID '{assoc}' does not exist"
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            self.store.put_doc(
                "rtb", d["id"], self._stored(d, {k: v for k, v in d["assocs"].items() if k != assoc})
            )
        return {}

    def _vpc_route_tables(self: EC2Provider, vpc_id: str) -> tuple[list[dict], list[dict]]:
        """(a VPC's stored tables other than its main one: DeleteVpc's dependencies, its stored
        main table and main-association record, which go with it)."""
        moved = self.store.get_doc("rtb_main", vpc_id)
        main = moved["table"] if moved else main_table_id(vpc_id)
        tables = [d for d in self.store.list_docs("rtb") if d["vpc"] == vpc_id]
        return [d for d in tables if d["id"] != main], [d for d in tables if d["id"] == main]

    def _release_subnet_routes(self: EC2Provider, subnet_id: str) -> None:
        """A deleted subnet's explicit association goes with it, as on AWS."""
        for d in self.store.list_docs("rtb"):
            if subnet_id in d["assocs"].values():
                d["assocs"] = {k: v for k, v in d["assocs"].items() if v != subnet_id}
                self.store.put_doc("rtb", d["id"], d)

    def create_route(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        d = self._route_table(ctx, req.get("RouteTableId"))
        if not req.get("DestinationCidrBlock") and not req.get("DestinationIpv6CidrBlock"):
            raise lim.missing("DestinationCidrBlock")
        for member, (code, message) in _TARGETS.items():
            if req.get(member):
                if member == "GatewayId" and req[member] == "local":
                    break
                raise lim.fault(code, message.format(req[member]))
        if req.get("InstanceId"):
            self._instance(ctx, req["InstanceId"])
            raise lim.invalid("Strata's instances forward no traffic: a route cannot target an instance")
        if req.get("DestinationCidrBlock") in d["cidrs"]:
            raise lim.fault(
                "RouteAlreadyExists",
                f"The route identified by {req['DestinationCidrBlock']} already exists.",
            )
        raise lim.invalid(
            "Only the local route is supported: Strata has no gateways, NAT gateways, peering "
            "connections or network interfaces to route to"
        )

    def delete_route(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        d = self._route_table(ctx, req.get("RouteTableId"))
        dest = req.get("DestinationCidrBlock") or req.get("DestinationIpv6CidrBlock")
        if not dest:
            raise lim.missing("DestinationCidrBlock")
        if dest in d["cidrs"]:
            raise lim.invalid(f"cannot remove local route {dest} in route table {d['id']}")
        raise lim.fault(
            "InvalidRoute.NotFound", f"no route with destination-cidr-block {dest} in route table {d['id']}"
        )

    def describe_route_tables(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        tables = self._route_tables(ctx)
        for one in req.get("RouteTableIds") or []:
            if not any(d["id"] == one for d in tables):
                raise _not_found(one)
        if req.get("RouteTableIds"):
            tables = [d for d in tables if d["id"] in req["RouteTableIds"]]

        def values(d: dict, name: str) -> list[Any] | None:
            assocs = self._associations(d)
            table: dict[str, list[Any]] = {
                "route-table-id": [d["id"]],
                "vpc-id": [d["vpc"]],
                "owner-id": [ctx.account_id],
                "association.main": [bool(a.get("Main")) for a in assocs] or [False],
                "association.subnet-id": [a["SubnetId"] for a in assocs if "SubnetId" in a],
                "association.route-table-association-id": [a["RouteTableAssociationId"] for a in assocs],
                "association.route-table-id": [d["id"]] if assocs else [],
                "route.destination-cidr-block": d["cidrs"],
                "route.gateway-id": ["local"],
                "route.origin": ["CreateRouteTable"],
                "route.state": ["active"],
            }
            return table.get(name)

        shown, token = page(matching(tables, req.get("Filters"), values), req, ids_member="RouteTableIds")
        out: dict[str, Any] = {"RouteTables": [self._route_table_out(ctx, d) for d in shown]}
        if token:
            out["NextToken"] = token
        return out

    @staticmethod
    def _main_association(d: dict) -> str:
        return d["main_assoc"]

    @staticmethod
    def _stored(d: dict, assocs: dict[str, str]) -> dict:
        return {k: v for k, v in d.items() if k not in ("cidrs", "main", "main_assoc")} | {"assocs": assocs}

    def replace_route_table_association(self: EC2Provider, ctx: RequestContext, req: dict) -> dict:
        assoc = req.get("AssociationId")
        if not assoc:
            raise lim.missing("AssociationId")
        with self.network.lock:
            tables = self._route_tables(ctx)
            target = self._route_table(ctx, req.get("RouteTableId"))
            main = next((t for t in tables if t["main"] and t["main_assoc"] == assoc), None)
            held = main or next((t for t in tables if assoc in t["assocs"]), None)
            if held is None:
                raise lim.fault(
                    "InvalidAssociationID.NotFound", f"The association ID '{assoc}' does not exist"
                )
            if held["vpc"] != target["vpc"]:
                raise lim.invalid(
                    f"Route table {target['id']} and association {assoc} belong to different networks"
                )
            if req.get("DryRun"):
                raise lim.dry_run()
            new = lim.new_id("rtbassoc")
            with self.store.transaction():
                if main is not None:  # the VPC's main table changes; the old one stays, as a table
                    self.store.put_doc("rtb", main["id"], self._stored(main, main["assocs"]))
                    self.store.put_doc(
                        "rtb_main", main["vpc"], {"id": main["vpc"], "table": target["id"], "assoc": new}
                    )
                else:  # the subnet moves to the target table
                    subnet = held["assocs"][assoc]
                    left = {k: v for k, v in held["assocs"].items() if k != assoc}
                    self.store.put_doc("rtb", held["id"], self._stored(held, left))
                    target = next(t for t in self._route_tables(ctx) if t["id"] == target["id"])
                    self.store.put_doc(
                        "rtb", target["id"], self._stored(target, {**target["assocs"], new: subnet})
                    )
        return {"NewAssociationId": new, "AssociationState": {"State": "associated"}}

    def _associations(self: EC2Provider, d: dict) -> list[dict]:
        out: list[dict] = []
        if d.get("main"):
            out.append({"Main": True, "RouteTableAssociationId": self._main_association(d)})
        out += [
            {"Main": False, "RouteTableAssociationId": k, "SubnetId": v}
            for k, v in sorted(d["assocs"].items())
        ]
        return [{**a, "RouteTableId": d["id"], "AssociationState": {"State": "associated"}} for a in out]

    def _route_table_out(self: EC2Provider, ctx: RequestContext, d: dict) -> dict:
        out: dict[str, Any] = {
            "RouteTableId": d["id"],
            "VpcId": d["vpc"],
            "OwnerId": ctx.account_id,
            "Associations": self._associations(d),
            "PropagatingVgws": [],
            "Routes": [
                {
                    "DestinationCidrBlock": c,
                    "GatewayId": "local",
                    "Origin": "CreateRouteTable",
                    "State": "active",
                }
                for c in d["cidrs"]
            ],
        }
        if d.get("tags"):
            out["Tags"] = tag_list(d["tags"])
        return out
