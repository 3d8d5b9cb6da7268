"""The console's RDS, ElastiCache, EBS and EFS pages (plain HTTP: they are server-rendered lists and
forms): endpoints and connection strings, snapshot creation, test failover, the Redis key browser
(SCAN with a pattern; keys holding markup shown as text; only endpoints a Describe call names)."""

from __future__ import annotations

import re
import time
from html import unescape

import redis

from tests.console.plain_client import ROOT, PlainConsole


def _wait(check, what: str, timeout: float = 180) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout}s")


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_redis_key_browser_and_test_failover(strata_server, unique) -> None:
    ec = strata_server.client("elasticache")
    group = f"rg-{unique}"
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, headers, _, _ = console.post_form(  # made with the console's create form
        "/elasticache/create",
        {
            "csrf": console.csrf,
            "group": group,
            "engine": "redis",
            "node_type": "cache.t3.micro",
            "cluster_mode": "disabled",
            "replicas": "1",
            "failover": "1",
        },
    )
    assert status == 303
    try:
        _, _, _, page = console.request("GET", headers["location"])
        assert f"Creating replication group {group}." in page
        described = _wait(
            lambda: next(
                (
                    g
                    for g in ec.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"]
                    if g["Status"] == "available"
                ),
                None,
            ),
            "the replication group",
        )
        primary = described["NodeGroups"][0]["PrimaryEndpoint"]
        r = redis.Redis(host=primary["Address"], port=primary["Port"], socket_timeout=10)
        for i in range(150):
            r.set(f"user:{i:03d}", f"name {i}")
        r.set("other", "x")
        r.set('user:<script>alert("k")</script>', "<b>bold</b>", ex=3600)
        assert len(described["MemberClusters"]) == 2 and described["AutomaticFailover"] == "enabled"
        status, _, _, page = console.request("GET", ROOT + "/health")
        engines = page.split('id="engines"', 1)[1]
        assert re.search(r"<td>\d+</td><td>running</td><td>[^<]*" + group, engines), engines[:2000]
        status, _, _, page = console.request("GET", ROOT + "/elasticache")
        assert status == 200
        assert f"{primary['Address']}:{primary['Port']}" in page and "primary" in page and "replica" in page
        # every page of SCAN user:* holds only matching keys; together all of them, "other" never
        seen: list[str] = []
        path = f"{ROOT}/elasticache/keys?group={group}&pattern=user%3A%2A"
        for _ in range(100):
            status, _, _, page = console.request("GET", path)
            assert status == 200, page
            seen += [unescape(k) for k in re.findall(r"<tr><td>([^<]*)</td><td>string</td>", page)]
            found = re.search(r'href="([^"]+)" rel="next"', page)
            if not found:
                break
            path = unescape(found.group(1))
        assert sorted(set(seen)) == sorted(
            [f"user:{i:03d}" for i in range(150)] + ['user:<script>alert("k")</script>']
        )
        status, _, _, page = console.request(
            "GET", f"{ROOT}/elasticache/keys?group={group}&pattern=user%3A%3C%2A"
        )
        assert (
            "user:&lt;script&gt;alert(&#34;k&#34;)&lt;/script&gt;" in page
            and "&lt;b&gt;bold&lt;/b&gt;" in page
        )
        assert "<script>alert" not in page and "<b>bold" not in page
        # a cache the identity cannot describe is not browsed (and no address is taken from the URL)
        status, _, _, page = console.request("GET", f"{ROOT}/elasticache/keys?group=no-such-{unique}")
        assert status == 404 and "ReplicationGroupNotFoundFault" in page
        status, headers, _, _ = console.post_form(
            "/elasticache/failover", {"csrf": console.csrf, "group": group, "node_group": "0001"}
        )
        assert status == 303
        _, _, _, page = console.request("GET", headers["location"])
        assert f"Failing over node group 0001 of {group}" in page
    finally:
        ec.delete_replication_group(ReplicationGroupId=group)


