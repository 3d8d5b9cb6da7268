"""Moving the bytes of encrypted objects: streamed GET bodies, and copies that re-encrypt.

A plaintext object still goes out as a `FileBody` (sendfile); an encrypted one as a
`ProducedBody` that reads and opens about 1 MiB at a time into one reused buffer, which the
gateway writes straight to the socket (strata.gateway.produced). A copy reads the source's plaintext (opening it if it is
encrypted), hashes it and writes it encrypted for the destination into a temp file, which the
caller publishes. `EncryptedObjects` holds the object operations' share of this (SSE-C checks on
reads, re-encrypting copies), to keep objects.py about objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import ProducedBody
from strata.services.s3.core import S3Core
from strata.services.s3.encryption import (
    SPARE,
    Corrupt,
    Encryptor,
    bytes_reader,
    file_reader,
    open_small,
    read_plain,
)
from strata.services.s3.ingest import Received, _pool, new_hasher, stored_bytes
from strata.services.s3.sse import customer_key, headers_of, require_customer
from strata.services.s3.store import ObjectRow
from strata.storage import BlobStore

PLAIN_STEP = 1 << 20
# Encrypted reads up to this size are opened on the event loop (`opened`).
SMALL_READ = 256 * 1024


def plain_sizes(row_attrs: dict[str, Any], size: int) -> list[int]:
    """Plaintext sizes of an encrypted object's segments: one per part, or one."""
    return list(row_attrs.get("parts") or [size])


def plain_pieces(
    source: Path | bytes,
    keys: list[bytes] | None,
    sizes: list[int],
    first: int,
    last: int,
    reuse: bool = False,
) -> Generator[bytes | bytearray | memoryview, None, None]:
    """Plaintext bytes first..last of a stored object (a blob path or inline bytes), in pieces;
    `keys` None: the stored bytes are the plaintext. `reuse`: an encrypted object's pieces share
    one buffer (each valid until the next is asked for; see read_plain)."""
    if last < first:
        return
    if isinstance(source, bytes):
        if keys is None:
            yield source[first : last + 1]
        else:
            yield from read_plain(bytes_reader(source), keys, sizes, first, last, reuse=reuse)
        return
    fd = os.open(source, os.O_RDONLY)
    try:
        if keys is None:
            pos = first
            while pos <= last:
                piece = os.pread(fd, min(PLAIN_STEP * 4, last + 1 - pos), pos)
                if not piece:
                    raise OSError("object file shorter than its size")
                yield piece
                pos += len(piece)
        else:
            buf = SPARE.take() if reuse else None
            try:
                yield from read_plain(file_reader(fd, buf), keys, sizes, first, last, reuse=reuse)
            finally:
                if buf is not None:
                    SPARE.give(buf)
    finally:
        os.close(fd)


def opened(
    source: Path | bytes, keys: list[bytes], sizes: list[int], first: int, last: int
) -> bytes | ProducedBody:
    """A GET body of an encrypted object: small ones (inline, or a short range) opened here and
    now, as bytes (a trip to a worker thread would cost more than opening them); larger ones
    opened as they go out."""
    if isinstance(source, bytes) and len(sizes) == 1:
        return open_small(source, keys, sizes[0], first, last) if last >= first else b""
    if isinstance(source, bytes) or last - first < SMALL_READ:
        return b"".join(plain_pieces(source, keys, sizes, first, last))
    pieces = plain_pieces(source, keys, sizes, first, last, reuse=True)
    return ProducedBody(_sending(pieces), last - first + 1)


def _sending(
    pieces: Generator[bytes | bytearray | memoryview, None, None],
) -> Iterator[bytes | bytearray | memoryview]:
    """`pieces` for a response already under way: ciphertext that does not open (damaged on
    disk) can only cut the connection, so the client sees a short body rather than wrong bytes."""
    try:
        yield from pieces
    except Corrupt:
        raise ConnectionResetError("stored ciphertext does not open") from None
    finally:
        pieces.close()


def transcode(
    blobs: BlobStore,
    pieces: Iterator[bytes | bytearray],
    keys: list[bytes] | None,
    algorithms: tuple[str, ...] = (),
) -> tuple[Path, int, dict[str, bytes]]:
    """Write `pieces` (plaintext) to a new temp file, encrypted under `keys` (plain when None),
    hashing them (MD5 and the named checksums). Returns (temp path, plaintext size, digests)."""
    hashers: dict[str, Any] = {"MD5": hashlib.md5()}
    for a in algorithms:
        if a != "MD5":
            hashers[a] = new_hasher(a)
    enc = Encryptor(keys) if keys else None
    tmp, f = blobs.open_temp()
    size = 0
    try:
        with f:
            for piece in pieces:
                size += len(piece)
                for h in hashers.values():
                    h.update(piece)
                f.write(enc.feed(piece) if enc else piece)
            if enc:
                f.write(enc.finish())
        return tmp, size, {a: h.digest() for a, h in hashers.items()}
    except Corrupt:
        blobs.discard(tmp)
        raise ServiceError("InternalError", "The source object's ciphertext does not open.", 500) from None
    except BaseException:
        blobs.discard(tmp)
        raise


def _digest(source: Any, algorithms: tuple[str, ...]) -> dict[str, bytes]:
    """Hash a whole blob file or inline bytes (MD5 and/or flexible checksums) for a copy."""
    hashers = {a: (hashlib.md5() if a == "MD5" else new_hasher(a)) for a in algorithms}
    if isinstance(source, bytes):
        for h in hashers.values():
            h.update(source)
    else:
        with open(source, "rb") as f:
            while chunk := f.read(4 * 1024 * 1024):
                for h in hashers.values():
                    h.update(chunk)
    return {a: h.digest() for a, h in hashers.items()}


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


class EncryptedObjects(S3Core):
    """What object operations do with encrypted objects (a base of ObjectOperations)."""

    def _customer(self, ctx: RequestContext, req: dict, row: ObjectRow, out: dict[str, Any]) -> bytes | None:
        """The SSE-C key a read carries, checked against the object; its answer's SSE-C members."""
        customer = customer_key(req, ctx.http.secure)
        require_customer(row.attrs.get("sse"), customer)
        if customer is not None:
            out.update(headers_of(row.attrs["sse"], customer))
        return customer

    async def _recrypt(
        self,
        ctx: RequestContext,
        src: ObjectRow,
        src_inline: bytes | None,
        src_customer: bytes | None,
        sealing: Any,
        need: tuple,
    ) -> tuple[str | None, bytes | None, dict[str, bytes]]:
        """A copy's bytes: the source's plaintext, encrypted as `sealing` says (plain if None), as
        a new blob or (small sources) inline bytes; with the digests `need` names. `src_inline`:
        the source's stored bytes when it has no blob (read off the event loop with its row)."""
        src_keys = self.sse_keys.open(ctx, src.attrs["sse"], src_customer) if src.attrs.get("sse") else None
        source = self.blobs.path(src.blob) if src.blob else src_inline or b""
        pieces = plain_pieces(source, src_keys, plain_sizes(src.attrs, src.size), 0, src.size - 1)
        keys = sealing.keys if sealing else None
        if src.blob is None:
            plain = b"".join(pieces)
            digests = _digest(plain, need) if need else {}
            got = Received(None, len(plain), b"", {}, plain, keys)
            return None, stored_bytes(got), digests
        tmp, _, digests = await run(transcode, self.blobs, pieces, keys, need)
        blob = await run(self.blobs.publish, tmp)
        return blob, None, digests
