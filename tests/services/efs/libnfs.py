"""A small NFSv4 client over libnfs's synchronous C API (ctypes; Debian libnfs13 4.0).

libnfs-utils' `nfs-cp` cannot write a file of 4,000 bytes or more over NFSv4 (libnfs 4.0 fails to
encode a larger WRITE: "Failed to encode COMPOUND4args"), so this client writes in 3,800-byte
WRITEs, and also creates, stats and deletes files, which the command-line tools cannot.
"""

from __future__ import annotations

import ctypes
import os

MAX_WRITE = 3800  # bytes per NFSv4 WRITE that libnfs 4.0 can encode


class LibNfs:
    """One NFSv4 connection to `server:/` (port 2049)."""

    def __init__(self, server: str) -> None:
        lib = self.lib = ctypes.CDLL("libnfs.so.13")
        lib.nfs_init_context.restype = ctypes.c_void_p
        lib.nfs_get_error.restype = ctypes.c_char_p
        self.ctx = ctypes.c_void_p(lib.nfs_init_context())
        if not self.ctx:
            raise OSError("nfs_init_context failed")
        lib.nfs_set_version(self.ctx, 4)
        self._ok(lib.nfs_mount(self.ctx, server.encode(), b"/"), "mount")
        self._stat = ctypes.create_string_buffer(512)  # struct nfs_stat_64 (136 bytes) with room

    def _ok(self, rc: int, what: str) -> None:
        if rc < 0:
            raise OSError(f"{what}: {self.lib.nfs_get_error(self.ctx).decode()}")

    def write(self, path: str, data: bytes, chunk: int = MAX_WRITE) -> None:
        """Replace (or create) `path` with `data`, in WRITEs of `chunk` bytes; closed on return."""
        fh = ctypes.c_void_p()
        # An existing file is opened and truncated (libnfs creates with an exclusive OPEN);
        # nfs_creat would open read-only over NFSv4, so nfs_create with O_WRONLY.
        if self.lib.nfs_open(self.ctx, path.encode(), os.O_WRONLY | os.O_TRUNC, ctypes.byref(fh)) < 0:
            flags = os.O_WRONLY | os.O_CREAT
            self._ok(self.lib.nfs_create(self.ctx, path.encode(), flags, 0o644, ctypes.byref(fh)), "create")
        view = memoryview(data)
        for offset in range(0, len(data), chunk):
            piece = bytes(view[offset : offset + chunk])
            n = self.lib.nfs_pwrite(self.ctx, fh, ctypes.c_uint64(offset), ctypes.c_uint64(len(piece)), piece)
            self._ok(n, "write")
        self._ok(self.lib.nfs_close(self.ctx, fh), "close")

    def stat(self, path: str) -> None:
        self._ok(self.lib.nfs_stat64(self.ctx, path.encode(), self._stat), "stat")

    def unlink(self, path: str) -> None:
        self._ok(self.lib.nfs_unlink(self.ctx, path.encode()), "unlink")

    def close(self) -> None:
        if self.ctx:
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = ctypes.c_void_p()