def test_rds_connection_strings_snapshot_reboot_and_point_in_time_restore(strata_server, unique) -> None:
    rds = strata_server.client("rds")
    name = f"db-{unique}"
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, headers, _, _ = console.post_form(  # made with the console's create form
        "/rds/create",
        {
            "csrf": console.csrf,
            "instance": name,
            "engine": "postgres",
            "class": "db.t3.micro",
            "storage": "21",
            "user": "owner",
            "password": "secret-password-1",
            "database": "shop",
            "retention": "3",
        },
    )
    assert status == 303
    try:
        _, _, _, page = console.request("GET", headers["location"])
        assert f"Creating DB instance {name}." in page
        instance = _wait(
            lambda: next(
                (
                    d
                    for d in rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
                    if d["DBInstanceStatus"] == "available"
                ),
                None,
            ),
            "the DB instance",
        )
        endpoint = instance["Endpoint"]
        assert (instance["AllocatedStorage"], instance["BackupRetentionPeriod"]) == (21, 3)
        status, _, _, page = console.request("GET", ROOT + "/rds")
        assert status == 200
        conn = f"postgresql://owner@{endpoint['Address']}:{endpoint['Port']}/shop"
        assert f'data-copy="{conn}"' in page
        status, _, _, _ = console.post_form(
            "/rds/snapshot", {"csrf": console.csrf, "instance": name, "snapshot": f"snap-{unique}"}
        )
        assert status == 303
        snapshots = rds.describe_db_snapshots(DBSnapshotIdentifier=f"snap-{unique}")["DBSnapshots"]
        assert snapshots[0]["DBInstanceIdentifier"] == name
        _, _, _, page = console.request("GET", ROOT + "/rds")
        assert f"snap-{unique}" in _text(page)
        status, _, _, _ = console.post_form("/rds/reboot", {"csrf": console.csrf, "instance": name})
        assert status == 303
        _wait(
            lambda: (
                rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]
                == "available"
            ),
            "the reboot",
        )
        status, headers, _, _ = console.post_form(
            "/rds/restore", {"csrf": console.csrf, "instance": name, "target": f"{name}-pitr"}
        )
        assert status == 303
        _, _, _, page = console.request("GET", headers["location"])
        assert f"Restoring {name} to its latest restorable time as {name}-pitr" in _text(page)
        restored = rds.describe_db_instances(DBInstanceIdentifier=f"{name}-pitr")["DBInstances"][0]
        assert restored["Engine"] == "postgres"
        _wait(
            lambda: (
                rds.describe_db_instances(DBInstanceIdentifier=f"{name}-pitr")["DBInstances"][0][
                    "DBInstanceStatus"
                ]
                == "available"
            ),
            "the restore",
        )
    finally:
        for instance in (name, f"{name}-pitr"):
            try:
                rds.delete_db_instance(DBInstanceIdentifier=instance, SkipFinalSnapshot=True)
            except rds.exceptions.DBInstanceNotFoundFault:
                pass


def _flash(console: PlainConsole, location: str) -> str:
    _, _, _, page = console.request("GET", location)
    return unescape(" ".join(re.findall(r'<p class="flash [^"]*"[^>]*>([^<]*)</p>', page)))


