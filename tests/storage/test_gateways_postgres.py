"""Two gateways on one PostgreSQL (`--metadata`, `--blob-dir`): one cloud (issue 22 step 2).

Two real `strata serve` processes with data dirs of their own share a fresh database of the
session's throwaway PostgreSQL cluster (tests/storage/conftest.py) and one blob directory. What one
changes the other serves at once: IAM users, keys and policies (no stale cache authorizes a deleted
key), the simulated clock; and one of them at a time runs the time-driven rules, the other taking
over when the owner is killed with -9; the engine host's takeover and fencing close the file
(they kill, restart and fence the gateways, and restart PostgreSQL).

Every test here shares the module's one pair of gateways (`gateways`), so they stay in one file: a
file of its own would start another pair. The checks they share are in gateway_checks.py; the
engine host's tests that need no running gateway are in test_postgres.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import boto3
import psutil
import psycopg
import pytest
import redis
from botocore.exceptions import ClientError

from strata.config import Settings
from strata.console.sessions import COOKIE
from strata.engines import floating
from strata.engines.postgres import PgNode
from strata.gateway import engine_host
from strata.gateway.engine_host import EXIT_FENCED
from strata.storage.engine_lock import KEEP, MARGIN, Beat
from strata.storage.shared import ON_ENGINE_HOST
from tests.console.plain_client import ROOT, PlainConsole
from tests.services.cloudwatch.helpers import metric_total
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, assumed_dynamodb, make_table, session_client, wait_for
from tests.services.fis.test_templates import throttle_template
from tests.services.rds.helpers import create_pg, pg_connect, wait_status
from tests.services.s3.security.conftest import control_client
from tests.storage.conftest import fresh_database
from tests.storage.gateway_checks import (
    TERMINATE_HOST,
    a_snapshot_restores_beside_the_aof,
    answers,
    ebs_blocks_stream_both_ways_through_the_forwarding_gateway,
    error_code,
    host_and_other,
    redis_info,
    the_host_judges_a_forwarded_request_by_its_client,
    until,
)
from tests.strata_process import StrataProcess, free_port


@pytest.fixture(scope="module")
def metadata_url(pg_node: PgNode) -> str:
    return fresh_database("gw")


@pytest.fixture(scope="module")
def gateway_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateways")


def _gateway(root: Path, name: str, metadata_url: str, *args: str) -> StrataProcess:
    return StrataProcess(
        root / f"data-{name}",
        extra_env={"STRATA_METADATA": metadata_url},
        extra_args=["--blob-dir", str(root / "blobs"), *args],
    )


@pytest.fixture(scope="module")
def forwarder(gateway_root: Path, metadata_url: str) -> Iterator[tuple[StrataProcess, dict]]:
    """A gateway started with `--engine-host never`, and its health once it serves: before the
    `gateways` when a test asks for both in this order before any asked for those. Its test stops
    it (a third live gateway would change the others' counts)."""
    proc = _gateway(gateway_root, "never", metadata_url, "--engine-host", "never")
    try:
        proc.start()
        yield proc, proc.health()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def gateways(gateway_root: Path, metadata_url: str) -> Iterator[list[StrataProcess]]:
    procs = [_gateway(gateway_root, name, metadata_url) for name in "ab"]
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once (as gateways behind a balancer do)
            list(pool.map(StrataProcess.start, procs))
        yield procs
    finally:
        for p in procs:
            p.stop()


def test_a_gateway_set_never_to_host_forwards_to_the_host_started_after_it(
    forwarder: tuple[StrataProcess, dict], gateways: list[StrataProcess]
) -> None:
    """`--engine-host never` started first, the lock free: it does not take the engines (health
    says so); of the gateways started after it one does, and it forwards the engine services'
    requests there. (First in the module: see `forwarder`.)"""
    never, at_start = forwarder
    try:
        assert at_start["engine_host"] == {"self": False, "url": None, "setting": "never"}
        host, _ = host_and_other(gateways)
        assert host.health()["engine_host"]["setting"] == "any"
        until(
            lambda: (
                never.health()["engine_host"] == {"self": False, "url": host.endpoint, "setting": "never"}
            ),
            "it knows the host",
        )
        assert never.health()["services"]["rds"] == "on the engine host"
        rds = never.client("rds")
        group = f"never-{uuid.uuid4().hex[:8]}"
        rds.create_db_parameter_group(
            DBParameterGroupName=group, DBParameterGroupFamily="postgres16", Description="through a forwarder"
        )
        made = host.client("rds").describe_db_parameter_groups(DBParameterGroupName=group)[
            "DBParameterGroups"
        ]
        assert [g["Description"] for g in made] == ["through a forwarder"]
        assert group in {
            g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
        }
        with pytest.raises(ClientError) as missing:  # rendered by the host
            never.client("elasticache").describe_cache_clusters(CacheClusterId="never-none")
        assert error_code(missing) == "CacheClusterNotFound"
        rds.delete_db_parameter_group(DBParameterGroupName=group)
        log = never.log_path.read_text()
        assert "--engine-host never: this gateway never runs the engine services" in log
        assert "now the engine host" not in log
    finally:
        never.stop()


def test_an_iam_key_made_on_one_gateway_works_on_the_other_and_its_deletion_at_once(
    gateways: list[StrataProcess],
) -> None:
    a, b = gateways
    iam_a = a.client("iam")
    iam_a.create_user(UserName="alice")
    iam_a.put_user_policy(
        UserName="alice",
        PolicyName="list",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"s3:ListAllMyBuckets","Resource":"*"}]}',
    )
    key = iam_a.create_access_key(UserName="alice")["AccessKey"]
    creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    s3_b = b.client("s3", **creds)
    s3_b.list_buckets()  # made on A, served by B
    assert b.client("iam").get_user(UserName="alice")["User"]["UserName"] == "alice"

    # A policy removed on A: B denies the very next request.
    iam_a.delete_user_policy(UserName="alice", PolicyName="list")
    with pytest.raises(ClientError) as denied:
        s3_b.list_buckets()
    assert error_code(denied) == "AccessDenied"

    # The key deleted on A: B refuses it at once (no cached principal outlives the change).
    iam_a.put_user_policy(
        UserName="alice",
        PolicyName="list",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"s3:ListAllMyBuckets","Resource":"*"}]}',
    )
    s3_b.list_buckets()
    iam_a.delete_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"])
    with pytest.raises(ClientError) as refused:
        s3_b.list_buckets()
    assert error_code(refused) == "InvalidAccessKeyId"
    # ... and B's own IAM changes are seen by A the same way.
    second = b.client("iam").create_access_key(UserName="alice")["AccessKey"]
    a.client("s3", access_key=second["AccessKeyId"], secret_key=second["SecretAccessKey"]).list_buckets()

    # An STS session from B (a role made on A) is good on A: one token key for every gateway.
    account = a.client("sts").get_caller_identity()["Account"]
    iam_a.create_role(
        RoleName="reader",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        f'"Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}',
    )
    role_arn = f"arn:aws:iam::{account}:role/reader"
    session = b.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="s1")["Credentials"]
    sts_a = boto3.client(
        "sts",
        endpoint_url=a.endpoint,
        region_name="us-east-1",
        aws_access_key_id=session["AccessKeyId"],
        aws_secret_access_key=session["SecretAccessKey"],
        aws_session_token=session["SessionToken"],
    )
    assert sts_a.get_caller_identity()["Arn"].endswith(":assumed-role/reader/s1")


