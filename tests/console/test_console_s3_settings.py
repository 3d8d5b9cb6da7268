"""A bucket's settings page (plain HTTP: server-rendered forms): default encryption and lifecycle
rules edited through the console land in S3 as the signed-in identity's own calls, S3's refusals
are shown, and a policy that denies the setting applies to the console too."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from botocore.exceptions import ClientError

from tests.console.plain_client import ROOT, PlainConsole


def _flash(console: PlainConsole, location: str) -> str:
    status, _, _, page = console.request("GET", location)
    assert status == 200, page
    return unescape(" ".join(re.findall(r'<p class="flash [^"]*"[^>]*>([^<]*)</p>', page)))


def test_default_encryption_is_edited(strata_server, unique) -> None:
    s3 = strata_server.client("s3")
    bucket = f"enc-{unique}"
    s3.create_bucket(Bucket=bucket)
    key_id = strata_server.client("kms").create_key()["KeyMetadata"]["KeyId"]
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, _, _, page = console.request("GET", f"{ROOT}/s3/settings?bucket={bucket}")
    assert status == 200 and '<option value="AES256" selected>' in page
    form = {"csrf": console.csrf, "bucket": bucket, "action": "save"}
    status, headers, _, _ = console.post_form(
        "/s3/encryption", {**form, "algorithm": "aws:kms", "kms_key": key_id, "bucket_key": "1"}
    )
    assert status == 303
    assert f"is now SSE-KMS with {key_id}" in _flash(console, headers["location"])
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}
    assert rule["BucketKeyEnabled"] is True
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["NONE"]}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "aws:kms"
    _, _, _, page = console.request("GET", f"{ROOT}/s3/settings?bucket={bucket}")
    assert '<option value="aws:kms" selected>' in page and f'value="{key_id}"' in page
    # S3's own refusal (a KMS key with SSE-S3) is shown, and nothing changes
    status, headers, _, _ = console.post_form(
        "/s3/encryption", {**form, "algorithm": "AES256", "kms_key": key_id}
    )
    assert "InvalidArgument: a KMSMasterKeyID is not applicable" in _flash(console, headers["location"])
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    status, headers, _, _ = console.post_form(
        "/s3/encryption", {**form, "algorithm": "AES256", "block_ssec": "1"}
    )
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
    console.post_form("/s3/encryption", {**form, "algorithm": "aws:kms", "kms_key": key_id})
    status, headers, _, _ = console.post_form("/s3/encryption", {**form, "action": "reset"})
    assert "back to S3's default (SSE-S3)" in _flash(console, headers["location"])
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    _, _, _, page = console.request("GET", f"{ROOT}/s3/bucket?bucket={bucket}")
    assert re.search(r'id="encryption">AES256 <a href="[^"]*/s3/settings\?bucket=' + bucket, page)


def test_lifecycle_rules_are_added_deleted_and_edited_as_json(strata_server, unique) -> None:
    s3 = strata_server.client("s3")
    bucket = f"lc-{unique}"
    s3.create_bucket(Bucket=bucket)
    console = PlainConsole(strata_server.port)
    console.sign_in()
    form = {"csrf": console.csrf, "bucket": bucket}
    status, headers, _, _ = console.post_form(
        "/s3/lifecycle/add",
        {
            **form,
            "id": "logs",
            "prefix": "logs/",
            "expire_days": "90",
            "transition_days": "30",
            "transition_class": "STANDARD_IA",
            "abort_days": "7",
        },
    )
    assert status == 303
    assert f"Added lifecycle rule logs to {bucket}" in _flash(console, headers["location"])
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules == [
        {
            "ID": "logs",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "Expiration": {"Days": 90},
            "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }
    ]
    # S3 refuses a transition to STANDARD_IA before 30 days: its message is shown, the rules stay
    status, headers, _, _ = console.post_form(
        "/s3/lifecycle/add",
        {**form, "id": "early", "transition_days": "5", "transition_class": "STANDARD_IA"},
    )
    flash = _flash(console, headers["location"])
    assert flash.startswith("InvalidArgument:") and "STANDARD_IA" in flash, flash
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == ["logs"]
    console.post_form("/s3/lifecycle/add", {**form, "id": "<b>tmp</b>", "prefix": "tmp/", "expire_days": "1"})
    status, _, _, page = console.request("GET", f"{ROOT}/s3/settings?bucket={bucket}")
    assert "&lt;b&gt;tmp&lt;/b&gt;" in page and "<b>tmp" not in page
    assert "expire after 1 day(s)" in page and "to STANDARD_IA after 30 day(s)" in page
    # the JSON editor holds the configuration as S3 answers it; saved back with a change
    text = unescape(re.search(r'<textarea id="lifecycle-json"[^>]*>([^<]*)</textarea>', page).group(1))
    config = json.loads(text)
    assert [r["ID"] for r in config["Rules"]] == ["logs", "<b>tmp</b>"]
    config["Rules"][1]["Status"] = "Disabled"
    status, headers, _, _ = console.post_form("/s3/lifecycle/json", {**form, "config": json.dumps(config)})
    assert "Saved the lifecycle configuration" in _flash(console, headers["location"])
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["Status"]) for r in rules] == [("logs", "Enabled"), ("<b>tmp</b>", "Disabled")]
    status, headers, _, _ = console.post_form("/s3/lifecycle/json", {**form, "config": "{nope"})
    assert "MalformedJSON" in _flash(console, headers["location"])
    for rule_id in ("logs", "<b>tmp</b>"):
        status, headers, _, _ = console.post_form("/s3/lifecycle/delete", {**form, "id": rule_id})
        assert f"Deleted lifecycle rule {rule_id}" in _flash(console, headers["location"])
    with pytest.raises(ClientError) as e:  # the last rule gone: no configuration at all
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"


def test_a_policy_denying_the_setting_applies_to_the_console(strata_server, unique) -> None:
    iam = strata_server.client("iam")
    user = f"no-enc-{unique}"
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "s3:PutEncryptionConfiguration", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="deny-enc", PolicyDocument=json.dumps(deny))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    bucket = f"pol-{unique}"
    strata_server.client("s3").create_bucket(Bucket=bucket)
    console = PlainConsole(strata_server.port)
    assert console.sign_in(key["AccessKeyId"], key["SecretAccessKey"]) == 303
    status, headers, _, _ = console.post_form(
        "/s3/encryption", {"csrf": console.csrf, "bucket": bucket, "algorithm": "aws:kms", "action": "save"}
    )
    assert "AccessDenied" in _flash(console, headers["location"])
    rule = strata_server.client("s3").get_bucket_encryption(Bucket=bucket)
    assert rule["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
