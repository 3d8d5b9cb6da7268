"""What the high-availability proof (bench/ha_proof.py, too heavy for CI) writes for its cluster:
the generated etcd, Patroni, HAProxy and gateway configurations are complete and agree with each
other. The proof itself needs root, network namespaces and Patroni/etcd; this needs none of them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
    cfg = configs.haproxy_config(t)
    assert "$" not in cfg  # every placeholder filled
    assert "option httpchk GET /primary" in cfg
    for node in t.pg:
        assert f"server {node.name} {node.ip}:5432 maxconn 500 check port 8008" in cfg
    for node in t.gateways:
        assert f"server {node.name} {node.ip}:{configs.STRATA_PORT}" in cfg
    assert f"bind :{configs.PG_PORT}" in cfg


def test_gateways_share_the_metadata_database_and_blob_dir_but_not_their_data_dirs(tmp_path: Path) -> None:
    t = configs.topology(tmp_path)
    cmds = [configs.gateway_command(t, n, KEYS, "python") for n in t.gateways]

    def value(cmd: list[str], flag: str) -> str:
        return cmd[cmd.index(flag) + 1]

    assert {value(c, "--metadata") for c in cmds} == {f"postgresql://strata:strata-pw@{t.lb.ip}:5000/strata"}
    assert {value(c, "--blob-dir") for c in cmds} == {str(tmp_path / "blobs")}
    assert len({value(c, "--data-dir") for c in cmds}) == len(t.gateways)
    assert [value(c, "--host") for c in cmds] == [n.ip for n in t.gateways]


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
    assert len({n.ip for n in t.nodes}) == len(t.nodes)
    assert all(len(t.veth(n)) <= 15 for n in t.nodes)
    assert len({t.veth(n) for n in t.nodes}) == len(t.nodes)
    assert len(t.bridge) <= 15
