"""Memcached Auto Discovery: the configuration endpoint answers `config get cluster` (and the legacy
`get AmazonElastiCache:cluster`) with the version and node list, and still serves ordinary traffic."""

from __future__ import annotations

import ssl

from pymemcache.client.base import Client as MemcacheClient
from pymemcache.client.hash import HashClient

from tests.services.elasticache.conftest import discover, memcached_exchange, node_endpoints


def test_configuration_endpoint_auto_discovery(ec, cleanup, unique):
    cid = f"mcd-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=3)
    cleanup.append(("cluster", cid))
    cluster = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    conf = (cluster["ConfigurationEndpoint"]["Address"], cluster["ConfigurationEndpoint"]["Port"])
    nodes = [(e["Address"], e["Port"]) for e in node_endpoints(ec, cid)]

    version, listed = discover(conf)
    assert (version, listed) == (1, nodes)
    # a client configured from discovery spreads keys over the listed nodes, reached directly
    client = HashClient(listed)
    for i in range(60):
        client.set(f"d{i}", str(i), noreply=False)
    assert all(client.get(f"d{i}") == str(i).encode() for i in range(60))
    assert all(int(MemcacheClient(n).stats()[b"curr_items"]) > 0 for n in listed)

    # ordinary traffic on the configuration endpoint, as before
    plain = MemcacheClient(conf)
    plain.set("via-config", "yes")
    assert plain.get("via-config") == b"yes"
    assert plain.get_many(["via-config", "missing"]) == {"via-config": b"yes"}

    # pipelined: replies stay in order, and a value that reads "MN" is data, not a marker
    data = memcached_exchange(
        conf, b"set mn-value 0 0 2\r\nMN\r\nconfig get cluster\r\nget mn-value\r\nmn\r\n", 5
    )  # 5 terminal lines: STORED, END, the value's own "MN" line, END, MN
    stored, rest = data.split(b"\r\n", 1)
    assert stored == b"STORED" and rest.startswith(b"CONFIG cluster 0 ")
    assert rest.endswith(b"END\r\nVALUE mn-value 0 2\r\nMN\r\nEND\r\nMN\r\n")
    # the pre-1.4.14 form
    legacy = memcached_exchange(conf, b"get AmazonElastiCache:cluster\r\n", 1)
    assert legacy.startswith(b"VALUE AmazonElastiCache:cluster 0 ") and b"1\n127.0." in legacy

    # the version grows as nodes come and go; the endpoint follows the first node
    ec.modify_cache_cluster(CacheClusterId=cid, NumCacheNodes=4, ApplyImmediately=True)
    version, listed = discover(conf)
    assert version == 2 and listed == [(e["Address"], e["Port"]) for e in node_endpoints(ec, cid)]
    assert len(listed) == 4
    ec.modify_cache_cluster(
        CacheClusterId=cid, NumCacheNodes=3, CacheNodeIdsToRemove=["0001"], ApplyImmediately=True
    )
    version, listed = discover(conf)
    assert version == 3 and listed == [(e["Address"], e["Port"]) for e in node_endpoints(ec, cid)]
    assert nodes[0] not in listed
    assert MemcacheClient(conf).set("after-removal", "1", noreply=False)
    assert MemcacheClient(listed[0]).get("after-removal") == b"1"


def test_auto_discovery_over_tls(ec, cleanup, unique, ca_file):
    cid = f"mct-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="memcached", NumCacheNodes=2, TransitEncryptionEnabled=True
    )
    cleanup.append(("cluster", cid))
    cluster = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    conf = (cluster["ConfigurationEndpoint"]["Address"], cluster["ConfigurationEndpoint"]["Port"])
    tls = ssl.create_default_context(cafile=ca_file)
    version, listed = discover(conf, tls)
    assert version == 1 and listed == [(e["Address"], e["Port"]) for e in node_endpoints(ec, cid)]
    client = MemcacheClient(conf, tls_context=tls)
    client.set("secure", "yes")
    assert client.get("secure") == b"yes"
    assert MemcacheClient(listed[0], tls_context=tls).get("secure") == b"yes"
