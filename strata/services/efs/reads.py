"""Every read of a file seen by the lifecycle, though the data dir's file system uses relatime.

Under relatime (Linux's default mount option) a read updates a file's atime only when the atime
is not newer than its mtime or ctime, or is a day old (real time): the second read of a day is
not recorded. The lifecycle counts days on the simulated clock, where a day can pass in a second,
so it would miss reads: a file read, moved to IA by a clock advance and read again minutes later
would stay cold under AFTER_1_ACCESS. So each measure takes a file's atime, when newer than its
mtime, into the `accessed` table (simulated time) and then sets the atime back to the mtime
(`rearm`; the mtime itself is never touched): the next read, whenever it comes, updates the atime
again. The rearm looks at the atime once more first and leaves a file alone whose atime moved
since the walk (that read is seen by the next measure): only a read in the microseconds between
that look and the rearm can go unseen. An NFS client sees a file read before the last measure
with its atime equal to its mtime.

A data dir on a file system mounted noatime records no read at all (`records_reads`): lifecycle
policies, which all depend on reads, are refused on it rather than run blind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

SCHEMA = """
CREATE TABLE IF NOT EXISTS accessed (
    fs TEXT NOT NULL,
    ino INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (fs, ino)
) WITHOUT ROWID;
"""

_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_UTIME_OMIT = (1 << 30) - 2


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec), ctypes.c_int]


def records_reads(path: str | os.PathLike) -> bool:
    """False when the file system holding `path` is mounted noatime (reads leave no trace)."""
    try:
        return not os.statvfs(path).f_flag & os.ST_NOATIME
    except OSError:  # not there (a locked encrypted volume): nothing to read, nothing to miss
        return True


def rearm(path: str, mtime_ns: int, atime_ns: int) -> None:
    """Set the file's atime to `mtime_ns`, leaving its mtime alone (utimensat with UTIME_OMIT: a
    write racing with this keeps its mtime), so that relatime records the next read; unless its
    atime is no longer `atime_ns` (what the measure saw): a read since then stays visible."""
    if os.stat(path, follow_symlinks=False).st_atime_ns != atime_ns:
        return
    times = (_Timespec * 2)(
        _Timespec(mtime_ns // 1_000_000_000, mtime_ns % 1_000_000_000), _Timespec(0, _UTIME_OMIT)
    )
    if _libc.utimensat(_AT_FDCWD, os.fsencode(path), times, _AT_SYMLINK_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
