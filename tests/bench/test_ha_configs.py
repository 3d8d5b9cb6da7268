"""What the high-availability proof (bench/ha_proof.py, too heavy for CI) writes for its cluster:
the generated etcd, Patroni, HAProxy, keepalived and gateway configurations are complete and agree
with each other. The proof itself needs root, network namespaces and Patroni/etcd; this needs none of
them (HAProxy's and keepalived's own checks run where those are installed)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ha_configs", ROOT / "bench" / "ha" / "configs.py")
assert _spec is not None and _spec.loader is not None
configs = importlib.util.module_from_spec(_spec)
sys.modules["ha_configs"] = configs
_spec.loader.exec_module(configs)

KEYS = configs.Secrets("su-pw", "repl-pw", "strata-pw", "AKIAHAPROOF000000001", "secret")


def test_patroni_config_is_yaml_with_synchronous_replication_and_the_etcd_members(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    for node in t.pg:
        cfg = yaml.safe_load(configs.patroni_config(t, node, KEYS))
        assert cfg["name"] == node.name
        assert cfg["restapi"]["listen"] == f"{node.ip}:8008"
        assert cfg["etcd3"]["hosts"] == [f"{n.ip}:2379" for n in t.etcd]
        dcs = cfg["bootstrap"]["dcs"]
        assert dcs["synchronous_mode"] is True  # no acknowledged commit only on the old leader
        # Patroni's rule: the leader key outlives a loop plus two retries
        assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
        assert {"locale": "C"} in cfg["bootstrap"]["initdb"]  # Strata needs code point order
        assert cfg["postgresql"]["authentication"]["replication"]["password"] == "repl-pw"
        assert cfg["postgresql"]["data_dir"] == str(tmp_path / node.name / "data")


def test_haproxy_routes_postgres_to_the_patroni_leader_and_strata_to_every_gateway(tmp_path: Path) -> None:
    t = configs.topology(tmp_path, gateways=3)
    cfg = configs.haproxy_config(t, t.lbs[0])
    assert "$" not in cfg  # every placeholder filled
    assert "option httpchk GET /primary" in cfg
    for node in t.pg:
        assert f"server {node.name} {node.ip}:5432 maxconn 500 check port 8008" in cfg
    for node in t.gateways:
        assert f"server {node.name} {node.ip}:{configs.STRATA_PORT}" in cfg
    assert f"bind :{configs.PG_PORT}" in cfg
    # a lost gateway's PostgreSQL sessions (and its advisory locks) end in seconds, not at `timeout client`
    postgres = cfg[cfg.index("listen postgres") : cfg.index("frontend strata")]
    assert "option clitcpka" in postgres and "clitcpka-idle 5s" in postgres
    gateways = cfg[cfg.index("backend gateways") :]
    assert "on-marked-down shutdown-sessions" in gateways and "option httpchk" in gateways


def test_gateways_share_the_metadata_database_and_blob_dir_but_not_their_data_dirs(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    cmds = [configs.gateway_command(t, n, KEYS, "python") for n in t.gateways]

    def value(cmd: list[str], flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    assert {value(c, "--metadata") for c in cmds} == {f"postgresql://strata:strata-pw@{t.vip}:5000/strata"}
    assert {value(c, "--blob-dir") for c in cmds} == {str(tmp_path / "blobs")}
    assert len({value(c, "--data-dir") for c in cmds}) == len(t.gateways)
    assert [value(c, "--host") for c in cmds] == [n.ip for n in t.gateways]
    # one engine address, which floats to the engine host; each forwards to the others' own address
    assert {value(c, "--engine-address") for c in cmds} == {f"{t.engine_ip}/eth0"}
    assert [value(c, "--advertise-url") for c in cmds] == [f"http://{n.ip}:4566" for n in t.gateways]


def test_with_a_pool_the_gateways_get_the_engine_address_range_it_follows(tmp_path: Path) -> None:
    t = configs.topology(tmp_path, pool=5)
    cmd = configs.gateway_command(t, t.gateways[0], KEYS, "python")
    assert cmd[cmd.index("--engine-address") + 1] == "10.222.22.50-10.222.22.55/eth0"
    assert t.engine_pool == tuple(f"10.222.22.{i}" for i in range(51, 56))
    assert t.engine_addresses == (t.engine_ip, *t.engine_pool)  # what a dead host's node loses
    # Strata reads the range as the engine address and this pool
    from strata.config import parse_engine_address

    parsed = parse_engine_address(t.engine_address)
    assert (parsed.address, parsed.dev, parsed.pool) == (t.engine_ip, "eth0", t.engine_pool)
    # no pool address is another node's
    assert not set(t.engine_pool) & ({n.ip for n in t.nodes} | {t.vip, t.host_ip})
    with pytest.raises(ValueError):
        configs.topology(tmp_path, pool=10)


def test_etcd_members_name_the_same_cluster(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    clusters = set()
    for node in t.etcd:
        cmd = configs.etcd_command(t, node)
        clusters.add(cmd[cmd.index("--initial-cluster") + 1])
        assert f"{node.name}=http://{node.ip}:2380" in cmd[cmd.index("--initial-cluster") + 1]
    assert len(clusters) == 1


def test_names_fit_linux_limits_and_addresses_are_distinct(tmp_path: Path) -> None:
    t = configs.topology(tmp_path, gateways=8)
    assert len({n.ip for n in t.nodes} | {t.vip, t.engine_ip}) == len(t.nodes) + 2
    assert all(len(t.veth(n)) <= 15 for n in t.nodes)
    assert len({t.veth(n) for n in t.nodes}) == len(t.nodes)
    assert len(t.bridge) <= 15


def _block(cfg: str, keyword: str) -> str:
    """The body of `keyword { ... }` in a keepalived configuration (blocks nest one level here)."""
    m = re.search(rf"^\s*{keyword}\s*\{{\n(.*?)^\s*\}}", cfg, re.M | re.S)
    assert m, f"no {keyword} block"
    return m.group(1)


def _setting(body: str, keyword: str) -> str:
    m = re.search(rf"^\s*{keyword}\s+(\S+)\s*$", body, re.M)
    assert m, f"no {keyword}"
    return m.group(1)


def test_keepalived_gives_one_virtual_address_to_the_two_haproxy_nodes(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    assert len(t.lbs) == 2
    subnet = ipaddress.ip_network(f"{t.subnet}.0/24")
    assert ipaddress.ip_address(t.vip) in subnet and t.vip not in {n.ip for n in t.nodes}
    assert t.strata_url == f"http://{t.vip}:{configs.STRATA_PORT}"
    priorities = []
    for node in t.lbs:
        cfg = configs.keepalived_config(t, node)
        assert "$" not in cfg  # every placeholder filled
        assert cfg.count("{") == cfg.count("}")
        instance = cfg[cfg.index("vrrp_instance") :]
        assert _setting(instance, "state") == "BACKUP" and re.search(r"^\s*nopreempt\s*$", instance, re.M)
        assert _setting(instance, "virtual_router_id") == str(configs.VRRP_ROUTER_ID)
        assert _setting(instance, "unicast_src_ip") == node.ip
        assert _block(instance, "unicast_peer").split() == [n.ip for n in t.lbs if n != node]
        assert _block(instance, "virtual_ipaddress").split() == [f"{t.vip}/24", "dev", "eth0"]
        assert _block(instance, "track_script").split() == ["haproxy_alive"]
        priorities.append(int(_setting(instance, "priority")))
        # the check reads the pid file this node's HAProxy writes
        pid_file = _setting(configs.haproxy_config(t, node), "pidfile")
        assert f'script "/usr/bin/pgrep -F {pid_file} haproxy"' in cfg
        cmd = configs.keepalived_command(t, node)
        assert cmd[cmd.index("--use-file") + 1] == str(tmp_path / node.name / "keepalived.conf")
    assert len(set(priorities)) == 2 and all(1 <= p <= 254 for p in priorities)
    # pid files of their own: two keepalived on one machine do not share /run/keepalived.pid
    cmds = [configs.keepalived_command(t, n) for n in t.lbs]
    assert len({c[c.index(flag) + 1] for c in cmds for flag in ("--pid", "--vrrp_pid")}) == 4


@pytest.mark.skipif(
    shutil.which("keepalived") is None or os.geteuid() != 0,
    reason="keepalived not installed (bench/ha/install.sh), or not root (its script_user root)",
)
def test_keepalived_accepts_the_configuration_and_refuses_a_broken_one(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    for node in t.lbs:
        path = tmp_path / f"{node.name}.conf"
        path.write_text(configs.keepalived_config(t, node))
        r = subprocess.run(["keepalived", "-t", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    # the check itself can fail: an unknown keyword
    path.write_text(configs.keepalived_config(t, t.lbs[0]).replace("nopreempt", "nopreempted"))
    r = subprocess.run(["keepalived", "-t", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "nopreempted" in r.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (bench/ha/install.sh)")
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    path = tmp_path / "haproxy.cfg"
    path.write_text(configs.haproxy_config(t, t.lbs[1]))
    r = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
