"""The serving threads are pinned to one CPU; engines and `--cpu-affinity off` keep every CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="pinning needs a machine with two or more CPUs"
)


def _cpus(pid: int, tid: int | None = None) -> set[int]:
    status = Path(f"/proc/{pid}/task/{tid or pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
    cpus: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def test_serving_threads_share_one_cpu_and_engines_get_them_all(strata_factory, unique):
    server = strata_factory()
    everything = os.sched_getaffinity(0)
    pid = server.proc.pid
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    pinned = _cpus(pid)
    assert len(pinned) == 1 and pinned <= everything
    # threads started by the pinned loop thread (group commit, meter) share its CPU; the
    # blocking-work pool is widened again, so not every thread is
    assert sum(_cpus(pid, t) == pinned for t in threads if t != pid) >= 1
    # an engine started by the server is not confined to that CPU
    ec = server.client("elasticache")
    cid = f"aff-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=1)
    try:
        engines = [
            c for c in _children(pid) if "memcached" in Path(f"/proc/{c}/cmdline").read_bytes().decode()
        ]
        assert engines, "no memcached child found"
        assert all(_cpus(e) == everything for e in engines)
    finally:
        ec.delete_cache_cluster(CacheClusterId=cid)


def test_affinity_off_leaves_every_cpu(strata_factory):
    server = strata_factory(extra_env={"STRATA_CPU_AFFINITY": "off"})
    assert _cpus(server.proc.pid) == os.sched_getaffinity(0)
    server.client("s3").list_buckets()  # and it serves