def test_kms_keys_and_account_settings_made_on_one_gateway_hold_on_the_other(
    gateways: list[StrataProcess],
) -> None:
    a, b = gateways
    key = a.client("kms").create_key()["KeyMetadata"]["KeyId"]
    blob = a.client("kms").encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    assert b.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"  # one root key
    b.client("kms").disable_key(KeyId=key)
    with pytest.raises(ClientError) as disabled:
        a.client("kms").encrypt(KeyId=key, Plaintext=b"x")
    assert error_code(disabled) == "DisabledException"

    # S3 Control's account-wide public access block, cached per gateway, is read again on B.
    account = a.client("sts").get_caller_identity()["Account"]
    control_client(a).put_public_access_block(
        AccountId=account, PublicAccessBlockConfiguration={"BlockPublicPolicy": True}
    )
    got = control_client(b).get_public_access_block(AccountId=account)
    assert got["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    control_client(a).delete_public_access_block(AccountId=account)
    with pytest.raises(ClientError) as gone:
        control_client(b).get_public_access_block(AccountId=account)
    assert error_code(gone) == "NoSuchPublicAccessBlockConfiguration"
    # An access point made on A is served by B (its alias names the bucket there at once), bytes too.
    bucket = f"ap-{uuid.uuid4().hex[:8]}"
    a.client("s3").create_bucket(Bucket=bucket)
    a.client("s3").put_object(Bucket=bucket, Key="k", Body=b"via ap")
    alias = control_client(a).create_access_point(AccountId=account, Name=bucket, Bucket=bucket)["Alias"]
    listed = b.client("s3").list_objects_v2(Bucket=alias)
    assert [o["Key"] for o in listed["Contents"]] == ["k"]
    assert b.client("s3").get_object(Bucket=alias, Key="k")["Body"].read() == b"via ap"


def test_a_forwarder_gives_up_the_engine_address_a_killed_host_left_on_its_machine(
    gateways: list[StrataProcess], metadata_url: str, tmp_path: Path
) -> None:
    """A host killed with -9 on a machine that stayed up leaves the engine address on its device;
    started again it forwards (another gateway hosts), and must not answer for the address too."""
    if os.geteuid() != 0:
        pytest.skip("network devices need root")
    dev, addr, pooled = f"strgw{os.getpid() % 100000}", "10.222.29.50", "10.222.29.51"
    subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p"], check=True)
    try:
        for held in (addr, pooled):
            subprocess.run(["ip", "addr", "add", f"{held}/32", "dev", dev], check=True)
        settings = Settings(data_dir=tmp_path, metadata=metadata_url, engine_address=f"{addr},{pooled}/{dev}")
        gateway = engine_host.EngineHost(settings, services=None)  # type: ignore[arg-type]

        async def start_and_stop() -> None:
            await gateway.start()
            await gateway.stop()

        assert floating.holds(addr, dev)
        asyncio.run(start_and_stop())
        assert not gateway.serving  # a gateway of the fixture hosts
        assert not floating.holds(addr, dev) and not floating.holds(pooled, dev)
    finally:
        subprocess.run(["ip", "link", "del", dev], check=False)


def test_the_start_up_log_says_what_each_gateway_keeps_to_itself(gateways: list[StrataProcess]) -> None:
    log = gateways[0].log_path.read_text()
    assert "--metadata: shared by every gateway on postgresql://strata:***@" in log
    for service in ON_ENGINE_HOST:
        assert f"--metadata: {service} runs on the engine host" in log
    # The forwarder says where the host is once it knows (at start-up none may have advertised
    # itself yet), and once per change, not at every read of the lock's document.
    host = until(lambda: next((g for g in gateways if g.health()["engine_host"]["self"]), None), "a host")
    url = host.health()["engine_host"]["url"]
    forwarder = next(g for g in gateways if g is not host)
    said = f"--metadata: the engine host is {url} "
    until(lambda: said in forwarder.log_path.read_text(), "the forwarder names the host")
    time.sleep(1.5)  # three more reads of the lock's document by the forwarder's watcher
    assert forwarder.log_path.read_text().count(said) == 1
    assert "the engine host is None" not in forwarder.log_path.read_text()


def test_a_console_sign_in_on_one_gateway_holds_on_the_other_until_signed_out(
    gateways: list[StrataProcess],
) -> None:
    a, b = gateways
    console = PlainConsole(b.port)
    _, _, _, form = console.request("GET", ROOT + "/signin")  # the form from B ...
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    console.port = a.port  # ... posted to A (one sign-in key)
    status, _, _, _ = console.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "test"}
    )
    assert status == 303
    console.port = b.port
    status, _, _, page = console.request("GET", ROOT + "/s3")
    assert status == 200 and "Sign out" in page, page[:300]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    console.port = a.port
    assert console.request("GET", ROOT + "/s3")[0] == 200  # A holds the session in memory now
    signed_in = console.cookies[COOKIE]
    console.port = b.port
    assert console.post_form("/signout", {"csrf": csrf})[0] == 303
    console.port = a.port
    console.cookies[COOKIE] = signed_in  # the old cookie, replayed to A: signed out there too
    status, headers, _, _ = console.request("GET", ROOT + "/s3")
    assert status in (302, 303) and "/signin" in headers["location"], status


