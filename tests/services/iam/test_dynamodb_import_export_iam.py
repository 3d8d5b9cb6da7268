"""ImportTable and ExportTableToPointInTime under IAM: what DynamoDB does in S3 for the caller
needs the caller's S3 permissions too (s3:ListBucket and s3:GetObject on the source, s3:PutObject
on the export's destination); without them the import or export fails with S3AccessDenied and
nothing is read or written."""

from __future__ import annotations

import json
import time

from tests.services.iam.conftest import ROOT
from tests.services.iam.test_iam import make_user

KEYS = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


def _until(fetch, done, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_import_and_export_need_the_callers_s3_permissions(iam_server, unique) -> None:
    root_s3, root_ddb = iam_server.client("s3", **ROOT), iam_server.client("dynamodb", **ROOT)
    bucket, table = f"ie-{unique}", f"ie-{unique}"
    root_s3.create_bucket(Bucket=bucket)
    root_s3.put_object(
        Bucket=bucket, Key="src/a.json", Body=json.dumps({"Item": {"pk": {"S": "a"}}}).encode()
    )
    root_ddb.create_table(TableName=table, **KEYS)
    root_ddb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    root_ddb.put_item(TableName=table, Item={"pk": {"S": "x"}})
    user = f"ie-{unique}"
    creds = make_user(iam_server, user)
    iam = iam_server.client("iam", **ROOT)

    def allow(*statements: dict) -> None:
        everything = [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}, *statements]
        iam.put_user_policy(
            UserName=user,
            PolicyName="p",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": everything}),
        )

    ddb = iam_server.client("dynamodb", **creds)

    def run_import(target: str) -> dict:
        arn = ddb.import_table(
            S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "src/"},
            InputFormat="DYNAMODB_JSON",
            TableCreationParameters={"TableName": target, **KEYS},
        )["ImportTableDescription"]["ImportArn"]
        return _until(
            lambda: ddb.describe_import(ImportArn=arn)["ImportTableDescription"],
            lambda d: d["ImportStatus"] != "IN_PROGRESS",
        )

    def run_export() -> dict:
        arn = ddb.export_table_to_point_in_time(
            TableArn=root_ddb.describe_table(TableName=table)["Table"]["TableArn"],
            S3Bucket=bucket,
            S3Prefix="out",
        )["ExportDescription"]["ExportArn"]
        return _until(
            lambda: ddb.describe_export(ExportArn=arn)["ExportDescription"],
            lambda d: d["ExportStatus"] != "IN_PROGRESS",
        )

    allow()  # DynamoDB only
    refused = run_import(f"no-{unique}")
    assert (refused["ImportStatus"], refused["FailureCode"]) == ("FAILED", "S3AccessDenied")
    exported = run_export()
    assert (exported["ExportStatus"], exported["FailureCode"]) == ("FAILED", "S3AccessDenied")
    assert "Contents" not in root_s3.list_objects_v2(Bucket=bucket, Prefix="out")  # nothing written

    allow(  # listing without reading is not enough either
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    )
    assert run_import(f"no2-{unique}")["FailureCode"] == "S3AccessDenied"

    allow(
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
    )
    assert run_import(f"yes-{unique}")["ImportStatus"] == "COMPLETED"
    assert run_export()["ExportStatus"] == "COMPLETED"
