"""A bare NFSv4.0 COMPOUND sender over one TCP connection (RFC 5531 record marking, RFC 7530).

Tests use it to send what no ordinary client would: a PUTFH of a filehandle put together by
hand. Only the few operations those tests need are encoded; results are read up to the first
failing operation.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

NFS_PROGRAM, NFS_V4, COMPOUND = 100003, 4, 1
OP_GETFH, OP_LOOKUP, OP_PUTFH, OP_PUTROOTFH, OP_READ, OP_WRITE = 10, 15, 22, 24, 25, 38
FILE_SYNC = 2
ANONYMOUS_STATEID = bytes(16)


def _opaque(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data + b"\0" * (-len(data) % 4)


def putrootfh() -> bytes:
    return struct.pack(">I", OP_PUTROOTFH)


def putfh(handle: bytes) -> bytes:
    return struct.pack(">I", OP_PUTFH) + _opaque(handle)


def lookup(name: str) -> bytes:
    return struct.pack(">I", OP_LOOKUP) + _opaque(name.encode())


def getfh() -> bytes:
    return struct.pack(">I", OP_GETFH)


def read(offset: int, count: int) -> bytes:
    return struct.pack(">I", OP_READ) + ANONYMOUS_STATEID + struct.pack(">QI", offset, count)


def write(offset: int, data: bytes) -> bytes:
    """A WRITE (FILE_SYNC) of `data` at `offset` under the anonymous stateid."""
    return (
        struct.pack(">I", OP_WRITE)
        + ANONYMOUS_STATEID
        + struct.pack(">QI", offset, FILE_SYNC)
        + _opaque(data)
    )


def kernel_handle(path: str | os.PathLike) -> tuple[int, bytes]:
    """The Linux file handle (type, bytes) of `path` (name_to_handle_at), as FSAL_VFS puts it in
    its filehandles."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(8 + 128)
    struct.pack_into("=Ii", buf, 0, 128, 0)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, os.fsencode(path), buf, ctypes.byref(mount_id), 0) != 0:
        raise OSError(ctypes.get_errno(), "name_to_handle_at", str(path))
    size, kind = struct.unpack_from("=Ii", buf, 0)
    return kind, buf.raw[8 : 8 + size]


def forged(template: bytes, kind: int, handle: bytes) -> bytes:
    """A ganesha 4 FSAL_VFS filehandle like `template` (a real one, whose Linux handle is the
    8-byte inode and generation of ext4) that names Linux handle `handle` instead: ganesha's
    header, the VFS flags byte and file system id of `template`, then `kind` and `handle`."""
    vfs = template[5:-9] + bytes([kind]) + handle
    return template[:4] + bytes([len(vfs)]) + vfs


class Nfs4Error(Exception):
    def __init__(self, status: int, op: int) -> None:
        super().__init__(f"NFSv4 status {status} in operation {op}")
        self.status = status
        self.op = op


class RawNfs4:
    """One connection to `address:port`; calls run as AUTH_SYS `uid`/`gid`."""

    def __init__(self, address: str, port: int, uid: int = 0, gid: int = 0) -> None:
        self.sock = socket.create_connection((address, port), timeout=10)
        self.uid, self.gid = uid, gid
        self.xid = 0x5EED0000

    def close(self) -> None:
        self.sock.close()

    def _call(self, body: bytes) -> bytes:
        self.xid += 1
        cred = struct.pack(">IIIII", 0, 0, self.uid, self.gid, 0)
        head = struct.pack(">IIIIII", self.xid, 0, 2, NFS_PROGRAM, NFS_V4, COMPOUND)
        msg = head + struct.pack(">II", 1, len(cred)) + cred + struct.pack(">II", 0, 0) + body
        self.sock.sendall(struct.pack(">I", 0x80000000 | len(msg)) + msg)
        return self._record()

    def _record(self) -> bytes:
        out = b""
        while True:
            (mark,) = struct.unpack(">I", self._exactly(4))
            out += self._exactly(mark & 0x7FFFFFFF)
            if mark & 0x80000000:
                return out

    def _exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("NFS server closed the connection")
            buf += chunk
        return buf

    def compound(self, *ops: bytes) -> list[tuple[int, bytes]]:
        """Send one COMPOUND (minor version 0); the (operation, result body) of each operation.
        Raises Nfs4Error with the first failing operation's status."""
        reply = self._call(_opaque(b"") + struct.pack(">II", 0, len(ops)) + b"".join(ops))
        pos = 8  # xid, REPLY
        (accepted,) = struct.unpack_from(">I", reply, pos)
        if accepted != 0:
            raise ConnectionError("RPC call denied")
        (vlen,) = struct.unpack_from(">I", reply, pos + 8)
        pos += 12 + vlen + (-vlen % 4)
        (accept_stat,) = struct.unpack_from(">I", reply, pos)
        if accept_stat != 0:
            raise ConnectionError(f"RPC accept status {accept_stat}")
        status, taglen = struct.unpack_from(">II", reply, pos + 4)
        pos += 12 + taglen + (-taglen % 4)
        (count,) = struct.unpack_from(">I", reply, pos)
        pos += 4
        results = []
        for _ in range(count):
            op, op_status = struct.unpack_from(">II", reply, pos)
            pos += 8
            if op_status != 0:
                raise Nfs4Error(op_status, op)
            if op == OP_GETFH:
                (n,) = struct.unpack_from(">I", reply, pos)
                results.append((op, reply[pos + 4 : pos + 4 + n]))
                pos += 4 + n + (-n % 4)
            elif op == OP_READ:
                (n,) = struct.unpack_from(">I", reply, pos + 4)  # eof, data
                results.append((op, reply[pos + 8 : pos + 8 + n]))
                pos += 8 + n + (-n % 4)
            elif op == OP_WRITE:  # count, committed, verifier
                results.append((op, reply[pos : pos + 4]))
                pos += 16
            else:
                results.append((op, b""))
        if status != 0:
            raise Nfs4Error(status, -1)
        return results

    def handle(self, *names: str, root: bytes | None = None) -> bytes:
        """The filehandle of `names` looked up from the root (or from handle `root`)."""
        start = putfh(root) if root is not None else putrootfh()
        return self.compound(start, *(lookup(n) for n in names), getfh())[-1][1]

    def read(self, handle: bytes, count: int = 4096) -> bytes:
        return self.compound(putfh(handle), read(0, count))[-1][1]

    def assert_stale(self, handle: bytes, what: str) -> None:
        """A READ of `handle` (one made by hand, naming `what`) fails with NFS4ERR_STALE."""
        try:
            leaked = self.read(handle)
        except Nfs4Error as e:
            assert e.status == 70, f"{what}: NFSv4 status {e.status}, not NFS4ERR_STALE"
        else:
            raise AssertionError(f"a forged handle read {what}: {leaked!r}")