def test_ebs_volumes_and_efs_file_systems_are_created_and_listed(strata_server, unique) -> None:
    ec2, efs = strata_server.client("ec2"), strata_server.client("efs")
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, _, _, page = console.request("GET", ROOT + "/ebs")
    assert status == 200 and "<option>us-east-1b</option>" in page  # zones from DescribeAvailabilityZones
    status, headers, _, _ = console.post_form(
        "/ebs/create",
        {
            "csrf": console.csrf,
            "name": f"<i>{unique}</i>",
            "zone": "us-east-1b",
            "type": "gp3",
            "size": "10",
            "iops": "4000",
            "encrypted": "1",
        },
    )
    assert status == 303
    flash = _flash(console, headers["location"])
    volume = ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": [f"<i>{unique}</i>"]}])["Volumes"][
        0
    ]
    assert f"Creating volume {volume['VolumeId']} (10 GiB gp3)" in flash
    assert (volume["AvailabilityZone"], volume["Size"], volume["Iops"], volume["Encrypted"]) == (
        "us-east-1b",
        10,
        4000,
        True,
    )
    status, headers, _, _ = console.post_form(  # EC2's refusal is shown
        "/ebs/create", {"csrf": console.csrf, "zone": "us-east-1a", "type": "io2", "size": "1"}
    )
    assert "InvalidParameterValue" in _flash(console, headers["location"])
    status, _, _, page = console.request("GET", ROOT + "/ebs")
    assert status == 200 and volume["VolumeId"] in page
    _, _, _, page = console.request("GET", ROOT + "/efs")
    form = {
        "csrf": console.csrf,
        "token": re.search(r'name="token" value="([^"]+)"', page).group(1),  # one per form shown
        "name": f"<i>{unique}</i>",
        "performance": "generalPurpose",
        "throughput_mode": "provisioned",
        "provisioned": "10",
        "encrypted": "1",
    }
    status, headers, _, _ = console.post_form("/efs/create", form)
    assert status == 303
    flash = _flash(console, headers["location"])
    named = [
        f
        for answer in efs.get_paginator("describe_file_systems").paginate()
        for f in answer["FileSystems"]
        if f.get("Name") == f"<i>{unique}</i>"
    ]
    assert len(named) == 1
    fs = named[0]
    assert f"Creating file system {fs['FileSystemId']} (<i>{unique}</i>)." in flash
    assert (fs["ThroughputMode"], fs["ProvisionedThroughputInMibps"], fs["Encrypted"]) == (
        "provisioned",
        10,
        True,
    )
    # the same form sent again makes no second file system: EFS's answer is shown
    status, headers, _, _ = console.post_form("/efs/create", form)
    assert "FileSystemAlreadyExists" in _flash(console, headers["location"])
    assert len(efs.describe_file_systems(CreationToken=form["token"])["FileSystems"]) == 1
    form.update(token=f"other-{unique}", performance="maxIO", throughput_mode="elastic", provisioned="")
    status, headers, _, _ = console.post_form("/efs/create", form)
    assert "maxIO is not supported with throughput mode elastic" in _flash(console, headers["location"])
    status, _, _, page = console.request("GET", ROOT + "/efs")
    assert status == 200 and fs["FileSystemId"] in page
    assert f"&lt;i&gt;{unique}&lt;/i&gt;" in page and f"<i>{unique}" not in page


def test_an_aurora_cluster_is_created_with_its_writer(strata_server, unique) -> None:
    rds = strata_server.client("rds")
    name = f"aur-{unique}"
    console = PlainConsole(strata_server.port)
    console.sign_in()
    _, _, _, page = console.request("GET", ROOT + "/rds")
    assert "<option>aurora-postgresql</option>" in page and "<option>postgres</option>" in page
    status, headers, _, _ = console.post_form(
        "/rds/create-cluster",
        {
            "csrf": console.csrf,
            "cluster": name,
            "engine": "aurora-postgresql",
            "class": "db.t3.medium",
            "readers": "0",
            "user": "owner",
            "password": "secret-password-1",
            "database": "shop",
        },
    )
    assert status == 303
    try:
        assert f"Creating Aurora cluster {name} with {name}-instance-1." in _flash(
            console, headers["location"]
        )
        cluster = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
        assert (cluster["Engine"], cluster["DatabaseName"], cluster["MasterUsername"]) == (
            "aurora-postgresql",
            "shop",
            "owner",
        )
        assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in cluster["DBClusterMembers"]] == [
            (f"{name}-instance-1", True)
        ]
        _wait(
            lambda: (
                rds.describe_db_instances(DBInstanceIdentifier=f"{name}-instance-1")["DBInstances"][0][
                    "DBInstanceStatus"
                ]
                == "available"
            ),
            "the writer",
        )
        _, _, _, page = console.request("GET", ROOT + "/rds")
        assert f"{name}-instance-1 (writer)" in _text(page)
        # a second cluster of the same name: RDS's refusal is shown
        status, headers, _, _ = console.post_form(
            "/rds/create-cluster",
            {
                "csrf": console.csrf,
                "cluster": name,
                "engine": "aurora-postgresql",
                "class": "db.t3.medium",
                "user": "owner",
                "password": "secret-password-1",
            },
        )
        assert "DBClusterAlreadyExistsFault" in _flash(console, headers["location"])
    finally:
        try:
            rds.delete_db_instance(DBInstanceIdentifier=f"{name}-instance-1", SkipFinalSnapshot=True)
        except rds.exceptions.DBInstanceNotFoundFault:
            pass
        _wait(  # a cluster is deleted once its instances are gone
            lambda: (
                not rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["DBClusterMembers"]
            ),
            "the writer's deletion",
        )
        rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)
