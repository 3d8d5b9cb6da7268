"""S3's per-prefix request rates with --s3-request-limits: above the rate a prefix answers 503
SlowDown (which SDKs retry), while another prefix of the same bucket is not held back. The rates
are lowered here (STRATA_LIMIT_S3_PREFIX_*_RATE) so a test can exceed them."""

from __future__ import annotations

from botocore.config import Config
from botocore.exceptions import ClientError


def test_a_busy_prefix_is_slowed_down_and_others_are_not(strata_factory, unique):
    server = strata_factory(
        extra_env={"STRATA_LIMIT_S3_PREFIX_WRITE_RATE": "2", "STRATA_LIMIT_S3_PREFIX_READ_RATE": "2"},
        extra_args=["--s3-request-limits"],
    )
    s3 = server.client("s3", config=Config(retries={"total_max_attempts": 1}))
    bucket = f"rates-{unique}"
    s3.create_bucket(Bucket=bucket)
    codes = []
    for i in range(40):  # far more than 2 a second for one prefix, however slow the machine
        try:
            s3.put_object(Bucket=bucket, Key=f"busy/k{i}", Body=b"x")
            codes.append(200)
        except ClientError as e:
            codes.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
    assert 200 in codes and ("SlowDown", 503) in codes, codes
    assert set(codes) <= {200, ("SlowDown", 503)}
    s3.put_object(Bucket=bucket, Key="quiet/k", Body=b"y")  # another prefix: its own rate
    assert s3.get_object(Bucket=bucket, Key="busy/k0")["Body"].read() == b"x"  # reads: their own rate

    # The SDK's retries (standard mode backs off) absorb the SlowDowns.
    retrying = server.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    for i in range(6):
        retrying.put_object(Bucket=bucket, Key=f"busy/r{i}", Body=b"z")
