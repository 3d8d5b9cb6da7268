"""ElastiCache: cache clusters and replication groups backed by real Redis/Valkey and Memcached.

The provider is split by topic, one `*Operations` class each over `core.ElastiCacheCore`:
cache clusters in `clusters.py`, replication groups in `groups.py` (with `group_members.py`, `failover.py`,
`membership.py`, `replicas.py`), snapshots in `snapshots.py`, tags in `tags.py`, memcached
configuration endpoints in `discovery.py`, encryption at rest in `at_rest.py`, RBAC users and user
groups in `users.py`; serverless caches in `serverless.py` (their engine nodes in `serverless_nodes.py`, metering in `serverless_meter.py`, snapshots in `serverless_snapshots.py`, exported to S3 by `serverless_export.py`; KmsKeyId in `serverless_at_rest.py`); Global Datastore in `global_datastore.py`; cache parameter groups (applied to the engines) in `parameter_groups.py`
with their catalogue in `cache_parameters.py`; power interruptions of an Availability Zone and
replica lag (for FIS) in `az_power.py` and `replica_lag.py`; engine versions, node-type changes
and service updates on offer in `offerings.py`; events (DescribeEvents) in `events.py`; the engine processes and their addresses in
`nodes.py`.

Records (MetadataStore documents): `cluster` (one per cache cluster, standalone or a member of a
group), `group` (replication groups), `snapshot`, `param_group` (custom cache parameter groups). A *deployment* is what owns the settings and
the port: a standalone cluster, or a group for its member clusters.

Create, modify, failover and delete do their engine work before answering, so a describe right
after the response sees the final state (the response itself reports the AWS transition state,
e.g. "creating"). A monitor restarts nodes whose process dies, failing over first where the dead
node was a primary. Everything is restarted from the records when Strata starts.

In-transit encryption is the engine's own TLS; every node's certificate is signed by Strata's CA,
which clients trust from `<data_dir>/tls/ca.pem`: redis-py `ssl_ca_certs=<that file>`, pymemcache
`tls_context=ssl.create_default_context(cafile=<that file>)`, or `SSL_CERT_FILE=<that file>` for
code that names no CA, such as the course's `redis.Redis(host, port, ssl=True)`.
"""

from __future__ import annotations

from strata.services.elasticache.at_rest import AtRestOperations
from strata.services.elasticache.az_power import AzPowerOperations
from strata.services.elasticache.clusters import CacheClusterOperations
from strata.services.elasticache.discovery import DiscoveryOperations
from strata.services.elasticache.events import EventOperations
from strata.services.elasticache.global_datastore import GlobalDatastoreOperations
from strata.services.elasticache.groups import ReplicationGroupOperations
from strata.services.elasticache.offerings import OfferingOperations
from strata.services.elasticache.parameter_groups import CacheParameterGroupOperations
from strata.services.elasticache.replica_lag import ReplicaLagOperations
from strata.services.elasticache.serverless import ServerlessOperations
from strata.services.elasticache.serverless_at_rest import ServerlessAtRestOperations
from strata.services.elasticache.serverless_export import ServerlessExportOperations
from strata.services.elasticache.serverless_snapshots import ServerlessSnapshotOperations
from strata.services.elasticache.snapshots import SnapshotOperations
from strata.services.elasticache.subnet_groups import CacheSubnetGroupOperations
from strata.services.elasticache.tags import TagOperations
from strata.services.elasticache.users import UserOperations
from strata.services.parameters import refusing


@refusing("elasticache")
class ElastiCacheProvider(
    CacheClusterOperations,
    ReplicationGroupOperations,
    SnapshotOperations,
    TagOperations,
    DiscoveryOperations,
    AtRestOperations,
    UserOperations,
    AzPowerOperations,
    CacheSubnetGroupOperations,
    ReplicaLagOperations,
    CacheParameterGroupOperations,
    ServerlessOperations,
    ServerlessSnapshotOperations,
    ServerlessExportOperations,
    ServerlessAtRestOperations,
    GlobalDatastoreOperations,
    OfferingOperations,
    EventOperations,
):
    """Constructed once per server as `ElastiCacheProvider(runtime)`; state lives in core.ElastiCacheCore."""
