"""In-transit encryption (real TLS from the engine, certificates from Strata's CA) and AUTH tokens."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import textwrap

import pytest
import redis
from botocore.exceptions import ClientError
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from tests.services.elasticache.conftest import group
from tests.services.elasticache.test_cache_clusters import run_caching_lab

TOKEN = "correct-horse-battery-staple-42"

# The seed's connection code, unchanged but for host and port; the CA comes from SSL_CERT_FILE.
SEED = textwrap.dedent("""
    import json, sys
    from datetime import timedelta
    import redis
    redis_client = redis.Redis(
        host=sys.argv[1],
        port=int(sys.argv[2]),
        ssl=True,
        decode_responses=True
    )
    redis_client.setex("user:1", timedelta(hours=1), json.dumps({"name": "Ada"}))
    print(json.loads(redis_client.get("user:1"))["name"], redis_client.ttl("user:1") > 3500)
""")


def test_seed_connection_code_over_tls(strata_server, ec, cleanup, unique, ca_file):
    gid = f"tls-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="tls",
        Engine="redis",
        NumCacheClusters=2,
        TransitEncryptionEnabled=True,
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    assert g["TransitEncryptionEnabled"] is True and g["AtRestEncryptionEnabled"] is False
    assert g["TransitEncryptionMode"] == "required"
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]
    env = {**os.environ, "SSL_CERT_FILE": ca_file}
    out = subprocess.run(
        [sys.executable, "-c", SEED, ep["Address"], str(ep["Port"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Ada", "True"]

    # the certificate is verified (host name included) against Strata's CA
    client = redis.Redis(ep["Address"], ep["Port"], ssl=True, ssl_ca_certs=ca_file, decode_responses=True)
    run_caching_lab(client)
    assert client.connection_pool.get_connection().__class__.__name__ == "SSLConnection"
    # replication runs over TLS too
    assert client.wait(1, 10000) == 1
    # a client that does not trust the CA is refused, and so is plaintext
    untrusting = redis.Redis(
        ep["Address"], ep["Port"], ssl=True, ssl_ca_certs=ssl.get_default_verify_paths().cafile
    )
    with pytest.raises(redis.ConnectionError):
        untrusting.ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(ep["Address"], ep["Port"], socket_timeout=3).ping()


def test_auth_token_is_the_servers_password(ec, cleanup, unique, ca_file):
    gid = f"auth-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="auth",
        Engine="redis",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        TransitEncryptionEnabled=True,
        AuthToken=TOKEN,
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    assert g["AuthTokenEnabled"] is True and "AuthTokenLastModifiedDate" in g
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]
    tls = {"ssl": True, "ssl_ca_certs": ca_file, "decode_responses": True}
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(ep["Address"], ep["Port"], **tls).set("k", "v")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(ep["Address"], ep["Port"], password="wrong-password-123456", **tls).ping()
    client = redis.Redis(ep["Address"], ep["Port"], password=TOKEN, **tls)
    client.set("k", "v")
    assert client.wait(1, 10000) == 1  # replicas authenticate to the primary with the token (masterauth)

    # failover keeps TLS, the token and the endpoint
    ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")
    after = redis.Redis(ep["Address"], ep["Port"], password=TOKEN, **tls)
    assert after.role()[0] == "master"
    assert after.get("k") == "v"

    # rotate: old and new token both work; then set: only the new one
    new_token = "second-token-0123456789"
    ec.modify_replication_group(
        ReplicationGroupId=gid, AuthToken=new_token, AuthTokenUpdateStrategy="ROTATE", ApplyImmediately=True
    )
    assert redis.Redis(ep["Address"], ep["Port"], password=TOKEN, **tls).ping()
    assert redis.Redis(ep["Address"], ep["Port"], password=new_token, **tls).ping()
    ec.modify_replication_group(
        ReplicationGroupId=gid, AuthToken=new_token, AuthTokenUpdateStrategy="SET", ApplyImmediately=True
    )
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(ep["Address"], ep["Port"], password=TOKEN, **tls).ping()
    assert redis.Redis(ep["Address"], ep["Port"], password=new_token, **tls).get("k") == "v"


def test_tls_single_node_valkey_cluster(ec, cleanup, unique, ca_file):
    cid = f"vtls-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="valkey", NumCacheNodes=1, TransitEncryptionEnabled=True, AuthToken=TOKEN
    )
    cleanup.append(("cluster", cid))
    c = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert c["TransitEncryptionEnabled"] is True and c["AuthTokenEnabled"] is True
    ep = c["CacheNodes"][0]["Endpoint"]
    server_info = redis.Redis(ep["Address"], ep["Port"], ssl=True, ssl_ca_certs=ca_file, password=TOKEN).info(
        "server"
    )
    assert c["EngineVersion"] == server_info.get("valkey_version", server_info["redis_version"])
    client = redis.Redis(
        ep["Address"], ep["Port"], ssl=True, ssl_ca_certs=ca_file, password=TOKEN, decode_responses=True
    )
    assert client.set("a", "b") and client.get("a") == "b"


def test_memcached_with_transit_encryption(ec, cleanup, unique, ca_file):
    cid = f"mtls-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="memcached", NumCacheNodes=2, TransitEncryptionEnabled=True
    )
    cleanup.append(("cluster", cid))
    c = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert c["TransitEncryptionEnabled"] is True
    context = ssl.create_default_context(cafile=ca_file)
    nodes = [(n["Endpoint"]["Address"], n["Endpoint"]["Port"]) for n in c["CacheNodes"]]
    client = HashClient(nodes, tls_context=context)
    for i in range(20):
        client.set(f"k{i}", "v")
    assert all(client.get(f"k{i}") == b"v" for i in range(20))
    conf = c["ConfigurationEndpoint"]
    assert MemcacheClient((conf["Address"], conf["Port"]), tls_context=context).get("k1") in (b"v", None)
    with pytest.raises((MemcacheUnexpectedCloseError, OSError)):  # plaintext is refused
        MemcacheClient(nodes[0], connect_timeout=3, timeout=3).set("x", "y", noreply=False)


def test_auth_token_is_refused_for_memcached(ec, unique):
    with pytest.raises(ClientError) as e:
        ec.create_cache_cluster(
            CacheClusterId=f"mauth-{unique}",
            Engine="memcached",
            NumCacheNodes=1,
            TransitEncryptionEnabled=True,
            AuthToken=TOKEN,
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
