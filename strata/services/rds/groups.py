"""Subnet groups, events, tags, catalogue (parameter groups: parameter_groups.py)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

from strata.context import RequestContext
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.services.rds.listing import filtered, page
from strata.sim.clock import clock

_seq = itertools.count()
VERSION_LABELS = {"mysql": "MySQL", "aurora-mysql": "Aurora MySQL"}
GLOBAL_ARN = ":global-cluster:"  # a global cluster's ARN (no region): its tags, global_clusters.py


class GroupOperations(RDSCore):
    _global_cluster_tags: Callable[..., dict[str, str]]

    # -- subnet groups -----------------------------------------------------------------------------

    def _check_subnets(self, ids: list[str]) -> list[str]:
        """The subnet ids of a DB subnet group: existing subnets (EC2's), of one VPC, in two
        zones at least, as AWS requires (InvalidSubnet, DBSubnetGroupDoesNotCoverEnoughAZs)."""
        ids = list(dict.fromkeys(ids))
        net = self._network()
        if net is None:
            return ids
        subnets = [net.subnet(self.account, self.region, i) for i in ids]
        unknown = [i for i, s in zip(ids, subnets, strict=True) if s is None]
        if unknown:
            raise m.fault("InvalidSubnet", f"Some input subnets in :[{', '.join(unknown)}] are invalid.")
        if len({s["vpc"] for s in subnets if s}) > 1:
            raise m.fault(
                "InvalidSubnet",
                "The requested subnet is invalid, or multiple subnets were requested that are not "
                "all in a common VPC.",
            )
        zones = sorted({s["az"] for s in subnets if s})
        if len(zones) < 2:
            raise m.fault(
                "DBSubnetGroupDoesNotCoverEnoughAZs",
                "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. "
                f"Current AZ coverage: {', '.join(zones)}. Add subnets to cover at least 2 AZs.",
            )
        return ids

    def create_db_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBSubnetGroupName", "DBSubnetGroupDescription", "SubnetIds")
        name = m.check_subnet_group_name(req["DBSubnetGroupName"])
        if self.store.get_doc("subnet_group", name.lower()):
            raise m.fault("DBSubnetGroupAlreadyExists", f"DB subnet group {name} already exists.")
        g = {
            "name": name,
            "description": req["DBSubnetGroupDescription"],
            "subnets": self._check_subnets(req["SubnetIds"]),
            "tags": m.tags_in(req.get("Tags")),
        }
        self.store.put_doc("subnet_group", name.lower(), g)
        return {"DBSubnetGroup": self._subnet_group_out(g)}

    def _subnet_group_out(self, g: dict) -> dict:
        azs = self._azs()
        net = self._network()
        known = {
            i: s for i in g["subnets"] if net and (s := net.subnet(self.account, self.region, i)) is not None
        }
        vpc = next(iter(known.values()))["vpc"] if known else None
        if vpc is None and net is not None:
            vpc = net.vpcs(self.account, self.region)[0]["id"]  # the default VPC
        return {
            "DBSubnetGroupName": g["name"],
            "DBSubnetGroupDescription": g["description"],
            "VpcId": vpc or "vpc-strata0000000000",
            "SubnetGroupStatus": "Complete",
            "Subnets": [
                {
                    "SubnetIdentifier": s,
                    "SubnetAvailabilityZone": {"Name": known[s]["az"] if s in known else azs[i % len(azs)]},
                    "SubnetStatus": "Active",
                }
                for i, s in enumerate(g["subnets"])
            ],
            "DBSubnetGroupArn": m.arn(self.region, self.account, "subgrp", g["name"]),
            "SupportedNetworkTypes": ["IPV4"],
        }

    def describe_db_subnet_groups(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBSubnetGroupName"):
            groups = [self._get_subnet_group(req["DBSubnetGroupName"])]
        else:
            groups = self.store.list_docs("subnet_group")
        resp = page(groups, req, "DBSubnetGroups")
        resp["DBSubnetGroups"] = [self._subnet_group_out(g) for g in resp["DBSubnetGroups"]]
        return resp

    def modify_db_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        g = self._get_subnet_group(req["DBSubnetGroupName"])
        if req.get("SubnetIds"):
            g["subnets"] = self._check_subnets(req["SubnetIds"])
        if req.get("DBSubnetGroupDescription"):
            g["description"] = req["DBSubnetGroupDescription"]
        self.store.put_doc("subnet_group", g["name"].lower(), g)
        return {"DBSubnetGroup": self._subnet_group_out(g)}

    def delete_db_subnet_group(self, ctx: RequestContext, req: dict) -> dict:
        name = req["DBSubnetGroupName"]
        self._get_subnet_group(name)
        for kind in ("instance", "cluster"):
            user = next(
                (
                    d
                    for d in self.store.list_docs(kind)
                    if (d.get("subnet_group") or "").lower() == name.lower()
                ),
                None,
            )
            if user is not None:
                what = "database instance" if kind == "instance" else "DB cluster"
                raise m.fault(
                    "InvalidDBSubnetGroupStateFault",
                    f"Cannot delete the subnet group '{name}' because at least one {what}: "
                    f"{user['id']} is still using it.",
                )
        self.store.delete_doc("subnet_group", name.lower())
        return {}

    # -- events ------------------------------------------------------------------------------------

    def _event(self, source: str, source_type: str, message: str, categories: list[str]) -> None:
        now = clock.now()
        key = f"{now.timestamp():017.6f}-{next(_seq):06d}"
        self.store.put_doc(
            "event",
            key,
            {
                "source": source,
                "type": source_type,
                "message": message,
                "categories": categories,
                "date": now.isoformat(),
            },
        )

    def describe_events(self, ctx: RequestContext, req: dict) -> dict:
        now = clock.now()
        end = req.get("EndTime") or now
        # RDS answers for the past 14 days at most: a longer (or negative) Duration is clamped.
        minutes = min(max(int(req.get("Duration") or 60), 0), 14 * 24 * 60)
        try:
            start = req.get("StartTime") or (end - dt.timedelta(minutes=minutes))
        except OverflowError:  # an EndTime in year 1
            start = dt.datetime.min.replace(tzinfo=dt.UTC)
        kinds = {
            "db-instance": "instance",
            "db-snapshot": "snapshot",
            "db-cluster": "cluster",
            "db-cluster-snapshot": "cluster-snapshot",
            "db-parameter-group": "pg",
        }
        out = []
        for e in self.store.list_docs("event"):
            date = dt.datetime.fromisoformat(e["date"])
            if not start <= date <= end:
                continue
            if req.get("SourceIdentifier") and e["source"] != req["SourceIdentifier"].lower():
                continue
            if req.get("SourceType") and e["type"] != req["SourceType"]:
                continue
            if req.get("EventCategories") and not set(req["EventCategories"]) & set(e["categories"]):
                continue
            out.append(
                {
                    "SourceIdentifier": e["source"],
                    "SourceType": e["type"],
                    "Message": e["message"],
                    "EventCategories": e["categories"],
                    "Date": date,
                    "SourceArn": m.arn(self.region, self.account, kinds.get(e["type"], "db"), e["source"]),
                }
            )
        return page(out, req, "Events")

    def describe_event_categories(self, ctx: RequestContext, req: dict) -> dict:
        cats = [
            "availability",
            "backup",
            "configuration change",
            "creation",
            "deletion",
            "failover",
            "failure",
            "maintenance",
            "notification",
            "read replica",
            "recovery",
            "restoration",
        ]
        return {"EventCategoriesMapList": [{"SourceType": "db-instance", "EventCategories": cats}]}

    # -- tags --------------------------------------------------------------------------------------

    def _tag_target(self, arn: str) -> tuple[str, str]:
        parts = arn.split(":")
        if len(parts) < 7 or parts[2] != "rds":
            raise m.fault("InvalidParameterValue", f"Invalid resource name: {arn}")
        kind = {
            "db": "instance",
            "snapshot": "snapshot",
            "cluster": "cluster",
            "cluster-snapshot": "cluster_snapshot",
            "cluster-endpoint": "cluster_endpoint",
            "pg": "param_group",
            "cluster-pg": "cluster_param_group",
            "subgrp": "subnet_group",
        }.get(parts[5])
        if kind is None:
            raise m.fault("InvalidParameterValue", f"Unsupported resource type in {arn}")
        ident = (
            parts[6]
            if kind not in ("param_group", "cluster_param_group", "subnet_group")
            else parts[6].lower()
        )
        # another account's or another region's ARN
        if self.store.get_doc(kind, ident) is None or parts[4] != self.account or parts[3] != self.region:
            raise {
                "instance": m.not_found_instance,
                "snapshot": m.not_found_snapshot,
                "cluster": m.not_found_cluster,
            }.get(kind, m.not_found_instance)(ident)
        return kind, ident

    def add_tags_to_resource(self, ctx: RequestContext, req: dict) -> dict:
        if GLOBAL_ARN in req["ResourceName"]:
            self._global_cluster_tags(req["ResourceName"], add=m.tags_in(req.get("Tags")))
            return {}
        kind, ident = self._tag_target(req["ResourceName"])
        with self.fleet.lock(ident):
            doc = self.store.get_doc(kind, ident)
            doc.setdefault("tags", {}).update(m.tags_in(req.get("Tags")))
            self.store.put_doc(kind, ident, doc)
        return {}

    def remove_tags_from_resource(self, ctx: RequestContext, req: dict) -> dict:
        if GLOBAL_ARN in req["ResourceName"]:
            self._global_cluster_tags(req["ResourceName"], remove=req.get("TagKeys") or [])
            return {}
        kind, ident = self._tag_target(req["ResourceName"])
        doc = self.store.get_doc(kind, ident)
        for k in req.get("TagKeys") or []:
            doc.get("tags", {}).pop(k, None)
        self.store.put_doc(kind, ident, doc)
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, req: dict) -> dict:
        if GLOBAL_ARN in req["ResourceName"]:
            return {"TagList": m.tags_out(self._global_cluster_tags(req["ResourceName"]))}
        kind, ident = self._tag_target(req["ResourceName"])
        return {"TagList": m.tags_out(self.store.get_doc(kind, ident).get("tags", {}))}

    # -- catalogue ---------------------------------------------------------------------------------

    def describe_db_engine_versions(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("Engine"):
            infos = [m.engine_info(req["Engine"])]
        else:
            infos = list(m.ENGINES.values())
        out = []
        versions = {i.name: self._versions_of(i.name) for i in infos}
        if req.get("DefaultOnly"):
            versions = {engine: found[:1] for engine, found in versions.items()}
        for info, version in [(i, v) for i in infos for v in versions[i.name]]:
            if req.get("EngineVersion") and not m.version_matches(req["EngineVersion"], version):
                continue
            family = m.family(info.name, version)
            if req.get("DBParameterGroupFamily") and req["DBParameterGroupFamily"] != family:
                continue
            label = f"{info.description} {version}"
            if info.name in m.AWS_VERSIONS:  # AWS's name of the version, and the server running it
                label = f"{VERSION_LABELS[info.name]} {version} (run by MariaDB {self._engine_version('mariadb')})"
            out.append(
                {
                    "Engine": info.name,
                    "EngineVersion": version,
                    "MajorEngineVersion": m.major_version(info.name, version),
                    "DBParameterGroupFamily": family,
                    "DBEngineDescription": info.description,
                    "DBEngineVersionDescription": label,
                    "SupportsReadReplica": True,
                    "Status": "available",
                    "SupportedEngineModes": ["provisioned"],
                    "ValidUpgradeTarget": [],
                    "SupportsLogExportsToCloudwatchLogs": False,
                    "SupportsParallelQuery": False,
                    "SupportsGlobalDatabases": False,
                }
            )
        out = filtered(
            out,
            req,
            {
                "db-parameter-group-family": lambda v: v["DBParameterGroupFamily"],
                "engine": lambda v: v["Engine"],
                "engine-mode": lambda v: v["SupportedEngineModes"],
                "engine-version": lambda v: v["EngineVersion"],
                "status": lambda v: v["Status"],
            },
        )
        return page(out, req, "DBEngineVersions")

    def describe_orderable_db_instance_options(self, ctx: RequestContext, req: dict) -> dict:
        info = m.engine_info(req.get("Engine"))
        versions = [
            v
            for v in self._versions_of(info.name)
            if not req.get("EngineVersion") or m.version_matches(req["EngineVersion"], v)
        ]
        classes = [
            c for c in m.INSTANCE_CLASSES if not req.get("DBInstanceClass") or c == req["DBInstanceClass"]
        ]
        out = [
            {
                "Engine": info.name,
                "EngineVersion": version,
                "DBInstanceClass": c,
                "LicenseModel": "postgresql-license" if info.kind == "postgres" else "general-public-license",
                "AvailabilityZones": [{"Name": a} for a in self._azs()],
                "MultiAZCapable": True,
                "ReadReplicaCapable": True,
                "Vpc": True,
                "SupportsStorageEncryption": True,
                "StorageType": "gp2",
                "SupportsIops": False,
                "MinStorageSize": 20,
                "MaxStorageSize": 65536,
                "SupportedEngineModes": ["provisioned"],
                "SupportsClusters": info.aurora,
            }
            for version in versions
            for c in classes
        ]
        return page(out, req, "OrderableDBInstanceOptions")
