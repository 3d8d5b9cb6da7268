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


def _instance_available(rds, name: str, what: str) -> dict:
    """The DB instance once RDS says it is available (polled, up to _wait's bound)."""
    return _wait(
        lambda: next(
            (
                d
                for d in rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
                if d["DBInstanceStatus"] == "available"
            ),
            None,
        ),
        what,
    )


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _signed_in(server) -> PlainConsole:
    console = PlainConsole(server.port)
    assert console.sign_in() == 303
    return console


def _flash(console: PlainConsole, location: str) -> str:
    """The messages the page at `location` shows (what the last action said)."""
    _, _, _, page = console.request("GET", location)
    return unescape(" ".join(re.findall(r'<p class="flash [^"]*"[^>]*>([^<]*)</p>', page)))


def _post(console: PlainConsole, path: str, fields: dict[str, str]) -> str:
    """Send a console form with the session's CSRF token; what the page it leads to says."""
    status, headers, _, text = console.post_form(path, {"csrf": console.csrf, **fields})
    assert status == 303, text
    return _flash(console, headers["location"])


def test_redis_key_browser_and_test_failover(strata_server, unique) -> None:
    ec = strata_server.client("elasticache")
    group = f"rg-{unique}"
    console = _signed_in(strata_server)
    said = _post(  # made with the console's create form
        console,
        "/elasticache/create",
        {
            "group": group,
            "engine": "redis",
            "node_type": "cache.t3.micro",
            "cluster_mode": "disabled",
            "replicas": "1",
            "failover": "1",
        },
    )
    try:
        assert f"Creating replication group {group}." in said
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
        assert f"Failing over node group 0001 of {group}" in _post(
            console, "/elasticache/failover", {"group": group, "node_group": "0001"}
        )
    finally:
        ec.delete_replication_group(ReplicationGroupId=group)


def test_rds_connection_strings_snapshot_reboot_and_point_in_time_restore(strata_server, unique) -> None:
    rds = strata_server.client("rds")
    name = f"db-{unique}"
    console = _signed_in(strata_server)
    said = _post(  # made with the console's create form
        console,
        "/rds/create",
        {
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
    try:
        assert f"Creating DB instance {name}." in said
        instance = _instance_available(rds, name, "the DB instance")
        endpoint = instance["Endpoint"]
        assert (instance["AllocatedStorage"], instance["BackupRetentionPeriod"]) == (21, 3)
        status, _, _, page = console.request("GET", ROOT + "/rds")
        assert status == 200
        conn = f"postgresql://owner@{endpoint['Address']}:{endpoint['Port']}/shop"
        assert f'data-copy="{conn}"' in page
        assert f"Creating snapshot snap-{unique} of {name}." in _post(
            console, "/rds/snapshot", {"instance": name, "snapshot": f"snap-{unique}"}
        )
        snapshots = rds.describe_db_snapshots(DBSnapshotIdentifier=f"snap-{unique}")["DBSnapshots"]
        assert snapshots[0]["DBInstanceIdentifier"] == name
        _, _, _, page = console.request("GET", ROOT + "/rds")
        assert f"snap-{unique}" in _text(page)
        _post(console, "/rds/reboot", {"instance": name})
        _instance_available(rds, name, "the reboot")
        assert f"Restoring {name} to its latest restorable time as {name}-pitr" in _post(
            console, "/rds/restore", {"instance": name, "target": f"{name}-pitr"}
        )
        restored = rds.describe_db_instances(DBInstanceIdentifier=f"{name}-pitr")["DBInstances"][0]
        assert restored["Engine"] == "postgres"
        _instance_available(rds, f"{name}-pitr", "the restore")
    finally:
        for instance in (name, f"{name}-pitr"):
            try:
                rds.delete_db_instance(DBInstanceIdentifier=instance, SkipFinalSnapshot=True)
            except rds.exceptions.DBInstanceNotFoundFault:
                pass


def test_ebs_volumes_and_efs_file_systems_are_created_and_listed(strata_server, unique) -> None:
    ec2, efs = strata_server.client("ec2"), strata_server.client("efs")
    console = _signed_in(strata_server)
    status, _, _, page = console.request("GET", ROOT + "/ebs")
    assert status == 200 and "<option>us-east-1b</option>" in page  # zones from DescribeAvailabilityZones
    flash = _post(
        console,
        "/ebs/create",
        {
            "name": f"<i>{unique}</i>",
            "zone": "us-east-1b",
            "type": "gp3",
            "size": "10",
            "iops": "4000",
            "encrypted": "1",
        },
    )
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
    refused = _post(console, "/ebs/create", {"zone": "us-east-1a", "type": "io2", "size": "1"})
    assert "InvalidParameterValue" in refused  # EC2's refusal is shown
    status, _, _, page = console.request("GET", ROOT + "/ebs")
    assert status == 200 and volume["VolumeId"] in page
    _, _, _, page = console.request("GET", ROOT + "/efs")
    form = {
        "token": re.search(r'name="token" value="([^"]+)"', page).group(1),  # one per form shown
        "name": f"<i>{unique}</i>",
        "performance": "generalPurpose",
        "throughput_mode": "provisioned",
        "provisioned": "10",
        "encrypted": "1",
    }
    flash = _post(console, "/efs/create", form)
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
    assert "FileSystemAlreadyExists" in _post(console, "/efs/create", form)
    assert len(efs.describe_file_systems(CreationToken=form["token"])["FileSystems"]) == 1
    form.update(token=f"other-{unique}", performance="maxIO", throughput_mode="elastic", provisioned="")
    assert "maxIO is not supported with throughput mode elastic" in _post(console, "/efs/create", form)
    status, _, _, page = console.request("GET", ROOT + "/efs")
    assert status == 200 and fs["FileSystemId"] in page
    assert f"&lt;i&gt;{unique}&lt;/i&gt;" in page and f"<i>{unique}" not in page


def test_an_aurora_cluster_is_created_with_its_writer(strata_server, unique) -> None:
    rds = strata_server.client("rds")
    name = f"aur-{unique}"
    console = _signed_in(strata_server)
    _, _, _, page = console.request("GET", ROOT + "/rds")
    assert "<option>aurora-postgresql</option>" in page and "<option>postgres</option>" in page
    form = {
        "cluster": name,
        "engine": "aurora-postgresql",
        "class": "db.t3.medium",
        "readers": "0",
        "user": "owner",
        "password": "secret-password-1",
        "database": "shop",
    }
    said = _post(console, "/rds/create-cluster", form)
    try:
        assert f"Creating Aurora cluster {name} with {name}-instance-1." in said
        cluster = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
        assert (cluster["Engine"], cluster["DatabaseName"], cluster["MasterUsername"]) == (
            "aurora-postgresql",
            "shop",
            "owner",
        )
        assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in cluster["DBClusterMembers"]] == [
            (f"{name}-instance-1", True)
        ]
        _instance_available(rds, f"{name}-instance-1", "the writer")
        _, _, _, page = console.request("GET", ROOT + "/rds")
        assert f"{name}-instance-1 (writer)" in _text(page)
        # a second cluster of the same name: RDS's refusal is shown
        assert "DBClusterAlreadyExistsFault" in _post(console, "/rds/create-cluster", form)
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
