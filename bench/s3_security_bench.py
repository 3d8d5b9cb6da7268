"""S3 security benchmarks named by the S3 security issue, side by side in one run.

    policy   4 KiB GET (presigned, wrk) from a bucket with a 20-statement bucket policy
             vs the same GET from a bucket without a policy     (bar: policy costs <= 10%)
    acl      anonymous 4 KiB GET of an object public by its ACL (public-read, ObjectWriter bucket)
             vs one public by a bucket policy (`Principal: *`, ACLs disabled)       (no bar)

Usage: python bench/s3_security_bench.py [policy] [acl] [--seconds 3] [--rounds 8]
Starts its own Strata on free loopback ports in a temp dir; needs wrk. The two buckets are
measured in alternating short rounds; the cost is the median ratio of neighbouring rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3_bench import client, rel, wrk_get  # noqa: E402

from tests.strata_process import StrataProcess  # noqa: E402

KiB = 1024


def twenty_statements(bucket: str) -> dict:
    """A realistic 20-statement policy: grants to other accounts on prefixes, conditional denies
    (TLS-style, IP, encryption), none of which denies the benchmark's GET from loopback."""
    arn = f"arn:aws:s3:::{bucket}"
    statements: list[dict] = [
        {
            "Sid": "DenyOutsideLoopback",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}},
        },
        {
            "Sid": "DenyUnencryptedUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{arn}/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        },
        {
            "Sid": "DenyDeletesOfArchive",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": f"{arn}/archive/*",
        },
    ]
    for i in range(17):
        account = f"{100000000000 + i:012d}"
        statements.append(
            {
                "Sid": f"Tenant{i}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                "Resource": [arn, f"{arn}/tenants/{i}/*"],
                "Condition": {"StringLike": {"s3:prefix": [f"tenants/{i}/*"]}} if i % 3 == 0 else {},
            }
        )
    for s in statements:
        if s.get("Condition") == {}:
            del s["Condition"]
    return {"Version": "2012-10-17", "Statement": statements}


def bench_policy(strata: str, seconds: int, rounds: int) -> None:
    s3 = client(strata)
    body = os.urandom(4 * KiB)
    urls = {}
    for name in ("bench-plain", "bench-policy"):
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="obj4k", Body=body)
        urls[name] = s3.generate_presigned_url(
            "get_object", Params={"Bucket": name, "Key": "obj4k"}, ExpiresIn=3600
        )
    policy = twenty_statements("bench-policy")
    assert len(policy["Statement"]) == 20
    s3.put_bucket_policy(Bucket="bench-policy", Policy=json.dumps(policy))
    assert s3.get_object(Bucket="bench-policy", Key="obj4k")["Body"].read() == body
    # Short alternating rounds, each policy round next to a no-policy one: on a shared machine
    # the load drifts between rounds, so the ratio of neighbours is steadier than two totals.
    plain_rps: list[float] = []
    policy_rps: list[float] = []
    for _ in range(rounds):
        plain_rps.append(wrk_get(strata, [rel(urls["bench-plain"])], seconds))
        policy_rps.append(wrk_get(strata, [rel(urls["bench-policy"])], seconds))
    ratios = [b / a for a, b in zip(plain_rps, policy_rps, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"get_4k: no policy {statistics.median(plain_rps):,.0f}/s  "
        f"20-statement policy {statistics.median(policy_rps):,.0f}/s  "
        f"median ratio of neighbouring rounds {ratio:.1%}  cost {1 - ratio:.1%} (bar <= 10%)"
    )
    print(
        "  rounds (no policy, policy):",
        [(round(a), round(b)) for a, b in zip(plain_rps, policy_rps, strict=True)],
    )


def bench_acl(strata: str, seconds: int, rounds: int) -> None:
    s3 = client(strata)
    body = os.urandom(4 * KiB)
    s3.create_bucket(Bucket="bench-public-policy")
    s3.delete_public_access_block(Bucket="bench-public-policy")
    s3.put_object(Bucket="bench-public-policy", Key="obj4k", Body=body)
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bench-public-policy/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket="bench-public-policy", Policy=json.dumps(public))
    s3.create_bucket(Bucket="bench-public-acl", ObjectOwnership="ObjectWriter")
    s3.delete_public_access_block(Bucket="bench-public-acl")
    s3.put_object(Bucket="bench-public-acl", Key="obj4k", Body=body, ACL="public-read")
    paths = {name: f"/{name}/obj4k" for name in ("bench-public-policy", "bench-public-acl")}
    policy_rps: list[float] = []
    acl_rps: list[float] = []
    for _ in range(rounds):
        policy_rps.append(wrk_get(strata, [paths["bench-public-policy"]], seconds))
        acl_rps.append(wrk_get(strata, [paths["bench-public-acl"]], seconds))
    ratio = statistics.median([b / a for a, b in zip(policy_rps, acl_rps, strict=True)])
    print(
        f"anonymous get_4k: public by policy {statistics.median(policy_rps):,.0f}/s  "
        f"public by ACL {statistics.median(acl_rps):,.0f}/s  median ratio of neighbouring rounds {ratio:.1%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", default=["policy"])
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="s3secbench-"))
    server = StrataProcess(tmp / "data").start()
    try:
        for w in a.which:
            if w == "policy":
                bench_policy(server.endpoint, a.seconds, a.rounds)
            elif w == "acl":
                bench_acl(server.endpoint, a.seconds, a.rounds)
            else:
                raise SystemExit(f"unknown benchmark {w!r}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
