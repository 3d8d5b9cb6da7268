"""Aurora custom endpoints: Create/Describe/Modify/DeleteDBClusterEndpoint.

A custom endpoint is a stable address for a chosen set of a cluster's instances, as on AWS: its
members are its StaticMembers, or every member of the cluster but its ExcludedMembers (so an
instance added later joins it). Type READER reaches only the readers among its members, ANY any
of them (the writer too); new connections are spread over them. Here it is another loopback
address on the cluster's Port (AWS's custom endpoints share the cluster's port too): the n-th
custom endpoint of a cluster listens on `127.0.0.<3 + slot>` (the writer endpoint is 127.0.0.1,
the reader endpoint 127.0.0.2), at most `MAX_CUSTOM_ENDPOINTS` per cluster, AWS's quota.

Routes are recomputed with the cluster's own (`ClusterOperations._set_cluster_routes` calls
`_route_custom_endpoints`), so they follow failovers, members added and deleted and restarts; the
cluster's security groups guard them with its other endpoints (security.guard_cluster). Records
are "cluster_endpoint" documents keyed by the lowercased identifier, unique in an account and
region as on AWS.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.clusters import READER_HOST, ClusterOperations
from strata.services.rds.listing import filtered, page
from strata.services.rds.security import custom_endpoints_of, custom_host
from strata.sim.clock import clock

MAX_CUSTOM_ENDPOINTS = 5  # AWS: "up to five custom endpoints for each provisioned Aurora cluster"
CUSTOM_TYPES = ("READER", "ANY")  # the Aurora user guide offers these two; WRITER is refused here


def _not_found(ident: str) -> Exception:
    return m.fault("DBClusterEndpointNotFoundFault", f"DBClusterEndpoint {ident} not found.")


class ClusterEndpointOperations(ClusterOperations):
    # -- records and routes ------------------------------------------------------------------------

    def _get_cluster_endpoint(self, ident: str | None) -> dict:
        if not ident:
            raise m.fault("InvalidParameterValue", "DBClusterEndpointIdentifier is required.")
        doc = self.store.get_doc("cluster_endpoint", ident.lower())
        if doc is None:
            raise _not_found(ident)
        return doc

    def _custom_route_name(self, ep: dict) -> str:
        return f"cluster-ep-{self.store.engine_key(ep['id'])}"

    def _custom_members(self, cluster: dict, ep: dict) -> list[str]:
        """The cluster's instances the endpoint covers, whatever their role."""
        if ep["static"]:
            return [i for i in cluster["members"] if i in ep["static"]]
        return [i for i in cluster["members"] if i not in ep["excluded"]]

    def _route_custom_endpoints(
        self, cluster: dict, ready: set[str] | frozenset[str] = frozenset(), cut: bool = True
    ) -> None:
        """Point each custom endpoint of `cluster` at its members that can serve it now: the writer
        (ANY only) while it has an engine, readers available or in `ready`. None: refused."""
        for ep in custom_endpoints_of(self, cluster["id"]):
            backends = []
            for ident in self._custom_members(cluster, ep):
                doc = self.store.get_doc("instance", ident)
                if not doc or not doc.get("primary"):
                    continue
                if ident == cluster.get("writer"):
                    if ep["type"] == "ANY":
                        backends.append(("127.0.0.1", self._backend_port(doc)))
                elif doc["status"] == "available" or ident in ready:
                    backends.append(("127.0.0.1", self._backend_port(doc)))
            self.fleet.router.set_route(
                self._custom_route_name(ep),
                cluster["port"],
                backends,
                balance=True,
                host=custom_host(ep["slot"]),
                cut=cut,
            )

    def _unroute_custom_endpoints(self, cluster: dict) -> None:
        """A stopped cluster's custom endpoints answer nothing, as its own do (blocking)."""
        for ep in custom_endpoints_of(self, cluster["id"]):
            self.fleet.router.set_route(
                self._custom_route_name(ep), cluster["port"], [], balance=True, host=custom_host(ep["slot"])
            )

    def _remove_custom_endpoints(self, cluster: dict) -> None:
        """With the cluster (blocking): its custom endpoints' routes and records."""
        for ep in custom_endpoints_of(self, cluster["id"]):
            self.fleet.router.remove_route(self._custom_route_name(ep))
            self.store.delete_doc("cluster_endpoint", ep["id"])

    def _endpoint_out(self, ep: dict, status: str | None = None) -> dict:
        cluster = self.store.get_doc("cluster", ep["cluster"]) or {"members": []}
        return {
            "DBClusterEndpointIdentifier": ep["id"],
            "DBClusterIdentifier": ep["cluster"],
            "DBClusterEndpointResourceIdentifier": ep["resource_id"],
            "Endpoint": self.fleet.public(custom_host(ep["slot"])),
            "Status": status or ep["status"],
            "EndpointType": "CUSTOM",
            "CustomEndpointType": ep["type"],
            "StaticMembers": [i for i in ep["static"] if i in cluster["members"]],
            "ExcludedMembers": [i for i in ep["excluded"] if i in cluster["members"]],
            "DBClusterEndpointArn": m.arn(self.region, self.account, "cluster-endpoint", ep["id"]),
        }

    def _cluster_own_endpoints(self, c: dict) -> list[dict]:
        """The WRITER and READER endpoints DescribeDBClusterEndpoints lists with the custom ones."""
        status = "creating" if clock.time() < c.get("creating_until", 0) else "available"
        return [
            {
                "DBClusterEndpointIdentifier": c["id"],
                "DBClusterIdentifier": c["id"],
                "DBClusterEndpointResourceIdentifier": c.get("resource_id"),
                "Endpoint": host,
                "Status": status,
                "EndpointType": kind,
            }
            for kind, host in (("WRITER", self.fleet.address), ("READER", self.fleet.public(READER_HOST)))
        ]

    def _custom_members_in(self, cluster: dict, req: dict) -> tuple[list[str], list[str]]:
        static = [i.lower() for i in req.get("StaticMembers") or []]
        excluded = [i.lower() for i in req.get("ExcludedMembers") or []]
        if static and excluded:
            raise m.fault(
                "InvalidParameterCombination", "Only one of StaticMembers or ExcludedMembers may be set."
            )
        for ident in static + excluded:
            if ident not in cluster["members"]:
                raise m.not_found_instance(ident)
        return list(dict.fromkeys(static)), list(dict.fromkeys(excluded))

    @staticmethod
    def _custom_type(value: str | None) -> str:
        kind = (value or "").upper()
        if kind not in CUSTOM_TYPES:
            raise m.fault(
                "InvalidParameterValue",
                f"Invalid endpoint type: {value}. Valid values are: {', '.join(CUSTOM_TYPES)}.",
            )
        return kind

    @staticmethod
    def _check_cluster_available(cluster: dict) -> None:
        if cluster["status"] != "available" or cluster.get("multi_az_cluster"):
            raise m.fault(
                "InvalidDBClusterStateFault",
                f"DB cluster {cluster['id']} is not in an available state or is not an Aurora cluster.",
            )

    # -- operations --------------------------------------------------------------------------------
    # Each runs under the cluster's endpoint lock, off the event loop (routing and guarding block).

    async def create_db_cluster_endpoint(self, ctx: RequestContext, req: dict) -> dict:
        ident = m.check_identifier(req.get("DBClusterEndpointIdentifier"), "DBClusterEndpointIdentifier")
        cluster = self._get_cluster(req.get("DBClusterIdentifier"))
        kind = self._custom_type(req.get("EndpointType"))
        tags = m.tags_in(req.get("Tags"))
        ep = await run_blocking(self._create_endpoint, ident, cluster["id"], kind, tags, req)
        return self._endpoint_out(ep, "creating")

    def _create_endpoint(self, ident: str, cid: str, kind: str, tags: dict, req: dict) -> dict:
        with self.fleet.lock(f"cluster-endpoints:{cid}"):
            if self.store.get_doc("cluster_endpoint", ident) is not None:
                raise m.fault(
                    "DBClusterEndpointAlreadyExistsFault", f"DBClusterEndpoint {ident} already exists."
                )
            cluster = self._get_cluster(cid)
            self._check_cluster_available(cluster)
            static, excluded = self._custom_members_in(cluster, req)
            taken = {ep["slot"] for ep in custom_endpoints_of(self, cid)}
            free = [s for s in range(MAX_CUSTOM_ENDPOINTS) if s not in taken]
            if not free:
                raise m.fault(
                    "DBClusterEndpointQuotaExceededFault",
                    f"DB cluster {cid} already has {MAX_CUSTOM_ENDPOINTS} custom endpoints.",
                    403,
                )
            ep = {
                "id": ident,
                "cluster": cid,
                "type": kind,
                "static": static,
                "excluded": excluded,
                "slot": free[0],
                "status": "available",
                "tags": tags,
                "resource_id": self._resource_id("cluster-endpoint"),
                "created": clock.now().isoformat(),
            }
            self.store.put_doc("cluster_endpoint", ident, ep)
            # guarded before routed: the address is never reachable unfiltered
            security.guard_cluster(self, cluster, READER_HOST)
            self._route_cluster(cluster)
            return ep

    def describe_db_cluster_endpoints(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("DBClusterIdentifier"):
            clusters = [self._get_cluster(req["DBClusterIdentifier"])]
        else:
            clusters = [c for c in self.store.list_docs("cluster") if not c.get("multi_az_cluster")]
        rows: list[dict] = []
        for c in clusters:
            rows += self._cluster_own_endpoints(c)
            rows += [self._endpoint_out(ep) for ep in custom_endpoints_of(self, c["id"])]
        if req.get("DBClusterEndpointIdentifier"):
            wanted = req["DBClusterEndpointIdentifier"].lower()
            rows = [
                r
                for r in rows
                if r["EndpointType"] == "CUSTOM" and r["DBClusterEndpointIdentifier"] == wanted
            ]
        rows = filtered(
            rows,
            req,
            {
                "db-cluster-endpoint-type": lambda r: r["EndpointType"].lower(),
                "db-cluster-endpoint-custom-type": lambda r: (
                    (r.get("CustomEndpointType") or "").lower() or None
                ),
                "db-cluster-endpoint-id": lambda r: r["DBClusterEndpointIdentifier"],
                "db-cluster-endpoint-status": lambda r: r["Status"],
                "db-cluster-id": lambda r: r["DBClusterIdentifier"],
            },
        )
        return page(rows, req, "DBClusterEndpoints")

    async def modify_db_cluster_endpoint(self, ctx: RequestContext, req: dict) -> dict:
        ep = self._get_cluster_endpoint(req.get("DBClusterEndpointIdentifier"))
        kind = self._custom_type(req["EndpointType"]) if req.get("EndpointType") is not None else None
        ep = await run_blocking(self._modify_endpoint, ep["id"], ep["cluster"], kind, req)
        return self._endpoint_out(ep, "modifying")

    def _modify_endpoint(self, ident: str, cid: str, kind: str | None, req: dict) -> dict:
        with self.fleet.lock(f"cluster-endpoints:{cid}"):
            ep = self._get_cluster_endpoint(ident)
            cluster = self._get_cluster(cid)
            self._check_cluster_available(cluster)
            if kind is not None:
                ep["type"] = kind
            if req.get("StaticMembers") is not None or req.get("ExcludedMembers") is not None:
                ep["static"], ep["excluded"] = self._custom_members_in(cluster, req)
            self.store.put_doc("cluster_endpoint", ident, ep)
            self._route_cluster(cluster)
            return ep

    async def delete_db_cluster_endpoint(self, ctx: RequestContext, req: dict) -> dict:
        ep = self._get_cluster_endpoint(req.get("DBClusterEndpointIdentifier"))
        return await run_blocking(self._delete_endpoint, ep["id"], ep["cluster"])

    def _delete_endpoint(self, ident: str, cid: str) -> dict:
        with self.fleet.lock(f"cluster-endpoints:{cid}"):
            ep = self._get_cluster_endpoint(ident)
            cluster = self._get_cluster(cid)
            self._check_cluster_available(cluster)
            out = self._endpoint_out(ep, "deleting")
            self.fleet.router.remove_route(self._custom_route_name(ep))
            self.store.delete_doc("cluster_endpoint", ident)
            security.guard_cluster(self, cluster, READER_HOST)
            return out
