"""An ONC RPC proxy in front of the access points' NFS server: it keeps every call inside its
access point's root directory, and gives it the identity of that access point.

Why, twice over:
- ganesha 4.3 does not check that a filehandle lies under its export's root (no subtree check),
  so a client that makes a handle by hand could reach files above its access point's root. The
  proxy checks every PUTFH filehandle (strata.engines.nfs_subtree) and turns one naming a file
  outside its export's root into one of an export that does not exist, which ganesha answers
  NFS4ERR_STALE in its own reply (so NFSv4.1 sessions and sequence ids stay consistent). A call
  the proxy cannot read to its end (it could carry a handle the proxy did not see) ends the
  connection: no client sends one.
- ganesha 4.3 runs an access point's requests as its uid/gid through All_Squash, which also
  empties the caller's group list (nfs_req_creds), so an access point's SecondaryGids cannot be
  granted that way. Exports of access points with secondary groups are therefore served without
  squashing, and the proxy rewrites the AUTH_SYS credential of every call that works on such an
  access point's export to (uid, gid, gids) of that access point (strata.engines.nfs4_compound
  follows the call's filehandles). A call that works on several of them runs as nobody (65534); a
  call that works on none keeps the client's credential (the other exports squash it themselves,
  or take the client's identity as access points without a POSIX user do). ganesha honours the
  AUTH_SYS group list when Manage_Gids is off.

It listens where clients connect (the mount target's port 2050). Framing: RPC record marking over
TCP (RFC 5531). Client-to-server CALL records are rewritten (credential replaced, verifier
AUTH_NONE, record re-framed as one fragment; a refused handle's export id overwritten in place);
client-to-server REPLY records (answers to NFSv4.1 backchannel calls) and everything
server-to-client pass untouched.

The upstream ganesha listens on a port of its own and requires a reserved source port on every
export (PrivilegedPort): the proxy, running as root, connects from one; an unprivileged local
process cannot, so it cannot go around the proxy.

Run as `python -m strata.engines.nfs_cred_proxy CONFIG` (a JSON file: listen and upstream
[address, port], the pseudo root's export id, every export id, identities {export id: [uid, gid, [gids]]},
junctions {name: export id}, roots {export id: root directory}); SIGHUP rereads it, for calls
that arrive after.
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
from strata.engines.nfs_subtree import SubtreeCheck

log = logging.getLogger("strata.nfs_cred_proxy")
NOBODY = (65534, 65534, ())
NFS_PROGRAM, COMPOUND = 100003, 1
AUTH_NONE, AUTH_SYS = 0, 1
LAST_FRAGMENT = 0x80000000
MAX_RECORD = 64 << 20  # far above ganesha's largest request (1 MiB of WRITE data)
_HEAD = struct.Struct(">IIIIII")  # xid, msg_type, rpcvers, prog, vers, proc
_U32 = struct.Struct(">I")
PIPE_SIZE = 1 << 20
# The export id a refused filehandle is given: no export has it (ids count up from 1 per file
# system), so ganesha answers NFS4ERR_STALE.
NO_EXPORT = b"\xff\xff"


@dataclass(frozen=True)
class Identities:
    """What the proxy stamps: per export id the (uid, gid, gids) of its access point."""

    root: int
    by_export: dict[int, tuple[int, int, tuple[int, ...]]]
    junctions: dict[bytes, int]
    known: frozenset[int]  # every export the server has: a call naming another runs as nobody
    subtree: SubtreeCheck

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
            SubtreeCheck({int(k): v for k, v in conf.get("roots", {}).items()}),
        )

    def identity(
        self, record: memoryview, args: int, prog: int, vers: int, proc: int
    ) -> tuple[int, int, tuple[int, ...]] | None | Unreadable:
        """The identity a call runs as: its access point's when it works on exactly one of those
        here; None (the client's own) when it works on none; nobody when it works on several.
        Every PUTFH handle of the call that leaves its export's root is made stale in `record`
        first; a COMPOUND that cannot be read to its end is UNREADABLE."""
        if prog != NFS_PROGRAM or vers != 4 or proc != COMPOUND:
            return None if proc == 0 else NOBODY  # NULL: no file touched
        handles: list[int] = []
        touched = exports_touched(record, args, self.root, self.junctions, handles)
        if touched is None:
            return UNREADABLE
        for at in handles:
            (length,) = _U32.unpack_from(record, at)
            if length >= 4 and not self.subtree.allows(bytes(record[at + 4 : at + 4 + length])):
                record[at + 6 : at + 8] = NO_EXPORT
        if not touched <= self.known:
            return NOBODY
        mine = [self.by_export[e] for e in touched if e in self.by_export]
        if not mine:
            return None
        return mine[0] if len(mine) == 1 else NOBODY


class Unreadable:
    """A call whose arguments do not parse: it may carry a filehandle the proxy did not see."""


UNREADABLE = Unreadable()


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
    if isinstance(identity, Unreadable):
        log.warning("nfs credential proxy: an NFSv4 call it cannot read; connection closed")
        return None
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
            return memoryview(parts[0] if len(parts) == 1 else bytearray().join(parts))


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
