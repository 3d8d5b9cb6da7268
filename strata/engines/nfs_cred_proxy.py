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
# Client records this large are read in two steps (`Proxy._forward`): their first PREFIX bytes
# (enough for a WRITE's arguments up to its data), then the rest.
SPLICE_AT, PREFIX = 64 << 10, 2048
# The pipe a WRITE's data waits in: its capacity counts pages, and data spliced from a socket may
# fill a page only in part, so 4 pages per 4 KiB of the largest WRITE (1 MiB; root may exceed
# /proc/sys/fs/pipe-max-size). A WRITE that does not fit is read into memory instead.
WRITE_PIPE_SIZE = 4 << 20
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


def call_args(record: bytes | bytearray | memoryview) -> int | None:
    """Where an RPC CALL's procedure arguments start (after its credential and verifier); None
    when it is not a call this proxy can pass on."""
    if len(record) < 24:
        return None
    _, msg_type, rpcvers = struct.unpack_from(">III", record, 0)
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
    return pos if pos <= len(record) else None


def restamp(record: memoryview, ids: Identities) -> tuple[bytes | memoryview, int] | None:
    """(head, pos): what to send upstream instead of the record's first `pos` bytes (the RPC
    header with the credential the call runs as; a refused filehandle in the rest is made stale
    in place); None when the record is not to be passed on."""
    if len(record) >= 8 and _U32.unpack_from(record, 4)[0] == 1:
        return record[:0], 0  # a REPLY to a backchannel call: untouched
    pos = call_args(record)
    if pos is None:
        return None
    _, _, _, prog, vers, proc = _HEAD.unpack_from(record, 0)
    identity = ids.identity(record, pos, prog, vers, proc)
    if isinstance(identity, Unreadable):
        log.warning("nfs credential proxy: an NFSv4 call it cannot read; connection closed")
        return None
    if identity is None:  # the client's own credential: the call reaches no stamped export
        return record[:pos], pos
    return bytes(record[:24]) + auth_sys(*identity), pos


def rewrite(record: memoryview, ids: Identities) -> list[bytes | memoryview] | None:
    """The pieces of a client record to send upstream (record mark included); None when it is not
    an RPC message this proxy can pass on."""
    stamped = restamp(record, ids)
    if stamped is None:
        return None
    head, pos = stamped
    body = record[pos:]
    return [_U32.pack(LAST_FRAGMENT | (len(head) + len(body))) + bytes(head), body]


def write_data(prefix: bytearray, length: int, room: int) -> tuple[int, int] | None:
    """(start, size) of the data of a WRITE that runs past `prefix`, the start of a one-fragment
    record of `length` bytes, when at most `room` bytes of it remain to be read; else None."""
    pos = call_args(prefix)
    if pos is None or _HEAD.unpack_from(prefix, 0)[3:] != (NFS_PROGRAM, 4, COMPOUND):
        return None
    writes: list[int] = []
    exports_touched(prefix, pos, 0, {}, writes=writes)
    if not writes or writes[-1] + 4 > len(prefix):
        return None
    start = writes[-1] + 4
    size = (_U32.unpack_from(prefix, writes[-1])[0] + 3) & ~3
    if len(prefix) < start + size <= length and start + size - len(prefix) <= room:
        return start, size
    return None


def _splice_up_to(src: int, dst: int, n: int) -> int | None:
    """Move `n` bytes from socket `src` into pipe `dst`, or as many as fit: the count moved (None:
    the socket's stream ended)."""
    done = 0
    while done < n:
        try:
            moved = os.splice(src, dst, n - done, flags=os.SPLICE_F_NONBLOCK)
        except BlockingIOError:  # the pipe is full (the socket itself blocks)
            return done
        if moved == 0:
            return None
        done += moved
    return done


def _read_pipe(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.readv(fd, [view]) :]


def _splice_exactly(src: int, dst: int, n: int, flags: int = 0) -> bool:
    while n:
        moved = os.splice(src, dst, n, flags=flags)
        if moved == 0:
            return False
        n -= moved
    return True


def _recv_exactly(sock: socket.socket, view: memoryview) -> bool:
    while view:
        n = sock.recv_into(view)
        if n == 0:
            return False
        view = view[n:]
    return True


def recv_mark(sock: socket.socket) -> int | None:
    """The next record mark (last-fragment bit and length), or None at the end of the stream."""
    mark = bytearray(4)
    return _U32.unpack(mark)[0] if _recv_exactly(sock, memoryview(mark)) else None


