"""The AWS CLI (`aws iam`, `aws sts`, `aws s3api`) with profiles made from the users file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.services.iam.conftest import ACCOUNT, ALICE, ROOT
from tests.services.iam.test_iam import make_user

AWS = str(Path(sys.executable).with_name("aws"))


def profiles(tmp_path: Path, server) -> dict[str, str]:
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[root]\naws_access_key_id = {ROOT['access_key']}\naws_secret_access_key = {ROOT['secret_key']}\n"
        f"[alice]\naws_access_key_id = {ALICE['access_key']}\naws_secret_access_key = {ALICE['secret_key']}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile root]\nregion = us-east-1\nendpoint_url = {server.endpoint}\n"
        f"[profile alice]\nregion = us-east-1\nendpoint_url = {server.endpoint}\n"
    )
    env = {k: v for k, v in server.env().items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(config))
    return env


def aws(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AWS, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_profiles(iam_server, tmp_path, unique):
    env = profiles(tmp_path, iam_server)
    who = aws(env, "sts", "get-caller-identity", "--profile", "alice")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    user = f"cli-{unique}"
    made = aws(env, "iam", "create-user", "--user-name", user, "--profile", "root")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user}"
    listed = json.loads(aws(env, "iam", "list-users", "--profile", "root").stdout)
    assert {"alice", user} <= {u["UserName"] for u in listed["Users"]}
    denied = aws(env, "iam", "create-user", "--user-name", f"x{user}", "--profile", "alice")
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr and "iam:CreateUser" in denied.stderr
    bucket = f"cli-{unique}"
    assert aws(env, "s3api", "create-bucket", "--bucket", bucket, "--profile", "root").returncode == 0
    put = aws(env, "s3api", "put-object", "--bucket", bucket, "--key", "k", "--profile", "alice")
    assert put.returncode != 0 and "AccessDenied" in put.stderr
    assert aws(env, "s3api", "list-objects-v2", "--bucket", bucket, "--profile", "alice").returncode == 0


def test_cli_profile_that_assumes_a_role(iam_server, tmp_path, unique):
    """A profile with role_arn + source_profile: the CLI calls AssumeRole itself and signs with the
    session's ASIA key and token."""
    env = profiles(tmp_path, iam_server)
    role = f"cli-role-{unique}"
    trust = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    )
    made = aws(
        env,
        "iam",
        "create-role",
        "--role-name",
        role,
        "--assume-role-policy-document",
        trust,
        "--profile",
        "root",
    )
    assert made.returncode == 0, made.stderr
    arn = json.loads(made.stdout)["Role"]["Arn"]
    attach = aws(
        env,
        "iam",
        "attach-role-policy",
        "--role-name",
        role,
        "--policy-arn",
        "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess",
        "--profile",
        "root",
    )
    assert attach.returncode == 0, attach.stderr
    # AWS refuses root keys for AssumeRole: the source profile is a user allowed sts:AssumeRole.
    source = make_user(iam_server, f"cli-src-{unique}")
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=f"cli-src-{unique}",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}]}
        ),
    )
    with open(env["AWS_SHARED_CREDENTIALS_FILE"], "a") as f:
        f.write(
            f"[source]\naws_access_key_id = {source['access_key']}\n"
            f"aws_secret_access_key = {source['secret_key']}\n"
        )
    with open(env["AWS_CONFIG_FILE"], "a") as f:
        f.write(
            f"[profile reader]\nregion = us-east-1\nendpoint_url = {iam_server.endpoint}\n"
            f"role_arn = {arn}\nsource_profile = source\nrole_session_name = cli-session\n"
        )
    who = aws(env, "sts", "get-caller-identity", "--profile", "reader")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/cli-session"
    assert aws(env, "dynamodb", "list-tables", "--profile", "reader").returncode == 0
    denied = aws(env, "s3api", "list-buckets", "--profile", "reader")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
