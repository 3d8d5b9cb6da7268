"""S3's tag condition keys: a user may read only objects tagged for them
(s3:ExistingObjectTag/<key>) and must tag what they upload (s3:RequestObjectTag/<key>)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ROOT
from tests.services.iam.test_iam import make_user


def _denied(call, **kwargs) -> None:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_object_tags_decide_reads_and_writes(iam_server, unique) -> None:
    bucket, name = f"tagged-{unique}", f"mia-{unique}"
    root = iam_server.client("s3", **ROOT)
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="public.txt", Body=b"for everyone", Tagging="class=public")
    root.put_object(Bucket=bucket, Key="secret.txt", Body=b"not for mia", Tagging="class=secret")
    root.put_object(Bucket=bucket, Key="untagged.txt", Body=b"no tags")
    creds = make_user(iam_server, name)
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="tags",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "public"}},
                    },
                    {
                        "Effect": "Allow",
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": {
                            "StringEquals": {"s3:RequestObjectTag/owner": name},
                            "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["owner", "class"]},
                        },
                    },
                ],
            }
        ),
    )
    s3 = iam_server.client("s3", **creds)
    assert s3.get_object(Bucket=bucket, Key="public.txt")["Body"].read() == b"for everyone"
    _denied(s3.get_object, Bucket=bucket, Key="secret.txt")
    _denied(s3.get_object, Bucket=bucket, Key="untagged.txt")
    s3.put_object(Bucket=bucket, Key="mine.txt", Body=b"x", Tagging=f"owner={name}&class=public")
    assert s3.get_object(Bucket=bucket, Key="mine.txt")["Body"].read() == b"x"
    _denied(s3.put_object, Bucket=bucket, Key="anon.txt", Body=b"x")
    _denied(s3.put_object, Bucket=bucket, Key="other.txt", Body=b"x", Tagging="owner=someone")
    _denied(s3.put_object, Bucket=bucket, Key="extra.txt", Body=b"x", Tagging=f"owner={name}&cost=1")
    # retagging the secret object public opens it
    root.put_object_tagging(
        Bucket=bucket, Key="secret.txt", Tagging={"TagSet": [{"Key": "class", "Value": "public"}]}
    )
    assert s3.get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == b"not for mia"