def test_a_clock_advance_on_one_gateway_moves_the_other(gateways: list[StrataProcess]) -> None:
    a, b = gateways
    before = b.admin("/_strata/clock")["offset_seconds"]
    moved = a.admin("/_strata/clock", {"advance": "2h"})["offset_seconds"]
    assert moved == pytest.approx(before + 7200)
    until(lambda: b.admin("/_strata/clock")["offset_seconds"] == moved, "B follows A's advance")
    # Both advancing count: B's advance starts from A's.
    assert b.admin("/_strata/clock", {"advance": "1h"})["offset_seconds"] == pytest.approx(moved + 3600)
    until(lambda: a.admin("/_strata/clock")["offset_seconds"] == pytest.approx(moved + 3600), "A follows B")


def test_cloudwatch_counts_the_requests_of_every_gateway(gateways: list[StrataProcess]) -> None:
    host, other = host_and_other(gateways)
    table, bucket = f"cw-{uuid.uuid4().hex[:8]}", f"cw-{uuid.uuid4().hex[:8]}"
    other.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = other.client("s3")
    s3.create_bucket(Bucket=bucket)
    # configured through the host: the other counts from its next request (it reads the bucket's row)
    host.client("s3").put_bucket_metrics_configuration(
        Bucket=bucket, Id="EntireBucket", MetricsConfiguration={"Id": "EntireBucket"}
    )
    for i in range(3):  # the table's puts of one minute on both gateways, most on the one that forwards
        other.client("dynamodb").put_item(TableName=table, Item={"k": {"S": f"o{i}"}})
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    for i in range(2):
        host.client("dynamodb").put_item(TableName=table, Item={"k": {"S": f"h{i}"}})
    with pytest.raises(ClientError):
        other.client("dynamodb").get_item(TableName=f"{table}-missing", Key={"k": {"S": "1"}})
    offset = host.admin("/_strata/clock")["offset_seconds"]

    def total(gateway: StrataProcess, namespace: str, name: str, dims: dict, stat: str) -> float:
        return metric_total(gateway.client("cloudwatch"), namespace, name, dims, stat, offset)

    counted = [
        (
            "AWS/DynamoDB",
            "SuccessfulRequestLatency",
            {"TableName": table, "Operation": "PutItem"},
            "SampleCount",
            5,
        ),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", {"TableName": table}, "Sum", 5),
        ("AWS/S3", "PutRequests", {"BucketName": bucket, "FilterId": "EntireBucket"}, "Sum", 3),
    ]

    def published() -> bool:
        # a gateway's counts reach PostgreSQL within about a second: a minute published before
        # they did leaves them to the next one
        host.admin("/_strata/clock", {"advance": "1m"})
        user_errors = total(host, "AWS/DynamoDB", "UserErrors", {}, "Sum")  # the other's GetItem
        return user_errors >= 1 and all(total(other, *metric[:4]) >= metric[4] for metric in counted)

    until(published, "the other gateway's requests are published", 30)
    for gateway in (host, other):  # every gateway's requests, once each, whichever gateway is asked
        assert [total(gateway, *metric[:4]) for metric in counted] == [metric[4] for metric in counted]


