"""An ONC RPC proxy that gives each NFSv4 call the identity of the access point it works on.

Why: ganesha 4.3 runs an access point's requests as its uid/gid through All_Squash, which also
empties the caller's group list (nfs_req_creds), so an access point's SecondaryGids cannot be
granted that way. Exports of access points with secondary groups are therefore served without
squashing, behind this proxy: it listens where clients connect (the mount target's port 2050),
and rewrites the AUTH_SYS credential of every client call that works on such an access point's
export to (uid, gid, gids) of that access point (strata.engines.nfs4_compound follows the call's
filehandles). A call that works on several of them, or cannot be read, runs as nobody (65534); a
call that works on none keeps the client's credential (the other exports squash it themselves,
or take the client's identity as access points without a POSIX user do). ganesha honours the
AUTH_SYS group list when Manage_Gids is off.

Framing: RPC record marking over TCP (RFC 5531). Client-to-server CALL records are rewritten
(credential replaced, verifier AUTH_NONE, record re-framed as one fragment); client-to-server REPLY
records (answers to NFSv4.1 backchannel calls) and everything server-to-client pass untouched.

The upstream ganesha listens on a port of its own and requires a reserved source port on the
exports served without squashing (PrivilegedPort): the proxy, running as root, connects from
one; an unprivileged local process cannot, so it cannot go around the proxy with an identity of
its choosing.

Run as `python -m strata.engines.nfs_cred_proxy CONFIG` (a JSON file: listen and upstream
[address, port], the pseudo root's export id, every export id, identities {export id: [uid, gid, [gids]]},
junctions {name: export id}); SIGHUP rereads it, for calls that arrive after.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from strata.engines.nfs4_compound import exports_touched

log = logging.getLogger("strata.nfs_cred_proxy")
NOBODY = (65534, 65534, ())
NFS_PROGRAM, COMPOUND = 100003, 1
AUTH_NONE, AUTH_SYS = 0, 1
LAST_FRAGMENT = 0x80000000
MAX_RECORD = 64 << 20  # far above ganesha's largest request (1 MiB of WRITE data)
_HEAD = struct.Struct(">IIIIII")  # xid, msg_type, rpcvers, prog, vers, proc
_U32 = struct.Struct(">I")
PIPE_SIZE = 1 << 20


@dataclass(frozen=True)
class Identities:
    """What the proxy stamps: per export id the (uid, gid, gids) of its access point."""

    root: int
    by_export: dict[int, tuple[int, int, tuple[int, ...]]]
    junctions: dict[bytes, int]
    known: frozenset[int]  # every export the server has: a call naming another runs as nobody

    @classmethod
    def load(cls, conf: dict) -> Identities:
        return cls(
            int(conf["root"]),
            {
                int(k): (int(v[0]), int(v[1]), tuple(int(g) for g in v[2]))
                for k, v in conf["identities"].items()
            },
            {k.encode(): int(v) for k, v in conf["junctions"].items()},
            frozenset(int(e) for e in conf["exports"]),
        )

    def identity(
        self, record: memoryview, args: int, prog: int, vers: int, proc: int
    ) -> tuple[int, int, tuple[int, ...]] | None:
        """The identity a call runs as: its access point's when it works on exactly one of those
        here; None (the client's own) when it works on none; nobody when it cannot be read or
        works on several."""
        if prog != NFS_PROGRAM or vers != 4 or proc != COMPOUND:
            return None if proc == 0 else NOBODY  # NULL: no file touched
        touched = exports_touched(record, args, self.root, self.junctions)
        if touched is None or not touched <= self.known:
            return NOBODY
        mine = [self.by_export[e] for e in touched if e in self.by_export]
        if not mine:
            return None
        return mine[0] if len(mine) == 1 else NOBODY


def auth_sys(uid: int, gid: int, gids: tuple[int, ...]) -> bytes:
    """An AUTH_SYS credential (stamp 0, no machine name) followed by an AUTH_NONE verifier."""
    # stamp, machine name (empty), uid, gid, gids
    body = struct.pack(f">IIIII{len(gids)}I", 0, 0, uid, gid, len(gids), *gids)
    return struct.pack(">II", AUTH_SYS, len(body)) + body + struct.pack(">II", AUTH_NONE, 0)


def rewrite(record: memoryview, ids: Identities) -> list[bytes | memoryview] | None:
    """The pieces of a client record to send upstream (record mark included); None when it is not
    an RPC message this proxy can pass on."""
    if len(record) < 24:
        return None
    xid, msg_type, rpcvers, prog, vers, proc = _HEAD.unpack_from(record, 0)
    if msg_type == 1:  # a REPLY to a backchannel call: untouched
        return [_U32.pack(LAST_FRAGMENT | len(record)), record]
    if msg_type != 0 or rpcvers != 2:
        return None
    pos = 24
    for _ in range(2):  # credential, verifier
        if pos + 8 > len(record):
            return None
        (length,) = _U32.unpack_from(record, pos + 4)
        if length > 400:
            return None
        pos += 8 + ((length + 3) & ~3)
    if pos > len(record):
        return None
    identity = ids.identity(record, pos, prog, vers, proc)
    if identity is None:  # the client's own credential: the call reaches no stamped export
        return [_U32.pack(LAST_FRAGMENT | len(record)), record]
    head = bytes(record[:24]) + auth_sys(*identity)
    body = record[pos:]
    return [_U32.pack(LAST_FRAGMENT | (len(head) + len(body))) + head, body]


def _recv_exactly(sock: socket.socket, view: memoryview) -> bool:
    while view:
        n = sock.recv_into(view)
        if n == 0:
            return False
        view = view[n:]
    return True


def read_record(sock: socket.socket) -> memoryview | None:
    """One whole RPC record (its fragments joined), or None at the end of the stream."""
    parts: list[bytearray] = []
    total = 0
    mark = bytearray(4)
    while True:
        if not _recv_exactly(sock, memoryview(mark)):
            return None
        (value,) = _U32.unpack(mark)
        length = value & ~LAST_FRAGMENT
        total += length
        if total > MAX_RECORD:
            return None
        fragment = bytearray(length)
        if not _recv_exactly(sock, memoryview(fragment)):
            return None
        parts.append(fragment)
        if value & LAST_FRAGMENT:
            return memoryview(parts[0] if len(parts) == 1 else b"".join(parts))


class Proxy:
    """Accepts clients on `listen` and joins each to a fresh upstream connection."""

    def __init__(self, conf_path: Path) -> None:
        self.conf_path = Path(conf_path)
        conf = json.loads(self.conf_path.read_text())
        self.ids = Identities.load(conf)
        self.listen = (conf["listen"][0], int(conf["listen"][1]))
        self.upstream = (conf["upstream"][0], int(conf["upstream"][1]))

    def reload(self) -> None:
        try:
            self.ids = Identities.load(json.loads(self.conf_path.read_text()))
        except (OSError, ValueError, KeyError) as e:
            log.warning("nfs credential proxy: cannot reread %s: %s", self.conf_path, e)

    def connect_upstream(self) -> socket.socket:
        """A connection to ganesha from a reserved port (which only root may bind)."""
        ports = list(range(512, 1024))
        random.shuffle(ports)
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Closed connections leave their port in TIME_WAIT: a new one may take it (another
            # destination port than a live connection's, or the kernel refuses the connect).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.upstream[0], port))
                sock.connect(self.upstream)
                return sock
            except OSError as e:
                sock.close()
                if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise  # the server is not there (yet): the client's connection ends
        raise OSError("no free reserved port to reach the NFS server from")

    def serve(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self.listen)
        server.listen(128)
        while True:
            client, _ = server.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._join, args=(client,), daemon=True).start()

    def _join(self, client: socket.socket) -> None:
        try:
            upstream = self.connect_upstream()
        except OSError as e:
            log.warning("nfs credential proxy: %s", e)
            client.close()
            return
        threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()
        try:
            while True:
                record = read_record(client)
                if record is None:
                    break
                pieces = rewrite(record, self.ids)
                if pieces is None:
                    break
                if len(pieces[1]) < 65536:
                    upstream.sendall(b"".join(pieces))
                else:
                    _send_all(upstream, pieces)
        except OSError:
            pass
        except Exception:  # a bug must cost this connection only, never the proxy
            log.exception("nfs credential proxy: connection dropped")
        finally:
            _close(client, upstream)

    @staticmethod
    def _answers(upstream: socket.socket, client: socket.socket) -> None:
        """Server to client: replies and backchannel calls, byte for byte, moved by the kernel
        (splice through a pipe: the data never enters this process)."""
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe only means more splices
        try:
            while True:
                n = os.splice(upstream.fileno(), write_end, PIPE_SIZE)
                if n == 0:
                    break
                while n:
                    n -= os.splice(read_end, client.fileno(), n)
        except OSError:
            pass
        finally:
            os.close(read_end)
            os.close(write_end)
            _close(client, upstream)


def _send_all(sock: socket.socket, pieces: list[bytes | memoryview]) -> None:
    for piece in pieces:
        sock.sendall(piece)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    proxy = Proxy(Path(argv[0]))
    signal.signal(signal.SIGHUP, lambda *_: proxy.reload())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    proxy.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
