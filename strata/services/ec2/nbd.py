"""The NBD server: attached volumes as block devices for qemu-img, nbdcopy, libnbd, the kernel.

Fixed newstyle handshake (NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST,
NBD_OPT_ABORT, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_LIST/SET_META_CONTEXT with the one context
`base:allocation`; anything else is NBD_REP_ERR_UNSUP), simple or structured replies, and the
transmission commands READ, WRITE (with FUA), FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS and DISC.
BLOCK_STATUS tells a client which ranges were never written (holes), so nbdcopy and qemu-img
skip them instead of reading zeros. The export name is the volume id; only an attached volume is
exported. Every connection to a volume shares its one
device, so a FLUSH on any connection makes every acknowledged write durable (CAN_MULTI_CONN).
Protocol reference: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md

The event loop only accepts connections; each connection is then served by threads of its own
with blocking sockets (handshake here, data path in `nbd_transmission`), so NBD traffic costs
the loop nothing and a request costs a few system calls.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from typing import TYPE_CHECKING

from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.ec2.blocks import BlockDevice
from strata.services.ec2.limits import BLOCK_SIZE, GIB
from strata.services.ec2.nbd_transmission import (
    ALLOCATION_ID,
    MAX_REQUEST,
    Closed,
    Negotiated,
    Transmission,
    recv_exact,
)
from strata.services.ec2.performance import VolumeLimiter, limits_enabled
from strata.services.ec2.states import attachments
from strata.services.ec2.volume_files import FileDevice

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

log = logging.getLogger("strata.ec2.nbd")

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9

FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
OPT_STRUCTURED_REPLY, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 8, 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
ALLOCATION = b"base:allocation"
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_UNKNOWN = 2**31 + 1, 2**31 + 3, 2**31 + 6
INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3
TX_FLAGS = (
    1 | 4 | 8 | 32 | 64 | 256
)  # HAS_FLAGS SEND_FLUSH SEND_FUA SEND_TRIM SEND_WRITE_ZEROES CAN_MULTI_CONN
IP_FREEBIND = 15  # Linux: bind an address this machine does not hold (yet)
JOIN_TIMEOUT = 30.0  # seconds a disconnect waits for a connection's requests to finish


class NbdServer:
    def __init__(self, provider: EC2Provider) -> None:
        self.provider = provider
        self._listeners: list[socket.socket] = []  # the address served, then the engine address's
        self._accepting: list[asyncio.Task] = []
        self._host = "127.0.0.1"
        self._port = 0
        self._lock = threading.Lock()
        self._conns: dict[str, dict[socket.socket, threading.Thread]] = {}
        self._handshaking: dict[socket.socket, threading.Thread] = {}
        self._limiters: dict[str, VolumeLimiter] = {}
        # volume -> the I/O counters of its open connections, and the totals of its closed ones
        self._io_live: dict[str, list[list[int]]] = {}
        self._io_closed: dict[str, list[int]] = {}
        self.limits = limits_enabled()

    async def start(self, host: str, port: int, engine_address: str | None = None) -> None:
        """Serve on host:port, and with an engine address (strata.engines.floating) on that
        address's same port too, bound whether or not this machine holds it now."""
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self._listeners = [socket.create_server((host, port), family=family, backlog=128)]
        self._host, self._port = self._listeners[0].getsockname()[:2]
        if engine_address is not None and host not in (engine_address, "0.0.0.0"):
            extra = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            extra.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            extra.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            extra.bind((engine_address, self._port))
            extra.listen(128)
            self._listeners.append(extra)
        for listener in self._listeners:
            listener.setblocking(False)
            self._accepting.append(asyncio.ensure_future(self._accept(listener)))
        log.info(
            "NBD on %s", ", ".join(f"{a}:{p}" for a, p, *_ in (s.getsockname() for s in self._listeners))
        )

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as e:  # e.g. out of file descriptors: try again shortly
                log.warning("NBD accept failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(sock,), name="nbd", daemon=True)
            with self._lock:
                self._handshaking[sock] = thread
            thread.start()

    async def stop(self) -> None:
        """Stop accepting, end every connection and wait for their requests to finish (the
        devices are closed after this)."""
        for task in self._accepting:
            task.cancel()
        for listener in self._listeners:
            listener.close()
        self._accepting, self._listeners = [], []
        with self._lock:
            conns = dict(self._handshaking)
            self._handshaking.clear()
            for by_sock in self._conns.values():
                conns.update(by_sock)
            self._conns.clear()
        await run_blocking(_end, conns)

    def address(self) -> tuple[str, int]:
        return self._host, self._port

    def uri(self, volume_id: str) -> str:
        """Where an attached volume is served (the admin API and `strata ebs nbd-uri` print it)."""
        doc = self.provider.store.get_doc("volume", volume_id)
        if doc is None:
            raise ServiceError("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.", 400)
        if not _served(doc):
            raise ServiceError(
                "IncorrectState",
                f"Volume '{volume_id}' is not attached: attach it to serve it over NBD.",
                400,
            )
        return f"nbd://{self._host}:{self._port}/{volume_id}"

    async def disconnect(self, volume_id: str) -> None:
        """End the volume's connections; returns once their requests have finished."""
        with self._lock:
            conns = self._conns.pop(volume_id, {})
        if conns:
            await run_blocking(_end, conns)

    def retune(self, doc: dict) -> None:
        """A volume's performance changed (ModifyVolume): its limits follow at once."""
        limiter = self._limiters.get(doc["id"])
        if limiter is not None:
            limiter.retune(doc)

    def io_totals(self) -> dict[str, tuple[int, ...]]:
        """Per volume: reads, bytes read, writes, bytes written received since Strata started."""
        with self._lock:
            names = set(self._io_live) | set(self._io_closed)
            return {
                name: tuple(
                    sum(column)
                    for column in zip(
                        self._io_closed.get(name, [0, 0, 0, 0]), *self._io_live.get(name, ()), strict=True
                    )
                )
                for name in names
            }

    def burst_balance(self, volume_id: str) -> float | None:
        """Percent of burst credits left (gp2, st1, sc1 with limits on); None without credits."""
        limiter = self._limiters.get(volume_id)
        return limiter.burst_balance() if limiter is not None else None

    def _export(self, name: str) -> BlockDevice | FileDevice | None:
        doc = self.provider.store.get_doc("volume", name)
        if doc is None or not _served(doc):
            return None
        if self.limits and doc["id"] not in self._limiters:
            self._limiters[doc["id"]] = VolumeLimiter(doc)
        sealer = self.provider.crypto.sealer(None, doc)
        return self.provider.blocks.device(doc["id"], doc["size"] * GIB, sealer)

    # -- a connection (its own thread) -------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        name = None
        try:
            negotiated = Negotiated()
            dev = self._handshake(sock, negotiated)
            if dev is None:
                return
            name = dev.owner
            with self._lock:
                thread = self._handshaking.pop(sock, None)
                if thread is None:  # the server is stopping
                    return
                self._conns.setdefault(name, {})[sock] = thread
                if not _served(self.provider.store.get_doc("volume", name) or {}):
                    return  # detached while this connection was opening
            io = [0, 0, 0, 0]
            with self._lock:
                self._io_live.setdefault(name, []).append(io)
            try:
                Transmission(sock, dev, self._limiters.get(name), negotiated, io).run()
            finally:
                with self._lock:
                    self._io_live[name].remove(io)
                    closed = self._io_closed.setdefault(name, [0, 0, 0, 0])
                    for i, n in enumerate(io):
                        closed[i] += n
        except (Closed, ConnectionError, OSError):
            pass
        except Exception:  # noqa: BLE001 - one broken connection must not take the server down
            log.exception("NBD connection for %s failed", name)
        finally:
            with self._lock:
                self._handshaking.pop(sock, None)
                if name is not None:
                    self._conns.get(name, {}).pop(sock, None)
            sock.close()

    def _handshake(self, sock: socket.socket, negotiated: Negotiated) -> BlockDevice | FileDevice | None:
        """The option haggling phase: the device chosen, or None when the client gave up; what
        else was agreed goes into `negotiated`."""
        sock.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", _recv(sock, 4))
        no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
        while True:
            magic, option, length = struct.unpack(">QII", _recv(sock, 16))
            if magic != IHAVEOPT or length > 65536:
                return None
            data = _recv(sock, length)
            if option == OPT_EXPORT_NAME:
                dev = self._export(data.decode(errors="replace"))
                if dev is not None:
                    sock.sendall(struct.pack(">QH", dev.size, TX_FLAGS) + (b"" if no_zeroes else bytes(124)))
                return dev
            if option in (OPT_GO, OPT_INFO):
                if length < 6:
                    _reply(sock, option, REP_ERR_INVALID, b"")
                    continue
                (n,) = struct.unpack(">I", data[:4])
                name = data[4 : 4 + n].decode(errors="replace")
                found = self._export(name)
                if found is None:
                    _reply(sock, option, REP_ERR_UNKNOWN, f"no attached volume {name}".encode())
                    continue
                _reply(sock, option, REP_INFO, struct.pack(">HQH", INFO_EXPORT, found.size, TX_FLAGS))
                _reply(sock, option, REP_INFO, struct.pack(">HIII", INFO_BLOCK_SIZE, 1, 4096, MAX_REQUEST))
                _reply(sock, option, REP_ACK, b"")
                if option == OPT_GO:
                    return found
            elif option == OPT_LIST:
                for volume_id in self._attached_ids():
                    raw = volume_id.encode()
                    _reply(sock, option, REP_SERVER, struct.pack(">I", len(raw)) + raw)
                _reply(sock, option, REP_ACK, b"")
            elif option == OPT_ABORT:
                _reply(sock, option, REP_ACK, b"")
                return None
            elif option == OPT_STRUCTURED_REPLY:
                if length:
                    _reply(sock, option, REP_ERR_INVALID, b"")
                    continue
                negotiated.structured = True
                _reply(sock, option, REP_ACK, b"")
            elif option in (OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT):
                self._meta_context(sock, option, data, negotiated)
            else:
                _reply(sock, option, REP_ERR_UNSUP, b"")

    @staticmethod
    def _meta_context(sock: socket.socket, option: int, data: bytes, negotiated: Negotiated) -> None:
        """LIST/SET_META_CONTEXT: `base:allocation` is the one context there is (id 1)."""
        try:
            (n,) = struct.unpack_from(">I", data)
            pos = 4 + n
            (count,) = struct.unpack_from(">I", data, pos)
            pos += 4
            queries = []
            for _ in range(count):
                (n,) = struct.unpack_from(">I", data, pos)
                queries.append(data[pos + 4 : pos + 4 + n])
                pos += 4 + n
            if pos != len(data):
                raise struct.error("trailing bytes")
        except struct.error:
            _reply(sock, option, REP_ERR_INVALID, b"malformed meta context request")
            return
        if option == OPT_SET_META_CONTEXT and not negotiated.structured:
            _reply(sock, option, REP_ERR_INVALID, b"structured replies first")
            return
        listing = option == OPT_LIST_META_CONTEXT and not queries
        wanted = (ALLOCATION, b"base:") if option == OPT_LIST_META_CONTEXT else (ALLOCATION,)
        chosen = listing or any(q in wanted for q in queries)
        if option == OPT_SET_META_CONTEXT:
            negotiated.allocation = chosen
        if chosen:
            _reply(sock, option, REP_META_CONTEXT, struct.pack(">I", ALLOCATION_ID) + ALLOCATION)
        _reply(sock, option, REP_ACK, b"")

    def _attached_ids(self) -> list[str]:
        return [d["id"] for d in self.provider.store.list_docs("volume") if _served(d)]


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    recv_exact(sock, memoryview(buf))
    return bytes(buf)


def _reply(sock: socket.socket, option: int, kind: int, data: bytes) -> None:
    sock.sendall(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)) + data)


def _end(conns: dict[socket.socket, threading.Thread]) -> None:
    """Shut the connections down and wait for their threads (their last requests finish)."""
    for sock in conns:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    for thread in conns.values():
        thread.join(JOIN_TIMEOUT)


def _served(doc: dict) -> bool:
    """A volume is served while some attachment of it is attaching or attached."""
    return any(a["state"] != "detaching" for a in attachments(doc))


__all__ = ["BLOCK_SIZE", "NbdServer"]
