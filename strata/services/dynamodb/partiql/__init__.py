"""PartiQL for DynamoDB: ExecuteStatement, BatchExecuteStatement and ExecuteTransaction.

lexer.py       tokens of DynamoDB's PartiQL subset
parser.py      statement text -> Statement (WHERE, SET and projections as expression-engine AST)
values.py      literals and `?` parameters -> AttributeValues
compile.py     a Statement on a table -> the GetItem / Query / Scan / PutItem / UpdateItem /
               DeleteItem / ConditionCheck request that does it (expression text re-parsed,
               cached, by the one expression engine)
results.py     NextToken, per-statement errors, summed ConsumedCapacity
authz.py       IAM: dynamodb:PartiQLSelect/Insert/Update/Delete per statement, condition keys
operations.py  PartiQLOperations: the three operations over the provider's own item operations
"""
