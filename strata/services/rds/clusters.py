"""Aurora DB clusters (filled in below the instance work)."""

from __future__ import annotations

from strata.services.base import RequestContext
from strata.services.rds import model as m


class ClustersMixin:
    async def create_cluster_instance(self, ctx: RequestContext, req: dict, info: m.EngineInfo) -> dict:
        raise m.not_found_cluster(req["DBClusterIdentifier"])

    def cluster_member_removed(self, cluster_id: str, ident: str) -> None:
        return None
