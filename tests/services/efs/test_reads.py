"""Reads seen by the IA lifecycle (strata.services.efs.reads): the atime rearm and noatime."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from strata.services.efs import reads
from tests.services.efs.helpers import file_system_with_targets, fs_files


def test_rearm_leaves_a_read_made_since_the_measure_looked(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    st = f.stat()
    seen_atime = st.st_mtime_ns + 5_000_000_000  # the measure saw a read 5 s after the write
    os.utime(f, ns=(seen_atime + 1_000_000_000, st.st_mtime_ns))  # and a read came after the look
    reads.rearm(str(f), st.st_mtime_ns, seen_atime)
    assert f.stat().st_atime_ns == seen_atime + 1_000_000_000  # still visible to the next measure
    reads.rearm(str(f), st.st_mtime_ns, seen_atime + 1_000_000_000)  # nothing new since the look
    assert f.stat().st_atime_ns == st.st_mtime_ns


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind-mount a directory noatime")
def test_lifecycle_is_refused_where_reads_leave_no_trace(strata_server) -> None:  # noqa: ANN001
    efs, fs_id, _ = file_system_with_targets(strata_server, zones=0)
    path = str(fs_files(strata_server, fs_id))
    policy = [{"TransitionToIA": "AFTER_7_DAYS"}, {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"}]
    subprocess.run(["mount", "--bind", path, path], check=True, timeout=30)
    try:
        subprocess.run(["mount", "-o", "remount,bind,noatime", path], check=True, timeout=30)
        with pytest.raises(ClientError) as e:
            efs.put_lifecycle_configuration(FileSystemId=fs_id, LifecyclePolicies=policy)
        assert e.value.response["Error"]["Code"] == "BadRequest"
        assert "noatime" in e.value.response["Error"]["Message"]
        efs.put_lifecycle_configuration(FileSystemId=fs_id, LifecyclePolicies=[])  # none: fine
    finally:
        subprocess.run(["umount", path], check=True, timeout=30)
    assert efs.put_lifecycle_configuration(FileSystemId=fs_id, LifecyclePolicies=policy)["LifecyclePolicies"]
