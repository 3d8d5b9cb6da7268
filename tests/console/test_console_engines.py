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
    ec.create_replication_group(
        ReplicationGroupId=group,
        ReplicationGroupDescription="console",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    try:
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
        console = PlainConsole(strata_server.port)
        console.sign_in()
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
    rds.create_db_instance(
        DBInstanceIdentifier=name,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="owner",
        MasterUserPassword="secret-password-1",
        AllocatedStorage=20,
        DBName="shop",
    )
    try:
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
        console = PlainConsole(strata_server.port)
        console.sign_in()
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


def test_ebs_volumes_and_efs_file_systems_are_listed(strata_server, unique) -> None:
    volume = strata_server.client("ec2").create_volume(
        AvailabilityZone="us-east-1a", Size=3, VolumeType="gp3"
    )
    fs = strata_server.client("efs").create_file_system(
        CreationToken=f"c-{unique}", Tags=[{"Key": "Name", "Value": f"<i>{unique}</i>"}]
    )
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, _, _, page = console.request("GET", ROOT + "/ebs")
    assert status == 200 and volume["VolumeId"] in page
    status, _, _, page = console.request("GET", ROOT + "/efs")
    assert status == 200 and fs["FileSystemId"] in page
    assert f"&lt;i&gt;{unique}&lt;/i&gt;" in page
