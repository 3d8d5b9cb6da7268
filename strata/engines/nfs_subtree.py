"""Whether an NFS filehandle names a file inside its export's root directory (the subtree check
ganesha does not do).

Why: ganesha 4.3's FSAL_VFS opens whatever Linux file handle a filehandle carries, on any file
system its export claims, and never checks that the file lies under the export's root. An access
point's export is a directory inside its file system's volume, so a client that puts a handle
together by hand (the inode and 32-bit generation of a file are all ext4's handles hold) reached
files of that file system above the access point's root, and through port 2050's pseudo root (a
directory of the data dir) any world-readable file of the data dir's disk. The credential proxy
(strata.engines.nfs_cred_proxy) asks `SubtreeCheck.allows` about every PUTFH handle and makes
the server refuse those it does not allow.

How: the kernel handle inside ganesha's filehandle is opened (open_by_handle_at, O_PATH, as root)
on the export root's file system and its path read back from /proc/self/fd: allowed when it is
the root or below it. A directory's path is always known (the kernel reconnects directories to
their parents); a file's is known while the kernel has its name cached, which it has after the
lookup that gave the client the handle. A handle allowed once is remembered (up to
`REMEMBERED`), so a file whose name the kernel later forgets stays usable; one never allowed
whose name is not known is refused: NFS4ERR_STALE, on which clients look the file up again from
a directory.

Ganesha 4 filehandle: version, flags, export id (2 bytes, network order), length, then the VFS
handle: a flags byte (fsid type in the low bits, the width of the kernel handle type in the top
two, HANDLE_DUMMY), the fsid (0, 8 or 16 bytes by type), the kernel handle type (1, 2 or 4 bytes,
host order) and the kernel handle's bytes. The fsid is ganesha's to check (a handle whose fsid
names a file system its export does not claim is stale there; measured), so only the kernel
handle is read here.
"""

from __future__ import annotations

import ctypes
import os
import struct

from strata.engines.nfs4_compound import export_of_handle

REMEMBERED = 1 << 16  # allowed handles kept (~100 bytes each); all forgotten when full
_FSID_BYTES = {0: 0, 1: 8, 2: 8, 3: 16, 4: 8, 5: 8}  # ganesha's enum fsid_type -> encoded size
_TYPE_BYTES = {0x40: "b", 0x80: "<h", 0xC0: "<i"}  # HANDLE_TYPE_8 / 16 / 32
_HANDLE_DUMMY = 0x20
_MAX_KERNEL_HANDLE = 128  # MAX_HANDLE_SZ
_libc = ctypes.CDLL(None, use_errno=True)


def kernel_handle(handle: bytes) -> tuple[int, bytes] | None:
    """The Linux file handle (type, bytes) inside a ganesha 4 FSAL_VFS filehandle; None when it
    holds none (too short, a dummy handle, an unknown fsid type)."""
    if len(handle) < 6 or handle[4] != len(handle) - 5:
        return None
    flags = handle[5]
    fsid = _FSID_BYTES.get(flags & 0x1F)
    kind = _TYPE_BYTES.get(flags & 0xC0)
    if fsid is None or kind is None or flags & _HANDLE_DUMMY:
        return None
    at = 6 + fsid
    if kind == "b":
        return (handle[at], handle[at + 1 :]) if len(handle) > at + 1 else None
    width = struct.calcsize(kind)
    if len(handle) <= at + width:
        return None
    return struct.unpack_from(kind, handle, at)[0], handle[at + width :]


def path_of(mount_dir: str, kind: int, data: bytes) -> str | None:
    """The path of the file a Linux handle names on `mount_dir`'s file system (None: stale, or
    no such file)."""
    if len(data) > _MAX_KERNEL_HANDLE:
        return None
    buf = struct.pack("=Ii", len(data), kind) + data
    try:
        mount_fd = os.open(mount_dir, os.O_RDONLY | os.O_DIRECTORY)  # not O_PATH: EBADF
    except OSError:
        return None
    try:
        fd = _libc.open_by_handle_at(mount_fd, ctypes.c_char_p(buf), os.O_PATH | os.O_NOFOLLOW)
    finally:
        os.close(mount_fd)
    if fd < 0:
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    finally:
        os.close(fd)


class SubtreeCheck:
    """Which filehandles stay inside their export's root: `roots` maps export id -> the real path
    of its root directory. A handle of another export is refused (the server has none by that id,
    or has just been given it and the proxy's configuration follows in a moment)."""

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = {export: os.path.realpath(path) for export, path in roots.items()}
        self._allowed: dict[bytes, None] = {}

    def allows(self, handle: bytes) -> bool:
        if handle in self._allowed:
            return True
        export = export_of_handle(handle)
        root = self.roots.get(export) if export is not None else None
        inner = kernel_handle(handle)
        if root is None or inner is None:
            return False
        path = path_of(root, *inner)
        if path is None or not (path == root or path.startswith(root.rstrip("/") + "/")):
            return False
        if len(self._allowed) >= REMEMBERED:
            self._allowed.clear()
        self._allowed[handle] = None
        return True
