"""The NBD server: attached volumes as block devices for qemu-img, nbdcopy, libnbd, the kernel.

Fixed newstyle handshake (NBD_OPT_EXPORT_NAME, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST,
NBD_OPT_ABORT; anything else is NBD_REP_ERR_UNSUP), simple replies, and the transmission
commands READ, WRITE (with FUA), FLUSH, TRIM, WRITE_ZEROES and DISC. The export name is the
volume id; only an attached volume is exported. Every connection to a volume shares its one
BlockDevice, so a FLUSH on any connection makes every acknowledged write durable (CAN_MULTI_CONN).
Protocol reference: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING

from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.ec2.blocks import BlockDevice
from strata.services.ec2.limits import BLOCK_SIZE, GIB
from strata.services.ec2.performance import VolumeLimiter, limits_enabled
from strata.services.ec2.states import attachments
from strata.services.ec2.volume_files import FileDevice

if TYPE_CHECKING:
    from strata.services.ec2.provider import EC2Provider

log = logging.getLogger("strata.ec2.nbd")

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_UNKNOWN = 2**31 + 1, 2**31 + 3, 2**31 + 6
INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3
TX_FLAGS = (
    1 | 4 | 8 | 32 | 64 | 256
)  # HAS_FLAGS SEND_FLUSH SEND_FUA SEND_TRIM SEND_WRITE_ZEROES CAN_MULTI_CONN
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_FLAG_FUA = 1
EIO, EINVAL, ENOSPC = 5, 22, 28
MAX_REQUEST = 32 * 1024 * 1024
IN_FLIGHT = 16  # requests of one connection being served at once


class NbdServer:
    def __init__(self, provider: EC2Provider) -> None:
        self.provider = provider
        self._server: asyncio.Server | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._conns: dict[str, set[asyncio.StreamWriter]] = {}
        self._limiters: dict[str, VolumeLimiter] = {}
        self.limits = limits_enabled()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self._host, self._port = self._server.sockets[0].getsockname()[:2]
        log.info("NBD on %s:%s", self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conns in self._conns.values():
                for w in conns:
                    w.close()

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
        for w in self._conns.pop(volume_id, set()):
            w.close()

    def retune(self, doc: dict) -> None:
        """A volume's performance changed (ModifyVolume): its limits follow at once."""
        limiter = self._limiters.get(doc["id"])
        if limiter is not None:
            limiter.retune(doc)

    def _export(self, name: str) -> BlockDevice | FileDevice | None:
        doc = self.provider.store.get_doc("volume", name)
        if doc is None or not _served(doc):
            return None
        if self.limits and doc["id"] not in self._limiters:
            self._limiters[doc["id"]] = VolumeLimiter(doc)
        sealer = self.provider.crypto.sealer(None, doc)
        return self.provider.blocks.device(doc["id"], doc["size"] * GIB, sealer)

    # -- handshake ---------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = None
        try:
            writer.write(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
            (client_flags,) = struct.unpack(">I", await reader.readexactly(4))
            no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
            dev = None
            while dev is None:
                magic, option, length = struct.unpack(">QII", await reader.readexactly(16))
                if magic != IHAVEOPT or length > 65536:
                    return
                data = await reader.readexactly(length)
                if option == OPT_EXPORT_NAME:
                    name = data.decode(errors="replace")
                    dev = await run_blocking(self._export, name)
                    if dev is None:
                        return
                    writer.write(struct.pack(">QH", dev.size, TX_FLAGS) + (b"" if no_zeroes else bytes(124)))
                elif option in (OPT_GO, OPT_INFO):
                    if length < 6:
                        self._reply(writer, option, REP_ERR_INVALID, b"")
                        continue
                    (n,) = struct.unpack(">I", data[:4])
                    name = data[4 : 4 + n].decode(errors="replace")
                    found = await run_blocking(self._export, name)
                    if found is None:
                        self._reply(writer, option, REP_ERR_UNKNOWN, f"no attached volume {name}".encode())
                        continue
                    self._reply(
                        writer, option, REP_INFO, struct.pack(">HQH", INFO_EXPORT, found.size, TX_FLAGS)
                    )
                    self._reply(
                        writer, option, REP_INFO, struct.pack(">HIII", INFO_BLOCK_SIZE, 1, 4096, MAX_REQUEST)
                    )
                    self._reply(writer, option, REP_ACK, b"")
                    if option == OPT_GO:
                        dev = found
                elif option == OPT_LIST:
                    for volume_id in self._attached_ids():
                        raw = volume_id.encode()
                        self._reply(writer, option, REP_SERVER, struct.pack(">I", len(raw)) + raw)
                    self._reply(writer, option, REP_ACK, b"")
                elif option == OPT_ABORT:
                    self._reply(writer, option, REP_ACK, b"")
                    await writer.drain()
                    return
                else:
                    self._reply(writer, option, REP_ERR_UNSUP, b"")
                await writer.drain()
            self._conns.setdefault(dev.owner, set()).add(writer)
            await self._transmit(reader, writer, dev)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001 - one broken connection must not take the server down
            log.exception("NBD connection for %s failed", name)
        finally:
            if name in self._conns:
                self._conns[name].discard(writer)
            writer.close()

    def _attached_ids(self) -> list[str]:
        return [d["id"] for d in self.provider.store.list_docs("volume") if _served(d)]

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, option: int, kind: int, data: bytes) -> None:
        writer.write(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)) + data)

    # -- transmission ------------------------------------------------------------------------------

    async def _transmit(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dev: BlockDevice | FileDevice
    ) -> None:
        # Requests run concurrently (the reply carries the request's handle, so replies may come
        # out of order): a client with several requests in flight keeps the disk and the
        # threads busy. At most IN_FLIGHT per connection, so memory stays bounded.
        slots = asyncio.Semaphore(IN_FLIGHT)
        running: set[asyncio.Task] = set()
        replies = _Replies(writer)
        try:
            while True:
                header = await reader.readexactly(28)
                magic, flags, kind, handle, offset, length = struct.unpack(">IHHQQI", header)
                if magic != REQUEST_MAGIC:
                    return
                if kind == CMD_DISC:
                    if running:
                        await asyncio.wait(running)
                    await run_blocking(dev.flush)
                    return
                payload = await reader.readexactly(length) if kind == CMD_WRITE else b""
                limiter = self._limiters.get(dev.owner)
                if limiter is not None and kind in (CMD_READ, CMD_WRITE) and length <= MAX_REQUEST:
                    await limiter.admit(length)
                await slots.acquire()
                task = asyncio.ensure_future(
                    self._request(replies, dev, flags, kind, handle, offset, length, payload)
                )
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            replies.flush()  # what finished before the end still reaches the client
            for task in running:
                task.cancel()

    async def _request(
        self,
        replies: _Replies,
        dev: BlockDevice | FileDevice,
        flags: int,
        kind: int,
        handle: int,
        offset: int,
        length: int,
        payload: bytes,
    ) -> None:
        error, data = 0, b""
        if length > MAX_REQUEST:
            error = EINVAL
        elif kind in (CMD_READ, CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES) and offset + length > dev.size:
            error = ENOSPC if kind != CMD_READ else EINVAL
        else:
            try:
                if kind == CMD_READ:
                    fast = dev.try_read(offset, length)
                    data = fast if fast is not None else await run_blocking(dev.read, offset, length)
                elif kind == CMD_WRITE:
                    if not dev.try_write(offset, payload):
                        await run_blocking(dev.write, offset, payload)
                elif kind in (CMD_TRIM, CMD_WRITE_ZEROES):
                    await run_blocking(dev.zero, offset, length)
                elif kind == CMD_FLUSH:
                    await run_blocking(dev.flush)
                else:
                    error = EINVAL
                if not error and flags & CMD_FLAG_FUA and kind in (CMD_WRITE, CMD_WRITE_ZEROES, CMD_TRIM):
                    await run_blocking(dev.flush)
            except Exception:  # noqa: BLE001 - the client gets EIO, the log the cause
                log.exception("NBD %s on %s failed", kind, dev.owner)
                error = EIO
        reply = struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, handle)
        if kind == CMD_READ and not error:
            replies.send(reply, data)
        else:
            replies.send(reply)
        await replies.drain()


class _Replies:
    """A connection's replies, sent together once per event-loop turn: the replies of the
    requests that finished in one turn cost one writev, not a send each."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.parts: list[bytes | bytearray] = []
        self.loop = asyncio.get_running_loop()

    def send(self, *parts: bytes | bytearray) -> None:
        if not self.parts:
            self.loop.call_soon(self.flush)
        self.parts.extend(parts)

    def flush(self) -> None:
        parts, self.parts = self.parts, []
        if parts and not self.writer.is_closing():
            self.writer.writelines(parts)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except ConnectionError:
            pass


def _served(doc: dict) -> bool:
    """A volume is served while some attachment of it is attaching or attached."""
    return any(a["state"] != "detaching" for a in attachments(doc))


__all__ = ["BLOCK_SIZE", "NbdServer"]
