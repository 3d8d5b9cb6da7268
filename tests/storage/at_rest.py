"""Helpers for encryption-at-rest tests: look for plaintext in what a data dir holds on disk, and
leave no mount of an encrypted volume behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def in_sparse_file(path: Path, needle: bytes) -> bool:
    """Whether `needle` is in the allocated parts of a (sparse) file: its holes are zeros."""
    with open(path, "rb") as f:
        fd, offset, end = f.fileno(), 0, os.fstat(f.fileno()).st_size
        while offset < end:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # no data after offset
                return False
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            pos = start
            while pos < stop:
                f.seek(pos)
                if needle in f.read(min(8 << 20, stop - pos) + len(needle)):
                    return True
                pos += 8 << 20
            offset = stop
    return False


def files_holding(root: Path, needle: bytes) -> list[Path]:
    """Every regular file under `root` (volume images included, read as raw bytes) holding `needle`.

    Run it with the volumes unmounted (Strata stopped): then the images hold all that was written."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and in_sparse_file(p, needle)]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (from /proc/mounts)."""
    prefix = str(root.resolve())
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def unmount_all(root: Path) -> None:
    """Lazily unmount whatever a failed test left mounted below `root` (deepest first)."""
    for point in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)