def test_an_api_fault_injected_by_the_engine_host_fails_calls_on_every_gateway(
    gateways: list[StrataProcess],
) -> None:
    host, other = host_and_other(gateways)
    runner_role(host)
    name = f"fis-{uuid.uuid4().hex[:8]}"
    make_table(other, name)
    role_arn, _ = assumed_dynamodb(other, name, None)
    single = session_client(other, role_arn, 1)  # signs with a session of the role; no retries
    fis = host.client("fis")
    tid = fis.create_experiment_template(**throttle_template(role_arn, "PT10M"))["experimentTemplate"]["id"]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]

    def answer() -> tuple[str, int]:
        try:
            single.get_item(TableName=name, Key={"k": {"S": "x"}})
            return "ok", 200
        except ClientError as e:
            return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]

    assert until(lambda: answer() != ("ok", 200) and answer(), "the other gateway throttles") == (
        "ThrottlingException",
        400,
    )
    single.describe_table(TableName=name)  # an operation the action does not name is served
    other.client("fis").stop_experiment(id=exp_id)  # through the other gateway: forwarded to the host
    wait_for(fis, exp_id, DONE)
    until(lambda: answer() == ("ok", 200), "the fault is rolled back on the other gateway")
    assert [answer() for _ in range(4)] == [("ok", 200)] * 4