def read_record(sock: socket.socket, value: int) -> memoryview | None:
    """The rest of a whole RPC record whose first record mark was `value` (its fragments joined),
    or None at the end of the stream."""
    parts: list[bytearray] = []
    total = 0
    while True:
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
        mark = recv_mark(sock)
        if mark is None:
            return None
        value = mark


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
        pipe = _pipe(WRITE_PIPE_SIZE)
        try:
            while True:
                mark = recv_mark(client)
                if mark is None or not self._forward(client, upstream, mark, pipe):
                    break
        except OSError:
            pass
        except Exception:  # a bug must cost this connection only, never the proxy
            log.exception("nfs credential proxy: connection dropped")
        finally:
            os.close(pipe[0])
            os.close(pipe[1])
            _close(client, upstream)

    def _forward(
        self, client: socket.socket, upstream: socket.socket, mark: int, pipe: tuple[int, int, int]
    ) -> bool:
        """Pass on one client record whose record mark was `mark`; False when the connection is to
        end. A large one-fragment record is read in two steps: its start, then (when it is a
        WRITE whose data runs past that) the data moved by the kernel, never copied in here."""
        length = mark & ~LAST_FRAGMENT
        if mark & LAST_FRAGMENT and length >= SPLICE_AT:
            prefix = bytearray(PREFIX)
            if not _recv_exactly(client, memoryview(prefix)):
                return False
            data = write_data(prefix, length, pipe[2])
            if data is not None:
                return self._forward_write(client, upstream, prefix, length, *data, pipe)
            whole = bytearray(length)
            whole[:PREFIX] = prefix
            if not _recv_exactly(client, memoryview(whole)[PREFIX:]):
                return False
            record: memoryview | None = memoryview(whole)
        else:
            record = read_record(client, mark)
        return record is not None and self._send(upstream, record)

    def _send(self, upstream: socket.socket, record: memoryview) -> bool:
        pieces = rewrite(record, self.ids)
        if pieces is None:
            return False
        if len(pieces[1]) < 65536:
            upstream.sendall(b"".join(pieces))
        else:
            _send_all(upstream, pieces)
        return True

    def _forward_write(
        self,
        client: socket.socket,
        upstream: socket.socket,
        prefix: bytearray,
        length: int,
        start: int,
        size: int,
        pipe: tuple[int, int, int],
    ) -> bool:
        """A WRITE whose data (`size` bytes from `start`) runs past `prefix`: the rest of the data
        waits in `pipe` while the call without it is checked and stamped (its WRITE's length set
        to 0 for the parse: the data is skipped by its length alone), then goes to `upstream`
        from the pipe. When the pipe fills first (the data came in pieces smaller than its pages),
        the record is read into memory and passed on as any other."""
        in_pipe = start + size - len(prefix)
        piped = _splice_up_to(client.fileno(), pipe[1], in_pipe)
        if piped is None:
            return False
        if piped < in_pipe:
            whole = bytearray(length)
            whole[: len(prefix)] = prefix
            rest = memoryview(whole)[len(prefix) :]
            _read_pipe(pipe[0], rest[:piped])
            return _recv_exactly(client, rest[piped:]) and self._send(upstream, memoryview(whole))
        call = bytearray(prefix[:start])
        call += bytes(length - start - size)
        if not _recv_exactly(client, memoryview(call)[start:]):
            return False
        size_word = call[start - 4 : start]
        call[start - 4 : start] = bytes(4)
        stamped = restamp(memoryview(call), self.ids)
        if stamped is None:
            return False
        head, pos = stamped
        head = bytes(head)
        call[start - 4 : start] = size_word
        mark = _U32.pack(LAST_FRAGMENT | (len(head) + length - pos))
        upstream.sendall(mark + head + call[pos:start] + prefix[start:], socket.MSG_MORE)
        more = os.SPLICE_F_MORE if len(call) > start else 0
        if not _splice_exactly(pipe[0], upstream.fileno(), in_pipe, more):
            return False
        if len(call) > start:
            upstream.sendall(call[start:])
        return True

    @staticmethod
    def _answers(upstream: socket.socket, client: socket.socket) -> None:
        """Server to client: replies and backchannel calls, byte for byte, moved by the kernel
        (splice through a pipe: the data never enters this process)."""
        read_end, write_end, _ = _pipe()
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


def _pipe(size: int = PIPE_SIZE) -> tuple[int, int, int]:
    """A pipe (read end, write end, its capacity): `size`, or else as large as the system lets
    it be (past /proc/sys/fs/pipe-max-size only with CAP_SYS_RESOURCE)."""
    read_end, write_end = os.pipe()
    for wanted in (size, PIPE_SIZE):
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, wanted)
            break
        except OSError:
            pass  # a smaller pipe only means more splices
    return read_end, write_end, fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)


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
