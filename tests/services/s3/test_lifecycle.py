"""S3 lifecycle configurations, executed on the simulated clock (the scheduler's s3.lifecycle rule).

Private servers: the tests move their clocks. The seed's `setup_lifecycle_policy` runs verbatim
in a subprocess pointed at the server with AWS_ENDPOINT_URL only.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest
from botocore.exceptions import ClientError

DAY = 86400
BIG = b"L" * (128 * 1024)  # the smallest object S3 transitions by default

# The seed (storage-and-databases.md, "S3 Lifecycle Policies"), verbatim.
SEED = """
# Example lifecycle policy configuration
import boto3
import json

s3 = boto3.client('s3')

# Lifecycle policies are the single most impactful cost optimization for S3.
# A real-world example: a company storing 50 TB of logs at S3 Standard costs
# ~$1,150/month. Moving 30-day-old logs to Glacier cuts that to ~$180/month.
# Adding Deep Archive after 1 year brings long-term storage to ~$50/month.
lifecycle_policy = {
    "Rules": [
        {
            "ID": "MoveToIA30Days",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "Transitions": [
                {
                    "Days": 30,
                    "StorageClass": "STANDARD_IA"
                },
                {
                    "Days": 90,
                    "StorageClass": "GLACIER"
                },
                {
                    "Days": 365,
                    "StorageClass": "DEEP_ARCHIVE"
                }
            ],
            "Expiration": {
                "Days": 2555  # Delete after 7 years
            }
        },
        {
            # This rule is critical and often overlooked. Failed multipart
            # uploads leave invisible partial data in your bucket that you
            # still pay for. Some teams discover gigabytes of orphaned parts
            # eating their S3 budget. 7 days is generous -- most uploads
            # either complete in minutes or never will.
            "ID": "DeleteIncompleteMultipartUploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {
                "DaysAfterInitiation": 7
            }
        },
        {
            "ID": "ExpireOldVersions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionTransitions": [
                {
                    "NoncurrentDays": 30,
                    "StorageClass": "GLACIER"
                }
            ],
            "NoncurrentVersionExpiration": {
                "NoncurrentDays": 365
            }
        }
    ]
}

