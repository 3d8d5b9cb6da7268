"""DynamoDB: one method per operation, in `*Operations` classes over `core.DynamoDBCore`; the
semantics live in the topic modules beside them.

    table_operations.py  TableOperations: Create/Describe/List/Update/DeleteTable, TTL, tags ...
    global_tables.py     GlobalTableOperations: replicas (UpdateTable ReplicaUpdates, version 2019.11.21)
    replication.py       the replicator: every change carried to the other replicas, last writer wins
    item_operations.py   ItemOperations: item reads and writes, Query/Scan, batches, transactions
    backup_operations.py BackupOperations: backups, restores, point-in-time recovery
    exports.py           ExportOperations: ExportTableToPointInTime into S3, Describe/ListExports
    imports.py           ImportOperations: ImportTable from S3, Describe/ListImports
    tables.py            CreateTable validation, metadata, DescribeTable
    item_ops.py          PutItem / GetItem / UpdateItem / DeleteItem
    query.py             Query / Scan
    batch.py             BatchGetItem / BatchWriteItem
    transactions.py      TransactWriteItems / TransactGetItems
    expressions/         the one expression engine
    partiql/             ExecuteStatement, BatchExecuteStatement, ExecuteTransaction (PartiQLOperations)
    ttl.py               expiry of items: the scheduler's dynamodb.ttl rule (strata.sim.scheduler)
    throttle.py          provisioned capacity enforced (token buckets, burst)
    provisioning.py      UpdateTable's capacity rules (decreases per day, billing switches)
    backups.py, pitr.py  backup files and restores; the change history of point-in-time recovery
    bulk.py              long work in background chunks: DeleteTable, GSI backfill/drop, migration
    authz.py             condition keys from the key schema (dynamodb:LeadingKeys, :Attributes)
    core.py, state.py, store.py, keys.py, types.py, capacity.py

Operations run on the event-loop thread and are short (SQLite, indexed), so writes are naturally
serialized. Each write operation is one `store.db.write(fn)`: atomic on its own and acknowledged
only once the group commit that includes it is durable (strata.storage); reads see committed
data only. Work proportional to
a table's size runs in bulk.py's chunks instead, and a TransactWriteItems holds its items until
it is durable (transactions.py: TransactionConflictException).

With `--metadata postgresql://...` (store.py) the write functions run in the PostgreSQL store's
writer thread, each group of them under the store's lock, so several gateways on one database
serialize their writes; each gateway's in-memory table metadata follows the others' changes
(state.State.sync); backups, restores and exports read a PostgreSQL snapshot (pg_snapshot.py).
"""

from __future__ import annotations

from strata.services.constrained import constrained
from strata.services.dynamodb.authz import ConditionKeys
from strata.services.dynamodb.backup_operations import BackupOperations
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.exports import ExportOperations
from strata.services.dynamodb.global_tables import GlobalTableOperations
from strata.services.dynamodb.imports import ImportOperations
from strata.services.dynamodb.item_operations import ItemOperations
from strata.services.dynamodb.partiql import authz as partiql_authz
from strata.services.dynamodb.partiql.operations import PartiQLOperations
from strata.services.dynamodb.state import table_name
from strata.services.parameters import refusing


# Items are checked by types.py with DynamoDB's own messages; a GetItem/PutItem/DeleteItem that
# names only the table and the key or item checks the model's constraints on its error path.
@constrained("dynamodb", validation, skip=("AttributeValue",), lean=("TableName", "Key", "Item"))
@refusing("dynamodb")
class DynamoDBProvider(
    GlobalTableOperations,
    PartiQLOperations,
    ItemOperations,
    BackupOperations,
    ExportOperations,
    ImportOperations,
    ConditionKeys,
):
    """Constructed once per server as `DynamoDBProvider(runtime)`; state lives in core.DynamoDBCore."""

    # The operations whose authorization pairs `request_targets` decides (PartiQL's statements,
    # UpdateTable's replica updates): the authorizer asks no hook for the others.
    request_target_operations = partiql_authz.OPERATIONS | {"UpdateTable"}


__all__ = ["DynamoDBProvider", "table_name"]
