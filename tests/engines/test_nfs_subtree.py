"""Which filehandles stay inside their export's root (strata.engines.nfs_subtree), on real files:
the handles are put together as ganesha's FSAL_VFS makes them, around the kernel's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.engines.nfs_subtree import SubtreeCheck, kernel_handle
from tests.services.efs.raw_nfs4 import kernel_handle as linux_handle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="open_by_handle_at needs root")


def ganesha_handle(export: int, path: Path) -> bytes:
    """Ganesha 4's header (version, flags, export id), then a VFS handle: flags (one-byte handle
    type, fsid of two 32-bit words), the fsid, the handle type, the kernel handle."""
    kind, data = linux_handle(path)
    vfs = bytes([0x44]) + b"\x12" * 8 + bytes([kind]) + data
    return bytes([0x43, 0]) + export.to_bytes(2, "big") + bytes([len(vfs)]) + vfs


def test_only_handles_under_the_root_are_allowed(tmp_path: Path) -> None:
    root = tmp_path / "app" / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "in.txt").write_text("in")
    (tmp_path / "out.txt").write_text("out")
    check = SubtreeCheck({7: str(root)})
    assert kernel_handle(ganesha_handle(7, root)) == linux_handle(root)
    for inside in (root, root / "sub", root / "sub" / "in.txt"):
        assert check.allows(ganesha_handle(7, inside))
    for outside in (tmp_path / "out.txt", tmp_path / "app", tmp_path):
        assert not check.allows(ganesha_handle(7, outside))
    # A sibling whose name starts like the root is outside it.
    (tmp_path / "app" / "data2").mkdir()
    assert not check.allows(ganesha_handle(7, tmp_path / "app" / "data2"))
    # A handle of an export the check does not know, with no kernel handle in it (cut short) or
    # naming nothing is refused.
    assert not check.allows(ganesha_handle(8, root))
    assert not check.allows(ganesha_handle(7, root)[:-3])
    gone = root / "gone.txt"
    gone.write_text("x")
    stale = ganesha_handle(7, gone)
    gone.unlink()
    assert not check.allows(stale[:-1] + bytes([stale[-1] ^ 0xFF]))