s3.put_bucket_lifecycle_configuration(
    Bucket='my-bucket',
    LifecycleConfiguration=lifecycle_policy
)
"""


def sim_now(server: Any) -> float:
    return datetime.fromisoformat(server.admin("/_strata/clock")["now"]).timestamp()


def to_noon(server: Any) -> None:
    """Move a server's clock to a coming noon UTC: whole-day advances then never meet a midnight
    (when lifecycle acts) that real time reaches between them, so each report is exact."""
    noon = (math.floor(sim_now(server) / DAY) + 1.5) * DAY
    server.admin("/_strata/clock", {"set": datetime.fromtimestamp(noon, UTC).isoformat()})


def cli_advance(server: Any, duration: str) -> dict:
    """`strata clock advance` as a user runs it; its JSON answer."""
    out = subprocess.run(
        [sys.executable, "-m", "strata.cli", "clock", "advance", duration, "--endpoint", server.endpoint],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def classes(s3: Any, bucket: str) -> dict[str, str]:
    out = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["StorageClass"] for o in out}


def versions(s3: Any, bucket: str) -> list[tuple]:
    """Every version and delete marker: (key, marker?, class, last modified, size), oldest first."""
    r = s3.list_object_versions(Bucket=bucket)
    out = [(v["Key"], False, v["StorageClass"], v["LastModified"], v["Size"]) for v in r.get("Versions", [])]
    out += [(m["Key"], True, "", m["LastModified"], 0) for m in r.get("DeleteMarkers", [])]
    return sorted(out, key=lambda v: (v[0], v[3], v[1]))


def test_the_seed_policy_runs_verbatim_and_400_days_later_objects_are_where_it_says(
    strata_factory: Any,
) -> None:
    server = strata_factory()
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="my-bucket")
    s3.put_bucket_versioning(Bucket="my-bucket", VersioningConfiguration={"Status": "Enabled"})
    subprocess.run([sys.executable, "-c", SEED], env=server.env(), check=True, timeout=60)
    rules = s3.get_bucket_lifecycle_configuration(Bucket="my-bucket")["Rules"]
    assert [r["ID"] for r in rules] == [
        "MoveToIA30Days",
        "DeleteIncompleteMultipartUploads",
        "ExpireOldVersions",
    ]
    assert rules[0]["Transitions"][2] == {"Days": 365, "StorageClass": "DEEP_ARCHIVE"}

    t0 = sim_now(server)
    put = s3.put_object(Bucket="my-bucket", Key="logs/app.log", Body=BIG)
    s3.put_object(Bucket="my-bucket", Key="logs/tiny.log", Body=b"small")  # below 128 KiB: stays
    s3.put_object(Bucket="my-bucket", Key="data/report.csv", Body=BIG)  # v1, noncurrent at v2
    s3.put_object(Bucket="my-bucket", Key="data/report.csv", Body=BIG + b"2")
    s3.create_multipart_upload(Bucket="my-bucket", Key="data/abandoned.bin")
    # Expires 2555 days after creation, at the next midnight UTC (one later if the PUT crossed one).
    expiry = math.ceil((t0 + 2555 * DAY) / DAY) * DAY
    assert put["Expiration"] in [
        f'expiry-date="{formatdate(at, usegmt=True)}", rule-id="MoveToIA30Days"'
        for at in (expiry, expiry + DAY)
    ]
    assert s3.head_object(Bucket="my-bucket", Key="logs/app.log")["Expiration"] == put["Expiration"]
    assert "Expiration" not in s3.head_object(Bucket="my-bucket", Key="data/report.csv")

    report = cli_advance(server, "45d")["ran"]["s3.lifecycle"]
    assert report == {"transitioned_to_STANDARD_IA": 1, "transitioned_to_GLACIER": 1, "uploads_aborted": 1}
    assert classes(s3, "my-bucket") == {
        "data/report.csv": "STANDARD",
        "logs/app.log": "STANDARD_IA",
        "logs/tiny.log": "STANDARD",
    }
    server.restart()  # progress survives; the rest of the 400 days after the restart
    report = cli_advance(server, "355d")["ran"]["s3.lifecycle"]
    assert report == {"transitioned_to_DEEP_ARCHIVE": 1, "noncurrent_expired": 1}
    assert classes(s3, "my-bucket") == {
        "data/report.csv": "STANDARD",
        "logs/app.log": "DEEP_ARCHIVE",
        "logs/tiny.log": "STANDARD",
    }
    assert [v[0] for v in versions(s3, "my-bucket")] == ["data/report.csv", "logs/app.log", "logs/tiny.log"]
    assert s3.list_multipart_uploads(Bucket="my-bucket").get("Uploads") is None
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="my-bucket", Key="logs/app.log")
    assert e.value.response["Error"]["Code"] == "InvalidObjectState"
    assert cli_advance(server, "1d")["ran"]["s3.lifecycle"] == {}  # nothing twice
    events = server.admin("/_strata/meter?service=s3")["events"]
    transitions = [e for e in events if "LifecycleTransition" in e["event"]]
    assert sorted(e["event"] for e in transitions) == [
        "LifecycleTransition-DEEP_ARCHIVE",
        "LifecycleTransition-GLACIER",
        "LifecycleTransition-STANDARD_IA",
    ]
    # The meter shows the hours each object spent in each class, 32 KiB of index on archived ones.
    hours: dict[str, float] = {}
    for e in events:
        if e["event"].startswith("TimedStorage-") and e["dims"] == {"bucket": "my-bucket"}:
            hours[e["event"][13:]] = hours.get(e["event"][13:], 0.0) + e["quantity"]
    end = datetime.fromisoformat(
        server.admin("/_strata/clock")["rules"]["s3.lifecycle"]["caught_up_to"]
    ).timestamp()
    m30, m90, m365 = (math.ceil((t0 + d * DAY) / DAY) * DAY for d in (30, 90, 365))
    archived = len(BIG) + 32 * 1024
    assert hours["STANDARD_IA"] == pytest.approx(len(BIG) * (m90 - m30) / 3600, rel=0.01)
    assert hours["DEEP_ARCHIVE"] == pytest.approx(archived * (end - m365) / 3600, rel=0.01)
    # app.log from day 90 to 365, report.csv's first version from its 30th noncurrent day to its 365th
    assert hours["GLACIER"] == pytest.approx(archived * (m365 - m90 + m365 - m30) / 3600, rel=0.01)


POLICY = {
    "Rules": [
        {
            "ID": "logs",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "Transitions": [
                {"Days": 30, "StorageClass": "STANDARD_IA"},
                {"Days": 120, "StorageClass": "GLACIER"},
            ],
            "Expiration": {"Days": 400},
        },
        {
            "ID": "tagged",
            "Status": "Enabled",
            "Filter": {
                "And": {
                    "Prefix": "t/",
                    "Tags": [{"Key": "tier", "Value": "cold"}],
                    "ObjectSizeGreaterThan": 10,
                }
            },
            "Transitions": [{"Days": 0, "StorageClass": "GLACIER_IR"}],
            "Expiration": {"Days": 700},
        },
        {
            "ID": "versions",
            "Status": "Enabled",
            "Filter": {},
            "NoncurrentVersionTransitions": [
                {"NoncurrentDays": 60, "StorageClass": "DEEP_ARCHIVE", "NewerNoncurrentVersions": 1}
            ],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 200, "NewerNoncurrentVersions": 1},
        },
        {
            "ID": "markers",
            "Status": "Enabled",
            "Filter": {"Prefix": "m/"},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 10},
        },
        {"ID": "off", "Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}},
    ]
}


def _fill(s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=POLICY)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"logs/{i}", Body=BIG)
    s3.put_object(Bucket=bucket, Key="t/cold", Body=b"tagged but small", Tagging="tier=cold")
    s3.put_object(Bucket=bucket, Key="t/warm", Body=b"other tag", Tagging="tier=warm")
    for i in range(4):  # four versions: the oldest two go, one newer noncurrent is kept
        s3.put_object(Bucket=bucket, Key="v/doc", Body=BIG + bytes([i]))
    s3.put_object(Bucket=bucket, Key="m/gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="m/gone")  # a marker over one version: both go in time


def test_a_three_year_jump_ends_where_small_steps_and_a_restart_end(strata_factory: Any) -> None:
    """Two servers with the same objects: one jumps 3 years at once, the other moves in 30-day
    steps with a restart in the middle. They end in the same state, delete markers stamped alike."""
    jumper, stepper = strata_factory(), strata_factory()
    # Both start at the same simulated midnight, so due times are the same instants on both.
    start = (math.floor(max(sim_now(jumper), sim_now(stepper)) / DAY) + 2) * DAY
    for server in (jumper, stepper):
        server.admin("/_strata/clock", {"set": datetime.fromtimestamp(start, UTC).isoformat()})
        _fill(server.client("s3"), "lc-jump")
    ran = jumper.advance_clock("1095d")["ran"]["s3.lifecycle"]
    assert ran["expired"] == 4 and ran["noncurrent_expired"] >= 3, ran
    for step in range(1, 38):
        stepper.advance_clock("30d" if step < 37 else "15d")
        if step == 18:
            stepper.restart()
    state = versions(jumper.client("s3"), "lc-jump")
    # The same versions in the same classes; delete markers stamped at the same instants (objects
    # were written a few real seconds apart on the two servers).
    assert [(*v[:3], v[4], v[3] if v[1] else None) for v in state] == [
        (*v[:3], v[4], v[3] if v[1] else None) for v in versions(stepper.client("s3"), "lc-jump")
    ]
    # Expired current versions became delete markers stamped at the midnight they fell due.
    logs = [v for v in state if v[0] == "logs/0"]
    assert [v[1] for v in logs] == [False, True]
    assert logs[1][3].timestamp() == start + 401 * DAY
    assert logs[0][2] == "GLACIER"  # where it was when it became noncurrent (the only noncurrent one)
    # The tagged rule named t/cold only (and the size filter let a small object transition)
    # before expiring it; the expired-marker rule removed m/gone entirely.
    assert [(v[0], v[1], v[2]) for v in state if v[0].startswith("t/")] == [
        ("t/cold", False, "GLACIER_IR"),
        ("t/cold", True, ""),
        ("t/warm", False, "STANDARD"),
    ]
    assert not [v for v in state if v[0].startswith("m/")]
    # Of v/doc's three noncurrent versions the two oldest expired; the newest is kept as it is.
    docs = [v[2] for v in state if v[0] == "v/doc"]
    assert docs == ["STANDARD", "STANDARD"]


@pytest.mark.parametrize(
    ("rule", "code", "message"),
    [
        ({"Status": "On", "Filter": {}, "Expiration": {"Days": 1}}, "MalformedXML", None),
        (
            {"Status": "Enabled", "Filter": {}},
            "InvalidRequest",
            "At least one action needs to be specified in a rule",
        ),
        (
            {"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}},
            "InvalidArgument",
            "'Days' for Expiration action must be a positive integer",
        ),
        (
            {"Status": "Enabled", "Filter": {}, "Expiration": {"Date": datetime(2030, 1, 1, 12, tzinfo=UTC)}},
            "InvalidArgument",
            "'Date' must be at midnight GMT",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"Prefix": "a/"},
                "Transitions": [{"Days": 10, "StorageClass": "ONEZONE_IA"}],
            },
            "InvalidArgument",
            "'Days' in Transition action must be greater than or equal to 30 for storageClass 'ONEZONE_IA'",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "Transitions": [
                    {"Days": 30, "StorageClass": "GLACIER"},
                    {"Days": 60, "StorageClass": "DEEP_ARCHIVE"},
                ],
            },
            "InvalidArgument",
            "'Days' in the 'Transition' action for StorageClass 'DEEP_ARCHIVE' for filter '(prefix=)' must be 90 "
            "days more than 'filter '(prefix=)'' in the 'Transition' action for StorageClass 'GLACIER'",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"Prefix": "logs/"},
                "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
                "Expiration": {"Days": 30},
            },
            "InvalidArgument",
            "'Days' in the Expiration action for filter '(prefix=logs/)' must be greater than 'Days' in the "
            "Transition action",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
                "Expiration": {"Date": datetime(2030, 1, 1, tzinfo=UTC)},
            },
            "InvalidRequest",
            "Found mixed 'Date' and 'Days' based Expiration and Transition actions in lifecycle rule for filter "
            "'(prefix=)'",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
            "InvalidRequest",
            "AbortIncompleteMultipartUpload cannot be specified with Tags.",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"ObjectSizeGreaterThan": 5},
                "Expiration": {"ExpiredObjectDeleteMarker": True},
            },
            "InvalidRequest",
            "ExpiredObjectDeleteMarker cannot be specified with Object Size.",
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 5}},
                "Expiration": {"Days": 1},
            },
            "InvalidRequest",
            "'ObjectSizeLessThan' has to be a value greater than 'ObjectSizeGreaterThan'.",
        ),
        (
            {"Status": "Enabled", "Filter": {"And": {"Prefix": "a"}}, "Expiration": {"Days": 1}},
            "MalformedXML",
            None,
        ),
        (
            {
                "Status": "Enabled",
                "Filter": {},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 0},
            },
            "InvalidArgument",
            "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer",
        ),
    ],
)
def test_invalid_configurations_get_s3s_errors(
    strata_server: Any, unique: str, rule: dict, code: str, message: str | None
) -> None:
    s3 = strata_server.client("s3")
    bucket = f"lc-bad-{unique}"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [{"ID": "r", **rule}]}
        )
    assert e.value.response["Error"]["Code"] == code
    if message is not None:
        assert e.value.response["Error"]["Message"] == message
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"


def test_ids_dates_and_deletion_round_trip(strata_server: Any, unique: str) -> None:
    s3 = strata_server.client("s3")
    bucket = f"lc-rt-{unique}"
    s3.create_bucket(Bucket=bucket)
    date = datetime(2031, 3, 1, tzinfo=UTC)
    config = {
        "Rules": [
            {
                "Status": "Enabled",
                "Filter": {"Prefix": "a/"},
                "Transitions": [{"Date": date, "StorageClass": "GLACIER"}],
            },
            {"ID": "same", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 3}},
        ]
    }
    answer = s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration=config,
        TransitionDefaultMinimumObjectSize="varies_by_storage_class",
    )
    assert answer["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert got["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    assert got["Rules"][0]["ID"]  # S3 names a rule given none
    assert got["Rules"][0]["Transitions"] == [{"Date": date, "StorageClass": "GLACIER"}]
    dup = {"Rules": [config["Rules"][1], config["Rules"][1]]}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=dup)
    assert (
        e.value.response["Error"]["Message"] == "Rule ID must be unique. Found same ID for more than one rule"
    )
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    assert "Expiration" not in s3.put_object(Bucket=bucket, Key="k", Body=b"x")


def test_unversioned_expiration_deletes_and_get_reports_the_date(strata_factory: Any) -> None:
    server = strata_factory()
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="plain")
    s3.put_bucket_lifecycle_configuration(
        Bucket="plain",
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 2}}
            ]
        },
    )
    s3.put_object(Bucket="plain", Key="tmp/a", Body=b"a")
    s3.put_object(Bucket="plain", Key="keep/b", Body=b"b")
    got = s3.get_object(Bucket="plain", Key="tmp/a")
    assert got["Expiration"].endswith('rule-id="tmp"')
    copied = s3.copy_object(Bucket="plain", Key="tmp/copy", CopySource={"Bucket": "plain", "Key": "keep/b"})
    assert copied["Expiration"].endswith('rule-id="tmp"')
    upload = s3.create_multipart_upload(Bucket="plain", Key="tmp/mp")
    part = s3.upload_part(Bucket="plain", Key="tmp/mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    done = s3.complete_multipart_upload(
        Bucket="plain",
        Key="tmp/mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["Expiration"].endswith('rule-id="tmp"')
    assert "Expiration" not in s3.head_object(Bucket="plain", Key="keep/b")
    # In a versioning-suspended bucket the delete marker is the null version, replacing it.
    s3.create_bucket(Bucket="suspended")
    s3.put_bucket_versioning(Bucket="suspended", VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket="suspended", Key="tmp/s", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket="suspended", VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket="suspended", Key="tmp/s", Body=b"null version")
    s3.put_bucket_lifecycle_configuration(
        Bucket="suspended",
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 2}}
            ]
        },
    )
    assert server.advance_clock("1d")["ran"]["s3.lifecycle"] == {}
    assert server.advance_clock("2d")["ran"]["s3.lifecycle"] == {"expired": 4}
    assert sorted(classes(s3, "plain")) == ["keep/b"]
    assert "Versions" not in s3.list_object_versions(Bucket="plain", Prefix="tmp/")
    left = s3.list_object_versions(Bucket="suspended")
    assert [(v["VersionId"], v["IsLatest"]) for v in left["Versions"]] == [(kept, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in left["DeleteMarkers"]] == [("null", True)]


def test_a_catch_up_cut_by_kill_9_finishes_after_the_restart(strata_factory: Any) -> None:
    """A catch-up of many one-key chunks is killed while it is likely running; after the restart
    the scheduler redoes the run from the last finished one and ends where an uncut run ends.
    (Wherever the kill lands — before the clock moved, during or after the run — the end state
    must be the same.)"""
    server = strata_factory(extra_env={"STRATA_LIMIT_S3_LIFECYCLE_CHUNK": "1"})
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="cut")
    s3.put_bucket_versioning(Bucket="cut", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket="cut",
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}
            ]
        },
    )
    keys = [f"tmp/{i:03d}" for i in range(300)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket="cut", Key=k, Body=b"t"), keys))
    s3.put_object(Bucket="cut", Key="keep", Body=b"k")
    start = sim_now(server)

    def advance() -> None:
        request = urllib.request.Request(
            server.endpoint + "/_strata/clock", b'{"advance": "3d"}', {"Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=2).read()
        except OSError:
            pass  # killed before it answered (its answer is not needed)

    thread = threading.Thread(target=advance)
    thread.start()
    time.sleep(0.1)
    server.kill()
    thread.join(30)
    server.start()
    moved = sim_now(server) - start
    server.advance_clock(f"{max(1.0, 3 * DAY - moved):.0f}s")  # answers once the rules caught up
    assert list(classes(s3, "cut")) == ["keep"]
    state = versions(s3, "cut")
    assert sum(1 for v in state if v[1]) == 300  # one delete marker per expired key, never two
    assert sum(1 for v in state if not v[1]) == 301


def test_early_deletion_is_charged_for_the_rest_of_the_minimum_duration(strata_factory: Any) -> None:
    server = strata_factory()
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="early")
    s3.put_bucket_lifecycle_configuration(
        Bucket="early",
        LifecycleConfiguration={
            "Rules": [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "x/"}, "Expiration": {"Days": 5}}]
        },
    )
    t0 = sim_now(server)
    body = b"e" * 1000
    s3.put_object(Bucket="early", Key="glacier", Body=body, StorageClass="GLACIER")  # 90 days
    s3.put_object(Bucket="early", Key="ia", Body=body, StorageClass="STANDARD_IA")  # 30 days
    s3.put_object(Bucket="early", Key="x/deep", Body=body, StorageClass="DEEP_ARCHIVE")  # 180 days
    s3.put_object(Bucket="early", Key="standard", Body=body)
    server.advance_clock("10d")  # x/deep expired by the rule at the midnight after day 5
    s3.delete_object(Bucket="early", Key="glacier")
    s3.put_object(Bucket="early", Key="ia", Body=b"overwritten")
    s3.delete_object(Bucket="early", Key="standard")
    charged: dict[str, float] = {}
    for e in server.admin("/_strata/meter?service=s3")["events"]:
        if e["event"].startswith("EarlyDelete-"):
            assert e["unit"] == "byte-hour" and e["dims"] == {"bucket": "early"}
            charged[e["event"]] = charged.get(e["event"], 0.0) + e["quantity"]
    assert sorted(charged) == ["EarlyDelete-DEEP_ARCHIVE", "EarlyDelete-GLACIER", "EarlyDelete-STANDARD_IA"]
    assert charged["EarlyDelete-GLACIER"] == pytest.approx(1000 * 80 * 24, rel=0.01)
    assert charged["EarlyDelete-STANDARD_IA"] == pytest.approx(1000 * 20 * 24, rel=0.01)
    expired = math.ceil((t0 + 5 * DAY) / DAY) * DAY
    assert charged["EarlyDelete-DEEP_ARCHIVE"] == pytest.approx(
        1000 * (t0 + 180 * DAY - expired) / 3600, rel=0.01
    )


def test_the_seeds_50_tb_of_logs_cost_what_the_seed_says_month_by_month(strata_factory: Any) -> None:
    """The seed's numbers: 50 TB of logs at S3 Standard ~$1,150/month; after the move to Glacier
    ~$180/month; after a year in Deep Archive ~$50/month — priced from the meter's byte-hours at
    the seed's us-east-1 prices. The 50 TB are metered sizes, not real bytes: 500 rows of 100 GB
    are written into the stopped server's metadata (the bench does the same)."""
    server = strata_factory()
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="my-bucket")
    subprocess.run([sys.executable, "-c", SEED], env=server.env(), check=True, timeout=60)
    t0 = sim_now(server)
    server.stop()
    db = sqlite3.connect(server.data_dir / "s3" / "meta.db")
    with db:
        db.executemany(
            "INSERT INTO objects(bucket, key, version_id, latest, dm, blob, size, etag, modified, "
            "storage_class, attrs) VALUES ('my-bucket', ?, 'null', 1, 0, NULL, ?, '\"0\"', ?, 'STANDARD', '{}')",
            [(f"logs/{i:03d}.log", 50 * 10**12 // 500, t0) for i in range(500)],
        )
    db.close()
    server.start()
    price = {"STANDARD": 0.023, "STANDARD_IA": 0.0125, "GLACIER": 0.0036, "DEEP_ARCHIVE": 0.00099}

    def month_cost() -> float:
        """Advance 30 days; what the month cost (decimal GB-months of 730 hours)."""
        before = len(server.admin("/_strata/meter?service=s3")["events"])
        server.advance_clock("30d")
        cost = 0.0
        for e in server.admin("/_strata/meter?service=s3")["events"][before:]:
            if e["event"].startswith("TimedStorage-") and e["dims"] == {"bucket": "my-bucket"}:
                cost += e["quantity"] / 1e9 / 730 * price[e["event"][13:]]
        return cost * 730 / 720  # a 30-day month to the 730-hour month prices are quoted for

    assert month_cost() == pytest.approx(1150, rel=0.03)
    server.advance_clock("61d")  # day 91: everything has moved on to GLACIER
    assert set(classes(s3, "my-bucket").values()) == {"GLACIER"}
    assert month_cost() == pytest.approx(180, rel=0.03)
    server.advance_clock("245d")  # day 366: DEEP_ARCHIVE
    assert set(classes(s3, "my-bucket").values()) == {"DEEP_ARCHIVE"}
    assert month_cost() == pytest.approx(50, rel=0.03)
