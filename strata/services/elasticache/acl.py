"""ElastiCache RBAC access strings as Redis ACL rules.

An access string (`on ~app:* +get`) is a list of Redis ACL rules. It is written into the node's
redis.conf as a `user` line, where one bad rule keeps the node from starting: so every rule is
checked here first, against the grammar and the engine's categories and commands, and what AWS
keeps out of access strings (passwords, `reset`, `nopass`: those come from the user's
authentication settings) is refused.
"""

from __future__ import annotations

import hashlib
import re

from strata.engines.redis import RESTRICTED_COMMANDS
from strata.services.elasticache.errors import invalid

CATEGORIES = frozenset(
    "keyspace read write set sortedset list hash string bitmap hyperloglog geo stream pubsub admin "
    "fast slow blocking dangerous connection transaction scripting all".split()
)
# The commands and subcommands of Redis 7.0 (`COMMAND LIST`), less those ElastiCache restricts:
# they are renamed on the node, where a rule naming them would keep it from starting.
COMMANDS = frozenset(
    """
    acl acl|cat acl|deluser acl|dryrun acl|genpass acl|getuser acl|help acl|list acl|load acl|log
    acl|save acl|setuser acl|users acl|whoami append asking auth bgrewriteaof bgsave bitcount
    bitfield bitfield_ro bitop bitpos blmove blmpop blpop brpop brpoplpush bzmpop bzpopmax bzpopmin
    client client|caching client|getname client|getredir client|help client|id client|info
    client|kill client|list client|no-evict client|pause client|reply client|setname client|tracking
    client|trackinginfo client|unblock client|unpause cluster cluster|addslots cluster|addslotsrange
    cluster|bumpepoch cluster|count-failure-reports cluster|countkeysinslot cluster|delslots
    cluster|delslotsrange cluster|failover cluster|flushslots cluster|forget cluster|getkeysinslot
    cluster|help cluster|info cluster|keyslot cluster|links cluster|meet cluster|myid cluster|nodes
    cluster|replicas cluster|replicate cluster|reset cluster|saveconfig cluster|set-config-epoch
    cluster|setslot cluster|shards cluster|slaves cluster|slots command command|count command|docs
    command|getkeys command|getkeysandflags command|help command|info command|list config config|get
    config|help config|resetstat config|rewrite config|set copy dbsize debug decr decrby del discard
    dump echo eval eval_ro evalsha evalsha_ro exec exists expire expireat expiretime failover fcall
    fcall_ro flushall flushdb function function|delete function|dump function|flush function|help
    function|kill function|list function|load function|restore function|stats geoadd geodist geohash
    geopos georadius georadius_ro georadiusbymember georadiusbymember_ro geosearch geosearchstore
    get getbit getdel getex getrange getset hdel hello hexists hget hgetall hincrby hincrbyfloat
    hkeys hlen hmget hmset hrandfield hscan hset hsetnx hstrlen hvals incr incrby incrbyfloat info
    keys lastsave latency latency|doctor latency|graph latency|help latency|histogram
    latency|history latency|latest latency|reset lcs lindex linsert llen lmove lmpop lolwut lpop
    lpos lpush lpushx lrange lrem lset ltrim memory memory|doctor memory|help memory|malloc-stats
    memory|purge memory|stats memory|usage mget migrate module module|help module|list module|load
    module|loadex module|unload monitor move mset msetnx multi object object|encoding object|freq
    object|help object|idletime object|refcount persist pexpire pexpireat pexpiretime pfadd pfcount
    pfdebug pfmerge pfselftest ping psetex psubscribe psync pttl publish pubsub pubsub|channels
    pubsub|help pubsub|numpat pubsub|numsub pubsub|shardchannels pubsub|shardnumsub punsubscribe
    quit randomkey readonly readwrite rename renamenx replconf replicaof reset restore
    restore-asking role rpop rpoplpush rpush rpushx sadd save scan scard script script|debug
    script|exists script|flush script|help script|kill script|load sdiff sdiffstore select set
    setbit setex setnx setrange shutdown sinter sintercard sinterstore sismember slaveof slowlog
    slowlog|get slowlog|help slowlog|len slowlog|reset smembers smismember smove sort sort_ro spop
    spublish srandmember srem sscan ssubscribe strlen subscribe substr sunion sunionstore
    sunsubscribe swapdb sync time touch ttl type unlink unsubscribe unwatch wait watch xack xadd
    xautoclaim xclaim xdel xgroup xgroup|create xgroup|createconsumer xgroup|delconsumer
    xgroup|destroy xgroup|help xgroup|setid xinfo xinfo|consumers xinfo|groups xinfo|help
    xinfo|stream xlen xpending xrange xread xreadgroup xrevrange xsetid xtrim zadd zcard zcount
    zdiff zdiffstore zincrby zinter zintercard zinterstore zlexcount zmpop zmscore zpopmax zpopmin
    zrandmember zrange zrangebylex zrangebyscore zrangestore zrank zrem zremrangebylex
    zremrangebyrank zremrangebyscore zrevrange zrevrangebylex zrevrangebyscore zrevrank zscan zscore
    zunion zunionstore
""".split()
)
# The ACL commands that change users, restricted on ElastiCache: they are taken from every user
# (appended to its rules), so no client can change the users, Strata's own among them.
ACL_CHANGES = ("acl|setuser", "acl|deluser", "acl|load", "acl|save")
COMMANDS = frozenset(
    c for c in COMMANDS if c.split("|")[0].upper() not in RESTRICTED_COMMANDS and c not in ACL_CHANGES
)
_FLAGS = frozenset("on off allkeys allcommands nocommands allchannels resetchannels resetkeys".split())
_PATTERN = re.compile(r"^(?:~|%R~|%W~|%RW~|&)\S+$")
_COMMAND = re.compile(r"^[+-](@?)([a-z][a-z0-9_-]*(?:\|[a-z][a-z0-9_-]*)?)$")


def access_rules(access: str | None) -> list[str]:
    """The rules of an access string, checked (InvalidParameterValue for a bad one)."""
    if access is None or not access.strip():
        raise invalid("The parameter AccessString must be provided and must not be blank.")
    rules = access.split()
    for rule in rules:
        low = rule.lower()
        if low in _FLAGS or _PATTERN.match(rule):
            continue
        m = _COMMAND.match(low)
        if m and (m.group(2) in CATEGORIES if m.group(1) else m.group(2) in COMMANDS):
            continue
        raise invalid(f"Invalid access string: {access}. Unknown or unsupported rule: {rule}")
    return rules


def password_hash(password: str) -> str:
    """What the node's ACL keeps of a password: its SHA-256 (Strata stores no password in clear)."""
    return hashlib.sha256(password.encode()).hexdigest()


def user_line(user: dict) -> str:
    """The `user` line of a user: its name, a reset, its access string and its passwords."""
    secrets = ["nopass"] if user.get("nopass") else [f"#{h}" for h in user.get("hashes", [])]
    denied = [f"-{c}" for c in ACL_CHANGES]
    return " ".join([user["name"], "reset", *user["access"].split(), *denied, *secrets])
