"""What authorization costs an allowed GetItem / GetObject, per kind of caller (issue 13's bar).

Starts two servers of this checkout on loopback: one as shipped, one with the policy check skipped
(bench/serve_without_authz.py), the same users file in both. On the shipped one it signs requests
as four callers, from the cheapest decision to the dearest:

- root:        the loopback test key (an account root: allowed without evaluation);
- full:        an IAM user with AmazonDynamoDBFullAccess + AmazonS3FullAccess (Resource "*": the
               decision is cached per action);
- scoped:      an IAM user whose inline policy names the bench's tables and buckets by ARN (the
               decision is cached per (action, resource));
- conditioned: the same with an `IpAddress aws:SourceIp 127.0.0.0/8` condition (cached with the
               connection's address and transport);

and on the other the root key (`skipped`). Then bench/cpu_per_request.py measures each target's
server CPU (or, with --callgrind, instructions) per request; the ratios to `skipped` are what
authorization adds.

    python bench/authz_cost.py --callgrind --seconds 15 --rounds 2

bench/authz_opcodes.py counts the same in one process, exactly (Python opcodes per request).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "000000000000"
USERS_FILE = f"""default_account = "{ACCOUNT}"
[accounts."{ACCOUNT}".users.full]
access_key = "AKIABENCHFULL0000001"
secret_key = "benchfullbenchfullbenchfullbenchfull0001"
policies = ["arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess", "arn:aws:iam::aws:policy/AmazonS3FullAccess"]
"""
SCOPED = [
    {"Effect": "Allow", "Action": "dynamodb:*", "Resource": f"arn:aws:dynamodb:*:{ACCOUNT}:table/bench*"},
    {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::bench-*", "arn:aws:s3:::bench-*/*"]},
]
LOOPBACK = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], port: int, data_dir: str, users: str, callgrind: bool) -> subprocess.Popen:
    cmd = [sys.executable, *argv, "--port", str(port), "--tls-port", "off", "--data-dir", data_dir, "--quiet"]
    if callgrind:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={data_dir}.cg",
        ] + cmd
    env = dict(os.environ, STRATA_USERS_FILE=users, STRATA_S3_DEFAULT_ENCRYPTION="off")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, start_new_session=True)


def wait_ready(url: str, timeout: float) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            s3.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def scoped_user(url: str, name: str, statements: list[dict]) -> str:
    """An IAM user with an inline policy; returns its keys as AK:SK."""
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="bench",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return f"{key['AccessKeyId']}:{key['SecretAccessKey']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--callgrind", action="store_true", help="instructions per request (servers under valgrind)"
    )
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workloads", default="ddb_get,s3_get_4k")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="authz-cost-")
    users = Path(work, "users.toml")
    users.write_text(USERS_FILE)
    shipped, skipped = free_port(), free_port()
    servers = [
        start(["-m", "strata.cli", "serve"], shipped, f"{work}/shipped", str(users), a.callgrind),
        start(
            [str(ROOT / "bench" / "serve_without_authz.py"), "serve"],
            skipped,
            f"{work}/skipped",
            str(users),
            a.callgrind,
        ),
    ]
    try:
        for port in (shipped, skipped):
            wait_ready(f"http://127.0.0.1:{port}", 600 if a.callgrind else 60)
        url = f"http://127.0.0.1:{shipped}"
        scoped = scoped_user(url, "scoped", SCOPED)
        conditioned = scoped_user(url, "conditioned", [dict(s, Condition=LOOPBACK) for s in SCOPED])
        cmd = [
            sys.executable, str(ROOT / "bench" / "cpu_per_request.py"),
            "--target", f"skipped=http://127.0.0.1:{skipped}",
            "--target", f"root={url}", "--target", f"full={url}",
            "--target", f"scoped={url}", "--target", f"conditioned={url}",
            "--credentials", "full=AKIABENCHFULL0000001:benchfullbenchfullbenchfullbenchfull0001",
            "--credentials", f"scoped={scoped}", "--credentials", f"conditioned={conditioned}",
            "--pid", f"skipped={servers[1].pid}", *(f"--pid={n}={servers[0].pid}" for n in
                                                   ("root", "full", "scoped", "conditioned")),
            "--seconds", str(a.seconds), "--rounds", str(a.rounds), "--workloads", a.workloads,
        ]  # fmt: skip
        if a.callgrind:
            cmd.append("--callgrind")
        subprocess.run(cmd, check=True)
    finally:
        for p in servers:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(60)


if __name__ == "__main__":
    main()