def test_the_scheduler_has_one_owner_and_another_takes_over_when_it_is_killed(
    gateways: list[StrataProcess], tmp_path: Path
) -> None:
    a, b = gateways
    owners = until(
        lambda: [g for g in gateways if g.admin("/_strata/clock")["scheduler_owner"]] or None,
        "a gateway owns the scheduler",
    )
    assert len(owners) == 1
    owner = owners[0]
    # Each counts the gateways alive (a shared advisory lock each): what DynamoDB's capacity is divided by.
    until(lambda: all(g.admin("/_strata/clock")["gateways"] == 2 for g in gateways), "both count two")
    other = b if owner is a else a
    s3 = other.client("s3")
    bucket = f"gw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [{"ID": "one-day", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]
        },
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)

    other.admin("/_strata/clock", {"advance": "1d"})  # both alive: the owner runs the rules
    owner.kill()  # kill -9: PostgreSQL ends its session, and so releases the scheduler's lock
    until(lambda: other.admin("/_strata/clock")["scheduler_owner"], "the survivor takes the scheduler over")
    until(lambda: other.admin("/_strata/clock")["gateways"] == 1, "the survivor counts itself alone")
    advanced = other.admin("/_strata/clock", {"advance": "2d"})
    versions = s3.list_object_versions(Bucket=bucket)
    assert [m["IsLatest"] for m in versions.get("DeleteMarkers", [])] == [True]
    assert len(versions["Versions"]) == 1

    # Storage was metered once, from the object's creation to the advance (in a versioned bucket
    # the expired version stays, noncurrent); a second runner of the rule would have metered it
    # again. The meter is shared too: these are every gateway's events.
    metered = sum(
        e["quantity"]
        for e in other.admin("/_strata/meter?service=s3")["events"]
        if e["event"].startswith("TimedStorage-") and e["dims"].get("bucket") == bucket
    )
    created = versions["Versions"][0]["LastModified"].timestamp()
    advanced_to = datetime.fromisoformat(advanced["now"]).timestamp()
    assert metered == pytest.approx(1000 * (advanced_to - created) / 3600, abs=1000 * 2 / 3600)

    owner.start()  # back, it follows: the survivor keeps the scheduler
    until(lambda: other.admin("/_strata/clock")["gateways"] == 2, "the survivor counts the one back")
    assert owner.admin("/_strata/clock")["scheduler_owner"] is False
    assert owner.admin("/_strata/clock")["offset_seconds"] == other.admin("/_strata/clock")["offset_seconds"]


def test_a_taker_of_the_lock_waits_for_a_silent_host_and_leaves_a_live_one_its_engines(
    gateways: list[StrataProcess], metadata_url: str
) -> None:
    """What a gateway that took `strata:engines` makes of the last host (engine_lock's timing
    argument): alive and holding its takeover -> leave it the engines; its URL refused (the process
    is gone) or answering "not mine" -> the usual grace; silent (a lost machine, which may run them
    until its KEEP is out) -> wait until it must have fenced, by the heartbeat's age."""
    until(lambda: any(g.health()["engine_host"]["self"] for g in gateways), "a gateway is the engine host")
    with psycopg.connect(metadata_url, autocommit=True) as c:
        holder, url, age = c.execute(
            "SELECT holder, url, extract(epoch FROM now() - at)::float8 FROM engine_host.beat"
        ).fetchone()  # type: ignore[misc]
    assert engine_host.takeover_grace(Beat(holder, url, age, False), "me") is None
    assert (
        engine_host.takeover_grace(Beat("an-older-one", url, age, False), "me") == engine_host.TAKEOVER_GRACE
    )
    refused = f"http://127.0.0.1:{free_port()}"
    assert engine_host.takeover_grace(Beat(holder, refused, age, False), "me") == engine_host.TAKEOVER_GRACE
    with socket.socket() as silent:  # accepts (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        quiet = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert engine_host.takeover_grace(Beat(holder, quiet, 5.0, False), "me") == KEEP + MARGIN - 5.0
        assert (
            engine_host.takeover_grace(Beat(holder, quiet, 60.0, False), "me") == engine_host.TAKEOVER_GRACE
        )
    # a host that stopped cleanly, or this gateway's own earlier try: nothing to ask
    assert engine_host.takeover_grace(Beat(holder, quiet, 1.0, True), "me") == engine_host.TAKEOVER_GRACE
    assert engine_host.takeover_grace(Beat("me", quiet, 1.0, False), "me") == engine_host.TAKEOVER_GRACE


