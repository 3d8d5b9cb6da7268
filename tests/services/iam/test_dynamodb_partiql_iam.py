"""PartiQL under IAM: statements need dynamodb:PartiQLSelect / Insert / Update / Delete on the
table (or index) they name, and fine-grained condition keys apply to them as to GetItem & co."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT
from tests.services.iam.test_iam import make_user


def _denied(call, **kwargs) -> None:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def _table(server, name: str) -> None:
    server.client("dynamodb", **ROOT).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "owner", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _user(server, name: str, statements: list[dict]):
    creds = make_user(server, name)
    server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="partiql",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    return server.client("dynamodb", **creds)


def test_partiql_actions_on_the_named_table(iam_server, unique) -> None:
    mine, other = f"mine-{unique}", f"other-{unique}"
    _table(iam_server, mine)
    _table(iam_server, other)
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{mine}"
    ddb = _user(
        iam_server,
        f"pq-{unique}",
        [
            {
                "Effect": "Allow",
                "Action": ["dynamodb:PartiQLSelect", "dynamodb:PartiQLInsert"],
                "Resource": arn,
            }
        ],
    )
    ddb.execute_statement(Statement=f"INSERT INTO \"{mine}\" VALUE {{'owner': 'a'}}")
    assert ddb.execute_statement(Statement=f"SELECT * FROM \"{mine}\" WHERE owner = 'a'")["Items"] == [
        {"owner": {"S": "a"}}
    ]
    _denied(ddb.execute_statement, Statement=f"UPDATE \"{mine}\" SET x = 1 WHERE owner = 'a'")
    _denied(ddb.execute_statement, Statement=f"DELETE FROM \"{mine}\" WHERE owner = 'a'")
    _denied(ddb.execute_statement, Statement=f'SELECT * FROM "{other}"')
    _denied(ddb.get_item, TableName=mine, Key={"owner": {"S": "a"}})  # PartiQL actions only
    # a batch or transaction needs every statement's action
    ddb.batch_execute_statement(Statements=[{"Statement": f"SELECT * FROM \"{mine}\" WHERE owner = 'a'"}])
    _denied(
        ddb.batch_execute_statement,
        Statements=[
            {"Statement": f"SELECT * FROM \"{mine}\" WHERE owner = 'a'"},
            {"Statement": f"SELECT * FROM \"{other}\" WHERE owner = 'a'"},
        ],
    )
    _denied(
        ddb.execute_transaction,
        TransactStatements=[
            {"Statement": f"INSERT INTO \"{mine}\" VALUE {{'owner': 'b'}}"},
            {"Statement": f"DELETE FROM \"{mine}\" WHERE owner = 'a'"},
        ],
    )
    assert "Item" not in iam_server.client("dynamodb", **ROOT).get_item(
        TableName=mine, Key={"owner": {"S": "b"}}
    )


def test_leading_keys_and_select_apply_to_statements(iam_server, unique) -> None:
    table, me = f"notes-{unique}", f"kim-{unique}"
    _table(iam_server, table)
    root = iam_server.client("dynamodb", **ROOT)
    root.put_item(TableName=table, Item={"owner": {"S": me}, "text": {"S": "hi"}, "secret": {"S": "s"}})
    root.put_item(TableName=table, Item={"owner": {"S": "someone-else"}, "text": {"S": "theirs"}})
    ddb = _user(
        iam_server,
        me,
        [
            {
                "Effect": "Allow",
                "Action": ["dynamodb:PartiQLSelect", "dynamodb:PartiQLUpdate"],
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {
                        "dynamodb:LeadingKeys": ["${aws:username}"],
                        "dynamodb:Attributes": ["owner", "text"],
                    },
                    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
                },
            }
        ],
    )
    got = ddb.execute_statement(
        Statement=f'SELECT "text" FROM "{table}" WHERE owner = ?', Parameters=[{"S": me}]
    )
    assert got["Items"] == [{"text": {"S": "hi"}}]
    _denied(ddb.execute_statement, Statement=f'SELECT "text" FROM "{table}" WHERE owner = \'someone-else\'')
    got = ddb.execute_statement(
        Statement=f'SELECT "text" FROM "{table}" WHERE owner IN [?]', Parameters=[{"S": me}]
    )
    assert got["Items"] == [{"text": {"S": "hi"}}]
    _denied(  # pk IN (...) reads each listed partition: every one must be the user's
        ddb.execute_statement,
        Statement=f'SELECT "text" FROM "{table}" WHERE owner IN (?, \'someone-else\')',
        Parameters=[{"S": me}],
    )
    _denied(
        ddb.execute_statement, Statement=f'SELECT * FROM "{table}" WHERE owner = ?', Parameters=[{"S": me}]
    )
    _denied(
        ddb.execute_statement,
        Statement=f'SELECT secret FROM "{table}" WHERE owner = ?',
        Parameters=[{"S": me}],
    )
    ddb.execute_statement(
        Statement=f'UPDATE "{table}" SET "text" = \'new\' WHERE owner = ?', Parameters=[{"S": me}]
    )
    _denied(
        ddb.execute_statement,
        Statement=f"UPDATE \"{table}\" SET \"text\" = 'x' WHERE owner = 'someone-else'",
    )
    _denied(
        ddb.execute_statement,
        Statement=f'UPDATE "{table}" SET "text" = \'x\' WHERE owner = ? RETURNING ALL NEW *',
        Parameters=[{"S": me}],
    )
    assert root.get_item(TableName=table, Key={"owner": {"S": "someone-else"}})["Item"]["text"] == {
        "S": "theirs"
    }
