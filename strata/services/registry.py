"""The services Strata serves: model name, SigV4 signing name and provider class of each.

Every service is registered from day one; a service whose provider does not exist yet, or an
operation its provider lacks, answers with a protocol-correct 501 naming the operation.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger("strata")


@dataclass(frozen=True)
class ServiceInfo:
    name: str  # Strata's name and the botocore model name
    signing_name: str  # the service in the SigV4 credential scope
    provider: str  # "module:Class"


SERVICES: dict[str, ServiceInfo] = {
    s.name: s
    for s in [
        ServiceInfo("s3", "s3", "strata.services.s3.provider:S3Provider"),
        # Signed for "s3" too: the gateway tells it from S3 by its /v20180820/ paths (detect.py).
        ServiceInfo("s3control", "s3", "strata.services.s3control.provider:S3ControlProvider"),
        ServiceInfo("dynamodb", "dynamodb", "strata.services.dynamodb.provider:DynamoDBProvider"),
        # Signed for "dynamodb" too: told apart by its X-Amz-Target prefix (detect.py).
        ServiceInfo(
            "dynamodbstreams", "dynamodb", "strata.services.dynamodbstreams.provider:DynamoDBStreamsProvider"
        ),
        ServiceInfo("ec2", "ec2", "strata.services.ec2.provider:EC2Provider"),
        ServiceInfo("ebs", "ebs", "strata.services.ebs.provider:EBSProvider"),
        ServiceInfo("efs", "elasticfilesystem", "strata.services.efs.provider:EFSProvider"),
        ServiceInfo("rds", "rds", "strata.services.rds.provider:RDSProvider"),
        ServiceInfo("elasticache", "elasticache", "strata.services.elasticache.provider:ElastiCacheProvider"),
        ServiceInfo("kms", "kms", "strata.services.kms.provider:KMSProvider"),
        ServiceInfo("sts", "sts", "strata.services.sts.provider:STSProvider"),
        ServiceInfo("iam", "iam", "strata.services.iam.provider:IAMProvider"),
        ServiceInfo(
            "application-autoscaling",
            "application-autoscaling",
            "strata.services.autoscaling.provider:ApplicationAutoScalingProvider",
        ),
        ServiceInfo("cloudwatch", "monitoring", "strata.services.cloudwatch.provider:CloudWatchProvider"),
        ServiceInfo("ce", "ce", "strata.services.ce.provider:CostExplorerProvider"),
        ServiceInfo("fis", "fis", "strata.services.fis.provider:FISProvider"),
    ]
}

# The first service of a signing name (s3, not s3control, for "s3").
BY_SIGNING_NAME: dict[str, str] = {}
for _s in SERVICES.values():
    BY_SIGNING_NAME.setdefault(_s.signing_name, _s.name)
# JSON-protocol target prefixes (X-Amz-Target: "<prefix>.<Operation>").
BY_TARGET_PREFIX: dict[str, str] = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "TrentService": "kms",
    "AnyScaleFrontendService": "application-autoscaling",
    "GraniteServiceVersion20100801": "cloudwatch",
    "AWSInsightsIndexService": "ce",
}


def load_provider_class(info: ServiceInfo) -> type | None:
    """The provider class, or None while the service has no provider module yet."""
    module_name, _, class_name = info.provider.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            return None
        raise
    return getattr(module, class_name, None)