def test_engines_run_on_one_host_and_another_gateway_takes_them_over_when_it_is_killed(
    gateways: list[StrataProcess], metadata_url: str, pg_node: PgNode
) -> None:
    hosts = until(
        lambda: [g for g in gateways if g.health()["engine_host"]["self"]] or None,
        "a gateway is the engine host",
    )
    assert len(hosts) == 1
    host = hosts[0]
    other = gateways[1] if host is gateways[0] else gateways[0]
    # the other learns the host's URL (advertised once its engines are up) within a lock try's time
    until(
        lambda: other.health()["engine_host"] == {"self": False, "url": host.endpoint, "setting": "any"},
        "B knows the host",
    )
    assert other.health()["services"]["elasticache"] == "on the engine host"

    # Made through the gateway that is not the host: forwarded (signature and all), run by the host.
    ec = other.client("elasticache")
    cid = f"gw-{uuid.uuid4().hex[:8]}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    rds = other.client("rds")
    create_pg(rds, cid, wait=False)

    def described(gateway: StrataProcess) -> dict:
        return gateway.client("elasticache").describe_cache_clusters(
            CacheClusterId=cid, ShowCacheNodeInfo=True
        )["CacheClusters"][0]

    cluster = until(
        lambda: (c := described(other))["CacheClusterStatus"] == "available" and c, "available", 60
    )
    assert described(host) == cluster  # one cluster, whichever gateway answers
    endpoint = cluster["CacheNodes"][0]["Endpoint"]
    client = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    client.set("kept", "through the failover")
    # the AOF is Strata's own durability: the cache's parameters show `appendonly` as AWS does
    group = cluster["CacheParameterGroup"]["CacheParameterGroupName"]
    pages = ec.get_paginator("describe_cache_parameters").paginate(CacheParameterGroupName=group)
    shown = {p["ParameterName"]: p["ParameterValue"] for page in pages for p in page["Parameters"]}
    assert (shown["appendonly"], client.info("persistence")["aof_enabled"]) == ("no", 1)
    instance = wait_status(rds, cid)
    assert (
        host.client("rds").describe_db_instances(DBInstanceIdentifier=cid)["DBInstances"][0]["Endpoint"]
        == (instance["Endpoint"])
    )
    with pg_connect(instance) as db:
        db.execute("CREATE TABLE kept AS SELECT 'through the failover' AS v")
    with pytest.raises(ClientError) as missing:  # errors come back as the host rendered them
        ec.describe_cache_clusters(CacheClusterId="gw-none")
    assert error_code(missing) == "CacheClusterNotFound"
    the_host_judges_a_forwarded_request_by_its_client(other, cid)
    ebs_blocks_stream_both_ways_through_the_forwarding_gateway(other)
    # DynamoDB is served by every gateway, but its replica auto scaling is the host's Application
    # Auto Scaling: forwarded too.
    ddb = other.client("dynamodb")
    ddb.create_table(
        TableName=cid,
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    scaling = ddb.describe_table_replica_auto_scaling(TableName=cid)["TableAutoScalingDescription"]
    assert scaling["TableName"] == cid

    # The host's machine is lost: the gateway and its engines die at once, with no save and no
    # clean shutdown. (Killing the gateway alone is not that: its engines get SIGTERM as it dies,
    # PR_SET_PDEATHSIG, and Redis saves its RDB on SIGTERM.) Frozen first, so it neither restarts
    # the engine nor sends it that SIGTERM; the writes just before are in the AOF (fsynced every
    # second), as a replica promoted on AWS would have all but the last moments' writes.
    client.mset({f"late-{i}": str(i) for i in range(100)})
    time.sleep(1.5)  # appendfsync everysec
    assert host.proc is not None
    host.proc.send_signal(signal.SIGSTOP)
    os.kill(int(client.info("server")["process_id"]), signal.SIGKILL)
    host.kill()  # kill -9: its lock goes with its PostgreSQL session
    until(lambda: other.health()["engine_host"]["self"], "the survivor becomes the engine host")
    assert described(other)["CacheClusterStatus"] == "available"
    assert described(other)["CacheNodes"][0]["Endpoint"] == endpoint  # the same endpoint, routed again
    back = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    assert (
        until(lambda: answers(back, "kept"), "the engine answers on its endpoint", 60)
        == "through the failover"
    )
    assert back.mget([f"late-{i}" for i in range(100)]) == [str(i) for i in range(100)]
    a_snapshot_restores_beside_the_aof(other, cid)

    host.start()  # back, it forwards: the survivor keeps the engines
    assert host.health()["engine_host"] == {"self": False, "url": other.endpoint, "setting": "any"}
    assert described(host)["CacheClusterStatus"] == "available"

    # PostgreSQL restarted under both: the host keeps its engines (the same Redis process, its
    # data) and stays the host; the forwarder forwards to it again.
    engine_pid = int(back.info("server")["process_id"])
    pg_node.stop()
    pg_node.start()
    until(lambda: "kept the engines across a PostgreSQL reconnect" in other.log_path.read_text(), "kept", 30)
    assert other.proc is not None and other.proc.poll() is None
    assert int(back.info("server")["process_id"]) == engine_pid and back.get("kept") == "through the failover"
    assert described(host)["CacheClusterStatus"] == "available"
    assert other.health()["engine_host"]["self"] and not host.health()["engine_host"]["self"]

    # Its lock session ended under it (pg_terminate_backend): the host takes the lock back if no
    # one named itself in the lock's row meanwhile, or fences and the other takes over; never both.
    kept = other.log_path.read_text().count("kept the engines across")
    with psycopg.connect(metadata_url, autocommit=True) as c:
        c.execute(TERMINATE_HOST)
    until(
        lambda: (
            other.log_path.read_text().count("kept the engines across") > kept
            or other.proc.poll() is not None
        ),
        "the host keeps its engines or fences",
        30,
    )
    if other.proc.poll() is not None:  # it fenced: the other took them over
        assert other.proc.returncode == EXIT_FENCED
        until(lambda: host.health()["engine_host"]["self"], "the other gateway takes them over")
        host, other = other, host  # `other` hosts the engines from here on
        host.start()  # the fenced one, back: it forwards
        assert not host.health()["engine_host"]["self"]
    else:
        assert int(back.info("server")["process_id"]) == engine_pid
        assert not host.health()["engine_host"]["self"]

    # Fencing: a gateway named itself in the lock's row while the host's session was gone (as one
    # that took the lock while PostgreSQL lost sight of the host's machine would): the host kills
    # its engines and exits, and the restarted gateway takes them over.
    engine_pid = int(until(lambda: redis_info(endpoint), "the engine answers", 60)["process_id"])
    with psycopg.connect(metadata_url, autocommit=True) as c:
        c.execute("UPDATE engine_host.beat SET holder = 'another', url = %s", (other.endpoint,))
        c.execute(TERMINATE_HOST)
    assert other.proc is not None and other.proc.wait(timeout=30) == EXIT_FENCED
    assert "another gateway took the engines over" in other.log_tail()
    assert not psutil.pid_exists(engine_pid) or psutil.Process(engine_pid).status() == psutil.STATUS_ZOMBIE
    until(lambda: host.health()["engine_host"]["self"], "the restarted gateway becomes the engine host")
    again = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    assert until(lambda: answers(again, "kept"), "the engine answers again", 60) == "through the failover"
    other.start()
    described(other)  # forwarded again
    host.client("elasticache").delete_cache_cluster(CacheClusterId=cid)
    host.client("rds").delete_db_instance(DBInstanceIdentifier=cid, SkipFinalSnapshot=True)
