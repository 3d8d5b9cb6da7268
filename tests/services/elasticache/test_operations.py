"""Which ElastiCache operations Strata serves: provider methods against the service model."""

from __future__ import annotations

import inspect

from botocore import xform_name

from strata.protocol.spec import service_model
from strata.services.elasticache.provider import ElastiCacheProvider

SERVED = {
    "CreateCacheCluster",
    "DescribeCacheClusters",
    "ModifyCacheCluster",
    "RebootCacheCluster",
    "DeleteCacheCluster",
    "CreateReplicationGroup",
    "DescribeReplicationGroups",
    "ModifyReplicationGroup",
    "IncreaseReplicaCount",
    "DecreaseReplicaCount",
    "TestFailover",
    "DeleteReplicationGroup",
    "CreateSnapshot",
    "DescribeSnapshots",
    "CopySnapshot",
    "DeleteSnapshot",
    "ListTagsForResource",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "CreateUser",
    "DescribeUsers",
    "ModifyUser",
    "DeleteUser",
    "CreateUserGroup",
    "DescribeUserGroups",
    "ModifyUserGroup",
    "DeleteUserGroup",
    "CreateCacheSubnetGroup",
    "DescribeCacheSubnetGroups",
    "ModifyCacheSubnetGroup",
    "DeleteCacheSubnetGroup",
    "CreateCacheParameterGroup",
    "DescribeCacheParameterGroups",
    "ModifyCacheParameterGroup",
    "ResetCacheParameterGroup",
    "DeleteCacheParameterGroup",
    "DescribeCacheParameters",
    "DescribeEngineDefaultParameters",
    "CreateServerlessCache",
    "DescribeServerlessCaches",
    "ModifyServerlessCache",
    "DeleteServerlessCache",
    "CreateServerlessCacheSnapshot",
    "DescribeServerlessCacheSnapshots",
    "CopyServerlessCacheSnapshot",
    "DeleteServerlessCacheSnapshot",
    "ExportServerlessCacheSnapshot",
    "CreateGlobalReplicationGroup",
    "DescribeGlobalReplicationGroups",
    "FailoverGlobalReplicationGroup",
    "ModifyGlobalReplicationGroup",
    "DisassociateGlobalReplicationGroup",
    "DeleteGlobalReplicationGroup",
    "DescribeEvents",
    # offerings.py
    "DescribeCacheEngineVersions",
    "ListAllowedNodeTypeModifications",
    "DescribeServiceUpdates",
    "DescribeUpdateActions",
}


def test_served_operations_are_provider_methods_and_nothing_else() -> None:
    model = service_model("elasticache")
    by_method = {xform_name(op): op for op in model.operation_names}
    methods = {name for name, _ in inspect.getmembers(ElastiCacheProvider, inspect.isfunction)}
    assert {op for name, op in by_method.items() if name in methods} == SERVED
    for op in SERVED:
        sig = inspect.signature(getattr(ElastiCacheProvider, xform_name(op)))
        assert list(sig.parameters) == ["self", "ctx", "req"], op
