"""RDS: DB instances, Multi-AZ, read replicas, backups and restores on real PostgreSQL/MariaDB.

Records (instances, snapshots, parameter/subnet groups, events, clusters) are JSON documents in
`<data>/rds/rds.db`; the engines run under `<data>/rds/instances/<id>/`. API calls validate and
record, then long work (initdb, base backups, failover) runs in a background task per instance
while DescribeDBInstances shows the AWS status (creating → backing-up → available ...).
Operations, one `*Operations` class per topic over `core.RDSCore` (state, fleet, background work):

    instances.py   Create/Describe/DeleteDBInstance, metering
    instance_lifecycle.py  Reboot (failover), Stop/StartDBInstance, recovery after an engine failure
    read_replicas.py  CreateDBInstanceReadReplica, PromoteReadReplica (also across regions)
    modify_instance.py  ModifyDBInstance; what waits for the maintenance window (rds.maintenance rule)
    backups.py     snapshots, point-in-time restore, the scheduler's rds.backups rule
    snapshot_sharing.py  sharing manual snapshots with other accounts
    clusters.py    Aurora clusters; cluster_backups.py their backups, snapshots and restores
    cluster_members.py  instances joining an Aurora cluster, FailoverDBCluster
    cluster_endpoints.py  Aurora custom endpoints: chosen members behind one more address
    cluster_stop.py  Stop/Start/RebootDBCluster; the rds.autostart rule (started after seven days)
    global_clusters.py  Aurora global databases: secondary clusters in other regions, switchover
    multi_az_clusters.py  Multi-AZ DB clusters (mysql, postgres): a writer and two readable standbys
    encryption.py  StorageEncrypted: encrypted volumes for instances and snapshots, their KMS keys
    groups.py      subnet groups, events, tags
    parameter_groups.py  DB and DB cluster parameter groups, applied to the engines (engine_params.py)
    option_groups.py  option groups (options.py: MARIADB_AUDIT_PLUGIN runs) and memberships
    logs.py        the engine's log files (hourly: log_rotation.py, the rds.logs rule), DescribePendingMaintenanceActions
    serverless.py  Aurora Serverless v2 capacity that follows load, auto-pause and resume
    model.py       engines and validation; fleet.py engine nodes and endpoints
"""

from __future__ import annotations

from strata.services.parameters import refusing
from strata.services.rds.backups import BackupOperations
from strata.services.rds.cluster_backups import ClusterBackupOperations
from strata.services.rds.cluster_endpoints import ClusterEndpointOperations
from strata.services.rds.cluster_stop import ClusterStopOperations
from strata.services.rds.encryption import StorageEncryption
from strata.services.rds.global_clusters import GlobalClusterOperations
from strata.services.rds.groups import GroupOperations
from strata.services.rds.instance_lifecycle import InstanceLifecycleOperations
from strata.services.rds.logs import LogOperations
from strata.services.rds.modify_instance import ModifyInstanceOperations
from strata.services.rds.multi_az_clusters import MultiAZClusterOperations
from strata.services.rds.parameter_groups import ParameterGroupOperations
from strata.services.rds.read_replicas import ReadReplicaOperations
from strata.services.rds.serverless import ServerlessOperations


@refusing("rds")
class RDSProvider(
    ServerlessOperations,
    ModifyInstanceOperations,
    InstanceLifecycleOperations,
    ReadReplicaOperations,
    BackupOperations,
    GroupOperations,
    ParameterGroupOperations,
    GlobalClusterOperations,
    MultiAZClusterOperations,
    ClusterStopOperations,
    ClusterBackupOperations,
    ClusterEndpointOperations,
    LogOperations,
    StorageEncryption,
):
    """Constructed once per server as `RDSProvider(runtime)`; state lives in core.RDSCore."""
