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
        ServiceInfo("dynamodb", "dynamodb", "strata.services.dynamodb.provider:DynamoDBProvider"),
        ServiceInfo("ec2", "ec2", "strata.services.ec2.provider:EC2Provider"),
        ServiceInfo("ebs", "ebs", "strata.services.ebs.provider:EBSProvider"),
        ServiceInfo("efs", "elasticfilesystem", "strata.services.efs.provider:EFSProvider"),
        ServiceInfo("rds", "rds", "strata.services.rds.provider:RDSProvider"),
        ServiceInfo("elasticache", "elasticache", "strata.services.elasticache.provider:ElastiCacheProvider"),
        ServiceInfo("kms", "kms", "strata.services.kms.provider:KMSProvider"),
        ServiceInfo("sts", "sts", "strata.services.sts.provider:STSProvider"),
        ServiceInfo("iam", "iam", "strata.services.iam.provider:IAMProvider"),
    ]
}

BY_SIGNING_NAME: dict[str, str] = {s.signing_name: s.name for s in SERVICES.values()}
# JSON-protocol target prefixes (X-Amz-Target: "<prefix>.<Operation>").
BY_TARGET_PREFIX: dict[str, str] = {"DynamoDB_20120810": "dynamodb", "TrentService": "kms"}


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
