"""aws:network:disrupt-connectivity: the traffic of the target subnets that a scope names stops.

- `all`: every endpoint served in the subnets' zones stops answering: database and cache
  endpoints and NFS mount targets drop every packet (strata.engines.blackhole), the zone's EBS
  volumes' NBD requests are held (io_pauses). What is served where is read again every REFRESH
  seconds while the action runs, as the zone's DNS names would follow it on AWS: an RDS Multi-AZ
  instance or Aurora cluster that fails over to another zone answers again through its same
  endpoint, while the node left in the cut zone stays cut.
- `availability-zone` (intra-VPC traffic between the subnets' zones and the others denied): Strata's
  clients count as in another zone of the VPC, as for `all`, so the same endpoints stop answering
  them; EBS volumes go on (their I/O is no VPC traffic).
- With `all` and `availability-zone`, replication between the engine nodes in the cut zones and
  those elsewhere stops too, both ways, as a real partition stops it: TCP between the nodes' own
  cgroups is dropped (strata.engines.partition: Redis/Valkey replicas, MariaDB/MySQL standbys and
  replicas), and PostgreSQL standbys and replicas across the cut, which stream over unix sockets,
  have their replay paused (strata.services.rds.zone_cut, which says what a failover does to it).
  A replica in the cut zone then stops seeing its primary's writes, and catches up when the cut
  ends. Who is cut is looked at again every REFRESH seconds, as for the endpoints.
- `prefix-list` (traffic to and from the CIDR blocks of a customer-managed prefix list,
  `prefixListIdentifier`: its name, ID or ARN; at most 10 entries): the endpoints of the
  subnets' zones drop the packets of clients whose address is in one of its IPv4 blocks (a client
  on this machine comes from 127.0.0.1). The entries are read when the action starts.
- `dynamodb`, `s3`: that service's endpoint answers no one (strata.sim.faults.ServiceOutages;
  Strata cannot tell a client's subnet, so every client is cut off).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

from strata.engines.blackhole import Blackhole, Endpoint
from strata.engines.cgroups import engine_cgroups
from strata.engines.partition import Partition
from strata.engines.postgres import PgNode
from strata.services.base import run_blocking
from strata.services.fis.targets import call, internal_context
from strata.services.rds import zone_cut
from strata.sim.faults import io_pauses, service_outages

REFRESH = 0.5  # seconds between looks at which endpoints the cut zones serve
PREFIX_LIST_ENTRIES = 10  # AWS: the prefix list can have at most 10 entries
ZONAL = ("rds", "elasticache", "efs")  # providers whose endpoints live in a zone


class NetworkUnavailable(Exception):
    """The host cannot cut endpoints off (no nftables, or not root), or the action's prefix list
    cannot be used."""


async def prefix_list_blocks(peer: Callable[[str], Any], doc: dict, identifier: str) -> frozenset[str]:
    """The IPv4 blocks of the customer-managed prefix list `identifier` (name, ID or ARN) names."""
    ec2 = peer("ec2")
    ctx = internal_context("ec2", "DescribeManagedPrefixLists", doc["region"], doc["account"], doc["id"])
    lists = (await call(ec2, "describe_managed_prefix_lists", ctx, {}))["PrefixLists"]
    found = [p for p in lists if identifier in (p["PrefixListId"], p["PrefixListArn"], p["PrefixListName"])]
    if len(found) != 1:
        raise NetworkUnavailable(
            f"The prefix list {identifier} was not found."
            if not found
            else f"The prefix list name {identifier} names several prefix lists."
        )
    ctx = internal_context("ec2", "GetManagedPrefixListEntries", doc["region"], doc["account"], doc["id"])
    req = {"PrefixListId": found[0]["PrefixListId"]}
    entries = (await call(ec2, "get_managed_prefix_list_entries", ctx, req))["Entries"]
    if len(entries) > PREFIX_LIST_ENTRIES:
        raise NetworkUnavailable(
            f"The prefix list {identifier} has {len(entries)} entries; at most {PREFIX_LIST_ENTRIES} are allowed."
        )
    blocks = [ipaddress.ip_network(e["Cidr"]) for e in entries]
    v4 = [b for b in blocks if isinstance(b, ipaddress.IPv4Network)]
    return frozenset(str(b) for b in ipaddress.collapse_addresses(v4))


async def subnets_of(peer: Callable[[str], Any], doc: dict, subnet_ids: list[str]) -> list[dict]:
    """The target subnets, the account's own (EC2's InvalidSubnetID.NotFound otherwise)."""
    ctx = internal_context("ec2", "DescribeSubnets", doc["region"], doc["account"], doc["id"])
    return (await call(peer("ec2"), "describe_subnets", ctx, {"SubnetIds": subnet_ids}))["Subnets"]


def zone_endpoints(peer: Callable[[str], Any], doc: dict, zones: list[str]) -> frozenset[Endpoint]:
    """The endpoints the zonal services serve from `zones` right now."""
    out: set[Endpoint] = set()
    for service in ZONAL:
        provider = peer(service)
        for zone in zones if provider is not None else []:
            out |= set(provider.endpoints_in_zone(doc["account"], doc["region"], zone))
    return frozenset(out)


class Replication:
    """The replication a zone cut severs (blocking methods: call off the event loop)."""

    def __init__(self, peer: Callable[[str], Any], partition: Partition, key: str, zones: list[str]) -> None:
        self.peer, self.partition, self.key, self.zones = peer, partition, key, zones
        self.paused: dict[zone_cut.NodeKey, PgNode] = {}

    def refresh(self) -> None:
        """Cut what is to be cut now; what no longer is (failed over, deleted) is let go."""
        rds, cache = self.peer("rds"), self.peer("elasticache")
        cgroups = engine_cgroups()
        if cgroups is not None:
            names = set(zone_cut.cut_cgroups(rds, self.zones)) if rds is not None else set()
            names |= set(cache.cut_cgroups(self.zones)) if cache is not None else set()
            self.partition.cut(self.key, frozenset(cgroups.ref(n) for n in names))
        wanted = zone_cut.cut_standbys(rds, self.zones) if rds is not None else {}
        for k in set(self.paused) - set(wanted):
            self._resume(k)
        for k, node in wanted.items():
            if k not in self.paused:
                try:
                    node.pause_replay()
                    self.paused[k] = node
                except Exception:  # noqa: BLE001 - a node going away meanwhile is not paused
                    pass

    def _resume(self, k: zone_cut.NodeKey) -> None:
        node = self.paused.pop(k)
        try:
            node.resume_replay()
        except Exception:  # noqa: BLE001 - a node gone (dropped after a failover) has nothing to resume
            pass

    def restore(self) -> None:
        self.partition.remove(self.key)
        for k in list(self.paused):
            self._resume(k)


async def cut_zones(
    peer: Callable[[str], Any],
    blackhole: Blackhole,
    doc: dict,
    key: str,
    zones: list[str],
    duration: float,
    stall_volumes: bool = True,
    sources: frozenset[str] | None = None,
    partition: Partition | None = None,
) -> None:
    """Scopes all, availability-zone and prefix-list: the zones' endpoints (and with `stall_volumes`
    their EBS volumes) are cut off for `duration`, from every client or those in `sources`, and
    with `partition` the replication between the zones' engine nodes and the others, then
    restored however the action ends."""
    volumes: dict = {"Volumes": []}
    if stall_volumes:
        ctx = internal_context("ec2", "DescribeVolumes", doc["region"], doc["account"], doc["id"])
        volumes = await call(
            peer("ec2"),
            "describe_volumes",
            ctx,
            {"Filters": [{"Name": "availability-zone", "Values": zones}]},
        )
    endpoints = zone_endpoints(peer, doc, zones)
    usable = await run_blocking(Blackhole.usable)
    if endpoints and not usable:
        raise NetworkUnavailable("Disrupting connectivity needs nftables and root (CAP_NET_ADMIN).")
    loop = asyncio.get_running_loop()
    replication = Replication(peer, partition, key, zones) if partition is not None and usable else None
    try:
        await run_blocking(blackhole.add, key, endpoints, sources)
        io_pauses.pause(key, frozenset(v["VolumeId"] for v in volumes["Volumes"]))
        if replication is not None:
            await run_blocking(replication.refresh)
        deadline = loop.time() + duration
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(REFRESH, left))
            now = zone_endpoints(peer, doc, zones)
            if now != endpoints and usable:  # a failover moved an endpoint in or out of the zones
                endpoints = now
                await run_blocking(blackhole.add, key, endpoints, sources)
            if replication is not None:
                await run_blocking(replication.refresh)
    finally:  # rolled back however the action ends
        io_pauses.resume(key)
        await run_blocking(blackhole.remove, key)
        if replication is not None:
            await run_blocking(replication.restore)


async def cut_service(key: str, service: str, duration: float) -> None:
    """Scope dynamodb or s3: the service's endpoint answers no one for `duration` (requests are
    held, then their connections dropped unanswered)."""
    service_outages.cut(key, frozenset({service}))
    try:
        await asyncio.sleep(duration)
    finally:  # rolled back however the action ends
        service_outages.restore(key)
